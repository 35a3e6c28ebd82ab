import ArgumentParser
import FlexData

/// The data options `simulate` and `partition` share: `--dataset`, `--split`, `--test-fraction`,
/// `--seed`. The split's default differs per command (simulate dirichlet:0.3, partition
/// dirichlet:0.5), so the group is generic over the command's defaults.
struct DataOptions<Defaults: DataDefaults>: ParsableArguments {
    @Option(help: "Data set.")
    var dataset: DatasetSpec = .synthetic(alpha: 1, beta: 1)

    @Option(help: "How the samples are split among the devices.")
    var split: SplitSpec = Defaults.split

    @Option(help: "Held-out fraction of each device's samples (its local test set).")
    var testFraction = 0.2

    @Option(help: ArgumentHelp(Defaults.seedHelp))
    var seed: UInt64 = 1

    func validate() throws {
        guard testFraction >= 0 && testFraction < 1 else { throw ValidationError("--test-fraction in [0, 1)") }
    }
}

/// A command's defaults for `DataOptions`.
protocol DataDefaults {
    static var split: SplitSpec { get }
    static var seedHelp: String { get }
}

extension DatasetSpec: ExpressibleByArgument {
    public init?(argument: String) {
        guard let spec = try? DatasetSpec.parse(argument) else { return nil }
        self = spec
    }

    /// The spec as it is written on the command line (`name` is the short form for logs).
    public var defaultValueDescription: String {
        switch self {
        case .synthetic(1, 1): return "synthetic"
        case .synthetic(let a, let b): return "synthetic:\(a),\(b)"
        case .csv(let p): return "csv:" + p
        case .idx(let i, let l): return "idx:\(i),\(l)"
        case .cifar(let files): return "cifar:" + files.joined(separator: ",")
        }
    }

    /// The accepted forms, listed in the help and in the error for a bad value.
    public static var allValueStrings: [String] { forms }
}

extension SplitSpec: ExpressibleByArgument {
    public init?(argument: String) {
        guard let spec = try? SplitSpec.parse(argument) else { return nil }
        self = spec
    }

    public var defaultValueDescription: String { name }

    /// The accepted forms, listed in the help and in the error for a bad value.
    public static var allValueStrings: [String] { forms }
}
