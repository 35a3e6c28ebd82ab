import FlexModel
import FlexTensor
import FlexWire
import Foundation
import Testing
@testable import FlexServer
import FlexServerTesting

/// End-to-end tests against the real `flexmoe-server` binary, on an ephemeral loopback port.
enum Harness {
    static func binary() -> String { BuiltProducts.path("flexmoe-server") }

    static func tempDir(_ tag: String) -> String {
        let d = NSTemporaryDirectory() + "flexmoe-server-test-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Writes a config and enrolls `devices` tokens (the first through the binary's `enroll`).
    static func setUp(_ tag: String, devices: Int, extra: String = "") throws -> (dir: String, config: String, tokens: [String]) {
        let dir = tempDir(tag)
        let config = dir + "/config.json"
        let json = #"{"state_dir": "\#(dir)/state", "port": 0, "min_clients": \#(devices), "rounds": 3, "round_deadline_s": 20, "keep_checkpoints": 2\#(extra)}"#
        try json.write(toFile: config, atomically: true, encoding: .utf8)
        var tokens: [String] = []
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary())
        p.arguments = ["enroll", "dev0", "--tokens", dir + "/state/tokens"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tokens.append(out.trimmingCharacters(in: .whitespacesAndNewlines))
        for i in 1..<devices { tokens.append(try TokenFile.enroll(name: "dev\(i)", path: dir + "/state/tokens")) }
        return (dir, config, tokens)
    }

    static func start(_ env: (dir: String, config: String, tokens: [String]), log: String = "server.log") throws -> ServerProcess {
        try ServerProcess(binary: binary(), config: env.config, stateDir: env.dir + "/state", logPath: env.dir + "/" + log)
    }

    static func status(_ port: Int) throws -> [String: Any] {
        let r = try ProtocolClient(port: port).request("GET", "/v1/status")
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
    }

    /// Polls until the client's round is `round` and open (bounded).
    static func waitOpen(_ c: ProtocolClient, client: Int, round: Int) throws -> SmallMessage {
        for _ in 0..<40 {
            let r = try c.round(client: client, wait: 5, after: round - 1)
            if let m = r.message, m["round"] == String(round), m["state"] == "open" { return m }
        }
        throw ServerError.storage("round \(round) never opened")
    }
}

@Suite(.serialized) struct ServerProcessTests {
    /// Register, long-poll, download (200, then 304), report, round closes, versions advance.
    @Test(.timeLimit(.minutes(2))) func roundEndToEnd() throws {
        let env = try Harness.setUp("e2e", devices: 3)
        let server = try Harness.start(env)
        defer { server.kill9(); try? FileManager.default.removeItem(atPath: env.dir) }
        let clients = env.tokens.map { ProtocolClient(port: server.port, token: $0) }
        var ids: [Int] = []
        for c in clients {
            let r = try c.register(kc: 2, samples: 100 + 50 * ids.count)
            #expect(r.status == 200)
            ids.append(Int(r.message!["client_id"]!)!)
            #expect(r.message!["experts"] == "8")
        }
        #expect(Set(ids).count == 3)
        // registering again is idempotent
        #expect(try clients[0].register(kc: 2, samples: 100).message!["client_id"] == String(ids[0]))
        var builder = ReportBuilder()
        var rounds: [SmallMessage] = []
        for (i, c) in clients.enumerated() {
            let m = try Harness.waitOpen(c, client: ids[i], round: 1)
            #expect(try m.intList("assigned").count == 2)
            rounds.append(m)
        }
        // downloads: 200 with an ETag, then 304 for the same version
        let x = try clients[0].request("GET", "/v1/extractor")
        #expect(x.status == 200 && x.header("ETag") == "\"x-v0\"")
        let dec = try Container.decode(x.body, maxPayload: 1 << 20, decompressor: ZstdDecompressor())
        #expect(dec.header.kind == .extractorWeights && dec.header.tensors[0].dtype == .int8Block)
        #expect(try clients[0].request("GET", "/v1/extractor?have=0").status == 304)
        #expect(try clients[0].request("GET", "/v1/extractor", headers: [("If-None-Match", "\"x-v0\"")]).status == 304)
        let e0 = try rounds[0].intList("assigned")[0]
        #expect(try clients[0].request("GET", "/v1/experts/\(e0)").status == 200)
        #expect(try clients[0].request("GET", "/v1/experts/99").status == 404)

        // a report naming another client's id: 403; an expert not assigned: 409
        let other = builder.report(client: ids[1], samples: 100, round: rounds[0])
        #expect(try clients[0].request("POST", "/v1/rounds/1/report", body: other).status == 403)
        let notMine = (0..<8).first { !(try! rounds[0].intList("assigned")).contains($0) }!
        var fake = rounds[0]
        fake.set("assigned", list: [notMine])
        fake.set("expert_versions", "0")
        let wrong = try clients[0].request("POST", "/v1/rounds/1/report", body: builder.report(client: ids[0], samples: 100, round: fake))
        #expect(wrong.status == 409 && wrong.message?["error"] == "not_assigned")

        for (i, c) in clients.enumerated() {
            let r = try c.request("POST", "/v1/rounds/1/report", body: builder.report(client: ids[i], samples: 100, round: rounds[i]))
            #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
            if i == 0 {
                let dup = try c.request("POST", "/v1/rounds/1/report", body: builder.report(client: ids[i], samples: 100, round: rounds[i]))
                #expect(dup.status == 409 && dup.message?["error"] == "duplicate")
            }
        }
        // every assigned client reported: the round closes, round 2 opens with new versions
        let m2 = try Harness.waitOpen(clients[0], client: ids[0], round: 2)
        #expect(m2["extractor_version"] == "1")
        let late = try clients[1].request("POST", "/v1/rounds/1/report", body: builder.report(client: ids[1], samples: 100, round: rounds[1]))
        #expect(late.status == 409 && late.message?["error"] == "round_closed")
        #expect(try clients[0].request("GET", "/v1/extractor?have=0").status == 200)
        #expect(try clients[0].request("GET", "/v1/extractor?have=1").status == 304)
        let st = try Harness.status(server.port)
        #expect(st["completed_round"] as? Int == 1 && st["round"] as? Int == 2 && st["state"] as? String == "open")
        let metrics = String(decoding: try ProtocolClient(port: server.port).request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("flexmoe_rounds_completed 1"))
        #expect(metrics.contains("flexmoe_rejected_total{reason=\"duplicate\"} 1"))
        #expect(server.log.contains("round closed"))
        #expect(FileManager.default.fileExists(atPath: env.dir + "/state/ckpt-00000001.fxck"))
        #expect(server.isRunning)
    }

    /// Malformed requests get 4xx, the server stays up and its state is unchanged.
    @Test(.timeLimit(.minutes(2))) func malformedRequests() throws {
        let env = try Harness.setUp("bad", devices: 2)
        let server = try Harness.start(env)
        defer { server.kill9(); try? FileManager.default.removeItem(atPath: env.dir) }
        let a = ProtocolClient(port: server.port, token: env.tokens[0])
        let b = ProtocolClient(port: server.port, token: env.tokens[1])
        let ida = Int(try a.register(kc: 2, samples: 120).message!["client_id"]!)!
        let idb = Int(try b.register(kc: 2, samples: 80).message!["client_id"]!)!
        let ra = try Harness.waitOpen(a, client: ida, round: 1)
        let before = try Harness.status(server.port)
        var builder = ReportBuilder()
        let port = server.port
        let auth = "Authorization: Bearer \(env.tokens[0])\r\n"
        func raw(_ s: String, _ body: [UInt8] = []) throws -> Int? {
            try ProtocolClient.raw(port: port, Array(s.utf8) + body)?.status
        }
        let good = builder.report(client: ida, samples: 120, round: ra)
        // truncated body: Content-Length says more than is sent, then EOF
        #expect(try raw("POST /v1/rounds/1/report HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: \(good.count)\r\n\r\n", Array(good.prefix(100))) == 400)
        // Content-Length shorter than the body: the report is cut (400), the rest is garbage
        #expect(try raw("POST /v1/rounds/1/report HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: 50\r\n\r\n", good) == 400)
        // a GET with a body
        #expect(try raw("GET /v1/round?client=\(ida) HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: 5\r\n\r\nhello") == 400)
        // a huge declared size: 413 without reading the body
        #expect(try raw("POST /v1/rounds/1/report HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: 1000000000000\r\n\r\n") == 413)
        #expect(try raw("POST /v1/register HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: 5000\r\n\r\n") == 413)
        // chunked bodies are refused
        #expect(try raw("POST /v1/register HTTP/1.1\r\nHost: x\r\n\(auth)Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n") == 400)
        // a head over 8 KiB
        #expect(try raw("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: \(String(repeating: "a", count: 9000))\r\n\r\n") == 431)
        // not HTTP at all
        #expect(try raw("\u{1}\u{2}garbage garbage\r\n\r\n") == 400)
        // bad and missing tokens
        #expect(try raw("GET /v1/round?client=\(ida) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n") == 401)
        #expect(try raw("GET /v1/round?client=\(ida) HTTP/1.1\r\nHost: x\r\n\r\n") == 401)
        // another client's id
        #expect(try raw("GET /v1/round?client=\(idb) HTTP/1.1\r\nHost: x\r\n\(auth)\r\n") == 403)
        // unknown path, wrong method, bad query
        #expect(try raw("GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\(auth)\r\n") == 404)
        #expect(try raw("GET /v1/register HTTP/1.1\r\nHost: x\r\n\(auth)\r\n") == 405)
        #expect(try raw("GET /v1/round?client=\(ida)&wait=600 HTTP/1.1\r\nHost: x\r\n\(auth)\r\n") == 400)
        // bad register bodies
        #expect(try a.request("POST", "/v1/register", body: Array("kc=2\n".utf8)).status == 400)
        #expect(try a.request("POST", "/v1/register", body: Array("kc=99\nsamples=1\nmemory_budget=1\nmax_batch=1\nstorage=fp32\nboard=x\n".utf8)).status == 400)
        // garbage report bodies and containers
        #expect(try a.request("POST", "/v1/rounds/1/report", body: [UInt8](repeating: 0x41, count: 300)).status == 400)
        let f = ReportBuilder.fields(client: ida, samples: 120, experts: try ra.intList("assigned"))
        var garbage = [UInt8](repeating: 0, count: 200)
        for i in garbage.indices { garbage[i] = UInt8(truncatingIfNeeded: i &* 37) }
        let r422 = try a.request("POST", "/v1/rounds/1/report", body: ReportFrame.encode(fields: f, containers: [garbage, garbage, garbage]))
        #expect(r422.status == 422 && r422.message?["error"] == "invalid_update")
        var fp32 = ReportBuilder(dtype: .fp32)
        var nan = [fp32.delta(kind: .extractorDelta, expert: nil, version: 0, value: .infinity)]
        for e in try ra.intList("assigned") { nan.append(builder.delta(kind: .expertDelta, expert: e, version: 0)) }
        #expect(try a.request("POST", "/v1/rounds/1/report", body: ReportFrame.encode(fields: f, containers: nan)).status == 422)
        var stale = [builder.delta(kind: .extractorDelta, expert: nil, version: 3)]
        for e in try ra.intList("assigned") { stale.append(builder.delta(kind: .expertDelta, expert: e, version: 0)) }
        let r409 = try a.request("POST", "/v1/rounds/1/report", body: ReportFrame.encode(fields: f, containers: stale))
        #expect(r409.status == 409 && r409.message?["error"] == "stale_version")
        #expect(try a.request("POST", "/v1/rounds/7/report", body: good).status == 409)

        // still up, state intact, and the genuine report is accepted
        #expect(server.isRunning)
        let after = try Harness.status(server.port)
        #expect(after["round"] as? Int == before["round"] as? Int)
        #expect(after["reported"] as? Int == 0 && after["completed_round"] as? Int == 0)
        #expect(try a.request("POST", "/v1/rounds/1/report", body: good).status == 200)
        #expect(try Harness.status(server.port)["reported"] as? Int == 1)
    }

    /// kill -9 in the middle of round 2, restart: round 1 is kept, devices rejoin with the same
    /// ids, round 2 runs again and completes.
    @Test(.timeLimit(.minutes(2))) func killAndRestart() throws {
        let env = try Harness.setUp("kill", devices: 2)
        var server = try Harness.start(env, log: "server1.log")
        let clients = env.tokens.map { ProtocolClient(port: server.port, token: $0) }
        var ids: [Int] = []
        for c in clients { ids.append(Int(try c.register(kc: 2, samples: 100).message!["client_id"]!)!) }
        var builder = ReportBuilder()
        for (i, c) in clients.enumerated() {
            let m = try Harness.waitOpen(c, client: ids[i], round: 1)
            #expect(try c.request("POST", "/v1/rounds/1/report", body: builder.report(client: ids[i], samples: 100, round: m)).status == 200)
        }
        let m2 = try Harness.waitOpen(clients[0], client: ids[0], round: 2)
        #expect(try clients[0].request("POST", "/v1/rounds/2/report", body: builder.report(client: ids[0], samples: 100, round: m2)).status == 200)
        let extractorAfter1 = try clients[0].request("GET", "/v1/extractor?have=0").body
        server.kill9()   // mid-round: one of two reports in

        server = try Harness.start(env, log: "server2.log")
        defer { server.kill9(); try? FileManager.default.removeItem(atPath: env.dir) }
        let st = try Harness.status(server.port)
        #expect(st["completed_round"] as? Int == 1 && st["round"] as? Int == 1 && st["state"] as? String == "waiting")
        let again = env.tokens.map { ProtocolClient(port: server.port, token: $0) }
        // the same round-1 model is served
        #expect(try again[0].request("GET", "/v1/extractor?have=0").body == extractorAfter1)
        var newIds: [Int] = []
        for c in again { newIds.append(Int(try c.register(kc: 2, samples: 100).message!["client_id"]!)!) }
        #expect(newIds == ids)
        for (i, c) in again.enumerated() {
            let m = try Harness.waitOpen(c, client: ids[i], round: 2)
            #expect(m["extractor_version"] == "1")
            #expect(try c.request("POST", "/v1/rounds/2/report", body: builder.report(client: ids[i], samples: 100, round: m)).status == 200)
        }
        _ = try Harness.waitOpen(again[0], client: ids[0], round: 3)
        let st2 = try Harness.status(server.port)
        #expect(st2["completed_round"] as? Int == 2)
        let state = try String(contentsOfFile: env.dir + "/state/state.json", encoding: .utf8)
        #expect(state.contains("\"completed_round\":2") && state.contains("\"fitness\":{\""))
        let log = DurableFile.lines(env.dir + "/state/rounds.log")
        #expect(log.count == 2)
    }
}

@Suite struct CommandTests {
    /// `flexmoe-server aggregate`: reports and a bare container folded into a new checkpoint,
    /// a stale one skipped; the result equals the weighted mean.
    @Test func aggregateCommand() throws {
        let dir = Harness.tempDir("agg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cfg = MoEConfig()
        let base = GlobalModel.initial(config: cfg, seed: 5)
        try DurableFile.writeAtomically(base.checkpoint(round: 3), to: dir + "/base.fxck")
        try FileManager.default.createDirectory(atPath: dir + "/updates", withIntermediateDirectories: true)
        var b = ReportBuilder(config: cfg, dtype: .fp32)
        func report(_ v: Float, samples: Int, usage: Int) -> [UInt8] {
            ReportFrame.encode(fields: ReportBuilder.fields(client: 1, samples: samples, experts: [2], usage: [usage]),
                               containers: [b.delta(kind: .extractorDelta, expert: nil, version: 0, value: v),
                                            b.delta(kind: .expertDelta, expert: 2, version: 0, value: v)])
        }
        try Data(report(1, samples: 10, usage: 1)).write(to: URL(fileURLWithPath: dir + "/updates/a.fxrp"))
        try Data(report(4, samples: 30, usage: 3)).write(to: URL(fileURLWithPath: dir + "/updates/b.fxrp"))
        try Data(b.delta(kind: .expertDelta, expert: 5, version: 0, value: 0.5)).write(to: URL(fileURLWithPath: dir + "/updates/c.fxw"))
        try Data(b.delta(kind: .expertDelta, expert: 5, version: 9, value: 0.5)).write(to: URL(fileURLWithPath: dir + "/updates/d.fxw"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.binary())
        p.arguments = ["aggregate", "--base", dir + "/base.fxck", "--updates", dir + "/updates", "--out", dir + "/new.fxck"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(out.contains("\"updates\": 3") && out.contains("stale_version"))
        let (m, round) = try GlobalModel.load(checkpoint: DurableFile.read(dir + "/new.fxck")!, config: cfg)
        #expect(round == 4)
        #expect(abs(m.extractor[0] - base.extractor[0] - 3.25) < 1e-4)      // (10·1 + 30·4)/40
        #expect(abs(m.experts[2][0] - base.experts[2][0] - 3.25) < 1e-4)     // (1·1 + 3·4)/4
        #expect(abs(m.experts[5][0] - base.experts[5][0] - 0.5) < 1e-4)
        #expect(m.experts[0] == base.experts[0] && m.expertVersions == [0, 0, 4, 0, 0, 4, 0, 0])
    }

    @Test func partitionCommand() throws {
        let dir = Harness.tempDir("part")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.binary())
        p.arguments = ["partition", "--clients", "4", "--split", "dirichlet:0.5", "--out", dir]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(out.contains("\"shards\": 4"))
        for i in 0..<4 { #expect(FileManager.default.fileExists(atPath: dir + "/client-\(i).shard")) }
    }
}
