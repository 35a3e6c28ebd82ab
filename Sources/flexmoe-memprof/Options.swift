import FlexEdge
import FlexModel
import FlexTensor

/// Flags of flexmoe-memprof, parsed by hand (Embedded Swift).
struct MemprofOptions {
    var profile: ProfileOptions
    var board: BoardProfile
    var jsonOutput = false
    var svgPath: String?
    var runRound = true

    static func parse(_ args: [String]) throws(EdgeError) -> MemprofOptions {
        let valued = ["--board", "--memory-budget", "--storage", "--update", "--data", "--kc", "--batch",
                      "--d", "--h", "--f", "--classes", "--experts", "--topk", "--svg", "--seed"]
        let values = try FlagValues(args, known: valued, switches: ["--json", "--no-round"])
        let json = values.set.contains("--json"), noRound = values.set.contains("--no-round")
        func int(_ flag: String, _ fallback: Int, _ range: ClosedRange<Int>) throws(EdgeError) -> Int {
            guard let text = values[flag] else { return fallback }
            guard let v = Int(text), range.contains(v) else { throw .usage("\(flag): '\(text)' is not a number in \(range.lowerBound)...\(range.upperBound)") }
            return v
        }
        func dtype(_ flag: String) throws(EdgeError) -> DType {
            let text = values[flag] ?? "int8"
            guard let d = DType.named(text) else { throw .usage("\(flag): '\(text)' (int8, int8-row, fp16, fp32)") }
            return d
        }
        let boardName = values["--board"] ?? "pi-zero-2w"
        guard let board = BoardProfile.named(boardName) else { throw .usage("unknown board '\(boardName)' (pi-zero-2w, pi-3b, pi-4b, pi-5)") }
        var budget = board.defaultBudgetBytes
        if let text = values["--memory-budget"] {
            guard let b = Format.parseBytes(text), b > 0 else { throw .usage("--memory-budget: '\(text)' is not a size like 48MiB") }
            budget = b
        }
        let experts = try int("--experts", 8, 1...4096)
        let config = MoEConfig(inputDim: try int("--d", 60, 1...1 << 20), hidden: try int("--h", 64, 1...1 << 16),
                               expertHidden: try int("--f", 128, 1...1 << 16), classes: try int("--classes", 10, 2...1 << 16),
                               experts: experts, topK: try int("--topk", 2, 1...64))
        var data = try DataSource.parse(values["--data"] ?? "synthetic:client=0,seed=1")
        if case .synthetic = data, config.inputDim != 60 || config.classes != 10 {
            // The embedded synthetic data is 60 features, 10 classes; other shapes get random data.
            data = .random(rows: 600, dim: config.inputDim, classes: config.classes, seed: 1)
        }
        let profile = ProfileOptions(budget: budget, config: config, storage: try dtype("--storage"), update: try dtype("--update"),
                                     data: data, maxKc: try int("--kc", board.defaultKc, 1...4096),
                                     batch: try int("--batch", 32, 1...1 << 16), seed: UInt64(try int("--seed", 1, 0...Int.max)))
        return MemprofOptions(profile: profile, board: board, jsonOutput: json, svgPath: values["--svg"], runRound: !noRound)
    }
}
