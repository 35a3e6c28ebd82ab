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
    var extractorVersion: UInt64?
    var lastRound = -1
    var roundsTrained = 0
    var random: FlexRandom
    let log: (String) -> Void

    /// What the server told the device at registration.
    struct ServerSettings {
        var config = MoEConfig()
        var localEpochs = 1
        var batch = 32
        var learningRate: Float = TrainingOptions.federated.learningRate
        var momentum: Float = TrainingOptions.federated.momentum
        var gradientClip: Float = TrainingOptions.federated.gradientClip
        var fitness = FitnessVariant.accuracy
        var updateDType = DType.int8Block
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
                                         preferredBatch: settings.batch, maxKc: options.maxKc)
        runtime = nil  // free the old arena before carving a new one
        let rt = try EdgeRuntime(plan: plan, shard: shard)
        rt.gate.initialise(random: &random)
        rt.trainer.options = TrainingOptions(learningRate: settings.learningRate, momentum: settings.momentum, weightDecay: 0,
                                             batchSize: plan.batch, epochs: settings.localEpochs, fitness: settings.fitness,
                                             gradientClip: settings.gradientClip)
        runtime = rt
        extractorVersion = nil
        log("memory plan: budget \(Format.bytes(plan.budget)), arena \(Format.bytes(plan.book.total)), k_c \(plan.kc) (+\(plan.warmSlots) warm), batch \(plan.batch), \(options.storage.name) experts")
    }

    /// Runs rounds until the server finishes training, `rounds` are done, or a stop signal arrives.
    public func run() throws(EdgeError) {
        csys_install_stop_handlers()
        try withRetries("register") { () throws(EdgeError) in try self.register() }
        while !stopRequested() {
            if let limit = options.rounds, roundsTrained >= limit { break }
            let round = try withRetries("poll round") { () throws(EdgeError) -> SmallMessage in try self.pollRound() }
            let state = round["state"] ?? ""
            if state == "finished" { log("training finished (server)"); break }
            guard state == "open", let number = Int(round["round"] ?? ""), number > lastRound else { continue }
            let assigned = (try? round.intList("assigned")) ?? []
            if assigned.isEmpty {
                lastRound = number
                log("round \(number): not assigned this round")
                continue
            }
            do throws(EdgeError) {
                try trainRound(number, round: round)
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
            var m = SmallMessage()
            m.set("memory_budget", plan.budget)
            m.set("kc", plan.kc)
            m.set("storage", options.storage.name)
            m.set("board", options.board)
            m.set("samples", shard.train.count)
            m.set("max_batch", plan.batch)
            let reply = try exchange("POST", "/v1/register", body: m.encoded())
            var s = ServerSettings()
            do throws(MessageError) {
                clientId = try reply.int("client_id", in: 0...Int(Int32.max))
                s.config = MoEConfig(inputDim: try reply.int("input_dim", in: 1...1 << 20), hidden: try reply.int("hidden", in: 1...1 << 16),
                                     expertHidden: try reply.int("expert_hidden", in: 1...1 << 16),
                                     classes: try reply.int("classes", in: 2...1 << 16), experts: try reply.int("experts", in: 1...4096),
                                     topK: try reply.int("topk", in: 1...64))
                s.localEpochs = try reply.int("local_epochs", in: 1...1000)
                s.batch = try reply.int("batch", in: 1...1 << 16)
                s.learningRate = Float(try reply.real("learning_rate"))
                if reply["momentum"] != nil { s.momentum = Float(try reply.real("momentum")) }
                if reply["gradient_clip"] != nil { s.gradientClip = Float(try reply.real("gradient_clip")) }
                let alpha = Float((try? reply.real("alpha_loss")) ?? 1)
                s.fitness = reply["fitness"] == "loss" ? .loss(alpha: alpha) : .accuracy
                guard let update = DType.named(try reply.string("update_dtype")) else { throw MessageError.badValue("update_dtype", reply["update_dtype"] ?? "") }
                s.updateDType = update
            } catch {
                throw .protocolViolation("register reply: \(error.message)")
            }
            if s.config.inputDim != shard.train.dim {
                throw .data("the server's model takes \(s.config.inputDim) features, the local data has \(shard.train.dim)")
            }
            let changed = s.config != settings.config || s.batch != settings.batch || s.updateDType != settings.updateDType
                || s.localEpochs != settings.localEpochs || s.learningRate != settings.learningRate
                || s.momentum != settings.momentum || s.gradientClip != settings.gradientClip
            settings = s
            if !changed {
                log("registered as client \(clientId) with \(options.server.host):\(options.server.port): k_c \(plan.kc), \(shard.train.count) samples")
                return
            }
            runtime = nil
        }
        throw .protocolViolation("the server's settings changed twice during registration")
    }

    func pollRound() throws(EdgeError) -> SmallMessage {
        try exchange("GET", "/v1/round?client=\(clientId)&wait=20" + (lastRound >= 0 ? "&after=\(lastRound)" : ""), timeout: 45_000)
    }

    func trainRound(_ number: Int, round: SmallMessage) throws(EdgeError) {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let start = csys_monotonic_ns()
        var up = 0, down = 0
        let hitsBefore = rt.cache.counters.hits, missesBefore = rt.cache.counters.misses
        let assigned: [Int], versions: [Int], extractorAt: Int
        do throws(MessageError) {
            assigned = try round.intList("assigned")
            versions = try round.intList("expert_versions")
            extractorAt = try round.int("extractor_version", in: 0...Int.max)
        } catch {
            throw .protocolViolation("round message: \(error.message)")
        }
        let distinct = assigned.enumerated().allSatisfy { i, e in !assigned[..<i].contains(e) }
        if assigned.count != versions.count || assigned.count > rt.plan.kc || !distinct
            || assigned.contains(where: { $0 < 0 || $0 >= settings.config.experts }) {
            throw .protocolViolation("assignment \(assigned) does not fit this device (k_c \(rt.plan.kc))")
        }

        // Extractor: download unless the held version is current; either way start from the global value.
        if extractorVersion != UInt64(extractorAt) {
            let have = extractorVersion.map { "&have=\($0)" } ?? ""
            let r = try get("/v1/extractor?client=\(clientId)\(have)")
            down += r.bytesReceived; up += r.bytesSent
            if r.status == 200 {
                try rt.loadExtractor(containerBytes: r.bodyLength)
            }
            extractorVersion = UInt64(extractorAt)
        }
        for p in rt.trainer.extractor.parameters { p.value.copy(from: p.initial); p.velocity.fill(0) }

        // Experts through the cache.
        rt.trainer.assign(assigned)
        for (slot, expert) in assigned.enumerated() {
            let version = UInt64(versions[slot])
            var cacheSlot = rt.cache.lookup(expert: expert, version: version, round: number)
            if cacheSlot == nil {
                let have = rt.cache.cachedVersion(of: expert).map { "&have=\($0)" } ?? ""
                let target = rt.cache.reserve(expert: expert, pinned: assigned)
                let r = try get("/v1/experts/\(expert)?client=\(clientId)\(have)")
                down += r.bytesReceived; up += r.bytesSent
                guard r.status == 200 else { throw .protocolViolation("expert \(expert): server answered \(r.status) to a download of a version it announced") }
                try rt.decodeContainer(bodyLength: r.bodyLength, kind: .expertWeights, expert: expert,
                                       shapes: settings.config.expertShapes, into: rt.cache.slotBuffer(target))
                rt.cache.commit(slot: target, expert: expert, version: version, fetchedBytes: r.bodyLength, round: number)
                cacheSlot = target
            }
            try rt.loadExpert(trainerSlot: slot, cacheSlot: cacheSlot!, expert: expert)
        }
        rt.trainer.loadGate(from: rt.gate)

        // Train, measure, and keep the gate (it is the client's own, never sent).
        if stopRequested() { throw .stopped }
        let report = rt.withSplit(test: false) { x, y in rt.trainer.train(features: x, labels: y, random: &random) }
        let test = rt.trainCount < rt.labels.count
            ? rt.withSplit(test: true) { x, y in rt.trainer.evaluate(features: x, labels: y) } : nil
        rt.trainer.storeGate(into: rt.gate)

        // Report: fitness and usage per expert, then the deltas as containers.
        var fields = SmallMessage()
        fields.set("client_id", clientId)
        fields.set("samples", shard.train.count)
        fields.set("loss", Format.fixed(Double(report.lastEpochLoss), 6))
        fields.set("accuracy", Format.fixed(Double(report.lastEpochAccuracy), 6))
        if let test { fields.set("test_accuracy", Format.fixed(Double(test.accuracy), 6)) }
        fields.set("experts", list: report.experts.map { $0.expert })
        fields.set("usage", list: report.experts.map { $0.usage })
        var fitnessText = ""
        for (i, e) in report.experts.enumerated() { fitnessText += (i == 0 ? "" : ",") + Format.fixed(Double(e.fitness), 6) }
        fields.set("fitness", fitnessText)
        let bodyLength = try rt.writeReport(fields: fields, extractorVersion: UInt64(extractorAt), experts: assigned,
                                            versions: versions.map { UInt64($0) }, random: &random)
        let r = try client.send("POST", "/v1/rounds/\(number)/report",
                                body: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.report)[0..<bodyLength]),
                                contentType: "application/octet-stream", into: rt.download)
        up += r.bytesSent; down += r.bytesReceived
        if r.status != 200 { throw .http(status: r.status, message: errorMessage(rt, r)) }

        let seconds = Double(csys_monotonic_ns() - start) / 1e9
        log("round \(number)  experts \(assigned)  cache hit \(rt.cache.counters.hits - hitsBefore) miss \(rt.cache.counters.misses - missesBefore)"
            + "  up \(Format.bytes(up)) down \(Format.bytes(down))  loss \(Format.fixed(Double(report.lastEpochLoss), 4))"
            + " acc \(Format.fixed(Double(report.lastEpochAccuracy), 3))"
            + (test.map { " test \(Format.fixed(Double($0.accuracy), 3))" } ?? "")
            + "  fitness \(fitnessText)  \(Format.fixed(seconds, 2)) s")
    }

    // MARK: helpers

    /// A GET whose 200 body lands in the download buffer; 304 is a normal answer.
    func get(_ path: String) throws(EdgeError) -> HTTPResponse {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let r = try client.send("GET", path, into: rt.download)
        if r.status != 200 && r.status != 304 { throw .http(status: r.status, message: errorMessage(rt, r)) }
        return r
    }

    /// A small-message exchange; non-200 answers become `.http` errors with the server's message.
    func exchange(_ method: String, _ path: String, body: [UInt8]? = nil, timeout: Int32? = nil) throws(EdgeError) -> SmallMessage {
        guard let rt = runtime else { throw .protocolViolation("no runtime") }
        let r: HTTPResponse
        if let body {
            r = try body.withUnsafeBytes { b in
                Result { () throws(EdgeError) -> HTTPResponse in try client.send(method, path, body: b, into: rt.download, timeoutMilliseconds: timeout) }
            }.get()
        } else {
            r = try client.send(method, path, into: rt.download, timeoutMilliseconds: timeout)
        }
        if r.status != 200 { throw .http(status: r.status, message: errorMessage(rt, r)) }
        do throws(MessageError) {
            return try SmallMessage.parse(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.download)[0..<r.bodyLength]))
        } catch {
            throw .protocolViolation("\(path): \(error.message)")
        }
    }

    func errorMessage(_ rt: EdgeRuntime, _ r: HTTPResponse) -> String {
        let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.download)[0..<min(r.bodyLength, rt.download.count)])
        if let m = try? SmallMessage.parse(body) { return (m["error"] ?? "") + ": " + (m["message"] ?? "") }
        return "status \(r.status)"
    }

    /// Retries `body` with exponential backoff (0.5 s doubling to 10 s) on network errors, timeouts
    /// and 503, until it succeeds, fails otherwise, or a stop is requested.
    func withRetries<R>(_ what: String, _ body: () throws(EdgeError) -> R) throws(EdgeError) -> R {
        var delay: Int32 = 500
        while true {
            do throws(EdgeError) {
                return try body()
            } catch {
                var retry = false
                switch error {
                case .network, .timeout: retry = true
                case .http(let status, _): retry = status == 503
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
