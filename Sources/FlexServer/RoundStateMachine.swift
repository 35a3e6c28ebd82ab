import FlexAssign
import FlexModel
import FlexTensor
import FlexWire
import Logging

/// The server's rounds without a transport (docs/PROTOCOL.md, DESIGN.md §1): registry, open and
/// close, deadlines and strikes, assignment through `RoundPlanner`, streaming aggregation, Q and
/// the load history, persistence through a `RoundStore`. Time is an argument (`now`, seconds on any
/// monotonic clock), so deadlines are tested with a fake clock. It is not thread-safe: the live
/// server (`Coordinator`) calls it under a lock, the simulator from one thread.
public final class RoundStateMachine {
    public let config: ServerConfig
    let store: any RoundStore
    var logger: Logger

    public private(set) var model: GlobalModel
    public private(set) var completedRound = 0
    public private(set) var round = 0
    public private(set) var phase = RoundPhase.waiting
    /// Q, the load history and the assignment of a round (shared with the planner's tests).
    public private(set) var planner: RoundPlanner
    var loadHistory: [[Int]] = []

    // registry
    public private(set) var clients: [Int: ClientRecord] = [:]
    var byHash: [String: Int] = [:]
    public private(set) var active = Set<Int>()
    var strikes: [Int: Int] = [:]

    // the open round
    public private(set) var assignment: [Int: [Int]] = [:]
    var roundExpertVersions: [UInt64] = []
    var roundExtractorVersion: UInt64 = 0
    public private(set) var deadline = Double.infinity
    var openedAt = 0.0
    public private(set) var reported = Set<Int>()
    var inFlight = Set<Int>()
    var aggregator: StreamingAggregator
    public private(set) var assignedLoad: [Int] = []
    var reportedLoad: [Int] = []
    var relaxedSteps = 0
    var roundBytesIn = 0, roundBytesOut = 0
    var roundLoss = 0.0, roundAccuracy = 0.0
    var roundTestAccuracy = 0.0, roundTestReports = 0
    var roundPreTestAccuracy = 0.0, roundPreTestReports = 0
    /// Robust aggregation (docs/SERVER.md): the round's cap on a device's weight, and the median
    /// delta norms of the last round that had reports (nil before the first).
    var roundWeightCap = Double.infinity
    var lastMedianNorms: (extractor: Double?, expert: Double?) = (nil, nil)

    // federated standardisation (docs/PROTOCOL.md): pooled until the first round opens, then frozen
    var statsPool: FeatureStatsPool
    var statsFrom = Set<Int>()
    public private(set) var normalization: Normalization?
    var normalizationBytes: [UInt8]?

    /// Encoded downloads of the current model, by ETag and dtype (dropped when the model changes).
    var containers: [String: [UInt8]] = [:]
    public private(set) var lastRound: RoundRecord?
    public private(set) var droppedTotal = 0
    /// Rounds whose record could not be persisted (they do not count as completed).
    public private(set) var persistFailures = 0

    public init(config: ServerConfig, store: any RoundStore, logger: Logger) throws {
        self.config = config
        self.store = store
        self.logger = logger
        planner = RoundPlanner(experts: config.experts, beta: Float(config.beta), epsilon: config.epsilon,
                               solver: config.solver, seed: config.seed, sharedExpert: config.usesSharedExpert)
        planner.fitness.explorationBonus = Float(config.explorationBonus)
        aggregator = StreamingAggregator(config: config.model, clipNorm: config.clipNorm)
        statsPool = FeatureStatsPool(features: config.inputDim)
        normalization = try store.loadNormalization()
        if let n = normalization, n.mean.count != config.inputDim {
            throw ServerError.storage("normalization.json has \(n.mean.count) features, the model \(config.inputDim)")
        }
        if let (s, m) = try store.load(config: config) {
            model = m
            completedRound = s.completedRound
            round = s.completedRound
            // Restore Q exactly: with β = 1 an update sets the value.
            planner.fitness.beta = 1
            for (c, pairs) in s.fitness { planner.fitness.update(client: c, scores: pairs.map { (expert: $0.expert, score: $0.value) }) }
            planner.fitness.beta = Float(config.beta)
            loadHistory = s.loadHistory
            for l in s.loadHistory where l.count == config.experts { planner.close(assignedLoad: l) }
            logger.info("resumed", metadata: ["completed_round": "\(completedRound)", "checkpoint": "\(s.checkpoint)"])
        } else {
            model = GlobalModel.initial(config: config.model, seed: config.seed)
        }
        for c in store.loadClients() {
            clients[c.id] = c
            byHash[c.tokenHash] = c.id
            planner.fitness.addClient(c.id)
        }
        if completedRound >= config.rounds { phase = .finished }
    }

    // MARK: registry

    /// A device known by its token: the hash of its token, its enrolled name.
    public struct Identity: Sendable, Equatable {
        public var hash: String
        public var name: String
        public init(hash: String, name: String) { self.hash = hash; self.name = name }
    }

    public func clientId(of id: Identity) -> Int? { byHash[id.hash] }

    /// The client of an identity, and that it is the one a request names (404/403).
    public func client(_ id: Identity, named: Int?) throws(ProtocolError) -> Int {
        guard let c = byHash[id.hash] else { throw .notFound("unknown client: register first") }
        if let n = named, n != c { throw .forbidden("this token belongs to client \(c), not \(n)") }
        return c
    }

    /// Registers (or updates) the device of `id`; it takes part from the next round that opens.
    public func register(_ id: Identity, _ r: RegisterRequest, now: Double) throws(ProtocolError) -> RegisterReply {
        guard r.protocolVersion == protocolVersion else {
            throw .upgradeRequired("this server speaks protocol \(protocolVersion) (federated input standardisation); "
                                   + "the device speaks \(r.protocolVersion): update flexmoe-edge")
        }
        guard !r.board.contains("\t") else { throw .badRequest("board name holds a tab") }
        guard r.samples <= config.maxSamples else {
            throw .invalidField("samples = \(r.samples) exceeds the server's max_samples \(config.maxSamples)")
        }
        let cid = byHash[id.hash] ?? ((clients.keys.max() ?? 0) + 1)
        let rec = ClientRecord(id: cid, tokenHash: id.hash, name: id.name, kc: r.kc, samples: r.samples, storage: r.storage.name,
                               memoryBudget: r.memoryBudget, board: r.board, maxBatch: r.maxBatch)
        if clients[cid] != rec {
            do { try store.appendClient(rec) } catch { throw .notReady("cannot persist the registration: \(error)") }
            if clients[cid] == nil {
                logger.info("registered", metadata: ["client": "\(cid)", "name": "\(id.name)", "kc": "\(r.kc)", "samples": "\(r.samples)"])
            }
            clients[cid] = rec
            byHash[id.hash] = cid
            planner.fitness.addClient(cid)
        }
        markActive(cid)
        let c = config
        return RegisterReply(clientId: cid, round: round, inputDim: c.inputDim, hidden: c.hidden, expertHidden: c.expertHidden,
                             classes: c.classes, experts: c.experts, topK: c.topK, localEpochs: c.localEpochs, batch: c.batch,
                             learningRate: c.learningRate, momentum: c.momentum, gradientClip: c.gradientClip,
                             fitness: c.fitness, alphaLoss: c.alphaLoss, updateDType: c.update,
                             normalizationReady: normalization != nil, fitnessBeforeTraining: c.fitnessTiming == .before,
                             gateZeroInit: c.gateInit == .zero, sharedExpert: c.usesSharedExpert,
                             probeWarm: c.probeWarm)
    }

    func markActive(_ c: Int) {
        if !active.contains(c) { active.insert(c); strikes[c] = 0 }
    }

    // MARK: round messages and downloads

    /// `GET /v1/round` for client `c` (a request counts as a sign of life).
    public func roundMessage(client c: Int, now: Double) -> RoundMessage {
        markActive(c)
        let mine = phase == .open ? (assignment[c] ?? []) : []
        let left = phase == .open && deadline.isFinite ? max(0, Int(((deadline - now) * 1000).rounded(.down))) : 0
        return RoundMessage(round: round, phase: phase, assigned: mine,
                            extractorVersion: phase == .open ? roundExtractorVersion : model.extractorVersion,
                            expertVersions: mine.map { roundExpertVersions[$0] }, deadlineMilliseconds: left,
                            totalRounds: config.rounds, normalizationReady: normalization != nil)
    }

    // MARK: federated standardisation

    /// `POST /v1/stats`: pools a device's feature statistics (its first accepted copy; later ones
    /// and any after the normalization froze are ignored). 422 for values outside the protocol's limits.
    public func receiveStats(client c: Int, body: UnsafeRawBufferPointer,
                             decompressor: borrowing ZstdDecompressor) throws(ProtocolError) {
        let d = config.inputDim
        let values = try GlobalModel.decode(body, shapes: [Shape(rows: 3, cols: d)], kinds: [.featureStats],
                                            decompressor: decompressor).values
        let n = values[0]
        guard n >= 1, n == n.rounded(), values[0..<d].allSatisfy({ $0 == n }) else {
            throw .invalidUpdate("the sample count must be one whole number ≥ 1 for every feature")
        }
        guard Int(n) <= clients[c]?.samples ?? 0 else {
            throw .invalidUpdate("statistics of \(Int(n)) samples, the device registered \(clients[c]?.samples ?? 0)")
        }
        guard values[(2 * d)...].allSatisfy({ $0 >= 0 }) else { throw .invalidUpdate("a negative standard deviation") }
        markActive(c)
        if normalization != nil || statsFrom.contains(c) { return }
        statsPool.add(count: Double(n), mean: Array(values[d..<(2 * d)]), std: Array(values[(2 * d)...]))
        statsFrom.insert(c)
    }

    /// `GET /v1/normalization`: the frozen normalization as a container (503 until the first round opens).
    public func normalizationContainer() throws(ProtocolError) -> [UInt8] {
        if let b = normalizationBytes { return b }
        guard let n = normalization else { throw .notReady("the normalization is pooled until the first round opens") }
        let b = GlobalModel.encode(n.mean + n.std, shapes: [Shape(rows: 2, cols: config.inputDim)], kind: .normalization,
                                   expertId: nil, version: 0, dtype: .fp32)
        normalizationBytes = b
        return b
    }

    /// Freezes the pooled statistics (durably: they never change afterwards).
    func freezeNormalization() -> Bool {
        let d = config.inputDim
        let n = config.standardizeInputs ? statsPool.normalization()
            : Normalization(devices: 0, samples: 0, mean: [Float](repeating: 0, count: d), std: [Float](repeating: 1, count: d))
        do { try store.saveNormalization(n) } catch {
            logger.error("could not persist the normalization: \(error)")
            return false
        }
        normalization = n
        logger.info("normalization frozen", metadata: ["devices": "\(n.devices)", "samples": "\(n.samples)"])
        return true
    }

    /// A download: (ETag, container) or (ETag, nil) when the device holds the current version (304).
    public func download(client c: Int, expert: Int?, have: UInt64?, ifNoneMatch: String? = nil) throws(ProtocolError) -> (etag: String, body: [UInt8]?) {
        markActive(c)
        let dtype = DType.named(clients[c]?.storage ?? "") ?? config.storage
        let version: UInt64
        let etag: String
        if let e = expert {
            guard e >= 0 && e < config.experts else { throw .notFound("expert \(e) out of range 0..<\(config.experts)") }
            version = model.expertVersions[e]
            etag = "\"e\(e)-v\(version)\""
        } else {
            version = model.extractorVersion
            etag = "\"x-v\(version)\""
        }
        if have == version || ifNoneMatch == etag { return (etag, nil) }
        let key = etag + dtype.name
        if let b = containers[key] { return (etag, b) }
        let b = expert.map { model.expertContainer($0, dtype: dtype) } ?? model.extractorContainer(dtype: dtype)
        containers[key] = b
        return (etag, b)
    }

    // MARK: reports

    /// The body limit of a report from client `c` (413 before the body is read).
    /// Sized from the server's model and the experts it assigned the client this round (one when
    /// none: such a report is refused anyway), never from what the device claimed.
    public func reportLimit(client c: Int?) -> Int {
        config.reportLimit(kc: max(c.flatMap { assignment[$0]?.count } ?? 1, 1))
    }

    /// A report being checked: the round and versions it must match. Between `beginReport` and
    /// `finishReport` (or `abandonReport`) a second report of the same client is a duplicate.
    public struct ReportTicket: Sendable {
        public var client: Int
        public var round: Int
        public var assigned: [Int]
        public var extractorVersion: UInt64
        public var expertVersions: [UInt64]
        public var model: MoEConfig
        /// The ranges of the report's fields (usage against the samples this client registered).
        public var limits: ReportLimits
    }

    /// Checks that client `c` may report in round `n` now (409 otherwise) and holds its place.
    public func beginReport(client c: Int, round n: Int) throws(ProtocolError) -> ReportTicket {
        if n > round || (n == round && phase == .open && assignment[c] == nil) {
            throw .notAssigned("client \(c) is not assigned in round \(n)")
        }
        if n != round || phase != .open { throw .roundClosed("round \(n) is closed (current round \(round), \(phase.rawValue))") }
        if reported.contains(c) || inFlight.contains(c) { throw .duplicate("client \(c) already reported in round \(n)") }
        inFlight.insert(c)
        return ReportTicket(client: c, round: n, assigned: assignment[c]!, extractorVersion: roundExtractorVersion,
                            expertVersions: roundExpertVersions, model: config.model,
                            limits: ReportLimits(registeredSamples: clients[c]?.samples, localEpochs: config.localEpochs,
                                                 maxSamples: config.maxSamples))
    }

    /// Decodes and checks a report body against its ticket. Pure: callers may run it outside their lock
    /// and in parallel.
    public static func validate(_ body: UnsafeRawBufferPointer, fields: SmallMessage, containers: [Range<Int>],
                                ticket t: ReportTicket, decompressor: borrowing ZstdDecompressor) throws(ProtocolError) -> ValidatedReport {
        try ReportValidator.validate(body, fields: fields, containers: containers, model: t.model,
                                     extractorVersion: t.extractorVersion, expertVersions: t.expertVersions,
                                     assigned: t.assigned, limits: t.limits, decompressor: decompressor)
    }

    /// Releases a ticket whose report was refused.
    public func abandonReport(_ t: ReportTicket) { inFlight.remove(t.client) }

    /// Folds a validated report into the round; the round closes when it was the last one.
    public func finishReport(_ t: ReportTicket, _ r: ValidatedReport, now: Double) throws(ProtocolError) -> ReportReceipt {
        inFlight.remove(t.client)
        guard t.round == round && phase == .open else { throw .roundClosed("round \(t.round) closed while the report was checked") }
        let c = t.client
        let b = aggregationBounds(client: c, reportedSamples: r.samples)
        let weights = r.experts.indices.map { (config.weightByUsage ? Double(r.usage[$0]) : b.samples) * b.factor }
        aggregator.fold(r, extractorWeight: b.samples * b.factor, expertWeights: weights,
                        extractorBound: b.extractor, expertBound: b.expert)
        for (i, e) in r.experts.enumerated() { reportedLoad[e] += r.usage[i] }
        planner.record(client: c, experts: r.experts, fitness: r.fitness)
        if config.probeWarm { planner.record(client: c, experts: r.fields.probed, fitness: r.fields.probedFitness) }
        roundLoss += r.loss
        roundAccuracy += r.accuracy
        if let a = r.testAccuracy { roundTestAccuracy += a; roundTestReports += 1 }
        if let a = r.fields.preTestAccuracy { roundPreTestAccuracy += a; roundPreTestReports += 1 }
        reported.insert(c)
        strikes[c] = 0
        if reported.count >= assignment.count { closeRound(now: now) }
        return ReportReceipt(round: t.round)
    }

    /// How much one device may move the model this round (docs/SERVER.md "Robust aggregation"): its
    /// weight |D_c| scaled by `factor` so that it is at most the round's weight cap, and the norm
    /// bound of its extractor and expert deltas: the least of
    ///  - the training bound: local SGD with gradient clip g, learning rate η, momentum μ and T steps
    ///    moves any part by at most η·T·g/(1 − μ) (T from the capped |D_c|, its batch and the local
    ///    epochs), with 25% headroom for the quantisation of the delta;
    ///  - `norm_bound` × the median norm of that kind of delta in the last round with reports;
    ///  - `clip_norm` (applied by the aggregator).
    func aggregationBounds(client c: Int, reportedSamples: Int) -> (samples: Double, factor: Double, extractor: Double, expert: Double) {
        let rec = clients[c]
        let n = Double(max(rec?.samples ?? reportedSamples, 1))
        let capped = min(n, roundWeightCap)
        var train = Double.infinity
        if config.gradientClip > 0 && config.momentum < 1 {
            let batch = Double(max(min(config.batch, rec?.maxBatch ?? config.batch), 1))
            let steps = Double(config.localEpochs) * (capped / batch).rounded(.up)
            train = 1.25 * config.learningRate * steps * config.gradientClip / (1 - config.momentum)
        }
        let k = config.normBound
        let x = k > 0 ? lastMedianNorms.extractor.map { k * $0 } ?? .infinity : .infinity
        let e = k > 0 ? lastMedianNorms.expert.map { k * $0 } ?? .infinity : .infinity
        return (n, capped / n, min(train, x), min(train, e))
    }

    /// Bytes moved by requests, for the round record.
    public func count(bytesIn i: Int, bytesOut o: Int) {
        if phase == .open { roundBytesIn += i; roundBytesOut += o }
    }

    // MARK: round lifecycle

    /// Closes the open round at its deadline and opens the next when enough clients are active.
    /// Returns whether the round or its phase changed (long polls may complete).
    @discardableResult
    public func tick(now: Double) -> Bool {
        let before = (round, phase)
        if phase == .open && now >= deadline { closeRound(now: now) }
        openRoundIfReady(now: now)
        return before != (round, phase)
    }

    func openRoundIfReady(now: Double) {
        guard phase == .waiting, completedRound < config.rounds, active.count >= config.minClients else { return }
        if normalization == nil {
            // The first round waits for the statistics of min_clients active devices.
            let pooled = statsFrom.intersection(active).count >= config.minClients
            guard pooled || !config.standardizeInputs, freezeNormalization() else { return }
        }
        let ids = active.sorted()
        let E = config.experts
        let capacity = ids.map { min(clients[$0]?.kc ?? 1, E) }
        let sizes = ids.map { clients[$0]?.samples ?? 1 }
        let (plan, failure) = planner.assign(round: round + 1, clients: ids, capacity: capacity, dataSize: sizes)
        let medianSize = Self.median(sizes.map(Double.init)) ?? .infinity
        roundWeightCap = config.weightCap > 0 ? config.weightCap * medianSize : .infinity
        let result = plan.result
        if let error = failure { logger.error("assignment failed, using round-robin", metadata: ["error": "\(error)"]) }
        round += 1
        phase = .open
        openedAt = now
        deadline = now + config.roundDeadline
        assignment = [:]
        for (i, c) in ids.enumerated() { assignment[c] = plan.experts[i] }
        roundExtractorVersion = model.extractorVersion
        roundExpertVersions = model.expertVersions
        reported = []
        aggregator = StreamingAggregator(config: config.model, clipNorm: config.clipNorm)
        assignedLoad = plan.load
        reportedLoad = [Int](repeating: 0, count: E)
        relaxedSteps = result.relaxation.count
        roundBytesIn = 0; roundBytesOut = 0; roundLoss = 0; roundAccuracy = 0
        roundTestAccuracy = 0; roundTestReports = 0
        roundPreTestAccuracy = 0; roundPreTestReports = 0
        var md: Logger.Metadata = ["round": "\(round)", "clients": "\(ids.count)", "load_cv": "\(result.metrics.cv)",
                                   "objective": "\(result.objective)", "deadline_s": "\(config.roundDeadline)"]
        if result.relaxed { md["relaxed"] = "\(result.relaxation.map(\.description).joined(separator: "; "))" }
        logger.info("round open", metadata: md)
    }

    /// Applies the round's aggregate, retires clients that missed too many deadlines, updates the
    /// load history, and persists the round.
    func closeRound(now: Double) {
        guard phase == .open else { return }
        let changed = aggregator.apply(to: &model, round: UInt64(round))
        lastMedianNorms = (Self.median(aggregator.extractorNorms) ?? lastMedianNorms.extractor,
                           Self.median(aggregator.expertNorms) ?? lastMedianNorms.expert)
        containers = [:]
        let dropped = assignment.keys.filter { !reported.contains($0) }.sorted()
        droppedTotal += dropped.count
        for c in dropped {
            strikes[c, default: 0] += 1
            if strikes[c]! >= config.maxStrikes { active.remove(c) }
        }
        planner.close(assignedLoad: assignedLoad)
        loadHistory.append(assignedLoad)
        completedRound = round
        let metrics = planner.routedMetrics(assignedLoad)
        let n = Double(max(reported.count, 1))
        let record = RoundRecord(
            round: round, participants: reported.count, assigned: assignment.count, dropped: dropped,
            expertLoad: assignedLoad, loadCV: metrics.finiteCV, maxOverMean: metrics.finiteMaxOverMean,
            reportedLoad: reportedLoad, reportedLoadCV: planner.routedMetrics(reportedLoad).finiteCV,
            bytesIn: roundBytesIn, bytesOut: roundBytesOut, durationSeconds: now - openedAt, relaxationSteps: relaxedSteps,
            meanLoss: roundLoss / n, meanAccuracy: roundAccuracy / n,
            meanTestAccuracy: roundTestReports > 0 ? roundTestAccuracy / Double(roundTestReports) : nil,
            meanPreTestAccuracy: roundPreTestReports > 0 ? roundPreTestAccuracy / Double(roundPreTestReports) : nil,
            expertsUpdated: changed.experts, extractorUpdated: changed.extractor, clippedUpdates: aggregator.clipped)
        lastRound = record
        var q: [Int: [PersistedState.QEntry]] = [:]
        for c in planner.fitness.clientIDs {
            var pairs: [PersistedState.QEntry] = []
            for e in 0..<config.experts where planner.fitness.isMeasured(client: c, expert: e) {
                pairs.append(.init(expert: e, value: planner.fitness.value(client: c, expert: e)!))
            }
            if !pairs.isEmpty { q[c] = pairs }
        }
        let state = PersistedState(completedRound: completedRound, checkpoint: StateStore.checkpointName(completedRound),
                                   fitness: q, loadHistory: loadHistory)
        do { try store.saveRound(model: model, state: state, record: record) } catch {
            persistFailures += 1
            logger.error("could not persist round \(round): \(error)")
        }
        logger.info("round closed", metadata: [
            "round": "\(round)", "participants": "\(reported.count)", "assigned": "\(assignment.count)",
            "dropped": "\(dropped)", "expert_load": "\(assignedLoad)", "cv": "\(metrics.cv)",
            "reported_load": "\(reportedLoad)", "bytes_in": "\(roundBytesIn)", "bytes_out": "\(roundBytesOut)",
            "duration_s": "\(Format.fixed(now - openedAt, 3))", "mean_loss": "\(record.meanLoss)",
        ])
        assignment = [:]
        reported = []
        deadline = .infinity
        phase = completedRound >= config.rounds ? .finished : .waiting
    }

    // MARK: operator view

    public func status() -> ServerStatus {
        let load = assignedLoad.isEmpty ? [Int](repeating: 0, count: config.experts) : assignedLoad
        return ServerStatus(round: round, state: phase.rawValue, totalRounds: config.rounds, completedRound: completedRound,
                            clients: clients.count, active: active.count, assigned: assignment.count, reported: reported.count,
                            expertLoad: load, loadCV: planner.routedMetrics(load).finiteCV,
                            extractorVersion: model.extractorVersion, expertVersions: model.expertVersions,
                            lastRound: lastRound)
    }

    /// The median of `values` (mean of the middle two for an even count), nil when empty.
    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let v = values.sorted(), m = v.count / 2
        return v.count % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2
    }
}
