import FlexAssign
import FlexModel
import FlexTensor
import FlexWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The round coordinator (docs/PROTOCOL.md, DESIGN.md §1): registry, rounds, assignment, the
/// streaming aggregation of reports, Q and the load history, persistence. All state is behind one
/// lock; the HTTP layer calls in from any event loop.
public final class Coordinator: @unchecked Sendable {
    public enum Phase: String, Sendable { case waiting, open, finished }

    public let config: ServerConfig
    let store: StateStore
    var logger: Logger
    let lock = NIOLock()

    // model and history
    var model: GlobalModel
    var completedRound = 0
    var round = 0
    var phase = Phase.waiting
    /// Q, the load history and the assignment of a round: the same logic the simulator runs.
    var planner: RoundPlanner
    var loadHistory: [[Int]] = []

    // registry
    var tokens: TokenFile
    var tokensReloadedAt = Date.distantPast
    var clients: [Int: ClientRecord] = [:]
    var byHash: [String: Int] = [:]
    var active = Set<Int>()
    var strikes: [Int: Int] = [:]

    // the open round
    var assignment: [Int: [Int]] = [:]
    var roundExpertVersions: [UInt64] = []
    var roundExtractorVersion: UInt64 = 0
    var deadline = Date.distantFuture
    var openedAt = Date()
    var reported = Set<Int>()
    var inFlight = Set<Int>()
    var aggregator: StreamingAggregator
    var assignedLoad: [Int] = []
    var reportedLoad: [Int] = []
    var relaxedSteps = 0
    var roundBytesIn = 0
    var roundBytesOut = 0
    var roundLoss = 0.0, roundAccuracy = 0.0
    /// Sum and count of the devices' held-out accuracy this round (reports may omit it).
    var roundTestAccuracy = 0.0, roundTestReports = 0

    // long polls
    var waiters: [Int: (after: Int, promise: EventLoopPromise<Void>)] = [:]
    var nextWaiter = 0

    // caches and metrics
    var cache: [String: [UInt8]] = [:]
    var rejected: [String: Int] = [:]
    var bytesIn = 0, bytesOut = 0
    var droppedTotal = 0
    var lastRoundDuration = 0.0
    var lastRound: [String: Any] = [:]

    func locked<T>(_ body: () throws(ProtocolError) -> T) throws(ProtocolError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public init(config: ServerConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        store = try StateStore(dir: config.stateDir, keep: config.keepCheckpoints)
        tokens = TokenFile(path: config.resolvedTokenFile)
        planner = RoundPlanner(experts: config.experts, beta: Float(config.beta), epsilon: config.epsilon,
                               solver: config.solver, seed: config.seed)
        aggregator = StreamingAggregator(config: config.model, clipNorm: config.clipNorm)
        if let (s, m) = try store.load(config: config) {
            model = m
            completedRound = s.completedRound
            round = s.completedRound
            // Restore Q exactly: with β = 1 an update sets the value.
            planner.fitness.beta = 1
            for (c, pairs) in s.fitness { planner.fitness.update(client: c, scores: pairs.map { (expert: $0.0, score: $0.1) }) }
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

    // MARK: authentication

    public struct Identity: Sendable { public var hash: String; public var name: String; public var clientId: Int? }

    /// `Authorization: Bearer TOKEN` → the device (401 when missing or unknown).
    public func authenticate(_ authorization: String?) throws(ProtocolError) -> Identity {
        guard let a = authorization, a.hasPrefix("Bearer "), a.count > 7, a.count < 200 else {
            count(rejection: "unauthorized")
            throw .unauthorized("missing or malformed Authorization: Bearer token")
        }
        let h = TokenFile.hash(String(a.dropFirst(7)))
        return try locked { () throws(ProtocolError) -> Identity in
            if tokens.names[h] == nil, Date().timeIntervalSince(tokensReloadedAt) > 1 {
                tokens.reload()
                tokensReloadedAt = Date()
            }
            guard let name = tokens.names[h] else {
                rejected["unauthorized", default: 0] += 1
                throw .unauthorized("unknown token")
            }
            return Identity(hash: h, name: name, clientId: byHash[h])
        }
    }

    func count(rejection: String) { lock.withLock { rejected[rejection, default: 0] += 1 } }
    public func count(_ e: ProtocolError) { count(rejection: e.code) }
    public func count(bytesIn i: Int, bytesOut o: Int) {
        lock.withLock { bytesIn += i; bytesOut += o; if phase == .open { roundBytesIn += i; roundBytesOut += o } }
    }

    /// The known client of an identity, and that it is the one the request names (403/404).
    func client(_ id: Identity, named: Int?) throws(ProtocolError) -> Int {
        guard let c = id.clientId else { throw .notFound("unknown client: register first") }
        if let n = named, n != c { throw .forbidden("this token belongs to client \(c), not \(n)") }
        return c
    }

    // MARK: register

    public func register(_ id: Identity, body: [UInt8]) throws(ProtocolError) -> [UInt8] {
        let f: SmallMessage
        let kc: Int, samples: Int, budget: Int, maxBatch: Int, storage: String, board: String
        do throws(MessageError) {
            f = try SmallMessage.parse(body)
            kc = try f.int("kc", in: 1...config.experts)
            samples = try f.int("samples", in: 1...1_000_000_000)
            budget = try f.int("memory_budget", in: 0...Int.max)
            maxBatch = try f.int("max_batch", in: 1...1_000_000)
            storage = try f.string("storage")
            board = try f.string("board")
        } catch { throw ProtocolError(error) }
        guard DType.named(storage) != nil else { throw .badRequest("unknown storage dtype '\(storage)'") }
        guard board.count <= 64, !board.contains("\t") else { throw .badRequest("board name too long") }
        let rec: ClientRecord = try locked { () throws(ProtocolError) -> ClientRecord in
            let cid = byHash[id.hash] ?? ((clients.keys.max() ?? 0) + 1)
            let r = ClientRecord(id: cid, tokenHash: id.hash, name: id.name, kc: kc, samples: samples, storage: storage,
                                 memoryBudget: budget, board: board, maxBatch: maxBatch)
            if clients[cid] != r {
                do { try store.appendClient(r) } catch { throw .notReady("cannot persist the registration: \(error)") }
                if clients[cid] == nil { logger.info("registered", metadata: ["client": "\(cid)", "name": "\(id.name)", "kc": "\(kc)", "samples": "\(samples)"]) }
                clients[cid] = r
                byHash[id.hash] = cid
                planner.fitness.addClient(cid)
            }
            markActive(cid)
            return r
        }
        var m = SmallMessage()
        m.set("client_id", rec.id)
        m.set("round", lock.withLock { round })
        m.set("input_dim", config.inputDim)
        m.set("hidden", config.hidden)
        m.set("expert_hidden", config.expertHidden)
        m.set("classes", config.classes)
        m.set("experts", config.experts)
        m.set("topk", config.topK)
        m.set("local_epochs", config.localEpochs)
        m.set("batch", config.batch)
        m.set("learning_rate", String(config.learningRate))
        m.set("momentum", String(config.momentum))
        m.set("gradient_clip", String(config.gradientClip))
        m.set("fitness", config.fitness.rawValue)
        m.set("alpha_loss", String(config.alphaLoss))
        m.set("update_dtype", config.update.name)
        return m.encoded()
    }

    /// Lock held.
    func markActive(_ c: Int) {
        if !active.contains(c) { active.insert(c); strikes[c] = 0 }
    }

    // MARK: round

    public func roundMessage(_ id: Identity, named: Int?) throws(ProtocolError) -> [UInt8] {
        let c = try client(id, named: named)
        return lock.withLock { markActive(c); return roundMessageLocked(c) }
    }

    func roundMessageLocked(_ c: Int) -> [UInt8] {
        var m = SmallMessage()
        m.set("round", round)
        m.set("state", phase.rawValue)
        let mine = phase == .open ? (assignment[c] ?? []) : []
        m.set("assigned", list: mine)
        m.set("extractor_version", String(phase == .open ? roundExtractorVersion : model.extractorVersion))
        m.set("expert_versions", mine.map { String(roundExpertVersions[$0]) }.joined(separator: ","))
        m.set("deadline_ms", phase == .open ? max(0, Int(deadline.timeIntervalSinceNow * 1000)) : 0)
        m.set("total_rounds", config.rounds)
        return m.encoded()
    }

    public var currentRound: Int { lock.withLock { round } }

    /// Long poll: completes when the round differs from `after`, the training finished, or
    /// `wait` seconds passed; then the caller asks `roundMessage` again.
    public func waitForRound(after: Int, wait: Int, on loop: EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let key: Int? = lock.withLock {
            if round != after || phase == .finished { return nil }
            nextWaiter += 1
            waiters[nextWaiter] = (after, promise)
            return nextWaiter
        }
        guard let k = key else { promise.succeed(()); return promise.futureResult }
        loop.scheduleTask(in: .seconds(Int64(wait))) { [self] in
            if let w = lock.withLock({ waiters.removeValue(forKey: k) }) { w.promise.succeed(()) }
        }
        return promise.futureResult
    }

    /// Lock held: takes the long polls whose condition holds now; the caller completes them
    /// after unlocking (their callbacks may run at once and take the lock again).
    func wakeLocked() -> [EventLoopPromise<Void>] {
        var out: [EventLoopPromise<Void>] = []
        for (k, w) in waiters where round != w.after || phase == .finished {
            waiters.removeValue(forKey: k)
            out.append(w.promise)
        }
        return out
    }

    // MARK: downloads

    /// (etag, container or nil for 304)
    public func download(_ id: Identity, expert: Int?, have: UInt64?, ifNoneMatch: String?) throws(ProtocolError) -> (String, [UInt8]?) {
        let c = try client(id, named: nil)
        return try locked { () throws(ProtocolError) -> (String, [UInt8]?) in
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
            if let b = cache[key] { return (etag, b) }
            let b = expert.map { model.expertContainer($0, dtype: dtype) } ?? model.extractorContainer(dtype: dtype)
            cache[key] = b
            return (etag, b)
        }
    }

    // MARK: reports

    /// The body limit of a report from this identity (413 before the body is read).
    public func reportLimit(_ id: Identity) -> Int {
        let kc = lock.withLock { id.clientId.flatMap { clients[$0]?.kc } ?? 1 }
        return config.reportLimit(kc: kc)
    }

    public func report(_ id: Identity, round n: Int, body: [UInt8]) throws(ProtocolError) -> [UInt8] {
        let c = try client(id, named: nil)
        let result: Result<ValidatedReport, ProtocolError> = body.withUnsafeBytes { b in
            Result { () throws(ProtocolError) -> ValidatedReport in
                let (f, ranges) = try ReportValidator.fields(b)
                let named: Int
                do throws(MessageError) { named = try f.int("client_id", in: 0...Int(Int32.max)) } catch { throw ProtocolError(error) }
                _ = try client(id, named: named)
                // round open, assigned, not reported yet; the versions of the round
                let (assigned, xv, ev) = try locked { () throws(ProtocolError) -> ([Int], UInt64, [UInt64]) in
                    if n > round || (n == round && phase == .open && assignment[c] == nil) {
                        throw .notAssigned("client \(c) is not assigned in round \(n)")
                    }
                    if n != round || phase != .open { throw .roundClosed("round \(n) is closed (current round \(round), \(phase.rawValue))") }
                    if reported.contains(c) || inFlight.contains(c) { throw .duplicate("client \(c) already reported in round \(n)") }
                    inFlight.insert(c)
                    return (assignment[c]!, roundExtractorVersion, roundExpertVersions)
                }
                defer { lock.withLock { _ = inFlight.remove(c) } }
                let decompressor = ZstdDecompressor()
                return try ReportValidator.validate(b, fields: f, containers: ranges, model: config.model,
                                                    extractorVersion: xv, expertVersions: ev, assigned: assigned,
                                                    decompressor: decompressor)
            }
        }
        let r = try result.get()
        let complete = try locked { () throws(ProtocolError) -> Bool in
            guard n == round && phase == .open else { throw .roundClosed("round \(n) closed while the report was checked") }
            let samples = Double(clients[c]?.samples ?? r.samples)
            let weights = r.experts.indices.map { config.weightByUsage ? Double(r.usage[$0]) : samples }
            aggregator.fold(r, extractorWeight: samples, expertWeights: weights)
            for (i, e) in r.experts.enumerated() { reportedLoad[e] += r.usage[i] }
            planner.record(client: c, experts: r.experts, fitness: r.fitness)
            roundLoss += r.loss
            roundAccuracy += r.accuracy
            if let t = r.testAccuracy { roundTestAccuracy += t; roundTestReports += 1 }
            reported.insert(c)
            strikes[c] = 0
            return reported.count >= assignment.count
        }
        if complete { closeRoundIfDue(force: true) }
        var m = SmallMessage()
        m.set("accepted", 1)
        m.set("round", n)
        return m.encoded()
    }

    // MARK: round lifecycle

    /// Called periodically and after the last report: opens and closes rounds.
    public func tick() {
        closeRoundIfDue(force: false)
        openRoundIfReady()
    }

    func openRoundIfReady() {
        let wake: [EventLoopPromise<Void>] = lock.withLock {
            guard phase == .waiting, completedRound < config.rounds, active.count >= config.minClients else { return [] }
            let ids = active.sorted()
            let E = config.experts
            let capacity = ids.map { min(clients[$0]?.kc ?? 1, E) }
            let sizes = ids.map { clients[$0]?.samples ?? 1 }
            let (result, failure) = planner.assign(round: round + 1, clients: ids, capacity: capacity, dataSize: sizes)
            if let error = failure {
                logger.error("assignment failed, using round-robin", metadata: ["error": "\(error)"])
            }
            round += 1
            phase = .open
            openedAt = Date()
            deadline = openedAt.addingTimeInterval(config.roundDeadline)
            assignment = [:]
            for (i, c) in ids.enumerated() { assignment[c] = result.assignment.experts(of: i).map { Int($0) } }
            roundExtractorVersion = model.extractorVersion
            roundExpertVersions = model.expertVersions
            reported = []
            aggregator = StreamingAggregator(config: config.model, clipNorm: config.clipNorm)
            assignedLoad = result.metrics.load
            reportedLoad = [Int](repeating: 0, count: E)
            relaxedSteps = result.relaxation.count
            roundBytesIn = 0; roundBytesOut = 0; roundLoss = 0; roundAccuracy = 0
            roundTestAccuracy = 0; roundTestReports = 0
            var md: Logger.Metadata = ["round": "\(round)", "clients": "\(ids.count)", "load_cv": "\(result.metrics.cv)",
                                       "objective": "\(result.objective)", "deadline_s": "\(config.roundDeadline)"]
            if result.relaxed { md["relaxed"] = "\(result.relaxation.map(\.description).joined(separator: "; "))" }
            logger.info("round open", metadata: md)
            return wakeLocked()
        }
        for p in wake { p.succeed(()) }
    }

    func closeRoundIfDue(force: Bool) {
        let wake: [EventLoopPromise<Void>] = lock.withLock {
            guard phase == .open else { return [] }
            guard Date() >= deadline || reported.count >= assignment.count else { return [] }
            let duration = Date().timeIntervalSince(openedAt)
            let r = UInt64(round)
            let changed = aggregator.apply(to: &model, round: r)
            cache = [:]
            let dropped = assignment.keys.filter { !reported.contains($0) }.sorted()
            droppedTotal += dropped.count
            for c in dropped {
                strikes[c, default: 0] += 1
                if strikes[c]! >= config.maxStrikes { active.remove(c) }
            }
            planner.close(assignedLoad: assignedLoad)
            loadHistory.append(assignedLoad)
            completedRound = round
            let metrics = LoadMetrics(load: assignedLoad)
            let reportedMetrics = LoadMetrics(load: reportedLoad)
            let n = max(reported.count, 1)
            lastRoundDuration = duration
            lastRound = ["round": round, "participants": reported.count, "assigned": assignment.count,
                         "dropped": dropped, "expert_load": assignedLoad, "load_cv": metrics.cv,
                         "max_over_mean": metrics.maxOverMean, "reported_load": reportedLoad,
                         "reported_load_cv": reportedMetrics.cv, "bytes_in": roundBytesIn, "bytes_out": roundBytesOut,
                         "duration_s": duration, "relaxation_steps": relaxedSteps,
                         "mean_loss": roundLoss / Double(n), "mean_accuracy": roundAccuracy / Double(n),
                         "mean_test_accuracy": roundTestReports > 0 ? roundTestAccuracy / Double(roundTestReports) : NSNull(),
                         "experts_updated": changed.experts, "extractor_updated": changed.extractor]
            let line = String(decoding: (try? JSONSerialization.data(withJSONObject: lastRound, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
            var q: [Int: [(Int, Float)]] = [:]
            for c in planner.fitness.clientIDs {
                var pairs: [(Int, Float)] = []
                for e in 0..<config.experts where planner.fitness.isMeasured(client: c, expert: e) {
                    pairs.append((e, planner.fitness.value(client: c, expert: e)!))
                }
                if !pairs.isEmpty { q[c] = pairs }
            }
            let state = PersistedState(completedRound: completedRound, checkpoint: StateStore.checkpointName(completedRound),
                                       fitness: q, loadHistory: loadHistory)
            do { try store.saveRound(model: model, state: state, logLine: line) } catch {
                logger.error("could not persist round \(round): \(error)")
            }
            logger.info("round closed", metadata: [
                "round": "\(round)", "participants": "\(reported.count)", "assigned": "\(assignment.count)",
                "dropped": "\(dropped)", "expert_load": "\(assignedLoad)", "cv": "\(metrics.cv)",
                "reported_load": "\(reportedLoad)", "bytes_in": "\(roundBytesIn)", "bytes_out": "\(roundBytesOut)",
                "duration_s": "\(String(format: "%.3f", duration))", "mean_loss": "\(roundLoss / Double(n))",
            ])
            assignment = [:]
            reported = []
            phase = completedRound >= config.rounds ? .finished : .waiting
            return wakeLocked()
        }
        for p in wake { p.succeed(()) }
    }

    // MARK: operator endpoints

    public func statusJSON() -> [UInt8] {
        lock.withLock {
            let m = LoadMetrics(load: assignedLoad.isEmpty ? [Int](repeating: 0, count: config.experts) : assignedLoad)
            let o: [String: Any] = ["round": round, "state": phase.rawValue, "total_rounds": config.rounds,
                                    "completed_round": completedRound, "clients": clients.count, "active": active.count,
                                    "assigned": assignment.count, "reported": reported.count,
                                    "expert_load": assignedLoad, "load_cv": m.cv.isFinite ? m.cv : 0,
                                    "extractor_version": model.extractorVersion, "expert_versions": model.expertVersions,
                                    "last_round": lastRound]
            return [UInt8]((try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data("{}".utf8))
        }
    }

    public func metricsText() -> [UInt8] {
        lock.withLock {
            var s = ""
            func metric(_ name: String, _ type: String, _ help: String, _ values: [(String, Double)]) {
                s += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                for (labels, v) in values { s += "\(name)\(labels) \(v)\n" }
            }
            metric("flexmoe_rounds_completed", "counter", "Rounds completed.", [("", Double(completedRound))])
            metric("flexmoe_round", "gauge", "Current round number.", [("", Double(round))])
            metric("flexmoe_round_open", "gauge", "1 while a round accepts reports.", [("", phase == .open ? 1 : 0)])
            metric("flexmoe_round_duration_seconds", "gauge", "Duration of the last completed round.", [("", lastRoundDuration)])
            metric("flexmoe_clients_registered", "gauge", "Registered clients.", [("", Double(clients.count))])
            metric("flexmoe_clients_active", "gauge", "Clients taking part in rounds.", [("", Double(active.count))])
            metric("flexmoe_clients_reporting", "gauge", "Clients that reported in the current round.", [("", Double(reported.count))])
            metric("flexmoe_clients_dropped_total", "counter", "Assigned clients that missed a deadline.", [("", Double(droppedTotal))])
            metric("flexmoe_bytes_in_total", "counter", "Request bytes received.", [("", Double(bytesIn))])
            metric("flexmoe_bytes_out_total", "counter", "Response bytes sent.", [("", Double(bytesOut))])
            let load = assignedLoad.isEmpty ? [Int](repeating: 0, count: config.experts) : assignedLoad
            metric("flexmoe_expert_load", "gauge", "Assigned load (samples) per expert in the current or last round.",
                   load.enumerated().map { ("{expert=\"\($0.offset)\"}", Double($0.element)) })
            let cv = LoadMetrics(load: load).cv
            metric("flexmoe_expert_load_cv", "gauge", "Coefficient of variation of the expert load.", [("", cv.isFinite ? cv : 0)])
            metric("flexmoe_rejected_total", "counter", "Rejected requests by reason.",
                   rejected.keys.sorted().map { ("{reason=\"\($0)\"}", Double(rejected[$0]!)) })
            return Array(s.utf8)
        }
    }
}
