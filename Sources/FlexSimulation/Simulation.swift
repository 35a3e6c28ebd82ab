import FlexAssign
import FlexData
import FlexServer
import FlexModel
import FlexTensor
import FlexWire
import Foundation

/// `flexmoe-server simulate`: federated rounds with in-process devices (docs/RESULTS.md).
///
/// Every round runs the live server's logic and the devices' code, minus the sockets:
/// - assignment: `RoundPlanner` (the Coordinator's Q, bounds, deficit shift, solver);
/// - downloads: the global model encoded as the real FlexWire containers in the storage dtype
///   (`GlobalModel.extractorContainer`/`expertContainer`), decoded as a device decodes them;
/// - local training: FlexModel's `LocalTrainer` with each device's own `ClientGate`;
/// - reports: the deltas quantised with stochastic rounding into update containers, framed as a
///   `POST /v1/rounds/N/report` body, checked by the server's `ReportValidator` and folded by its
///   `StreamingAggregator` (weights |D_c| for ψ, u[c][e] for θ_e), Q updated with the measured pairs.
/// Bytes per client are the sizes of those containers and report bodies (HTTP heads not counted).
public enum SimulationStrategy: String, Sendable, CaseIterable {
    case flex, greedy, random
    /// Plain FedAvg of a dense model: one "expert" (E = 1, top-1), so every device trains the whole
    /// model x → 64 → 128 → K, averaged with weights |D_c| (usage = samples). No assignment.
    case fedavgDense = "fedavg-dense"

    var solver: SolverKind {
        switch self {
        case .flex: return .flex
        case .greedy: return .greedy
        case .random: return .random
        case .fedavgDense: return .greedy  // E = 1: every solver assigns expert 0
        }
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

    /// The default k_c of the board profiles (FlexEdge `BoardProfile.all`: Pi Zero 2 W, Pi 3B, Pi 4B,
    /// Pi 5), copied here because FlexServer does not depend on FlexEdge; a test keeps them equal.
    public static let boardProfiles: [(name: String, kc: Int)] = [("pi-zero-2w", 2), ("pi-3b", 4), ("pi-4b", 8), ("pi-5", 16)]

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
    public var localEpochs = 1
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
    let data: DatasetBox

    public init(settings: SimulationSettings) throws {
        self.settings = settings
        guard settings.clients >= 1, settings.experts >= 1, settings.rounds >= 1, settings.localEpochs >= 1 else {
            throw SimulationError("clients, experts, rounds and local epochs must be ≥ 1")
        }
        guard !settings.seeds.isEmpty, !settings.strategies.isEmpty else { throw SimulationError("no seeds or no strategies") }
        data = DatasetBox(try settings.dataset.load(clients: settings.clients, syntheticMaxSamples: settings.syntheticMaxSamples))
        guard data.dataset.count >= 2 * settings.clients else {
            throw SimulationError("\(data.dataset.count) samples are too few for \(settings.clients) clients")
        }
    }

    public var sampleCount: Int { data.dataset.count }
    public var featureCount: Int { data.dataset.dim }
    public var classCount: Int { data.dataset.classes }

    /// Every strategy × seed, seeds outermost (each seed's partition is shared by the strategies).
    public func run(progress: ((SimulationProgress) -> Void)? = nil) throws -> [SimulationRound] {
        var out: [SimulationRound] = []
        for (si, seed) in settings.seeds.enumerated() {
            let devices = try partition(seed: seed)
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

    final class Device {
        let train: DatasetBox
        let test: DatasetBox
        let kc: Int
        init(train: DatasetBox, test: DatasetBox, kc: Int) { self.train = train; self.test = test; self.kc = kc }
    }

    /// The seed's split of the data among the devices, each with its local train/test split and k_c.
    func partition(seed: UInt64) throws -> [Device] {
        let box = data
        var random = FlexRandom(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 11)
        let parts = try settings.split.partition(box.dataset, clients: settings.clients, random: &random)
        var kcRandom = FlexRandom(seed: seed &+ 0xB0A2D)
        return try parts.enumerated().map { (c, idx) in
            let (tr, te) = Partitioner.trainTestSplit(idx, testFraction: settings.testFraction, random: &random)
            guard !tr.isEmpty else { throw SimulationError("client \(c) has no training sample (too many clients for the data)") }
            let kc: Int
            switch settings.capacity {
            case .fixed(let k): kc = k
            case .boards: kc = SimulationCapacity.boardProfiles[kcRandom.nextInt(below: SimulationCapacity.boardProfiles.count)].kc
            }
            return Device(train: DatasetBox(box.dataset.subset(tr)), test: DatasetBox(box.dataset.subset(te)), kc: min(kc, settings.experts))
        }
    }

    // MARK: one strategy, one seed

    /// What one device sends back after its local round.
    struct DeviceResult {
        var report: ValidatedReport
        var bodyBytes: Int
        var testAccuracy: Double?
        var trainLoss: Double
        var trainAccuracy: Double
    }

    func run(strategy: SimulationStrategy, seed: UInt64, devices: [Device],
             progress: (SimulationRound) -> Void) throws -> [SimulationRound] {
        let s = settings
        let dense = strategy == .fedavgDense
        let E = dense ? 1 : s.experts
        let config = MoEConfig(inputDim: data.dataset.dim, hidden: s.hidden, expertHidden: s.expertHidden,
                               classes: data.dataset.classes, experts: E, topK: dense ? 1 : s.topK)
        var model = GlobalModel.initial(config: config, seed: seed)
        var planner = RoundPlanner(experts: E, beta: Float(s.beta), epsilon: s.epsilon, solver: strategy.solver, seed: seed)
        let n = devices.count
        let ids = Array(0..<n)
        let capacity = devices.map { dense ? 1 : $0.kc }
        let sizes = devices.map { $0.train.dataset.count }
        let gates: [ClientGate] = ids.map { c in
            let g = ClientGate(config)
            var r = FlexRandom(seed: seed &+ 0x6A7E &+ UInt64(c) &* 0x1000_0001)
            g.initialise(random: &r)
            return g
        }
        var options = TrainingOptions.federated
        options.learningRate = s.learningRate
        options.momentum = s.momentum
        options.gradientClip = s.gradientClip
        options.batchSize = s.batch
        options.epochs = s.localEpochs
        options.fitness = s.fitness
        let workers = max(1, min(s.threads, n))
        let slots = capacity.max() ?? 1
        let trainers = (0..<workers).map { _ in
            LocalTrainer<MLPExtractor>(config: config, capacity: slots, maxBatch: s.batch, options: options)
        }
        // What each device holds from earlier rounds (its cache of k_c experts and the extractor).
        var heldExtractor = [UInt64?](repeating: nil, count: n)
        var heldExperts = [[Int: UInt64]](repeating: [:], count: n)
        var rounds: [SimulationRound] = []
        let decompressor = ZstdDecompressor()

        for r in 1...s.rounds {
            let start = Date()
            let (result, _) = planner.assign(round: r, clients: ids, capacity: capacity, dataSize: sizes)
            let lists = result.assignment.lists

            // Downloads: every part once, as the server would serve it, decoded as a device decodes it.
            func decoded(_ bytes: [UInt8], shapes: [Shape], kind: PartKind) throws -> [Float] {
                let res = bytes.withUnsafeBytes { b in
                    Result { () throws(ProtocolError) in try GlobalModel.decode(b, shapes: shapes, kinds: [kind], decompressor: decompressor).values }
                }
                return try res.get()
            }
            let xBytes = model.extractorContainer(dtype: s.storage)
            let xValues = try decoded(xBytes, shapes: model.extractorShapes, kind: .extractorWeights)
            var eBytes = [Int](repeating: 0, count: E)
            var eValues = [[Float]](repeating: [], count: E)
            for e in Set(lists.joined()) {
                let b = model.expertContainer(e, dtype: s.storage)
                eBytes[e] = b.count
                eValues[e] = try decoded(b, shapes: config.expertShapes, kind: .expertWeights)
            }
            var down = [Int](repeating: 0, count: n)
            for c in ids {
                if heldExtractor[c] != model.extractorVersion { down[c] += xBytes.count }
                for e in lists[c] where heldExperts[c][e] != model.expertVersions[e] { down[c] += eBytes[e] }
                heldExtractor[c] = model.extractorVersion
                heldExperts[c] = Dictionary(uniqueKeysWithValues: lists[c].map { ($0, model.expertVersions[$0]) })
            }

            // Local rounds, devices spread over the workers (each has its own trainer and RNG stream).
            let job = RoundJob(model: model, config: config, xValues: xValues, eValues: eValues, lists: lists,
                               devices: devices, gates: gates, trainers: trainers, update: s.update, seed: seed, round: r)
            let results = try job.run(workers: workers)

            // Server side: fold in client order (deterministic), Q from the measured pairs.
            var aggregator = StreamingAggregator(config: config)
            var acc = 0.0, accN = 0, loss = 0.0, tacc = 0.0, up = 0
            for c in ids {
                let d = results[c]
                let rep = d.report
                let weights = rep.experts.indices.map { s.weightByUsage ? Double(rep.usage[$0]) : Double(sizes[c]) }
                aggregator.fold(rep, extractorWeight: Double(sizes[c]), expertWeights: weights)
                if !dense { planner.record(client: c, experts: rep.experts, fitness: rep.fitness) }
                if let a = d.testAccuracy { acc += a; accN += 1 }
                loss += d.trainLoss; tacc += d.trainAccuracy
                up += d.bodyBytes
            }
            aggregator.apply(to: &model, round: UInt64(r))
            planner.close(assignedLoad: result.metrics.load)

            let m = result.metrics
            let row = SimulationRound(strategy: strategy, seed: seed, round: r, testAccuracy: accN > 0 ? acc / Double(accN) : 0,
                                      trainLoss: loss / Double(n), trainAccuracy: tacc / Double(n), load: m.load,
                                      cv: dense ? 0 : m.cv, maxOverMean: dense ? 1 : m.maxOverMean,
                                      relaxationSteps: result.relaxation.count,
                                      bytesUp: Double(up) / Double(n), bytesDown: Double(down.reduce(0, +)) / Double(n),
                                      seconds: Date().timeIntervalSince(start))
            rounds.append(row)
            progress(row)
        }
        return rounds
    }
}

/// One round's device work, shared read-only by the worker threads; each worker owns one trainer,
/// one compressor and one decompressor; every device's RNG is derived from (seed, round, client), so
/// results do not depend on the number of workers or their scheduling.
final class RoundJob: @unchecked Sendable {
    let model: GlobalModel
    let config: MoEConfig
    let xValues: [Float]
    let eValues: [[Float]]
    let lists: [[Int]]
    let devices: [Simulation.Device]
    let gates: [ClientGate]
    let trainers: [LocalTrainer<MLPExtractor>]
    let update: DType
    let seed: UInt64
    let round: Int
    let lock = NSLock()
    var next = 0
    var results: [Result<Simulation.DeviceResult, Error>?]

    init(model: GlobalModel, config: MoEConfig, xValues: [Float], eValues: [[Float]], lists: [[Int]],
         devices: [Simulation.Device], gates: [ClientGate], trainers: [LocalTrainer<MLPExtractor>], update: DType,
         seed: UInt64, round: Int) {
        self.model = model; self.config = config; self.xValues = xValues; self.eValues = eValues; self.lists = lists
        self.devices = devices; self.gates = gates; self.trainers = trainers; self.update = update
        self.seed = seed; self.round = round
        results = Array(repeating: nil, count: devices.count)
    }

    func run(workers: Int) throws -> [Simulation.DeviceResult] {
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let trainer = trainers[w]
            let compressor = ZstdCompressor()
            let decompressor = ZstdDecompressor()
            while true {
                let c: Int = lock.withLock { let c = next; next += 1; return c }
                if c >= devices.count { break }
                let r = Result { try device(c, trainer: trainer, compressor: compressor, decompressor: decompressor) }
                lock.withLock { results[c] = r }
            }
        }
        return try results.map { try $0!.get() }
    }

    static func load(_ parameters: [Parameter], from values: [Float]) {
        var offset = 0
        for p in parameters {
            let dst = p.value.ptr
            values.withUnsafeBufferPointer { src in
                for i in 0..<p.count { dst[i] = src[offset + i] }
            }
            offset += p.count
            p.markDownloaded()
        }
    }

    /// Quantises each parameter's delta (stochastic rounding, as the edge runtime does) into one
    /// update container.
    func deltaContainer(kind: PartKind, expert: Int?, version: UInt64, parameters: [Parameter],
                        random: inout FlexRandom, compressor: borrowing ZstdCompressor) throws -> [UInt8] {
        var payload: [UInt8] = []
        var entries: [TensorEntry] = []
        for p in parameters {
            let delta = Tensor<Float>(zeros: p.shape)
            p.delta(into: delta)
            if update == .fp32 {
                delta.withUnsafeBytes { payload += $0 }
            } else {
                let q = QuantizedTensor(dtype: update, shape: p.shape)
                Quantizer.quantizeStochastic(delta, into: q, random: &random)
                q.bytes.withUnsafeBufferPointer { payload += $0 }
            }
            entries.append(.standard(dtype: update, shape: p.shape))
        }
        return try Container.encode(kind: kind, expertId: expert.map { UInt32($0) }, modelVersion: version, tensors: entries,
                                    payload: payload, codec: .zstd, compressor: compressor)
    }

    func device(_ c: Int, trainer: LocalTrainer<MLPExtractor>, compressor: borrowing ZstdCompressor,
                decompressor: borrowing ZstdDecompressor) throws -> Simulation.DeviceResult {
        let dev = devices[c]
        let assigned = lists[c]
        var random = FlexRandom(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(round) &* 0x9E37_79B9 &+ UInt64(c) &* 0x1_0000_0001)
        Self.load(trainer.extractor.parameters, from: xValues)
        trainer.assign(assigned)
        for (slot, e) in assigned.enumerated() { Self.load(trainer.experts[slot].parameters, from: eValues[e]) }
        trainer.loadGate(from: gates[c])
        let report = trainer.train(features: dev.train.dataset.features, labels: dev.train.dataset.labels, random: &random)
        let test = dev.test.dataset.count > 0
            ? trainer.evaluate(features: dev.test.dataset.features, labels: dev.test.dataset.labels) : nil
        trainer.storeGate(into: gates[c])

        // The report body a device would POST (fields as the edge agent writes them).
        var fields = SmallMessage()
        fields.set("client_id", c)
        fields.set("samples", dev.train.dataset.count)
        fields.set("loss", String(Double(report.lastEpochLoss)))
        fields.set("accuracy", String(Double(report.lastEpochAccuracy)))
        if let t = test { fields.set("test_accuracy", String(Double(t.accuracy))) }
        fields.set("experts", list: report.experts.map { $0.expert })
        fields.set("usage", list: report.experts.map { $0.usage })
        fields.set("fitness", report.experts.map { String(Double($0.fitness)) }.joined(separator: ","))
        var containers = [try deltaContainer(kind: .extractorDelta, expert: nil, version: model.extractorVersion,
                                             parameters: trainer.extractor.parameters, random: &random, compressor: compressor)]
        for (slot, e) in assigned.enumerated() {
            containers.append(try deltaContainer(kind: .expertDelta, expert: e, version: model.expertVersions[e],
                                                 parameters: trainer.experts[slot].parameters, random: &random,
                                                 compressor: compressor))
        }
        let body = ReportFrame.encode(fields: fields, containers: containers)

        // The server's checks and decoding, as for a POSTed report.
        let validated = body.withUnsafeBytes { b in
            Result { () throws(ProtocolError) -> ValidatedReport in
                let (f, ranges) = try ReportValidator.fields(b)
                return try ReportValidator.validate(b, fields: f, containers: ranges, model: config,
                                                    extractorVersion: model.extractorVersion, expertVersions: model.expertVersions,
                                                    assigned: assigned, decompressor: decompressor)
            }
        }
        return Simulation.DeviceResult(report: try validated.get(), bodyBytes: body.count,
                                       testAccuracy: test.map { Double($0.accuracy) },
                                       trainLoss: Double(report.lastEpochLoss), trainAccuracy: Double(report.lastEpochAccuracy))
    }
}

func fmt(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(x)
}
