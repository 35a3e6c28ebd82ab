import FlexWire
import Foundation
import Testing
@testable import FlexServer
import FlexServerTesting

/// The fault and abuse suite (issue #13): hostile or unlucky clients against a real server process
/// over loopback, each asserting that honest devices are still served and nothing is lost.
@Suite(.serialized) struct AbuseTests {
    /// 300 pipelined `GET /v1/status` behind a pending long poll on one connection: every request
    /// is answered, in order, the long poll first (the head limit applies per request).
    @Test(.timeLimit(.minutes(2))) func pipelinedRequestsBehindALongPollAreAllAnswered() throws {
        let env = try Harness.setUp("pipeline", devices: 2)
        let server = try Harness.start(env)
        defer { server.stop() }
        let device = ProtocolClient(port: server.port, token: env.tokens[0])
        let reply = try #require(try device.register(kc: 2, samples: 10).message)
        let id = try #require(reply["client_id"])
        var bytes = Array("GET /v1/round?client=\(id)&wait=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(env.tokens[0])\r\n\r\n".utf8)
        for _ in 0..<300 { bytes += Array("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n".utf8) }
        let responses = try ProtocolClient.pipelined(port: server.port, bytes, count: 301)
        #expect(responses.count == 301)
        #expect(responses.allSatisfy { $0.status == 200 }, "\(Set(responses.map(\.status)))")
        #expect(responses.first?.message?["state"] != nil, "the long poll's answer comes first")
    }

    /// Each refused request is counted once in flexmoe_rejected_total, whatever the route.
    @Test(.timeLimit(.minutes(2))) func aRejectedRequestIsCountedOnce() throws {
        let env = try Harness.setUp("count", devices: 2)
        let server = try Harness.start(env)
        defer { server.stop() }
        let stranger = ProtocolClient(port: server.port, token: "fxt_not-a-token")
        #expect(try stranger.request("GET", "/v1/round").status == 401)
        #expect(try stranger.request("POST", "/v1/register", body: Array("kc=2\n".utf8)).status == 401)
        #expect(try stranger.request("GET", "/v1/extractor").status == 401)
        let metrics = String(decoding: try ProtocolClient(port: server.port).request("GET", "/metrics").body, as: UTF8.self)
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("flexmoe_rejected_total{reason=\"unauthorized\"}") }
        #expect(line.map { $0.hasSuffix(" 3") } == true, "\(line ?? "no line")")
    }
}

/// Resource limits (docs/SERVER.md "Limits"): connections in total and per address, bytes of
/// request bodies held at once, registrations per token.
@Suite(.serialized) struct LimitTests {
    /// Idle connections beyond the per-address cap are answered 503 with Retry-After at once; when
    /// they close, requests are served again.
    @Test(.timeLimit(.minutes(2))) func connectionsBeyondTheCapGet503AndTheServerRecovers() throws {
        let env = try Harness.setUp("conns", devices: 2, extra: #", "max_connections_per_address": 10"#)
        let server = try Harness.start(env)
        defer { server.stop() }
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<10 { idle.append(try ProtocolClient.connect(host: "127.0.0.1", port: server.port, timeout: 10)) }
        usleep(200_000)  // the server admits them
        let refused = try #require(try ProtocolClient.raw(port: server.port, Array("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n".utf8)))
        #expect(refused.status == 503 && refused.header("Retry-After") == "5")
        #expect(refused.message?["error"] == "busy")
        for fd in idle.prefix(5) { close(fd) }
        idle.removeFirst(5)
        usleep(200_000)
        #expect(try ProtocolClient(port: server.port).request("GET", "/v1/status").status == 200)
    }

    /// Two connections each announcing a 40,000-byte report under a 64 KiB body budget: the second
    /// is refused 503 before its body is read; once the first is gone the budget is free again.
    @Test(.timeLimit(.minutes(2))) func requestBodiesShareOneBudget() throws {
        let env = try Harness.setUp("bodies", devices: 2, extra: #", "max_body_bytes": 65536"#)
        let server = try Harness.start(env)
        defer { server.stop() }
        let device = ProtocolClient(port: server.port, token: env.tokens[0])
        #expect(try device.register(kc: 2, samples: 10).status == 200)
        let head = Array("POST /v1/rounds/1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(env.tokens[0])\r\nContent-Length: 40000\r\n\r\n".utf8)
        let first = try ProtocolClient.connect(host: "127.0.0.1", port: server.port, timeout: 10)
        try ProtocolClient.sendAll(first, head + [UInt8](repeating: 0, count: 1000))
        usleep(200_000)
        let second = try #require(try ProtocolClient.raw(port: server.port, head, halfClose: false, timeout: 10))
        #expect(second.status == 503 && second.message?["error"] == "busy")
        close(first)
        usleep(200_000)
        let third = try ProtocolClient.raw(port: server.port, head + [UInt8](repeating: 0, count: 40000), timeout: 10)
        #expect(third?.status == 400, "the budget is free again: the (garbage) body is read and refused as malformed")
    }

    /// Registrations per token: five at once, then one a second; the sixth in a burst gets 429.
    @Test(.timeLimit(.minutes(2))) func registrationsPerTokenAreRateLimited() throws {
        let env = try Harness.setUp("rate", devices: 2)
        let server = try Harness.start(env)
        defer { server.stop() }
        let request = RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host", samples: 10, maxBatch: 8)
        let device = ProtocolClient(port: server.port, token: env.tokens[0])
        let statuses = try (0..<6).map { _ in try device.request("POST", "/v1/register", body: request.message().encoded()) }
        #expect(statuses.prefix(5).allSatisfy { $0.status == 200 })
        #expect(statuses[5].status == 429 && statuses[5].header("Retry-After") != nil)
        let other = ProtocolClient(port: server.port, token: env.tokens[1])
        #expect(try other.request("POST", "/v1/register", body: request.message().encoded()).status == 200, "other tokens are not affected")
    }

    /// The report fields of issue #13's scenario 4 are refused 422 and the round's record stays whole.
    @Test(.timeLimit(.minutes(2))) func absurdReportFieldsAreRefusedAndTheRoundRecordIsWhole() throws {
        let env = try Harness.setUp("fields", devices: 2)
        let server = try Harness.start(env)
        defer { server.stop() }
        let clients = env.tokens.map { ProtocolClient(port: server.port, token: $0) }
        let ids = try clients.map { c in Int(try #require(try c.register(kc: 2, samples: 10).message?["client_id"]))! }
        var builder = ReportBuilder()
        let messages = try zip(clients, ids).map { try Harness.waitOpen($0, client: $1, round: 1) }
        for (key, value) in [("loss", "1.7e308"), ("accuracy", "-1e300"), ("fitness", "3.4e38,0.5"), ("usage", "1000000000,1")] {
            var body = builder.report(client: ids[0], samples: 10, round: messages[0])
            // rewrite one field of the report's fields block
            let (fields, _) = try body.withUnsafeBytes { b in try ReportValidator.fields(b) }
            var f = fields
            f.set(key, value)
            let assigned = try messages[0].intList("assigned"), versions = try messages[0].intList("expert_versions")
            var containers = [builder.delta(kind: .extractorDelta, expert: nil, version: UInt64(messages[0]["extractor_version"]!)!)]
            for (i, e) in assigned.enumerated() { containers.append(builder.delta(kind: .expertDelta, expert: e, version: UInt64(versions[i]))) }
            body = ReportFrame.encode(fields: f, containers: containers)
            let r = try clients[0].request("POST", "/v1/rounds/1/report", body: body)
            #expect(r.status == 422 && r.message?["error"] == "invalid_field", "\(key)=\(value): \(r.status)")
        }
        for i in 0..<2 {
            #expect(try clients[i].request("POST", "/v1/rounds/1/report", body: builder.report(client: ids[i], samples: 10, round: messages[i])).status == 200)
        }
        let status = try Harness.status(server.port)
        let last = try #require(status["last_round"] as? [String: Any])
        #expect(last["round"] as? Int == 1 && (last["mean_loss"] as? Double)?.isFinite == true)
    }
}

/// Shutdown and the operator listener.
@Suite(.serialized) struct OperatorTests {
    /// SIGTERM (and SIGINT) stop the server with status 0 after the pending long poll is answered;
    /// a restart resumes from the same completed round.
    @Test(.timeLimit(.minutes(2)), arguments: [SIGTERM, SIGINT]) func aSignalStopsTheServerCleanly(signal: Int32) throws {
        let env = try Harness.setUp("signal-\(signal)", devices: 2)
        let server = try Harness.start(env)
        defer { server.stop() }
        let device = ProtocolClient(port: server.port, token: env.tokens[0])
        let id = try #require(try device.register(kc: 2, samples: 10).message?["client_id"])
        // a long poll is pending when the signal arrives
        let port = server.port, token = env.tokens[0], client = Int(id)!
        let poll = Thread { _ = try? ProtocolClient(port: port, token: token).round(client: client, wait: 30) }
        poll.start()
        usleep(300_000)
        let started = Date()
        kill(server.pid, signal)
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(server.log.contains("stopping"))
        let again = try Harness.start(env, log: "server2.log")
        defer { again.stop() }
        #expect(try Harness.status(again.port)["completed_round"] as? Int == 0)
    }

    /// Devices listening on all interfaces: /v1/status and /metrics move to the operator listener
    /// (loopback, port in STATE_DIR/operator.port); the device port answers them 404, and the
    /// operator port answers device routes 404.
    @Test(.timeLimit(.minutes(2))) func operatorEndpointsAreApartWhenDevicesListenOnTheNetwork() throws {
        let env = try Harness.setUp("operator", devices: 2, extra: #", "listen_host": "0.0.0.0""#)
        let server = try Harness.start(env)
        defer { server.stop() }
        let text = try String(contentsOfFile: env.dir + "/state/operator.port", encoding: .utf8)
        let operatorPort = try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(operatorPort != server.port)
        #expect(try ProtocolClient(port: server.port).request("GET", "/v1/status").status == 404)
        #expect(try ProtocolClient(port: server.port).request("GET", "/metrics").status == 404)
        #expect(try ProtocolClient(port: operatorPort).request("GET", "/v1/status").status == 200)
        #expect(try ProtocolClient(port: operatorPort).request("GET", "/metrics").status == 200)
        let device = ProtocolClient(port: server.port, token: env.tokens[0])
        #expect(try device.register(kc: 2, samples: 10).status == 200)
        #expect(try ProtocolClient(port: operatorPort, token: env.tokens[0]).request("GET", "/v1/round").status == 404)
    }
}

/// Memory under a flood of large request bodies (issue #13 scenario 2).
@Suite(.serialized) struct MemoryBoundTests {
    /// 200 connections with one valid token each announce a 150,000-byte report and send part of it;
    /// under a 4 MiB body budget most are refused 503 before their body is read, and the server's
    /// peak resident memory stays under 150 MiB (it reached 801 MB with no budget); an honest device
    /// is still served.
    @Test(.timeLimit(.minutes(2))) func aFloodOfLargeBodiesIsBoundedByTheBodyBudget() throws {
        let env = try Harness.setUp("flood", devices: 2, extra: #", "max_body_bytes": 4194304"#)
        let server = try Harness.start(env)
        defer { server.stop() }
        let device = ProtocolClient(port: server.port, token: env.tokens[0])
        #expect(try device.register(kc: 2, samples: 10).status == 200)
        let head = Array("POST /v1/rounds/1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(env.tokens[0])\r\nContent-Length: 150000\r\n\r\n".utf8)
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<200 {
            let fd = try ProtocolClient.connect(host: "127.0.0.1", port: server.port, timeout: 10)
            try? ProtocolClient.sendAll(fd, head + [UInt8](repeating: 1, count: 100_000))
            fds.append(fd)
        }
        usleep(500_000)
        let peak = try #require(server.peakRSSKiB())
        print("flood: peak RSS \(peak / 1024) MiB")
        #expect(peak < 150 * 1024, "peak RSS \(peak / 1024) MiB")
        let other = ProtocolClient(port: server.port, token: env.tokens[1])
        #expect(try other.register(kc: 2, samples: 10).status == 200, "an honest device is served during the flood")
        let metrics = String(decoding: try ProtocolClient(port: server.port).request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("flexmoe_rejected_total{reason=\"busy\"}"))
    }
}
