import ArgumentParser

/// `flexmoe-server`: the host-side command (assignment now; serve, aggregate, partition, simulate later).
struct FlexMoEServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexmoe-server",
        abstract: "FlexMoE server: load-balanced expert assignment and aggregation.",
        subcommands: [AssignCommand.self, ServeCommand.self, EnrollCommand.self, AggregateCommand.self, PartitionCommand.self, SimulateCommand.self, FederateCommand.self])
}
FlexMoEServer.main()
