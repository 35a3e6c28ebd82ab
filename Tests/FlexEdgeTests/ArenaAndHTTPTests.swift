@testable import FlexEdge
import FlexTensor
import Testing

@Suite("arena and HTTP client parsing")
struct ArenaAndHTTPTests {
    @Test("the arena books every carve, aligns it, and refuses to overflow")
    func arena() throws {
        let arena = try Arena(capacity: 4096)
        let a = try arena.allocate(Float.self, count: 10, component: "extractor")
        let b = try arena.allocate(UInt8.self, count: 100, component: "cache")
        _ = try arena.allocate(Float.self, count: 1, component: "extractor")
        #expect(Int(bitPattern: a) % Arena.alignment == 0 && Int(bitPattern: b) % Arena.alignment == 0)
        #expect(arena.used == 64 + 128 + 64)
        #expect(arena.ledger.map(\.component) == ["extractor", "cache"])
        #expect(arena.ledger.map(\.bytes) == [128, 128])
        let mark = arena.mark
        _ = try arena.allocate(UInt8.self, count: 1000, component: "scratch")
        arena.release(to: mark)
        #expect(arena.used == 256 && arena.peak == 256 + 1024)
        #expect(throws: ArenaError.self) { _ = try arena.allocate(UInt8.self, count: 5000, component: "too big") }
    }

    @Test("server URLs parse, bad ones are usage errors")
    func urls() throws {
        #expect(try ServerAddress.parse("http://127.0.0.1:8080") == ServerAddress(host: "127.0.0.1", port: 8080, prefix: ""))
        #expect(try ServerAddress.parse("http://server/flex/") == ServerAddress(host: "server", port: 80, prefix: "/flex"))
        for bad in ["127.0.0.1:80", "https://x:1", "http://:80", "http://x:0", "http://x:99999", "http://"] {
            #expect(throws: EdgeError.self) { _ = try ServerAddress.parse(bad) }
        }
    }

    @Test("response heads parse; missing length and chunked encoding are refused")
    func heads() throws {
        func parse(_ s: String) throws(EdgeError) -> HTTPResponse {
            try Array(s.utf8).withUnsafeBytes { b in Result { () throws(EdgeError) in try HTTPClient.parseHead(b) } }.get()
        }
        let r = try parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nETag: \"e3-v4\"\r\nRetry-After: 2")
        #expect(r.status == 200 && r.bodyLength == 12 && r.etag == "\"e3-v4\"" && r.retryAfterSeconds == 2)
        #expect(try parse("HTTP/1.1 304 Not Modified\r\nETag: \"x-v1\"").status == 304)
        #expect(throws: EdgeError.self) { _ = try parse("HTTP/1.1 200 OK\r\nX: y") }
        #expect(throws: EdgeError.self) { _ = try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked") }
        #expect(throws: EdgeError.self) { _ = try parse("SPDY 200") }
        #expect(throws: EdgeError.self) { _ = try parse("HTTP/1.1 200 OK\r\nContent-Length: -4") }
    }
}
