import CFlexSystem
import FlexData
import FlexModel
import FlexTensor
import FlexWire

/// Settings of `flexmoe-edge run`.
public struct AgentOptions {
    public var server: ServerAddress
    public var token: String
    public var data: DataSource
    public var memoryBudget: Int
    public var board: String
    public var storage: DType
    /// Stop after this many rounds trained (nil: until the server says training is finished).
    public var rounds: Int?
    /// Most experts to hold (the board's default k_c unless given); the budget may allow fewer.
    public var maxKc: Int?
    public var timeoutMilliseconds: Int32 = 30_000
    public var seed: UInt64 = 1

    public init(server: ServerAddress, token: String, data: DataSource, memoryBudget: Int, board: String,
                storage: DType, rounds: Int?) {
        self.server = server; self.token = token; self.data = data; self.memoryBudget = memoryBudget
        self.board = board; self.storage = storage; self.rounds = rounds
    }
}

/// The device's side of the protocol (docs/PROTOCOL.md): register → poll round → fetch the extractor
/// and the assigned experts through the cache → train → report → next round. Every call has a
/// timeout; failures are retried with backoff; SIGTERM/SIGINT end the loop between steps.
public final class EdgeAgent {
    public let options: AgentOptions
    let client: HTTPClient
    let shard: ClientShard
    var runtime: EdgeRuntime?
    var clientId = -1
    var settings = ServerSettings()
    var lastRound = -1
    var roundsTrained = 0
    /// The server pools feature statistics before its first round: send ours (after registering, and
    /// again whenever a round message says it is still pending, e.g. after a server restart).
    var normalizationPending = false
    var random: FlexRandom
    let log: (String) -> Void

    /// What the server told the device at registration.
    struct ServerSettings: Equatable {
        var config = MoEConfig()
        var options = TrainingOptions.federated
        var updateDType = DType.int8Block

        init() {}

        init(_ r: RegisterReply) {
            config = r.modelConfig
            options = r.trainingOptions
            updateDType = r.updateDType
        }
    }

    public init(options: AgentOptions, log: @escaping (String) -> Void) throws(EdgeError) {
        self.options = options
        self.client = HTTPClient(address: options.server, token: options.token, timeoutMilliseconds: options.timeoutMilliseconds)
        self.shard = try options.data.load()
        self.random = FlexRandom(seed: options.seed &+ UInt64(shard.client))
        self.log = log
        if shard.train.count == 0 { throw .data("the local data has no training samples") }
    }

    /// Plans memory for `settings`, builds the runtime in its arena, and initialises the client's gate.
    func build() throws(EdgeError) {
        let plan = try DevicePlan.derive(budget: options.memoryBudget, config: settings.config, storage: options.storage,
                                         update: settings.updateDType, samples: shard.train.count + shard.test.count,
                                         preferredBatch: settings.options.batchSize, maxKc: options.maxKc)
        runtime = nil  // free the old arena before carving a new one
        // The device's random stream starts here: gate initialisation, then every round's shuffles and
        // stochastic rounding (the simulator's device i draws the same stream).
        random = FlexRandom(seed: options.seed &+ UInt64(shard.client))
        let rt = try EdgeRuntime(plan: plan, shard: shard, random: &random, gateInit: settings.options.gateInit)
        var training = settings.options
        training.batchSize = plan.batch
        rt.workspace.trainer.options = training
        runtime = rt
        log("memory plan: budget \(Format.bytes(plan.budget)), arena \(Format.bytes(plan.book.total)), k_c \(plan.kc) (+\(plan.warmSlots) warm), batch \(plan.batch), \(options.storage.name) experts")
    }

    /// Runs rounds until the server finishes training, `rounds` are done, or a stop signal arrives.
    public func run() throws(EdgeError) {
        csys_install_stop_handlers()
        try withRetries("register") { () throws(EdgeError) in try self.register() }
        while !stopRequested() {
            if normalizationPending {
                try withRetries("send feature statistics") { () throws(EdgeError) in try self.sendFeatureStats() }
                normalizationPending = false
            }
            if let limit = options.rounds, roundsTrained >= limit { break }
            let round = try withRetries("poll round") { () throws(EdgeError) -> RoundMessage in try self.pollRound() }
            if round.phase == .finished { log("training finished (server)"); break }
            if !round.normalizationReady {
                // Still pooling: sending ours again is harmless (only the first accepted copy counts)
                // and covers a server that restarted before freezing.
                normalizationPending = true
                continue
            }
            let number = round.round
            guard round.phase == .open, number > lastRound else { continue }
            if round.assigned.isEmpty {
                lastRound = number
                log("round \(number): not assigned this round")
                continue
            }
            do throws(EdgeError) {
                try trainRound(round)
                roundsTrained += 1
            } catch {
                if case .http(let status, let message) = error, status == 409 || status == 422 {
                    log("round \(number): report rejected (\(status)): \(message)")
                } else if case .stopped = error {
                    break
                } else {
                    log("round \(number): \(error.message); will retry next round")
                    if case .http(let status, _) = error, status == 401 || status == 404 {
                        try withRetries("register") { () throws(EdgeError) in try self.register() }
                    }
                }
            }
            lastRound = number
        }
        let rss = ProcessMemory.peakRSS.map { "peak RSS \(Format.bytes($0)) of the \(Format.bytes(options.memoryBudget)) budget" } ?? ""
        let arena = runtime.map { ", arena \(Format.bytes($0.arena.capacity))" } ?? ""
        log((stopRequested() ? "stopped by signal after \(roundsTrained) rounds" : "done after \(roundsTrained) rounds") + "; " + rss + arena)
    }

    func stopRequested() -> Bool { csys_stop_requested() != 0 }

    // MARK: protocol steps

    func register() throws(EdgeError) {
        // A first plan with the settings we have; if the server's model differs, plan again and
        // register again (registration is idempotent and updates the profile).
        for _ in 0..<2 {
            if runtime == nil { try build() }
            let plan = runtime!.plan
            let request = RegisterRequest(memoryBudget: plan.budget, kc: plan.kc, storage: options.storage, board: options.board,
                                          samples: shard.train.count, maxBatch: plan.batch)
            let reply = try exchange("POST", "/v1/register", body: request.message().encoded())
            let s: ServerSettings
            do throws(MessageError) {
                let r = try RegisterReply(reply)
                clientId = r.clientId
                s = ServerSettings(r)
                normalizationPending = !r.normalizationReady
            } catch {
                throw .protocolViolation("register reply: \(error.message)")
            }
            if s.config.inputDim != shard.train.dim {
                throw .data("the server's model takes \(s.config.inputDim) features, the local data has \(shard.train.dim)")
            }
            let changed = s != settings
            settings = s
            if !changed {
                log("registered as client \(clientId) with \(options.server.host):\(options.server.port): k_c \(plan.kc), \(shard.train.count) samples")
                return
            }
            runtime = nil
        }
        throw .protocolViolation("the server's settings changed twice during registration")
    }

    /// `POST /v1/stats`: the statistics of the local training data (docs/PROTOCOL.md).
    func sendFeatureStats() throws(EdgeError) {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let n = try rt.workspace.writeFeatureStats(of: rt.device)
        let r = try client.send("POST", "/v1/stats?client=\(clientId)",
                                body: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.workspace.report)[0..<n]),
                                contentType: "application/octet-stream", into: rt.workspace.download)
        if r.status != 200 { throw .http(status: r.status, message: errorMessage(rt, r)) }
    }

    func pollRound() throws(EdgeError) -> RoundMessage {
        let m = try exchange("GET", "/v1/round?client=\(clientId)&wait=20" + (lastRound >= 0 ? "&after=\(lastRound)" : ""), timeout: 45_000)
        do throws(MessageError) { return try RoundMessage(m) } catch { throw .protocolViolation("round message: \(error.message)") }
    }

    /// One round: the device's round step with HTTP downloads, then the report upload.
    func trainRound(_ round: RoundMessage) throws(EdgeError) {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let start = csys_monotonic_ns()
        var up = 0, down = 0
        if stopRequested() { throw .stopped }
        let outcome = try DeviceRound.run(round, clientId: clientId, device: rt.device, workspace: rt.workspace, random: &random) {
            (part, have) throws(EdgeError) -> Int? in
            let query = "client=\(clientId)" + (have.map { "&have=\($0)" } ?? "")
            let path: String
            switch part {
            case .extractor: path = "/v1/extractor?" + query
            case .expert(let e): path = "/v1/experts/\(e)?" + query
            case .normalization: path = "/v1/normalization?client=\(clientId)"
            }
            let r = try get(path)
            down += r.bytesReceived; up += r.bytesSent
            return r.status == 304 ? nil : r.bodyLength
        }
        let ws = rt.workspace
        let r = try client.send("POST", "/v1/rounds/\(round.round)/report",
                                body: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(ws.report)[0..<outcome.reportBytes]),
                                contentType: "application/octet-stream", into: ws.download)
        up += r.bytesSent; down += r.bytesReceived
        if r.status != 200 { throw .http(status: r.status, message: errorMessage(rt, r)) }

        let f = outcome.fields
        var fitnessText = ""
        for (i, s) in f.fitness.enumerated() { fitnessText += (i == 0 ? "" : ",") + Format.fixed(s, 3) }
        let seconds = Double(csys_monotonic_ns() - start) / 1e9
        log("round \(round.round)  experts \(round.assigned)  cache hit \(outcome.cacheHits) miss \(outcome.cacheMisses)"
            + "  up \(Format.bytes(up)) down \(Format.bytes(down))  loss \(Format.fixed(f.loss, 4))"
            + " acc \(Format.fixed(f.accuracy, 3))"
            + (f.testAccuracy.map { " test \(Format.fixed($0, 3))" } ?? "")
            + "  fitness \(fitnessText)  \(Format.fixed(seconds, 2)) s")
    }

    // MARK: helpers

    /// A GET whose 200 body lands in the download buffer; 304 is a normal answer.
    func get(_ path: String) throws(EdgeError) -> HTTPResponse {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let r = try client.send("GET", path, into: rt.workspace.download)
        if r.status != 200 && r.status != 304 { throw .http(status: r.status, message: errorMessage(rt, r)) }
        return r
    }

    /// A small-message exchange; non-200 answers become `.http` errors with the server's message.
    func exchange(_ method: String, _ path: String, body: [UInt8]? = nil, timeout: Int32? = nil) throws(EdgeError) -> SmallMessage {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let r: HTTPResponse
        if let body {
            r = try body.withUnsafeBytes { b in
                Result { () throws(EdgeError) -> HTTPResponse in try client.send(method, path, body: b, into: rt.workspace.download, timeoutMilliseconds: timeout) }
            }.get()
        } else {
            r = try client.send(method, path, into: rt.workspace.download, timeoutMilliseconds: timeout)
        }
        if r.status != 200 { throw .http(status: r.status, message: errorMessage(rt, r)) }
        do throws(MessageError) {
            return try SmallMessage.parse(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.workspace.download)[0..<r.bodyLength]))
        } catch {
            throw .protocolViolation("\(path): \(error.message)")
        }
    }

    func errorMessage(_ rt: EdgeRuntime, _ r: HTTPResponse) -> String {
        let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.workspace.download)[0..<min(r.bodyLength, rt.workspace.download.count)])
        if let m = try? SmallMessage.parse(body) { return (m["error"] ?? "") + ": " + (m["message"] ?? "") }
        return "status \(r.status)"
    }

    /// Retries `body` with exponential backoff (0.5 s doubling to 10 s) on network errors, timeouts
    /// 503 (server busy or not ready) and 429 (rate limited), until it succeeds, fails otherwise, or a
    /// stop is requested.
    func withRetries<R>(_ what: String, _ body: () throws(EdgeError) -> R) throws(EdgeError) -> R {
        var delay: Int32 = 500
        while true {
            do throws(EdgeError) {
                return try body()
            } catch {
                var retry = false
                switch error {
                case .network, .timeout: retry = true
                case .http(let status, _): retry = status == 503 || status == 429
                default: retry = false
                }
                if !retry || stopRequested() { throw stopRequested() ? .stopped : error }
                log("\(what): \(error.message); retrying in \(Format.fixed(Double(delay) / 1000, 1)) s")
                csys_sleep_ms(delay)
                delay = min(delay * 2, 10_000)
            }
        }
    }
}

extension RegisterReply {
    /// The model the server trains (what the device plans its memory for).
    public var modelConfig: MoEConfig {
        MoEConfig(inputDim: inputDim, hidden: hidden, expertHidden: expertHidden, classes: classes, experts: experts, topK: topK)
    }

    /// The local training the server asks for (the batch may be lowered to the device's plan).
    public var trainingOptions: TrainingOptions {
        TrainingOptions(learningRate: Float(learningRate), momentum: Float(momentum), weightDecay: 0, batchSize: batch,
                        epochs: localEpochs, fitness: fitness == .loss ? .loss(alpha: Float(alphaLoss)) : .accuracy,
                        gradientClip: Float(gradientClip), fitnessTiming: fitnessBeforeTraining ? .before : .during,
                        gateInit: gateZeroInit ? .zero : .random, sharedExpert: sharedExpert,
                        probeWarm: probeWarm)
    }
}
