import Dispatch
import FlexAssign
import FlexTensor
import FlexWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus

/// The live server's adapter around the `RoundStateMachine`: the lock (the HTTP layer calls in from
/// any event loop), the wall clock, token lookup, long polls as NIO promises, and the Prometheus
/// registry behind `/metrics`. All protocol logic is in the state machine.
public final class Coordinator: @unchecked Sendable {
    public typealias Identity = RoundStateMachine.Identity

    public let config: ServerConfig
    let machine: RoundStateMachine
    let logger: Logger
    let lock = NIOLock()
    var tokens: TokenFile
    var tokensReloadedAt = -Double.infinity
    // long polls
    var waiters: [Int: (after: Int, promise: EventLoopPromise<Void>)] = [:]
    var nextWaiter = 0
    /// Registrations per token: 5 at once, then one a second (docs/SERVER.md "Limits").
    var registerRate = RateLimiter(burst: 5, perSecond: 1)
    // metrics
    let registry = PrometheusCollectorRegistry()
    var bytesIn = 0, bytesOut = 0
    var reportedCompleted = 0
    /// Set by `beginShutdown`: every later request is answered 503.
    var stopping = false
    /// Rejected requests are logged at most once a second per error code (with how many were not).
    let rejectLog = NIOLockedValueBox([String: (since: Double, suppressed: Int)]())

    /// Seconds on a monotonic clock: the state machine's time.
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    public init(config: ServerConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        machine = try RoundStateMachine(config: config, store: try StateStore(dir: config.stateDir, keep: config.keepCheckpoints),
                                        logger: logger)
        tokens = TokenFile(path: config.resolvedTokenFile)
        reportedCompleted = machine.completedRound
    }

    func locked<T>(_ body: () throws(ProtocolError) -> T) throws(ProtocolError) -> T {
        lock.lock()
        defer { lock.unlock() }
        if stopping { throw .notReady("the server is stopping") }
        return try body()
    }

    // MARK: shutdown

    /// Stops serving (SIGTERM, SIGINT, or the supervisor's end of input): later requests are
    /// answered 503 and pending long polls now. The open round, if any, is abandoned: nothing of it
    /// was persisted, so after a restart it opens again from the last completed round.
    public func beginShutdown() {
        let wake: [EventLoopPromise<Void>] = lock.withLock {
            stopping = true
            let w = waiters.values.map(\.promise)
            waiters = [:]
            return w
        }
        for p in wake { p.succeed(()) }
        logger.info("stopping", metadata: ["round": "\(lock.withLock { machine.round })",
                                           "completed_round": "\(lock.withLock { machine.completedRound })"])
    }

    /// Ends the process with status 0 once no request holds the lock, so no state write is cut
    /// short; the lock is never released.
    public func exitWhenQuiet() -> Never {
        lock.lock()
        exit(0)
    }

    // MARK: authentication

    /// `Authorization: Bearer TOKEN` → the device (401 when missing or unknown).
    public func authenticate(_ authorization: String?) throws(ProtocolError) -> Identity {
        guard let a = authorization, a.hasPrefix("Bearer "), a.count > 7, a.count < 200 else {
            throw .unauthorized("missing or malformed Authorization: Bearer token")
        }
        let h = TokenFile.hash(String(a.dropFirst(7)))
        return try locked { () throws(ProtocolError) -> Identity in
            if tokens.names[h] == nil, Self.now() - tokensReloadedAt > 1 {
                tokens.reload()
                tokensReloadedAt = Self.now()
            }
            guard let name = tokens.names[h] else { throw .unauthorized("unknown token") }
            return Identity(hash: h, name: name)
        }
    }

    /// Counts a refused request once, by its error code, and logs it (at most one line a second
    /// per code, with the number left out; messages never hold a token).
    public func count(_ e: ProtocolError) {
        registry.makeCounter(descriptor: Self.metric("rejected_total", "Rejected requests by reason."),
                             labels: [("reason", e.code)]).increment()
        let now = Self.now()
        let suppressed: Int? = rejectLog.withLockedValue { log in
            if let l = log[e.code], now - l.since < 1 {
                log[e.code] = (l.since, l.suppressed + 1)
                return nil
            }
            let before = log[e.code]?.suppressed ?? 0
            log[e.code] = (now, 0)
            return before
        }
        if let n = suppressed {
            logger.notice("rejected", metadata: ["status": "\(e.status)", "error": "\(e.code)", "message": "\(e.message)",
                                                 "not_logged_before": "\(n)"])
        }
    }

    public func count(bytesIn i: Int, bytesOut o: Int) {
        lock.withLock { bytesIn += i; bytesOut += o; machine.count(bytesIn: i, bytesOut: o) }
    }

    // MARK: protocol

    public func register(_ id: Identity, body: [UInt8]) throws(ProtocolError) -> [UInt8] {
        if let wait = lock.withLock({ registerRate.take(id.hash, now: Self.now()) }) {
            throw .rateLimited("too many registrations from this token; retry in \(Int(wait.rounded(.up))) s")
        }
        let request: RegisterRequest
        do throws(MessageError) { request = try RegisterRequest(SmallMessage.parse(body), experts: config.experts) } catch {
            throw ProtocolError(error)
        }
        return try mutate { () throws(ProtocolError) in try machine.register(id, request, now: Self.now()) }.message().encoded()
    }

    public func roundMessage(_ id: Identity, named: Int?) throws(ProtocolError) -> [UInt8] {
        try locked { () throws(ProtocolError) in
            machine.roundMessage(client: try machine.client(id, named: named), now: Self.now())
        }.message().encoded()
    }

    public var currentRound: Int { lock.withLock { machine.round } }

    public func download(_ id: Identity, expert: Int?, have: UInt64?, ifNoneMatch: String?) throws(ProtocolError) -> (String, [UInt8]?) {
        try locked { () throws(ProtocolError) in
            try machine.download(client: try machine.client(id, named: nil), expert: expert, have: have, ifNoneMatch: ifNoneMatch)
        }
    }

    /// `POST /v1/stats` (docs/PROTOCOL.md): a device's feature statistics.
    public func stats(_ id: Identity, body: [UInt8]) throws(ProtocolError) -> [UInt8] {
        try mutate { () throws(ProtocolError) -> Void in
            let c = try machine.client(id, named: nil)
            try body.withUnsafeBytes { b in
                Result { () throws(ProtocolError) in try machine.receiveStats(client: c, body: b, decompressor: ZstdDecompressor()) }
            }.get()
        }
        var m = SmallMessage()
        m.set("accepted", 1)
        return m.encoded()
    }

    /// The body limit of `POST /v1/stats`: one container of 3 × d fp32 values.
    public var statsLimit: Int { Container.maxEncodedSize(payloadBytes: 12 * config.inputDim, tensorCount: 1) }

    /// `GET /v1/normalization`: the frozen normalization (503 while it is pooled).
    public func normalization(_ id: Identity) throws(ProtocolError) -> [UInt8] {
        try locked { () throws(ProtocolError) in
            _ = try machine.client(id, named: nil)
            return try machine.normalizationContainer()
        }
    }

    /// The body limit of a report from this identity (413 before the body is read).
    public func reportLimit(_ id: Identity) -> Int {
        lock.withLock { machine.reportLimit(client: machine.clientId(of: id)) }
    }

    /// A report: framing and sender checked first, the round's place held under the lock, the
    /// containers decoded outside it, then folded under it.
    public func report(_ id: Identity, round n: Int, body: [UInt8]) throws(ProtocolError) -> [UInt8] {
        let validated: Result<(RoundStateMachine.ReportTicket, ValidatedReport), ProtocolError> = body.withUnsafeBytes { b in
            Result { () throws(ProtocolError) in
                let (fields, ranges) = try ReportValidator.fields(b)
                let named: Int
                do throws(MessageError) { named = try fields.int("client_id", in: 0...Int(Int32.max)) } catch { throw ProtocolError(error) }
                let ticket = try locked { () throws(ProtocolError) in
                    try machine.beginReport(client: try machine.client(id, named: named), round: n)
                }
                do throws(ProtocolError) {
                    return (ticket, try RoundStateMachine.validate(b, fields: fields, containers: ranges, ticket: ticket,
                                                                   decompressor: ZstdDecompressor()))
                } catch {
                    lock.withLock { machine.abandonReport(ticket) }
                    throw error
                }
            }
        }
        let (ticket, report) = try validated.get()
        return try mutate { () throws(ProtocolError) in try machine.finishReport(ticket, report, now: Self.now()) }.message().encoded()
    }

    // MARK: round lifecycle and long polls

    /// Called every 100 ms: deadlines and opening rounds.
    public func tick() {
        _ = try? mutate { () throws(ProtocolError) in machine.tick(now: Self.now()) }
    }

    /// Runs `body` on the machine under the lock, then completes the long polls whose round changed.
    func mutate<T>(_ body: () throws(ProtocolError) -> T) throws(ProtocolError) -> T {
        lock.lock()
        let result: Result<T, ProtocolError>
        if stopping { lock.unlock(); throw .notReady("the server is stopping") }
        do throws(ProtocolError) { result = .success(try body()) } catch { result = .failure(error) }
        var wake: [EventLoopPromise<Void>] = []
        for (k, w) in waiters where machine.round != w.after || machine.phase == .finished {
            waiters.removeValue(forKey: k)
            wake.append(w.promise)
        }
        lock.unlock()
        // Completed after unlocking: their callbacks may run at once and take the lock again.
        for p in wake { p.succeed(()) }
        return try result.get()
    }

    /// Long poll: completes when the round differs from `after`, the training finished, or `wait`
    /// seconds passed; then the caller asks `roundMessage` again.
    public func waitForRound(after: Int, wait: Int, on loop: EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let key: Int? = lock.withLock {
            if machine.round != after || machine.phase == .finished || stopping { return nil }
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

    // MARK: operator endpoints

    public func statusJSON() -> [UInt8] {
        RecordJSON.encode(lock.withLock { machine.status() })
    }

    /// `/metrics`: the registry's counters, with the gauges set from the machine at scrape time.
    /// The name `flexmoe_<name>` with its help text.
    static func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "flexmoe", metricName: name, unitName: "", helpText: help)
    }

    public func metricsText() -> [UInt8] {
        lock.withLock {
            let s = machine.status()
            func gauge(_ name: String, _ help: String, _ value: Double, labels: [(String, String)] = []) {
                registry.makeGauge(descriptor: Self.metric(name, help), labels: labels).set(value)
            }
            if machine.completedRound > reportedCompleted {
                registry.makeCounter(descriptor: Self.metric("rounds_completed", "Rounds completed."), labels: [])
                    .increment(by: Int64(machine.completedRound - reportedCompleted))
                reportedCompleted = machine.completedRound
            }
            gauge("round", "Current round number.", Double(s.round))
            gauge("round_open", "1 while a round accepts reports.", machine.phase == .open ? 1 : 0)
            gauge("round_duration_seconds", "Duration of the last completed round.", s.lastRound?.durationSeconds ?? 0)
            gauge("clients_registered", "Registered clients.", Double(s.clients))
            gauge("clients_active", "Clients taking part in rounds.", Double(s.active))
            gauge("clients_reporting", "Clients that reported in the current round.", Double(s.reported))
            gauge("clients_dropped", "Assigned clients that missed a deadline, since start.", Double(machine.droppedTotal))
            gauge("bytes_in", "Request bytes received since start.", Double(bytesIn))
            gauge("bytes_out", "Response bytes sent since start.", Double(bytesOut))
            for (e, load) in s.expertLoad.enumerated() {
                gauge("expert_load", "Assigned load (samples) per expert in the current or last round.", Double(load),
                      labels: [("expert", String(e))])
            }
            gauge("expert_load_cv", "Coefficient of variation of the expert load.", s.loadCV)
            var out: [UInt8] = []
            registry.emit(into: &out)
            return out
        }
    }
}
