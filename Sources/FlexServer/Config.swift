import FlexAssign
import FlexModel
import FlexTensor
import FlexWire
import Foundation

/// `flexmoe-server serve --config FILE`: every key, with its default, is documented in docs/SERVER.md.
/// Keys are snake_case JSON (`CodingKeys`); a missing key takes its default, an unknown key is an
/// error that names it, and every value is range-checked with an error that names its key.
public struct ServerConfig: Sendable, Equatable, Codable {
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
    public var localEpochs = TrainingOptions.federated.epochs
    public var batch = 32
    public var learningRate = Double(TrainingOptions.federated.learningRate)
    public var momentum = Double(TrainingOptions.federated.momentum)
    public var gradientClip = Double(TrainingOptions.federated.gradientClip)
    // assignment and fitness
    public var beta = 0.3
    public var alphaLoss = 1.0
    public var epsilon = LoadBounds.defaultSlack
    public var fitness = FitnessKind.accuracy
    public var solver = SolverKind.flex
    // aggregation
    public var expertWeighting = ExpertWeighting.usage
    public var clipNorm = 0.0
    /// A device's aggregation weight is at most `weight_cap` × the median |D_c| of the round's
    /// assigned devices (0: off), so a device that claims many samples cannot outweigh the rest.
    public var weightCap = 4.0
    /// Each delta (extractor; each expert) is clipped to `norm_bound` × the median norm of the same
    /// kind of delta in the previous round (0: off); always also to the training bound (docs/SERVER.md).
    public var normBound = 3.0
    /// The largest |D_c| a device may register or report.
    public var maxSamples = 1_000_000
    /// Standardise inputs with statistics pooled from the devices (docs/PROTOCOL.md); false hands out
    /// the identity (mean 0, std 1) without waiting for statistics.
    public var standardizeInputs = true
    /// Added to never-measured (client, expert) pairs when assigning (FitnessMatrix.explorationBonus).
    public var explorationBonus = 0.0
    /// When devices measure fitness: during local training, or before it with the downloaded weights.
    public var fitnessTiming = FitnessTiming.during
    /// How devices initialise their own gate: random (He) or zero (every expert starts even).
    public var gateInit = GateInit.random
    /// Expert 0 is an always-on shared expert every device holds beside its routed experts (ignored
    /// with one expert; `usesSharedExpert`).
    public var sharedExpert = TrainingOptions.federated.sharedExpert
    /// Devices probe the experts in their warm cache slots (forward only) and report their fitness.
    public var probeWarm = false
    public var storageDType = DType.int8Block
    public var updateDType = DType.int8Block
    public var maxReportBytes = 0
    /// Open connections at once; 0: sized from the file-descriptor limit (docs/SERVER.md "Limits").
    public var maxConnections = 0
    public var maxConnectionsPerAddress = 256
    /// Bytes of request bodies the server holds at once, over all connections.
    public var maxBodyBytes = 256 << 20
    // service
    public var listenHost = "127.0.0.1"
    public var port = 8080
    /// Where `/v1/status` and `/metrics` are served (docs/SERVER.md "Operator endpoints").
    public var operatorHost = "127.0.0.1"
    public var operatorPort = 0
    public var stateDir = "flexmoe-state"
    public var tokenFile = ""
    public var keepCheckpoints = 5
    public var seed: UInt64 = 1
    public var maxStrikes = 2

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case inputDim = "input_dim", hidden, expertHidden = "expert_hidden", classes, experts, topK = "topk"
        case rounds, minClients = "min_clients", roundDeadline = "round_deadline_s", localEpochs = "local_epochs", batch
        case learningRate = "learning_rate", momentum, gradientClip = "gradient_clip"
        case beta, alphaLoss = "alpha_loss", epsilon, fitness, solver
        case expertWeighting = "expert_weighting", clipNorm = "clip_norm", weightCap = "weight_cap", normBound = "norm_bound", maxSamples = "max_samples", standardizeInputs = "standardize_inputs", explorationBonus = "exploration_bonus", fitnessTiming = "fitness_timing", gateInit = "gate_init", sharedExpert = "shared_expert", probeWarm = "probe_warm", storageDType = "storage_dtype"
        case updateDType = "update_dtype", maxReportBytes = "max_report_bytes"
        case maxConnections = "max_connections", maxConnectionsPerAddress = "max_connections_per_address", maxBodyBytes = "max_body_bytes"
        case listenHost = "listen_host", port, operatorHost = "operator_host", operatorPort = "operator_port", stateDir = "state_dir", tokenFile = "token_file"
        case keepCheckpoints = "keep_checkpoints", seed, maxStrikes = "max_strikes"
    }

    public var model: MoEConfig {
        MoEConfig(inputDim: inputDim, hidden: hidden, expertHidden: expertHidden, classes: classes,
                  experts: experts, topK: topK)
    }

    /// The shared expert is in force: asked for, and more than one expert.
    public var usesSharedExpert: Bool { sharedExpert && experts >= 2 }

    public var resolvedTokenFile: String { tokenFile.isEmpty ? stateDir + "/tokens" : tokenFile }
    public var storage: DType { storageDType }
    public var update: DType { updateDType }
    public var weightByUsage: Bool { expertWeighting == .usage }

    /// The operator listener, or nil when the operator endpoints share the devices' listener: only
    /// when `operator_port` is 0 and devices listen on a loopback address (nobody else can reach it).
    public var operatorListener: (host: String, port: Int)? {
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(listenHost)
        return operatorPort == 0 && loopback ? nil : (operatorHost, operatorPort)
    }

    /// The limits of `ResourceLimits` for a process whose open-file limit is `fileLimit`
    /// (`max_connections` 0: what the file limit leaves after `ResourceLimits.reservedFiles`).
    public func resourceLimits(fileLimit: Int) -> ResourceLimits {
        let auto = ResourceLimits.automaticConnectionCap(fileLimit: fileLimit)
        return ResourceLimits(maxConnections: maxConnections > 0 ? min(maxConnections, auto) : auto,
                              maxConnectionsPerAddress: maxConnectionsPerAddress, maxBodyBytes: maxBodyBytes)
    }

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

    /// Decodes a config file's JSON; every error is a `ServerError.config` naming the key at fault.
    public static func parse(_ data: Data) throws -> ServerConfig {
        do {
            return try JSONDecoder().decode(ServerConfig.self, from: data)
        } catch let error as ServerError {
            throw error
        } catch {
            throw ServerError.config("the config must be a JSON object")
        }
    }

    public init(from decoder: any Decoder) throws {
        let all = try decoder.container(keyedBy: AnyKey.self)
        for k in all.allKeys where CodingKeys(rawValue: k.stringValue) == nil {
            throw ServerError.config("unknown key '\(k.stringValue)'")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Numbers are read as Double, as JSON has them: an integer key takes 4 and 4.0 alike.
        func int(_ k: CodingKeys, _ v: inout Int, min lo: Int = 0) throws {
            guard c.contains(k) else { return }
            guard let x = try? c.decode(Double.self, forKey: k), let i = Int(exactly: x), i >= lo else {
                throw ServerError.config("'\(k.rawValue)' must be an integer ≥ \(lo)")
            }
            v = i
        }
        func real(_ k: CodingKeys, _ v: inout Double, min lo: Double = 0) throws {
            guard c.contains(k) else { return }
            guard let x = try? c.decode(Double.self, forKey: k), x.isFinite, x >= lo else {
                throw ServerError.config("'\(k.rawValue)' must be a number ≥ \(lo)")
            }
            v = x
        }
        func str(_ k: CodingKeys, _ v: inout String) throws {
            guard c.contains(k) else { return }
            guard let x = try? c.decode(String.self, forKey: k) else { throw ServerError.config("'\(k.rawValue)' must be a string") }
            v = x
        }
        /// One of `allowed` (its names, in the order the error lists them).
        func one<T>(_ k: CodingKeys, _ v: inout T, _ allowed: [(String, T)]) throws {
            guard c.contains(k) else { return }
            guard let x = try? c.decode(String.self, forKey: k), let value = allowed.first(where: { $0.0 == x })?.1 else {
                throw ServerError.config("'\(k.rawValue)' must be " + allowed.map(\.0).joined(separator: " | "))
            }
            v = value
        }
        self.init()
        try int(.inputDim, &inputDim, min: 1); try int(.hidden, &hidden, min: 1)
        try int(.expertHidden, &expertHidden, min: 1); try int(.classes, &classes, min: 2)
        try int(.experts, &experts, min: 1); try int(.topK, &topK, min: 1)
        try int(.rounds, &rounds, min: 1); try int(.minClients, &minClients, min: 1)
        try real(.roundDeadline, &roundDeadline, min: 0.1)
        try int(.localEpochs, &localEpochs, min: 1); try int(.batch, &batch, min: 1)
        try real(.learningRate, &learningRate); try real(.beta, &beta)
        try real(.momentum, &momentum); try real(.gradientClip, &gradientClip)
        if momentum >= 1 { throw ServerError.config("'momentum' must be in [0, 1)") }
        if !(beta > 0 && beta <= 1) { throw ServerError.config("'beta' must be in (0, 1]") }
        try real(.alphaLoss, &alphaLoss); try real(.epsilon, &epsilon)
        try one(.fitness, &fitness, FitnessKind.allCases.map { ($0.rawValue, $0) })
        // Listed as before (the production solver, then the baselines, the exact solver last).
        try one(.solver, &solver, [SolverKind.flex, .greedy, .random, .roundRobin, .exact].map { ($0.rawValue, $0) })
        try one(.expertWeighting, &expertWeighting, ExpertWeighting.allCases.map { ($0.rawValue, $0) })
        try real(.clipNorm, &clipNorm)
        try real(.weightCap, &weightCap); try real(.normBound, &normBound)
        if weightCap != 0 && weightCap < 1 { throw ServerError.config("'weight_cap' must be 0 (off) or ≥ 1") }
        if normBound != 0 && normBound < 1 { throw ServerError.config("'norm_bound' must be 0 (off) or ≥ 1") }
        try int(.maxSamples, &maxSamples, min: 1)
        try real(.explorationBonus, &explorationBonus)
        try one(.fitnessTiming, &fitnessTiming, FitnessTiming.allCases.map { ($0.rawValue, $0) })
        try one(.gateInit, &gateInit, GateInit.allCases.map { ($0.rawValue, $0) })
        for (key, value) in [(CodingKeys.standardizeInputs, \ServerConfig.standardizeInputs), (.sharedExpert, \.sharedExpert),
                            (.probeWarm, \.probeWarm)]
        where c.contains(key) {
            guard let b = try? c.decode(Bool.self, forKey: key) else {
                throw ServerError.config("'\(key.rawValue)' must be true or false")
            }
            self[keyPath: value] = b
        }
        let dtypes = DType.allCases.map { ($0.name, $0) }
        try one(.storageDType, &storageDType, dtypes); try one(.updateDType, &updateDType, dtypes)
        try int(.maxReportBytes, &maxReportBytes)
        try int(.maxConnections, &maxConnections); try int(.maxConnectionsPerAddress, &maxConnectionsPerAddress, min: 1)
        try int(.maxBodyBytes, &maxBodyBytes, min: 64 * 1024)
        try str(.listenHost, &listenHost); try int(.port, &port)
        if port > 65535 { throw ServerError.config("'port' must be ≤ 65535") }
        try str(.operatorHost, &operatorHost); try int(.operatorPort, &operatorPort)
        if operatorPort > 65535 { throw ServerError.config("'operator_port' must be ≤ 65535") }
        try str(.stateDir, &stateDir); try str(.tokenFile, &tokenFile)
        try int(.keepCheckpoints, &keepCheckpoints, min: 1)
        var seed = Int(self.seed); try int(.seed, &seed); self.seed = UInt64(seed)
        try int(.maxStrikes, &maxStrikes, min: 1)
    }

    /// Any key of the JSON object, to find the unknown ones.
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// FlexWire's `FitnessKind` (accuracy | loss) as a config value.
extension FitnessKind: Codable {}
extension FitnessTiming: Codable {}
extension GateInit: Codable {}

/// The weight of a client's expert delta in the aggregate: its usage u[c][e] or its sample count |D_c|.
public enum ExpertWeighting: String, Codable, Sendable, CaseIterable {
    case usage, samples
}

/// A dtype in JSON is its name ("int8-block"); decoding takes the canonical names only.
extension DType: Codable {
    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let d = DType.allCases.first(where: { $0.name == name }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown dtype '\(name)' (\(DType.allCases.map(\.name).joined(separator: ", ")))"))
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
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
