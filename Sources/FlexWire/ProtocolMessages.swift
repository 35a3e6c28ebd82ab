import FlexTensor

/// The protocol's messages as types (docs/PROTOCOL.md): each has one writer (`message()`) and one
/// reader (`init(_:)`), used by the device agent, the server, the simulator and the test client alike,
/// so numbers are written and parsed one way everywhere. Reals are written by `Format.real`.
/// Embedded-clean (hand-written where Codable would do on the host).

/// Which fitness the devices measure: s = a (accuracy) or s = exp(−α_L · ℓ) (loss).
public enum FitnessKind: String, Sendable, CaseIterable {
    case accuracy, loss
}

/// The state of the current round, as `GET /v1/round` reports it.
public enum RoundPhase: String, Sendable, CaseIterable {
    case waiting, open, finished
}

/// The protocol version this code speaks (docs/PROTOCOL.md); 2 added federated standardisation.
public let protocolVersion = 2

/// `POST /v1/register`: what the device can hold.
public struct RegisterRequest: Equatable, Sendable {
    public var memoryBudget: Int
    public var kc: Int
    public var storage: DType
    public var board: String
    public var samples: Int
    public var maxBatch: Int
    /// The device's protocol version (1 when the request does not say).
    public var protocolVersion: Int

    public init(memoryBudget: Int, kc: Int, storage: DType, board: String, samples: Int, maxBatch: Int,
                protocolVersion: Int = FlexWire.protocolVersion) {
        self.memoryBudget = memoryBudget; self.kc = kc; self.storage = storage; self.board = board
        self.samples = samples; self.maxBatch = maxBatch; self.protocolVersion = protocolVersion
    }

    public func message() -> SmallMessage {
        var m = SmallMessage()
        m.set("memory_budget", memoryBudget)
        m.set("kc", kc)
        m.set("storage", storage.name)
        m.set("board", board)
        m.set("samples", samples)
        m.set("max_batch", maxBatch)
        m.set("protocol", protocolVersion)
        return m
    }

    /// Reads a request; `experts` bounds k_c.
    public init(_ m: SmallMessage, experts: Int) throws(MessageError) {
        kc = try m.int("kc", in: 1...max(1, experts))
        samples = try m.int("samples", in: 1...1_000_000_000)
        memoryBudget = try m.int("memory_budget", in: 0...Int.max)
        maxBatch = try m.int("max_batch", in: 1...1_000_000)
        let s = try m.string("storage")
        guard let dtype = DType.named(s) else { throw .badValue("storage", s) }
        storage = dtype
        board = try m.string("board")
        if board.utf8.count > 64 { throw .badValue("board", "longer than 64 bytes") }
        protocolVersion = m["protocol"] == nil ? 1 : try m.int("protocol", in: 1...1000)
    }
}

/// The register reply: the client id, the model and the training settings the server wants.
public struct RegisterReply: Equatable, Sendable {
    public var clientId: Int
    public var round: Int
    public var inputDim: Int
    public var hidden: Int
    public var expertHidden: Int
    public var classes: Int
    public var experts: Int
    public var topK: Int
    public var localEpochs: Int
    public var batch: Int
    public var learningRate: Double
    public var momentum: Double
    public var gradientClip: Double
    public var fitness: FitnessKind
    public var alphaLoss: Double
    public var updateDType: DType
    /// Whether the pooled feature normalization is frozen (else the device sends its statistics now).
    public var normalizationReady: Bool
    /// Fitness measured in a forward pass before local training (`fitness_timing=before`) rather
    /// than during it (`during`, the default when the field is absent).
    public var fitnessBeforeTraining: Bool
    /// The device's own gate starts at zero (`gate_init=zero`) rather than random (`random`, the
    /// default when the field is absent).
    public var gateZeroInit: Bool
    /// Expert 0 is an always-on shared expert (`shared_expert=1`): it is first in every assignment,
    /// and the device adds its output with weight 1 to the top-k mixture of the others (0, the
    /// default when the field is absent: every assigned expert is routed).
    public var sharedExpert: Bool
    /// Probe experts held in warm cache slots but not assigned, forward only, and report their
    /// fitness (`probe_warm=1`; 0, the default when absent: no probes).
    public var probeWarm: Bool

    public init(clientId: Int, round: Int, inputDim: Int, hidden: Int, expertHidden: Int, classes: Int, experts: Int,
                topK: Int, localEpochs: Int, batch: Int, learningRate: Double, momentum: Double, gradientClip: Double,
                fitness: FitnessKind, alphaLoss: Double, updateDType: DType, normalizationReady: Bool,
                fitnessBeforeTraining: Bool = false, gateZeroInit: Bool = false, sharedExpert: Bool = false,
                probeWarm: Bool = false) {
        self.clientId = clientId; self.round = round; self.inputDim = inputDim; self.hidden = hidden
        self.expertHidden = expertHidden; self.classes = classes; self.experts = experts; self.topK = topK
        self.localEpochs = localEpochs; self.batch = batch; self.learningRate = learningRate; self.momentum = momentum
        self.gradientClip = gradientClip; self.fitness = fitness; self.alphaLoss = alphaLoss; self.updateDType = updateDType
        self.normalizationReady = normalizationReady
        self.fitnessBeforeTraining = fitnessBeforeTraining
        self.gateZeroInit = gateZeroInit
        self.sharedExpert = sharedExpert
        self.probeWarm = probeWarm
    }

    public func message() -> SmallMessage {
        var m = SmallMessage()
        m.set("client_id", clientId)
        m.set("round", round)
        m.set("input_dim", inputDim)
        m.set("hidden", hidden)
        m.set("expert_hidden", expertHidden)
        m.set("classes", classes)
        m.set("experts", experts)
        m.set("topk", topK)
        m.set("local_epochs", localEpochs)
        m.set("batch", batch)
        m.set("learning_rate", Format.real(learningRate))
        m.set("momentum", Format.real(momentum))
        m.set("gradient_clip", Format.real(gradientClip))
        m.set("fitness", fitness.rawValue)
        m.set("alpha_loss", Format.real(alphaLoss))
        m.set("update_dtype", updateDType.name)
        m.set("normalization", normalizationReady ? "ready" : "pending")
        m.set("fitness_timing", fitnessBeforeTraining ? "before" : "during")
        m.set("gate_init", gateZeroInit ? "zero" : "random")
        m.set("shared_expert", sharedExpert ? 1 : 0)
        m.set("probe_warm", probeWarm ? 1 : 0)
        return m
    }

    /// Reads a reply; `momentum` and `gradient_clip` are optional (0.5 and 2 when absent).
    public init(_ m: SmallMessage) throws(MessageError) {
        clientId = try m.int("client_id", in: 0...Int(Int32.max))
        round = try m.int("round", in: 0...Int(Int32.max))
        inputDim = try m.int("input_dim", in: 1...1 << 20)
        hidden = try m.int("hidden", in: 1...1 << 16)
        expertHidden = try m.int("expert_hidden", in: 1...1 << 16)
        classes = try m.int("classes", in: 2...1 << 16)
        experts = try m.int("experts", in: 1...4096)
        topK = try m.int("topk", in: 1...64)
        localEpochs = try m.int("local_epochs", in: 1...1000)
        batch = try m.int("batch", in: 1...1 << 16)
        learningRate = try m.real("learning_rate")
        momentum = m["momentum"] == nil ? 0.5 : try m.real("momentum")
        gradientClip = m["gradient_clip"] == nil ? 2 : try m.real("gradient_clip")
        let f = try m.string("fitness")
        guard let kind = FitnessKind(rawValue: f) else { throw .badValue("fitness", f) }
        fitness = kind
        alphaLoss = m["alpha_loss"] == nil ? 1 : try m.real("alpha_loss")
        let u = try m.string("update_dtype")
        guard let dtype = DType.named(u) else { throw .badValue("update_dtype", u) }
        updateDType = dtype
        let n = try m.string("normalization")
        guard n == "ready" || n == "pending" else { throw .badValue("normalization", n) }
        normalizationReady = n == "ready"
        let t = m["fitness_timing"] ?? "during"
        guard t == "before" || t == "during" else { throw .badValue("fitness_timing", t) }
        fitnessBeforeTraining = t == "before"
        let g = m["gate_init"] ?? "random"
        guard g == "random" || g == "zero" else { throw .badValue("gate_init", g) }
        gateZeroInit = g == "zero"
        sharedExpert = m["shared_expert"] == nil ? false : try m.int("shared_expert", in: 0...1) == 1
        probeWarm = m["probe_warm"] == nil ? false : try m.int("probe_warm", in: 0...1) == 1
    }
}

/// `GET /v1/round`: the round, its state, and this client's assignment with the versions to train against.
public struct RoundMessage: Equatable, Sendable {
    public var round: Int
    public var phase: RoundPhase
    public var assigned: [Int]
    public var extractorVersion: UInt64
    /// Versions of the assigned experts, in the order of `assigned`.
    public var expertVersions: [UInt64]
    public var deadlineMilliseconds: Int
    public var totalRounds: Int
    /// Whether the pooled feature normalization is frozen (else devices send their statistics).
    public var normalizationReady: Bool

    public init(round: Int, phase: RoundPhase, assigned: [Int], extractorVersion: UInt64, expertVersions: [UInt64],
                deadlineMilliseconds: Int, totalRounds: Int, normalizationReady: Bool) {
        self.round = round; self.phase = phase; self.assigned = assigned; self.extractorVersion = extractorVersion
        self.expertVersions = expertVersions; self.deadlineMilliseconds = deadlineMilliseconds; self.totalRounds = totalRounds
        self.normalizationReady = normalizationReady
    }

    public func message() -> SmallMessage {
        var m = SmallMessage()
        m.set("round", round)
        m.set("state", phase.rawValue)
        m.set("assigned", list: assigned)
        m.set("extractor_version", String(extractorVersion))
        var versions = ""
        for (i, v) in expertVersions.enumerated() { versions += (i == 0 ? "" : ",") + String(v) }
        m.set("expert_versions", versions)
        m.set("deadline_ms", deadlineMilliseconds)
        m.set("total_rounds", totalRounds)
        m.set("normalization", normalizationReady ? "ready" : "pending")
        return m
    }

    /// Reads a round message: the assignment must be distinct experts, one version each.
    public init(_ m: SmallMessage) throws(MessageError) {
        round = try m.int("round", in: 0...Int(Int32.max))
        let s = try m.string("state")
        guard let p = RoundPhase(rawValue: s) else { throw .badValue("state", s) }
        phase = p
        assigned = try m.intList("assigned")
        extractorVersion = UInt64(try m.int("extractor_version", in: 0...Int.max))
        expertVersions = []
        for v in try m.intList("expert_versions") {
            if v < 0 { throw .badValue("expert_versions", String(v)) }
            expertVersions.append(UInt64(v))
        }
        deadlineMilliseconds = try m.int("deadline_ms", in: 0...Int.max)
        totalRounds = try m.int("total_rounds", in: 0...Int(Int32.max))
        let n = try m.string("normalization")
        guard n == "ready" || n == "pending" else { throw .badValue("normalization", n) }
        normalizationReady = n == "ready"
        if assigned.count != expertVersions.count { throw .badValue("expert_versions", "not one per assigned expert") }
        for (i, e) in assigned.enumerated() where e < 0 || assigned[..<i].contains(e) {
            throw .badValue("assigned", "expert \(e) negative or listed twice")
        }
    }
}

/// The fields of a report (`POST /v1/rounds/N/report`), before its update containers.
public struct ReportFields: Equatable, Sendable {
    public var clientId: Int
    public var samples: Int
    /// Last local epoch's mean training loss and accuracy.
    public var loss: Double
    public var accuracy: Double
    /// Held-out accuracy after local training (optional).
    public var testAccuracy: Double?
    /// Held-out accuracy of the downloaded model (with the device's gate) before local training
    /// (optional): what the federation gives the device, before local adaptation.
    public var preTestAccuracy: Double?
    public var experts: [Int]
    /// u[c][e]: samples the gate routed to each expert.
    public var usage: [Int]
    /// s[c][e], measured on each expert's own output.
    public var fitness: [Double]
    /// Experts the device holds in warm cache slots but was not assigned, probed forward-only
    /// (`probe_warm`), and their fitness: the accuracy of each one's own output on the training data.
    public var probed: [Int]
    public var probedFitness: [Double]

    public init(clientId: Int, samples: Int, loss: Double, accuracy: Double, testAccuracy: Double?, experts: [Int],
                usage: [Int], fitness: [Double], preTestAccuracy: Double? = nil, probed: [Int] = [], probedFitness: [Double] = []) {
        self.clientId = clientId; self.samples = samples; self.loss = loss; self.accuracy = accuracy
        self.testAccuracy = testAccuracy; self.experts = experts; self.usage = usage; self.fitness = fitness
        self.preTestAccuracy = preTestAccuracy
        self.probed = probed; self.probedFitness = probedFitness
    }

    public func message() -> SmallMessage {
        var m = SmallMessage()
        m.set("client_id", clientId)
        m.set("samples", samples)
        m.set("loss", Format.real(loss))
        m.set("accuracy", Format.real(accuracy))
        if let t = testAccuracy { m.set("test_accuracy", Format.real(t)) }
        if let t = preTestAccuracy { m.set("pre_test_accuracy", Format.real(t)) }
        m.set("experts", list: experts)
        m.set("usage", list: usage)
        var text = ""
        for (i, s) in fitness.enumerated() { text += (i == 0 ? "" : ",") + Format.real(s) }
        m.set("fitness", text)
        if !probed.isEmpty {
            m.set("probed", list: probed)
            var text = ""
            for (i, s) in probedFitness.enumerated() { text += (i == 0 ? "" : ",") + Format.real(s) }
            m.set("probed_fitness", text)
        }
        return m
    }

    /// Reads the fields; lengths must agree and experts be distinct (range checks against the
    /// model and the round are the server's).
    public init(_ m: SmallMessage) throws(MessageError) {
        clientId = try m.int("client_id", in: 0...Int(Int32.max))
        samples = try m.int("samples", in: 0...1_000_000_000)
        loss = try m.real("loss")
        accuracy = try m.real("accuracy")
        testAccuracy = m["test_accuracy"] == nil ? nil : try m.real("test_accuracy")
        preTestAccuracy = m["pre_test_accuracy"] == nil ? nil : try m.real("pre_test_accuracy")
        experts = try m.intList("experts")
        usage = try m.intList("usage")
        fitness = try m.realList("fitness")
        if usage.count != experts.count || fitness.count != experts.count {
            throw .badReport("experts, usage and fitness must have the same length")
        }
        for (i, e) in experts.enumerated() where experts[..<i].contains(e) { throw .badReport("an expert is listed twice") }
        probed = m["probed"] == nil ? [] : try m.intList("probed")
        probedFitness = m["probed_fitness"] == nil ? [] : try m.realList("probed_fitness")
        if probedFitness.count != probed.count { throw .badReport("probed and probed_fitness must have the same length") }
        for (i, e) in probed.enumerated() where probed[..<i].contains(e) || experts.contains(e) {
            throw .badReport("a probed expert is listed twice or was also trained")
        }
    }
}

/// The reply to an accepted report.
public struct ReportReceipt: Equatable, Sendable {
    public var round: Int
    public init(round: Int) { self.round = round }
    public func message() -> SmallMessage {
        var m = SmallMessage()
        m.set("accepted", 1)
        m.set("round", round)
        return m
    }
    public init(_ m: SmallMessage) throws(MessageError) {
        _ = try m.int("accepted", in: 1...1)
        round = try m.int("round", in: 0...Int(Int32.max))
    }
}
