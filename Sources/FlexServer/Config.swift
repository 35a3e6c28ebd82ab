import FlexAssign
import FlexModel
import FlexTensor
import Foundation

/// `flexmoe-server serve --config FILE`: every key, with its default, is documented in docs/SERVER.md.
/// Keys are snake_case JSON; a missing key takes its default, an unknown key is an error.
public struct ServerConfig: Sendable, Equatable {
    // model
    public var inputDim = 60
    public var hidden = 64
    public var expertHidden = 128
    public var classes = 10
    public var experts = 8
    public var topK = 2
    // rounds
    public var rounds = 20
    public var minClients = 2
    public var roundDeadline = 60.0
    public var localEpochs = 1
    public var batch = 32
    public var learningRate = Double(TrainingOptions.federated.learningRate)
    public var momentum = Double(TrainingOptions.federated.momentum)
    public var gradientClip = Double(TrainingOptions.federated.gradientClip)
    // assignment and fitness
    public var beta = 0.3
    public var alphaLoss = 1.0
    public var epsilon = LoadBounds.defaultSlack
    public var fitness = "accuracy"
    public var solver = "flex"
    // aggregation
    public var expertWeighting = "usage"
    public var clipNorm = 0.0
    public var storageDType = "int8-block"
    public var updateDType = "int8-block"
    public var maxReportBytes = 0
    // service
    public var listenHost = "127.0.0.1"
    public var port = 8080
    public var stateDir = "flexmoe-state"
    public var tokenFile = ""
    public var keepCheckpoints = 5
    public var seed: UInt64 = 1
    public var maxStrikes = 2

    public init() {}

    static let keys: [String] = [
        "input_dim", "hidden", "expert_hidden", "classes", "experts", "topk", "rounds", "min_clients",
        "round_deadline_s", "local_epochs", "batch", "learning_rate", "momentum", "gradient_clip", "beta", "alpha_loss", "epsilon",
        "fitness", "solver", "expert_weighting", "clip_norm", "storage_dtype", "update_dtype",
        "max_report_bytes", "listen_host", "port", "state_dir", "token_file", "keep_checkpoints", "seed",
        "max_strikes",
    ]

    public var model: MoEConfig {
        MoEConfig(inputDim: inputDim, hidden: hidden, expertHidden: expertHidden, classes: classes,
                  experts: experts, topK: topK)
    }

    public var resolvedTokenFile: String { tokenFile.isEmpty ? stateDir + "/tokens" : tokenFile }
    public var storage: DType { DType.named(storageDType) ?? .int8Block }
    public var update: DType { DType.named(updateDType) ?? .int8Block }
    public var weightByUsage: Bool { expertWeighting == "usage" }

    /// The report body limit for a client holding `kc` experts (docs/PROTOCOL.md "Limits").
    public func reportLimit(kc: Int) -> Int {
        if maxReportBytes > 0 { return maxReportBytes }
        let m = model
        let extractor = (m.inputDim * m.hidden + m.hidden) * 4
        return 2 * (extractor + kc * m.expertParameterCount * 4) + 64 * 1024
    }

    public static func load(path: String) throws -> ServerConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServerError.config("cannot read \(path)")
        }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws -> ServerConfig {
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ServerError.config("the config must be a JSON object")
        }
        for k in obj.keys where !keys.contains(k) { throw ServerError.config("unknown key '\(k)'") }
        var c = ServerConfig()
        func int(_ k: String, _ v: inout Int, min lo: Int = 0) throws {
            guard let x = obj[k] else { return }
            guard let n = x as? NSNumber, let i = Int(exactly: n.doubleValue), i >= lo else {
                throw ServerError.config("'\(k)' must be an integer ≥ \(lo)")
            }
            v = i
        }
        func real(_ k: String, _ v: inout Double, min lo: Double = 0) throws {
            guard let x = obj[k] else { return }
            guard let n = x as? NSNumber, n.doubleValue.isFinite, n.doubleValue >= lo else {
                throw ServerError.config("'\(k)' must be a number ≥ \(lo)")
            }
            v = n.doubleValue
        }
        func str(_ k: String, _ v: inout String, _ allowed: [String]? = nil) throws {
            guard let x = obj[k] else { return }
            guard let s = x as? String, allowed.map({ $0.contains(s) }) ?? true else {
                throw ServerError.config("'\(k)' must be " + (allowed.map { $0.joined(separator: " | ") } ?? "a string"))
            }
            v = s
        }
        try int("input_dim", &c.inputDim, min: 1); try int("hidden", &c.hidden, min: 1)
        try int("expert_hidden", &c.expertHidden, min: 1); try int("classes", &c.classes, min: 2)
        try int("experts", &c.experts, min: 1); try int("topk", &c.topK, min: 1)
        try int("rounds", &c.rounds, min: 1); try int("min_clients", &c.minClients, min: 1)
        try real("round_deadline_s", &c.roundDeadline, min: 0.1)
        try int("local_epochs", &c.localEpochs, min: 1); try int("batch", &c.batch, min: 1)
        try real("learning_rate", &c.learningRate); try real("beta", &c.beta)
        try real("momentum", &c.momentum); try real("gradient_clip", &c.gradientClip)
        if c.momentum >= 1 { throw ServerError.config("'momentum' must be in [0, 1)") }
        if !(c.beta > 0 && c.beta <= 1) { throw ServerError.config("'beta' must be in (0, 1]") }
        try real("alpha_loss", &c.alphaLoss); try real("epsilon", &c.epsilon)
        try str("fitness", &c.fitness, ["accuracy", "loss"])
        try str("solver", &c.solver, ["flex", "greedy", "random", "round-robin", "exact"])
        try str("expert_weighting", &c.expertWeighting, ["usage", "samples"])
        try real("clip_norm", &c.clipNorm)
        let dtypes = DType.allCases.map(\.name)
        try str("storage_dtype", &c.storageDType, dtypes); try str("update_dtype", &c.updateDType, dtypes)
        try int("max_report_bytes", &c.maxReportBytes)
        try str("listen_host", &c.listenHost); try int("port", &c.port)
        if c.port > 65535 { throw ServerError.config("'port' must be ≤ 65535") }
        try str("state_dir", &c.stateDir); try str("token_file", &c.tokenFile)
        try int("keep_checkpoints", &c.keepCheckpoints, min: 1)
        var seed = Int(c.seed); try int("seed", &seed); c.seed = UInt64(seed)
        try int("max_strikes", &c.maxStrikes, min: 1)
        return c
    }
}

public enum ServerError: Error, CustomStringConvertible {
    case config(String)
    case storage(String)
    case checkpoint(String)
    public var description: String {
        switch self {
        case .config(let s): return "config: \(s)"
        case .storage(let s): return "storage: \(s)"
        case .checkpoint(let s): return "checkpoint: \(s)"
        }
    }
}
