import ArgumentParser

/// Each subcommand lives in its own file (QuantBench.swift, ZstdBench.swift, AssignBench.swift, ...)
/// and prints one JSON line of figures.
struct FlexMoEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexmoe-bench",
        abstract: "FlexMoE benchmarks (build with -c release). Each subcommand prints one JSON line.",
        subcommands: benchSubcommands)
}
FlexMoEBench.main()
