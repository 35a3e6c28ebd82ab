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
