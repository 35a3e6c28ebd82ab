import FlexAssign
import FlexData
import FlexEdge
import FlexServer
import Logging
import FlexModel
import FlexTensor
import FlexWire
import Foundation

/// `flexmoe-server simulate`: federated rounds with in-process devices (docs/RESULTS.md).
///
/// The simulator re-implements neither side: the server is FlexServer's `RoundStateMachine` (the
/// live server's registry, assignment, report checks, aggregation, Q and load history) on a simulated
/// clock, and every device is FlexEdge's `DeviceRound` step (cache, downloads decoded as a board
/// decodes them, local training with its own gate, fitness, the report body with stochastically
/// rounded delta containers) on a `DeviceState` of its own, trained on a worker's `RoundWorkspace`.
/// Only the sockets are missing: downloads and reports are handed over in memory. Bytes per client
/// are the sizes of the containers and report bodies (HTTP heads not counted).
public enum SimulationStrategy: String, Sendable, CaseIterable {
    case flex, greedy, random
    /// Plain FedAvg of a dense model: one "expert" (E = 1, top-1), so every device trains the whole
    /// model x → 64 → 128 → K, averaged with weights |D_c| (usage = samples). No assignment.
    case fedavgDense = "fedavg-dense"
    /// Plain FedAvg of a dense model at the memory of an MoE device: E = 1, top-1, and the expert
    /// hidden width f' = `matchedExpertHidden(config:kc:)`, so that the dense model holds (at most)
    /// the extractor plus k experts of the MoE model, k the smallest k_c of the run's devices (FedAvg
    /// trains one model on every device, so it must fit the smallest one).
    case fedavgDenseMatched = "fedavg-dense-matched"

    /// One dense model trained by every device (E = 1, top-1): no assignment, no expert load.
    public var isDense: Bool {
        switch self {
        case .flex, .greedy, .random: return false
        case .fedavgDense, .fedavgDenseMatched: return true
        }
    }

    var solver: SolverKind {
        switch self {
        case .flex: return .flex
        case .greedy: return .greedy
        case .random: return .random
        case .fedavgDense, .fedavgDenseMatched: return .greedy  // E = 1: every solver assigns expert 0
        }
    }

    /// The largest expert hidden width f' of a dense model (E = 1) whose expert path
    /// h·f' + f' + f'·K + K has at most the parameters of `kc` experts of `config`,
    /// kc · (h·f + f + f·K + K). The extractor is the same on both sides and the device's gate
    /// (h·k_c + k_c, never downloaded) is not counted.
    public static func matchedExpertHidden(config: MoEConfig, kc: Int) -> Int {
        precondition(kc >= 1)
        let h = config.hidden, K = config.classes
        let budget = kc * config.expertParameterCount
        // h·f' + f' + f'·K + K ≤ budget  ⇔  f' ≤ (budget − K) / (h + 1 + K); f' ≥ f since kc ≥ 1.
        return (budget - K) / (h + 1 + K)
    }
}

public struct SimulationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

public enum SimulationCapacity: Sendable, Equatable {
    /// Every device holds k experts.
    case fixed(Int)
    /// Each device is a board drawn uniformly from the board profiles and holds that board's default
    /// k_c (capped at E).
    case boards


    public static func parse(_ s: String) throws(SimulationError) -> SimulationCapacity {
        if s == "boards" { return .boards }
        if let k = Int(s), k >= 1 { return .fixed(k) }
        throw SimulationError("--capacity K (≥ 1) or boards")
    }

    public var name: String {
        switch self {
        case .fixed(let k): return "\(k)"
        case .boards: return "boards"
        }
    }
}

/// Everything a simulation run needs; the defaults are the live server's.
public struct SimulationSettings: Sendable {
    public var dataset: DatasetSpec = .synthetic(alpha: 1, beta: 1)
    public var split: SplitSpec = .dirichlet(0.3)
    public var clients = 32
    public var experts = 8
    public var capacity: SimulationCapacity = .fixed(2)
    public var rounds = 20
    public var localEpochs = TrainingOptions.federated.epochs
    public var strategies: [SimulationStrategy] = [.flex, .greedy, .random, .fedavgDense]
    public var fitness: FitnessVariant = .accuracy
    public var seeds: [UInt64] = [1]
    /// Held-out fraction of each device's samples (its local test set).
    public var testFraction = 0.2
    public var batch = 32
    /// Local SGD: FlexModel's federated defaults (what the server sends devices).
    public var learningRate = TrainingOptions.federated.learningRate
    public var momentum = TrainingOptions.federated.momentum
    public var gradientClip = TrainingOptions.federated.gradientClip
    public var hidden = 64
    public var expertHidden = 128
    public var topK = 2
    public var epsilon = LoadBounds.defaultSlack
    public var beta = 0.3
    /// Standardise inputs with statistics pooled from the devices (the server's `standardize_inputs`).
    public var standardizeInputs = true
    /// When devices measure fitness (the server's `fitness_timing`).
    public var fitnessTiming = FitnessTiming.during
    /// The server's `exploration_bonus` for never-measured pairs.
    public var explorationBonus = 0.0
    /// The server's `gate_init`: how devices initialise their own gate.
    public var gateInit = GateInit.random
    /// The server's `shared_expert`: expert 0 is always on in every device's model (MoE strategies only).
    public var sharedExpert = TrainingOptions.federated.sharedExpert
    /// Extra expert-cache slots per device beyond k_c (at most E − k_c), which keep recently assigned
    /// experts; with `probeWarm` devices probe the unassigned ones they hold (the server's `probe_warm`).
    public var warmSlots = 0
    /// The server's robust aggregation (`weight_cap`, `norm_bound`; 0 turns each off).
    public var weightCap = ServerConfig().weightCap
    public var normBound = ServerConfig().normBound
    public var probeWarm = false
    /// Expert aggregation weight u[c][e] (true) or |D_c| (false).
    public var weightByUsage = true
    /// Dtype of the downloads (the edge's default storage) and of the uploaded deltas.
    public var storage: DType = .int8Block
    public var update: DType = .int8Block
    /// Rounds-to-target threshold; nil = 0.9 × the best strategy's mean final accuracy, rounded
    /// down to 0.01 (stated in summary.json).
    public var targetAccuracy: Double? = nil
    /// Worker threads training devices in parallel (results do not depend on it).
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Synthetic data: samples per device are capped at this (the generator's lognormal tail).
    public var syntheticMaxSamples = 1000

    public init() {}
}

/// Metrics of one round of one strategy and seed (one row of rounds.csv).
public struct SimulationRound: Sendable {
    public var strategy: SimulationStrategy
    public var seed: UInt64
    public var round: Int
    /// Mean over devices of the local test accuracy (after local training, as devices report it).
    public var testAccuracy: Double
    /// Mean over devices of the held-out accuracy of the downloaded model before local training.
    public var preTestAccuracy: Double = 0
    /// Devices that missed this round: the server refused their report, or their training diverged
    /// and they sent none.
    public var missedReports = 0
    /// (client, expert) pairs probed forward-only from warm cache slots (`probeWarm`), over the accepted reports.
    public var probedPairs = 0
    /// Deltas the server scaled down by a norm bound (robust aggregation).
    public var clippedUpdates = 0
    /// Mean over devices of the last local epoch's training loss and accuracy.
    public var trainLoss: Double
    public var trainAccuracy: Double
    /// Assigned load per expert (Σ |D_c| over its holders).
    public var load: [Int]
    public var cv: Double
    public var maxOverMean: Double
    public var relaxationSteps: Int
    /// Mean over participating devices of bytes uploaded (report body) and downloaded (containers).
    public var bytesUp: Double
    public var bytesDown: Double
    public var seconds: Double

    public var bytesPerClient: Double { bytesUp + bytesDown }
}

/// Progress of a run, for the terminal line.
public struct SimulationProgress: Sendable {
    public var strategy: SimulationStrategy
    public var seed: UInt64
    public var seedIndex: Int, seeds: Int
    public var strategyIndex: Int, strategies: Int
    public var round: SimulationRound
    public var rounds: Int
}

/// Loads the data once; `run` executes every strategy × seed.
public final class Simulation {
    public let settings: SimulationSettings
    /// The pooled data, split among the devices per seed; nil when the devices were given.
    let data: DatasetBox?
    let givenDevices: [Device]?
    public let sampleCount: Int
    public let featureCount: Int
    public let classCount: Int
    /// The global model at the end of each strategy × seed run, in run order.
    public private(set) var finalModels: [GlobalModel] = []

    public init(settings: SimulationSettings) throws {
        self.settings = settings
        try Self.check(settings)
        let data = DatasetBox(try settings.dataset.load(clients: settings.clients, syntheticMaxSamples: settings.syntheticMaxSamples))
        guard data.dataset.count >= 2 * settings.clients else {
            throw SimulationError("\(data.dataset.count) samples are too few for \(settings.clients) clients")
        }
        self.data = data
        givenDevices = nil
        sampleCount = data.dataset.count
        featureCount = data.dataset.dim
        classCount = data.dataset.classes
    }

    /// A simulation of exactly these devices (each its own train and test data, as a board's shard,
    /// and its k_c), the same for every seed. Device i draws its randomness from `seed + i`, as a
    /// `flexmoe-edge run --seed SEED` process with shard client i does.
    public init(settings: SimulationSettings, devices: [Device]) throws {
        var s = settings
        s.clients = devices.count
        self.settings = s
        try Self.check(s)
        guard let first = devices.first else { throw SimulationError("no devices") }
        data = nil
        givenDevices = devices
        sampleCount = devices.reduce(0) { $0 + $1.train.dataset.count + $1.test.dataset.count }
        featureCount = first.train.dataset.dim
        classCount = first.train.dataset.classes
    }

    static func check(_ settings: SimulationSettings) throws {
        guard settings.clients >= 1, settings.experts >= 1, settings.rounds >= 1, settings.localEpochs >= 1 else {
            throw SimulationError("clients, experts, rounds and local epochs must be ≥ 1")
        }
        guard !settings.seeds.isEmpty, !settings.strategies.isEmpty else { throw SimulationError("no seeds or no strategies") }
    }

    /// Every strategy × seed, seeds outermost (each seed's partition is shared by the strategies).
    public func run(progress: ((SimulationProgress) -> Void)? = nil) throws -> [SimulationRound] {
        var out: [SimulationRound] = []
        for (si, seed) in settings.seeds.enumerated() {
            let devices = try givenDevices ?? partition(seed: seed)
            for (ti, strategy) in settings.strategies.enumerated() {
                out += try run(strategy: strategy, seed: seed, devices: devices) { r in
                    progress?(SimulationProgress(strategy: strategy, seed: seed, seedIndex: si, seeds: settings.seeds.count,
                                                 strategyIndex: ti, strategies: settings.strategies.count,
                                                 round: r, rounds: settings.rounds))
                }
            }
        }
        return out
    }

    // MARK: devices

    /// A device's data (its training and held-out samples) and its k_c.
    public final class Device {
        public let train: DatasetBox
        public let test: DatasetBox
        public let kc: Int
        public init(train: DatasetBox, test: DatasetBox, kc: Int) { self.train = train; self.test = test; self.kc = kc }
    }

    /// The seed's split of the data among the devices, each with its local train/test split and k_c.
    func partition(seed: UInt64) throws -> [Device] {
        let box = data!
        var random = FlexRandom(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 11)
        let parts = try settings.split.partition(box.dataset, clients: settings.clients, random: &random)
        let kcs = capacities(seed: seed)
        return try parts.enumerated().map { (c, idx) in
            let (tr, te) = Partitioner.trainTestSplit(idx, testFraction: settings.testFraction, random: &random)
            guard !tr.isEmpty else { throw SimulationError("client \(c) has no training sample (too many clients for the data)") }
            return Device(train: DatasetBox(box.dataset.subset(tr)), test: DatasetBox(box.dataset.subset(te)), kc: kcs[c])
        }
    }

    /// Every device's k_c in the seed's run (capped at E): the given devices', or drawn from the seed
    /// alone (independent of the data split).
    public func capacities(seed: UInt64) -> [Int] {
        if let given = givenDevices { return given.map(\.kc) }
        var kcRandom = FlexRandom(seed: seed &+ 0xB0A2D)
        return (0..<settings.clients).map { _ in
            let kc: Int
            switch settings.capacity {
            case .fixed(let k): kc = k
            case .boards: kc = BoardProfile.all[kcRandom.nextInt(below: BoardProfile.all.count)].defaultKc
            }
            return min(kc, settings.experts)
        }
    }

    /// The dense model of `fedavg-dense-matched` in one seed's run: k, the smallest k_c of its
    /// devices, and the expert hidden width f' that fits k experts' parameters.
    public struct DenseMatch: Sendable, Equatable {
        public var seed: UInt64
        public var kc: Int
        public var expertHidden: Int
        /// Parameters of k experts of the MoE model, and of the dense expert path (h·f' + f' + f'·K + K).
        public var budgetParameters: Int
        public var parameters: Int
    }

    public func denseMatch(seed: UInt64) -> DenseMatch {
        denseMatch(seed: seed, kc: capacities(seed: seed).min() ?? 1)
    }

    func denseMatch(seed: UInt64, kc: Int) -> DenseMatch {
        let moe = MoEConfig(inputDim: featureCount, hidden: settings.hidden, expertHidden: settings.expertHidden,
                            classes: classCount, experts: settings.experts, topK: settings.topK)
        let f = SimulationStrategy.matchedExpertHidden(config: moe, kc: kc)
        var dense = moe
        dense.expertHidden = f
        return DenseMatch(seed: seed, kc: kc, expertHidden: f, budgetParameters: kc * moe.expertParameterCount,
                          parameters: dense.expertParameterCount)
    }

    // MARK: one strategy, one seed

    /// One simulated device: its state (gate, cache, data) and its random stream, used by one worker
    /// at a time.
    final class SimDevice {
        let clientId: Int
        let identity: RoundStateMachine.Identity
        let state: DeviceState
        var random: FlexRandom
        init(clientId: Int, identity: RoundStateMachine.Identity, state: DeviceState, random: FlexRandom) {
            self.clientId = clientId; self.identity = identity; self.state = state; self.random = random
        }
    }

    /// The server configuration of a run: the live server's defaults with the run's settings (for
    /// `fedavg-dense-matched`, the expert hidden width of `denseMatch(seed:)`).
    public func serverConfig(strategy: SimulationStrategy, seed: UInt64) -> ServerConfig {
        serverConfig(strategy: strategy, seed: seed, smallestKc: capacities(seed: seed).min() ?? 1)
    }

    func serverConfig(strategy: SimulationStrategy, seed: UInt64, smallestKc: Int) -> ServerConfig {
        let s = settings
        let dense = strategy.isDense
        var c = ServerConfig()
        c.inputDim = featureCount
        c.hidden = s.hidden
        c.expertHidden = strategy == .fedavgDenseMatched ? denseMatch(seed: seed, kc: smallestKc).expertHidden : s.expertHidden
        c.classes = classCount
        c.experts = dense ? 1 : s.experts
        c.topK = dense ? 1 : s.topK
        c.rounds = s.rounds
        c.minClients = s.clients
        // Reached only when the server refused a report: the round then closes without that device,
        // as the live server's deadline closes it.
        c.roundDeadline = 60
        c.localEpochs = s.localEpochs
        c.batch = s.batch
        c.learningRate = Double(s.learningRate)
        c.momentum = Double(s.momentum)
        c.gradientClip = Double(s.gradientClip)
        c.beta = s.beta
        c.epsilon = s.epsilon
        switch s.fitness {
        case .accuracy: c.fitness = .accuracy
        case .loss(let alpha): c.fitness = .loss; c.alphaLoss = Double(alpha)
        }
        c.solver = strategy.solver
        c.expertWeighting = s.weightByUsage ? .usage : .samples
        c.storageDType = s.storage
        c.updateDType = s.update
        c.standardizeInputs = s.standardizeInputs
        c.fitnessTiming = s.fitnessTiming
        c.explorationBonus = s.explorationBonus
        c.gateInit = s.gateInit
        c.sharedExpert = s.sharedExpert && !strategy.isDense
        c.probeWarm = s.probeWarm && !strategy.isDense
        c.weightCap = s.weightCap
        c.normBound = s.normBound
        c.seed = seed
        return c
    }

    func run(strategy: SimulationStrategy, seed: UInt64, devices: [Device],
             progress: (SimulationRound) -> Void) throws -> [SimulationRound] {
        let s = settings
        let dense = strategy.isDense
        let config = serverConfig(strategy: strategy, seed: seed, smallestKc: devices.map(\.kc).min() ?? 1)
        let machine = try RoundStateMachine(config: config, store: TransientStore(),
                                            logger: Logger(label: "flexmoe.simulation", factory: { _ in SwiftLogNoOpLogHandler() }))
        var clock = 0.0
        let model = config.model

        // Devices register as real ones do; each gets its state (gate, cache of k_c slots, data).
        var sims: [SimDevice] = []
        var reply: RegisterReply? = nil
        for (c, dev) in devices.enumerated() {
            let kc = dense ? 1 : dev.kc
            let warm = dense ? 0 : max(0, min(s.warmSlots, model.experts - kc))
            let plan = DevicePlan.fixed(config: model, storage: s.storage, update: s.update, kc: kc, warm: warm, batch: s.batch,
                                        samples: dev.train.dataset.count + dev.test.dataset.count)
            let identity = RoundStateMachine.Identity(hash: "simulated-device-\(c)", name: "device-\(c)")
            reply = try machine.register(identity, RegisterRequest(memoryBudget: plan.budget, kc: kc, storage: s.storage, board: "simulated",
                                                                    samples: dev.train.dataset.count, maxBatch: s.batch), now: clock)
            let arena = try Arena(capacity: DevicePlan.deviceBook(config: model, storage: s.storage, slots: kc + warm,
                                                                 samples: dev.train.dataset.count + dev.test.dataset.count).total)
            var random = FlexRandom(seed: seed &+ UInt64(c))
            let state = try DeviceState(plan: plan, train: dev.train.dataset, test: dev.test.dataset, arena: arena, random: &random,
                                        gateInit: reply!.trainingOptions.gateInit)
            sims.append(SimDevice(clientId: reply!.clientId, identity: identity, state: state, random: random))
        }
        // Workers: one round workspace each (trainer and buffers for the largest k_c), set up from the
        // register reply as a device sets itself up.
        let workers = max(1, min(s.threads, sims.count))
        let maxKc = dense ? 1 : (devices.map(\.kc).max() ?? 1)
        let workspacePlan = DevicePlan.fixed(config: model, storage: s.storage, update: s.update, kc: maxKc, warm: 0, batch: s.batch,
                                             samples: 1)
        let workspaces = try (0..<workers).map { _ in
            let ws = try RoundWorkspace(plan: workspacePlan, arena: Arena(capacity: DevicePlan.workspaceBook(
                config: model, storage: s.storage, update: s.update, kc: maxKc, batch: s.batch).total))
            ws.trainer.options = reply!.trainingOptions
            return ws
        }

        // Each device sends the statistics of its training data, as a device does before round 1.
        for dev in sims {
            let ws = workspaces[0]
            let n = try ws.writeFeatureStats(of: dev.state)
            try Result { () throws(ProtocolError) in
                try machine.receiveStats(client: dev.clientId, body: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(ws.report)[0..<n]),
                                         decompressor: ws.decompressor)
            }.get()
        }

        var rounds: [SimulationRound] = []
        for r in 1...s.rounds {
            let start = Date()
            clock += 1
            machine.tick(now: clock)
            guard machine.phase == .open, machine.round == r else {
                throw SimulationError("round \(r) did not open (\(machine.phase.rawValue), round \(machine.round))")
            }
            let messages = sims.map { machine.roundMessage(client: $0.clientId, now: clock) }
            let tickets = try sims.map { try machine.beginReport(client: $0.clientId, round: r) }
            let job = RoundJob(machine: machine, devices: sims, messages: messages, tickets: tickets, workspaces: workspaces)
            let results = try job.run()

            // The server folds the accepted reports in client order (deterministic); the last one closes the
            // round. Refused reports release their place; the deadline then closes the round without them.
            var missed = 0
            for (i, result) in results.enumerated() {
                switch result.report {
                case .success(let report): _ = try machine.finishReport(tickets[i], report, now: clock)
                case .failure: machine.abandonReport(tickets[i]); missed += 1
                }
            }
            if machine.phase == .open {
                clock += config.roundDeadline
                machine.tick(now: clock)
            }
            guard let record = machine.lastRound, record.round == r else { throw SimulationError("round \(r) did not close") }
            // Device metrics over the accepted reports; bytes over every device that sent one.
            let accepted = results.filter { if case .success = $0.report { return true } else { return false } }
            let n = Double(sims.count), m = Double(max(accepted.count, 1))
            let tests = accepted.compactMap { $0.fields?.testAccuracy }
            let preTests = accepted.compactMap { $0.fields?.preTestAccuracy }
            var row = SimulationRound(strategy: strategy, seed: seed, round: r,
                                      testAccuracy: tests.isEmpty ? 0 : tests.reduce(0, +) / Double(tests.count),
                                      trainLoss: accepted.compactMap { $0.fields?.loss }.reduce(0, +) / m,
                                      trainAccuracy: accepted.compactMap { $0.fields?.accuracy }.reduce(0, +) / m,
                                      load: record.expertLoad, cv: dense ? 0 : record.loadCV,
                                      maxOverMean: dense ? 1 : record.maxOverMean, relaxationSteps: record.relaxationSteps,
                                      bytesUp: Double(results.map(\.bytesUp).reduce(0, +)) / n,
                                      bytesDown: Double(results.map(\.bytesDown).reduce(0, +)) / n,
                                      seconds: Date().timeIntervalSince(start))
            row.preTestAccuracy = preTests.isEmpty ? 0 : preTests.reduce(0, +) / Double(preTests.count)
            row.missedReports = missed
            row.probedPairs = accepted.reduce(0) { $0 + ($1.fields?.probed.count ?? 0) }
            row.clippedUpdates = record.clippedUpdates ?? 0
            rounds.append(row)
            progress(row)
        }
        finalModels.append(machine.model)
        return rounds
    }
}

/// One round's device work, spread over the worker threads. Each worker owns one `RoundWorkspace`;
/// each device its state and random stream, so results do not depend on the number of workers or
/// their scheduling. Downloads go to the state machine under a lock (as the live server's adapter
/// does); reports are checked by its pure `validate` in the workers and folded afterwards in order.
final class RoundJob: @unchecked Sendable {
    struct DeviceResult {
        /// The report as the server accepted it, or why there is none: the server's refusal, or a
        /// device whose training diverged and sent nothing. Either way the device misses the round,
        /// as with the live server.
        var report: Result<ValidatedReport, ProtocolError>
        /// What the device measured (nil when it sent nothing).
        var fields: ReportFields?
        var bytesUp: Int
        var bytesDown: Int
    }

    let machine: RoundStateMachine
    let devices: [Simulation.SimDevice]
    let messages: [RoundMessage]
    let tickets: [RoundStateMachine.ReportTicket]
    let workspaces: [RoundWorkspace]
    let lock = NSLock()
    var next = 0
    var results: [Result<DeviceResult, Error>?]

    init(machine: RoundStateMachine, devices: [Simulation.SimDevice], messages: [RoundMessage],
         tickets: [RoundStateMachine.ReportTicket], workspaces: [RoundWorkspace]) {
        self.machine = machine; self.devices = devices; self.messages = messages; self.tickets = tickets
        self.workspaces = workspaces
        results = Array(repeating: nil, count: devices.count)
    }

    func run() throws -> [DeviceResult] {
        DispatchQueue.concurrentPerform(iterations: workspaces.count) { w in
            let ws = workspaces[w]
            while true {
                let i: Int = lock.withLock { let i = next; next += 1; return i }
                if i >= devices.count { break }
                let r = Result { try device(i, workspace: ws) }
                lock.withLock { results[i] = r }
            }
        }
        return try results.map { try $0!.get() }
    }

    func device(_ i: Int, workspace ws: RoundWorkspace) throws -> DeviceResult {
        let dev = devices[i]
        var down = 0
        // The server's answer to the device's request. A 304 means the device holds the part; the
        // shared workspace may not, so it takes the same bytes without counting them.
        let fetch = { (part: DeviceRound.Part, have: UInt64?) throws(EdgeError) -> Int? in
            let expert: Int?
            switch part {
            case .extractor, .normalization: expert = nil
            case .expert(let e): expert = e
            }
            let answer = self.lock.withLock { () -> Result<(Bool, [UInt8]), ProtocolError> in
                Result { () throws(ProtocolError) in
                    if part == .normalization { return (true, try self.machine.normalizationContainer()) }
                    if let b = try self.machine.download(client: dev.clientId, expert: expert, have: have).body { return (true, b) }
                    return (false, try self.machine.download(client: dev.clientId, expert: expert, have: nil).body!)
                }
            }
            guard case .success(let (sent, bytes)) = answer else { throw .protocolViolation("download refused") }
            if bytes.count > ws.download.count { throw .protocolViolation("container larger than the download buffer") }
            bytes.withUnsafeBytes { ws.download.copyMemory(from: $0) }
            if sent { down += bytes.count }
            return bytes.count
        }
        let outcome: DeviceRound.Outcome
        do throws(EdgeError) {
            outcome = try DeviceRound.run(messages[i], clientId: dev.clientId, device: dev.state, workspace: ws,
                                          random: &dev.random, fetch: fetch)
        } catch {
            guard case .diverged(let what) = error else { throw error }
            return DeviceResult(report: .failure(.invalidUpdate("not sent: training diverged (\(what))")), fields: nil,
                                bytesUp: 0, bytesDown: down)
        }
        let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(ws.report)[0..<outcome.reportBytes])
        let validated = Result { () throws(ProtocolError) -> ValidatedReport in
            let (fields, ranges) = try ReportValidator.fields(body)
            return try RoundStateMachine.validate(body, fields: fields, containers: ranges, ticket: tickets[i],
                                                  decompressor: ws.decompressor)
        }
        return DeviceResult(report: validated, fields: outcome.fields, bytesUp: outcome.reportBytes, bytesDown: down)
    }
}
