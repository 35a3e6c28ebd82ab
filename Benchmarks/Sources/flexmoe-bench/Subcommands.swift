import ArgumentParser

/// The list of benchmark subcommands; add one line per benchmark.
let benchSubcommands: [any ParsableCommand.Type] = [
    AssignBench.self,
    TrainBench.self,
    QuantBench.self,
    ZstdBench.self,
    ServerBench.self,
]
