#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import FlexModel
import FlexServer
import FlexTensor
import FlexWire
import Foundation

/// A small blocking HTTP/1.1 client for the device protocol, over one keep-alive connection to a
/// loopback server. Used by the tests and by `flexmoe-bench server` (not by the devices, which have
/// FlexEdge's own client).
public final class ProtocolClient {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
        public var message: SmallMessage? { try? SmallMessage.parse(body) }
        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    public enum ClientError: Error { case connect(Int32), io(String), closed }

    public let host: String
    public let port: Int
    public var token: String?
    public var timeout: Double
    var fd: Int32 = -1
    public private(set) var requests = 0

    public init(host: String = "127.0.0.1", port: Int, token: String? = nil, timeout: Double = 90) {
        self.host = host; self.port = port; self.token = token; self.timeout = timeout
    }

    deinit { disconnect() }

    public func disconnect() { if fd >= 0 { close(fd); fd = -1 } }

    /// Opens a TCP connection (blocking, with send/receive timeouts).
    public static func connect(host: String, port: Int, timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError.connect(errno) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r != 0 { let e = errno; close(fd); throw ClientError.connect(e) }
        return fd
    }

    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; throw ClientError.io("send: errno \(errno)") }
            done += n
        }
    }

    /// Reads one HTTP response from `fd` (Content-Length framed; or to EOF without one).
    static func readResponse(_ fd: Int32, buffer: inout [UInt8], headRequest: Bool = false) throws -> Response {
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() throws -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 { if errno == EINTR { return true }; throw ClientError.io("recv: errno \(errno)") }
            if n == 0 { return false }
            buffer += chunk[0..<n]
            return true
        }
        var headEnd: Int? = nil
        while headEnd == nil {
            if let i = find(buffer, [13, 10, 13, 10]) { headEnd = i; break }
            if !(try fill()) { throw ClientError.closed }
        }
        let headText = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw ClientError.io("bad status line") }
        var headers: [(String, String)] = []
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers.append((String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)))
        }
        buffer.removeFirst(headEnd! + 4)
        var length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) }
        if status == 304 || status == 204 || status < 200 || headRequest { length = 0 }
        if let n = length {
            while buffer.count < n { if !(try fill()) { throw ClientError.closed } }
            let body = Array(buffer[0..<n])
            buffer.removeFirst(n)
            return Response(status: status, headers: headers, body: body)
        }
        while try fill() {}
        let body = buffer
        buffer = []
        return Response(status: status, headers: headers, body: body)
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        outer: for i in 0...(hay.count - needle.count) {
            for j in 0..<needle.count where hay[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
    }

    var pending: [UInt8] = []

    /// One request on the keep-alive connection (reconnects once if the server closed it).
    public func request(_ method: String, _ path: String, body: [UInt8]? = nil, headers: [(String, String)] = []) throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        if let t = token { head += "Authorization: Bearer \(t)\r\n" }
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let b = body { head += "Content-Length: \(b.count)\r\nContent-Type: " + (b.starts(with: ReportFrame.magic) ? "application/octet-stream" : "text/plain; charset=utf-8") + "\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + (body ?? [])
        for attempt in 0..<2 {
            if fd < 0 { fd = try Self.connect(host: host, port: port, timeout: timeout); pending = [] }
            do {
                try Self.sendAll(fd, bytes)
                let r = try Self.readResponse(fd, buffer: &pending)
                requests += 1
                if r.header("Connection")?.lowercased() == "close" { disconnect() }
                return r
            } catch ClientError.closed where attempt == 0 {
                disconnect()
            } catch {
                disconnect()
                throw error
            }
        }
        throw ClientError.closed
    }

    /// Sends raw bytes on a fresh connection, optionally half-closes, and reads one response
    /// (nil if the server closed without answering). For malformed-request tests.
    public static func raw(host: String = "127.0.0.1", port: Int, _ bytes: [UInt8], halfClose: Bool = true, timeout: Double = 30) throws -> Response? {
        let fd = try connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }
        try? sendAll(fd, bytes)
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var buffer: [UInt8] = []
        return try? readResponse(fd, buffer: &buffer)
    }

    /// Sends raw bytes (several pipelined requests) on a fresh connection and reads `count`
    /// responses in order; stops early when the server closes the connection.
    public static func pipelined(host: String = "127.0.0.1", port: Int, _ bytes: [UInt8], count: Int, timeout: Double = 30) throws -> [Response] {
        let fd = try connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }
        try sendAll(fd, bytes)
        var buffer: [UInt8] = []
        var out: [Response] = []
        while out.count < count, let r = try? readResponse(fd, buffer: &buffer) { out.append(r) }
        return out
    }

    // MARK: protocol steps

    /// Registers as a protocol-2 device and, when that succeeds, sends feature statistics of
    /// `samples` samples over `inputDim` features (mean 0, standard deviation 1: the normalization
    /// then changes nothing), as a device does before the first round. Returns the register answer.
    public func register(kc: Int, samples: Int, storage: String = "int8-block", board: String = "host",
                         memoryBudget: Int = 50_331_648, maxBatch: Int = 32, inputDim: Int = 60) throws -> Response {
        guard let dtype = DType.named(storage) else { throw ClientError.io("unknown storage dtype \(storage)") }
        let request = RegisterRequest(memoryBudget: memoryBudget, kc: kc, storage: dtype, board: board, samples: samples,
                                      maxBatch: maxBatch)
        let r = try self.request("POST", "/v1/register", body: request.message().encoded())
        if r.status == 200 {
            let stats = try self.request("POST", "/v1/stats", body: ReportBuilder.featureStats(samples: samples, features: inputDim))
            guard stats.status == 200 else { throw ClientError.io("POST /v1/stats answered \(stats.status)") }
        }
        return r
    }

    public func round(client: Int, wait: Int = 0, after: Int? = nil) throws -> Response {
        var p = "/v1/round?client=\(client)"
        if wait > 0 { p += "&wait=\(wait)" }
        if let a = after { p += "&after=\(a)" }
        return try request("GET", p)
    }
}

/// Builds report bodies with real update containers (docs/PROTOCOL.md), for tests and the benchmark.
public struct ReportBuilder {
    public let config: MoEConfig
    public var dtype: DType
    public var random: FlexRandom

    public init(config: MoEConfig = MoEConfig(), dtype: DType = .int8Block, seed: UInt64 = 7) {
        self.config = config; self.dtype = dtype; random = FlexRandom(seed: seed)
    }

    /// Small random deltas (N(0, scale²)) as a delta container.
    public mutating func delta(kind: PartKind, expert: Int?, version: UInt64, scale: Float = 0.01, value: Float? = nil) -> [UInt8] {
        let shapes = kind == .extractorDelta ? config.extractorShapes : config.expertShapes
        let n = shapes.reduce(0) { $0 + $1.count }
        var v = [Float](repeating: 0, count: n)
        for i in 0..<n { v[i] = value ?? scale * Float(random.nextGaussian()) }
        return GlobalModel.encode(v, shapes: shapes, kind: kind, expertId: expert.map(UInt32.init), version: version, dtype: dtype)
    }

    /// A `featureStats` container: `samples` samples, every feature with mean `mean` and standard deviation `std`.
    public static func featureStats(samples: Int, features d: Int, mean: Float = 0, std: Float = 1) -> [UInt8] {
        let values = [Float](repeating: Float(samples), count: d) + [Float](repeating: mean, count: d)
            + [Float](repeating: std, count: d)
        return GlobalModel.encode(values, shapes: [Shape(rows: 3, cols: d)], kind: .featureStats, expertId: nil, version: 0,
                                  dtype: .fp32)
    }

    public static func fields(client: Int, samples: Int, experts: [Int], usage: [Int]? = nil, fitness: [Double]? = nil) -> SmallMessage {
        var f = SmallMessage()
        f.set("client_id", client)
        f.set("samples", samples)
        f.set("loss", "0.8")
        f.set("accuracy", "0.7")
        f.set("experts", list: experts)
        f.set("usage", list: usage ?? experts.map { _ in samples / max(experts.count, 1) })
        f.set("fitness", (fitness ?? experts.map { _ in 0.6 }).map { String($0) }.joined(separator: ","))
        return f
    }

    /// A full report for `client` from a round message (`assigned`, `extractor_version`, `expert_versions`).
    public mutating func report(client: Int, samples: Int, round: SmallMessage) -> [UInt8] {
        let experts = (try? round.intList("assigned")) ?? []
        let versions = (try? round.intList("expert_versions")) ?? []
        let xv = UInt64(round["extractor_version"].flatMap { Int($0) } ?? 0)
        var containers = [delta(kind: .extractorDelta, expert: nil, version: xv)]
        for (i, e) in experts.enumerated() { containers.append(delta(kind: .expertDelta, expert: e, version: UInt64(versions[i]))) }
        return ReportFrame.encode(fields: Self.fields(client: client, samples: samples, experts: experts), containers: containers)
    }
}

/// A `flexmoe-server serve` child process on an ephemeral loopback port, for tests and the benchmark.
public final class ServerProcess {
    public let process = Process()
    public let stateDir: String
    public private(set) var port = 0
    public let logPath: String
    let stdinPipe = Pipe()

    /// Starts `binary serve --config CONFIG --port 0 --state-dir STATE` and waits for its port file.
    public convenience init(binary: String, config: String, stateDir: String, logPath: String, timeout: Double = 60) throws {
        try self.init(executable: binary, arguments: ["serve", "--config", config, "--port", "0", "--state-dir", stateDir,
                                                      "--exit-on-stdin-eof"],
                      stateDir: stateDir, logPath: logPath, timeout: timeout)
    }

    /// Starts `executable arguments...` (a server that writes STATE/server.port) and waits for the port.
    public init(executable binary: String, arguments: [String], stateDir: String, logPath: String, timeout: Double = 60) throws {
        self.stateDir = stateDir
        self.logPath = logPath
        try? FileManager.default.removeItem(atPath: stateDir + "/server.port")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        // The child's stdin is a pipe only this process holds: if this process dies, the server
        // sees EOF (with --exit-on-stdin-eof) and exits instead of lingering.
        process.standardInput = stdinPipe
        try process.run()
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if let s = try? String(contentsOfFile: stateDir + "/server.port", encoding: .utf8),
               let p = Int(s.trimmingCharacters(in: .whitespacesAndNewlines)), p > 0 {
                port = p
                return
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        kill9()
        throw ServerError.storage("server did not start; log: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Closes the server's stdin (with --exit-on-stdin-eof it shuts down cleanly), waits up to
    /// `timeout` seconds, then SIGKILLs what is left.
    public func stop(timeout: Double = 5) {
        try? stdinPipe.fileHandleForWriting.close()
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(20_000) }
        kill9()
    }

    /// SIGKILL, then reap.
    public func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Peak resident set (VmHWM) of the server process, in KiB.
    public func peakRSSKiB() -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        }
        return nil
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit { kill9() }
}
