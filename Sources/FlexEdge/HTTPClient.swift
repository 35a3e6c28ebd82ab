import CFlexSystem

/// Where the server is: `http://HOST:PORT[/PREFIX]`. Plain HTTP; for TLS put the server behind a
/// terminating proxy on a trusted network (docs/BOARDS.md).
public struct ServerAddress: Equatable {
    public var host: String
    public var port: Int
    public var prefix: String

    public static func parse(_ url: String) throws(EdgeError) -> ServerAddress {
        let bytes = Array(url.utf8)
        let scheme = Array("http://".utf8)
        guard bytes.count > scheme.count, Array(bytes[0..<scheme.count]) == scheme else {
            throw .usage("--server must look like http://HOST:PORT (got '\(url)')")
        }
        var rest = Array(bytes[scheme.count...])
        var prefix = ""
        if let slash = rest.firstIndex(of: UInt8(ascii: "/")) {
            prefix = String(decoding: rest[slash...], as: UTF8.self)
            while prefix.utf8.last == UInt8(ascii: "/") { prefix = String(prefix.dropLast()) }
            rest = Array(rest[..<slash])
        }
        var port = 80
        var hostBytes = rest
        if let colon = rest.lastIndex(of: UInt8(ascii: ":")) {
            guard let p = Int(String(decoding: rest[(colon + 1)...], as: UTF8.self)), p > 0, p < 65536 else {
                throw .usage("bad port in --server '\(url)'")
            }
            port = p
            hostBytes = Array(rest[..<colon])
        }
        if hostBytes.isEmpty { throw .usage("no host in --server '\(url)'") }
        return ServerAddress(host: String(decoding: hostBytes, as: UTF8.self), port: port, prefix: prefix)
    }
}

/// What came back: the body is at the start of the caller's buffer.
public struct HTTPResponse {
    public var status: Int
    public var bodyLength: Int
    public var etag: String?
    public var retryAfterSeconds: Int?
    public var bytesSent: Int
    public var bytesReceived: Int
}

/// A minimal HTTP/1.1 client over POSIX sockets: one request per connection (`Connection: close`),
/// `Content-Length` bodies only, every wait bounded by a timeout, responses read into a
/// caller-provided buffer (an arena slot) and refused if they do not fit.
public struct HTTPClient {
    public let address: ServerAddress
    public let token: String
    public var timeoutMilliseconds: Int32

    public static let maxHeaderBytes = 8 * 1024

    public init(address: ServerAddress, token: String, timeoutMilliseconds: Int32 = 30_000) {
        self.address = address
        self.token = token
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    public func send(
        _ method: String, _ path: String, extraHeaders: [(String, String)] = [],
        body: UnsafeRawBufferPointer? = nil, contentType: String = "text/plain; charset=utf-8",
        into buffer: UnsafeMutableRawBufferPointer, timeoutMilliseconds: Int32? = nil
    ) throws(EdgeError) -> HTTPResponse {
        let timeout = timeoutMilliseconds ?? self.timeoutMilliseconds
        var head = "\(method) \(address.prefix)\(path) HTTP/1.1\r\nHost: \(address.host):\(address.port)\r\n"
        head += "User-Agent: flexmoe-edge/1\r\nConnection: close\r\nAuthorization: Bearer \(token)\r\n"
        for (name, value) in extraHeaders { head += "\(name): \(value)\r\n" }
        if let body {
            head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        } else if method == "POST" || method == "PUT" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"

        let fd = csys_tcp_connect(address.host, Int32(address.port), timeout)
        if fd == -2 { throw .timeout("connecting to \(address.host):\(address.port)") }
        if fd < 0 { throw .network("cannot connect to \(address.host):\(address.port): \(lastError())") }
        defer { csys_close(fd) }

        var sent = 0
        let headBytes = Array(head.utf8)
        try headBytes.withUnsafeBytes { h in
            Result { () throws(EdgeError) in try sendAll(fd, h, timeout) }
        }.get()
        sent += headBytes.count
        if let body, body.count > 0 {
            try sendAll(fd, body, timeout)
            sent += body.count
        }

        // Read until the end of the headers, then exactly Content-Length body bytes.
        var have = 0
        var headerEnd = -1
        while headerEnd < 0 {
            if have == buffer.count || have >= HTTPClient.maxHeaderBytes + 4 {
                throw .protocolViolation("response headers larger than \(min(buffer.count, HTTPClient.maxHeaderBytes)) bytes")
            }
            let n = try receive(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[have...]), timeout)
            if n == 0 { throw .network("connection closed before the response headers") }
            let searchFrom = max(0, have - 3)
            have += n
            headerEnd = HTTPClient.findHeaderEnd(UnsafeRawBufferPointer(rebasing: buffer[0..<have]), from: searchFrom)
        }
        var response = try HTTPClient.parseHead(UnsafeRawBufferPointer(rebasing: buffer[0..<headerEnd]))
        let bodyStart = headerEnd + 4
        let length = response.bodyLength
        if length > buffer.count { throw .protocolViolation("response body of \(length) bytes exceeds the \(buffer.count)-byte buffer") }
        // Move what arrived of the body to the front of the buffer, then read the rest in place.
        let early = min(have - bodyStart, length)
        if early > 0 {
            buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + bodyStart, byteCount: early)
        }
        var got = early
        while got < length {
            let n = try receive(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[got..<length]), timeout)
            if n == 0 { throw .network("connection closed after \(got) of \(length) body bytes") }
            got += n
        }
        response.bytesSent = sent
        response.bytesReceived = bodyStart + length
        return response
    }

    private func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ timeout: Int32) throws(EdgeError) {
        let r = csys_tcp_send_all(fd, bytes.baseAddress, bytes.count, timeout)
        if r == -2 { throw .timeout("sending to the server") }
        if r < 0 { throw .network("send failed: \(lastError())") }
    }

    private func receive(_ fd: Int32, _ into: UnsafeMutableRawBufferPointer, _ timeout: Int32) throws(EdgeError) -> Int {
        let r = csys_tcp_recv(fd, into.baseAddress, into.count, timeout)
        if r == -2 { throw .timeout("waiting for the server's response") }
        if r < 0 { throw .network("receive failed: \(lastError())") }
        return Int(r)
    }

    private func lastError() -> String { String(cString: csys_last_error()) }

    static func findHeaderEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
            i += 1
        }
        return -1
    }

    /// Parses the status line and the headers this client needs.
    static func parseHead(_ head: UnsafeRawBufferPointer) throws(EdgeError) -> HTTPResponse {
        let text = String(decoding: head, as: UTF8.self)
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1."), statusLine.utf8.count >= 12,
              let status = Int(String(statusLine.dropFirst(9).prefix(3))) else {
            throw .protocolViolation("bad status line")
        }
        var response = HTTPResponse(status: status, bodyLength: 0, etag: nil, retryAfterSeconds: nil, bytesSent: 0, bytesReceived: 0)
        var sawLength = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            var value = Substring(line[line.index(after: colon)...])
            while value.first == " " { value = value.dropFirst() }
            switch name {
            case "content-length":
                guard let n = Int(String(value)), n >= 0 else { throw .protocolViolation("bad Content-Length") }
                response.bodyLength = n
                sawLength = true
            case "etag": response.etag = String(value)
            case "retry-after": response.retryAfterSeconds = Int(String(value))
            case "transfer-encoding": throw .protocolViolation("chunked responses are not supported")
            default: break
            }
        }
        if !sawLength && status != 304 && status != 204 { throw .protocolViolation("response without Content-Length") }
        return response
    }
}
