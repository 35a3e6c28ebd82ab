import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The HTTP/1.1 front of the coordinator (docs/PROTOCOL.md), on SwiftNIO: 8 KiB request head,
/// per-endpoint body limits answered 413 from Content-Length before the body is read, no chunked
/// request bodies, malformed requests answered 400 and the connection closed.
public final class FlexHTTPServer: Sendable {
    public static let maxHeadBytes = 8 * 1024
    public static let registerLimit = 4 * 1024

    let coordinator: Coordinator
    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    /// The operator listener (`/v1/status`, `/metrics`) when it is apart from the devices' one.
    let operatorChannel: Channel?
    let ticker: RepeatedTask
    public let limits: ResourceLimits

    /// The devices' port.
    public var port: Int { channel.localAddress?.port ?? 0 }
    /// The port that answers `/v1/status` and `/metrics`: the operator listener's, else the devices'.
    public var operatorPort: Int { operatorChannel?.localAddress?.port ?? port }

    /// Listens for devices on `host:port`. The operator endpoints are served on the same listener
    /// only when `operatorListener` is nil; otherwise only there (docs/SERVER.md "Operator endpoints").
    public init(coordinator: Coordinator, host: String, port: Int, operatorListener: (host: String, port: Int)? = nil,
                limits: ResourceLimits, threads: Int = System.coreCount) throws {
        self.coordinator = coordinator
        self.limits = limits
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        self.group = group
        let deviceRoutes: RouteSet = operatorListener == nil ? .all : .device
        channel = try Self.bootstrap(group: group, coordinator: coordinator, limits: limits, routes: deviceRoutes)
            .bind(host: host, port: port).wait()
        if let o = operatorListener {
            operatorChannel = try Self.bootstrap(group: group, coordinator: coordinator, limits: limits, routes: .operator)
                .bind(host: o.host, port: o.port).wait()
        } else {
            operatorChannel = nil
        }
        ticker = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            coordinator.tick()
        }
    }

    static func bootstrap(group: MultiThreadedEventLoopGroup, coordinator: Coordinator, limits: ResourceLimits,
                          routes: RouteSet) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The head guard learns where each request's head ends from right behind the
                    // decoder, before the pipelining handler holds requests back, so pipelined
                    // requests behind a long poll count one head each.
                    let guardHandler = HeadSizeGuard()
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ConnectionLimiter(limits: limits, coordinator: coordinator))
                    try sync.addHandler(guardHandler)
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(HeadBoundaries(guard: guardHandler))
                    try sync.addHandler(HTTPServerPipelineHandler())
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(90)))
                    try sync.addHandler(RequestHandler(coordinator: coordinator, limits: limits, routes: routes))
                }
            }
    }

    public func wait() throws { try channel.closeFuture.wait() }

    /// Stops accepting connections (the ones open are served until the process ends).
    public func closeListeners() {
        try? channel.close().wait()
        try? operatorChannel?.close().wait()
    }

    public func shutdown() throws {
        ticker.cancel()
        closeListeners()
        try group.syncShutdownGracefully()
    }
}

/// Admits a connection under the caps of `ResourceLimits` (in total and per source address), or
/// answers 503 with `Retry-After` and closes it before any byte of a request is read.
final class ConnectionLimiter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let limits: ResourceLimits
    let coordinator: Coordinator
    var admitted: String?

    init(limits: ResourceLimits, coordinator: Coordinator) { self.limits = limits; self.coordinator = coordinator }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard limits.openConnection(address: address) else {
            let error = ProtocolError.busy("the server holds its limit of open connections; retry later")
            coordinator.count(error)
            let body = error.body
            var buf = context.channel.allocator.buffer(capacity: 200 + body.count)
            buf.writeString("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\nRetry-After: 5\r\nConnection: close\r\n\r\n")
            buf.writeBytes(body)
            let channel = context.channel
            context.writeAndFlush(NIOAny(buf)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        admitted = address
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if admitted != nil { context.fireChannelRead(data) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let a = admitted {
            limits.closeConnection(address: a)
            admitted = nil
            context.fireChannelInactive()
        }
    }
}

/// Counts the bytes of a request head before the HTTP decoder sees them; a head larger than
/// 8 KiB is answered 431 and the connection closed.
final class HeadSizeGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var awaitingHead = true
    var headBytes = 0
    var tripped = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if tripped { return }
        let n = unwrapInboundIn(data).readableBytes
        if awaitingHead { headBytes += n }
        context.fireChannelRead(data)
        // The decoder ran synchronously: if it still waits for the end of the head, count it.
        if awaitingHead && headBytes > FlexHTTPServer.maxHeadBytes {
            tripped = true
            let body = ProtocolError.tooLarge("request line and headers exceed 8 KiB").body
            var buf = context.channel.allocator.buffer(capacity: 256 + body.count)
            buf.writeString("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
            buf.writeBytes(body)
            let channel = context.channel
            context.writeAndFlush(NIOAny(buf)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func headSeen() { awaitingHead = false; headBytes = 0 }
    func requestDone() { awaitingHead = true; headBytes = 0 }
}

/// Tells the head guard where the decoder found each request's head and end.
final class HeadBoundaries: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    let guardHandler: HeadSizeGuard
    init(guard g: HeadSizeGuard) { guardHandler = g }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: guardHandler.headSeen()
        case .end: guardHandler.requestDone()
        case .body: break
        }
        context.fireChannelRead(data)
    }
}

/// Which routes a listener answers (others are 404).
enum RouteSet {
    case all, device, `operator`

    func allows(_ r: Route) -> Bool {
        switch self {
        case .all: true
        case .device: !r.isOperator
        case .operator: r.isOperator
        }
    }
}

enum Route {
    case register
    case round(client: Int?, wait: Int, after: Int?)
    case extractor(have: UInt64?)
    case stats
    case normalization
    case expert(Int, have: UInt64?)
    case report(round: Int)
    case status
    case metrics

    var method: HTTPMethod {
        switch self {
        case .register, .report, .stats: .POST
        default: .GET
        }
    }
    var needsToken: Bool { !isOperator }
    var isOperator: Bool {
        switch self {
        case .status, .metrics: true
        default: false
        }
    }

    static func parse(_ uri: String) throws(ProtocolError) -> Route {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        var query: [String: String] = [:]
        if parts.count > 1 {
            for kv in parts[1].split(separator: "&") {
                let p = kv.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(p[0])] = p.count > 1 ? String(p[1]) : ""
            }
        }
        func int(_ k: String, _ range: ClosedRange<Int>) throws(ProtocolError) -> Int? {
            guard let s = query[k] else { return nil }
            guard let v = Int(s), range.contains(v) else { throw .badRequest("query parameter '\(k)' must be an integer in \(range)") }
            return v
        }
        func version() throws(ProtocolError) -> UInt64? {
            guard let s = query["have"] else { return nil }
            guard let v = UInt64(s) else { throw .badRequest("'have' must be a version number") }
            return v
        }
        let seg = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch path {
        case "/v1/register": return .register
        case "/v1/round":
            return .round(client: try int("client", 0...Int(Int32.max)), wait: try int("wait", 0...60) ?? 0,
                          after: try int("after", 0...Int(Int32.max)))
        case "/v1/extractor": return .extractor(have: try version())
        case "/v1/stats": return .stats
        case "/v1/normalization": return .normalization
        case "/v1/status": return .status
        case "/metrics": return .metrics
        default: break
        }
        if seg.count == 4, seg[0] == "", seg[1] == "v1", seg[2] == "experts" {
            guard let e = Int(seg[3]) else { throw .notFound("expert id '\(seg[3])' is not a number") }
            return .expert(e, have: try version())
        }
        if seg.count == 5, seg[0] == "", seg[1] == "v1", seg[2] == "rounds", seg[4] == "report" {
            guard let n = Int(seg[3]), n >= 0 else { throw .notFound("round '\(seg[3])' is not a number") }
            return .report(round: n)
        }
        throw .notFound("no such path: \(path)")
    }
}

/// One connection's requests, one at a time (pipelined requests wait: pipelining assistance).
final class RequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let coordinator: Coordinator
    let limits: ResourceLimits
    let routes: RouteSet
    /// Bytes of the body budget this connection holds for the request being received.
    var reserved = 0
    var head: HTTPRequestHead?
    var route: Route?
    var identity: Coordinator.Identity?
    var body: [UInt8] = []
    var expected = 0
    var discard = false         // an error was answered early; ignore the rest and close
    var responding = false
    var inputClosed = false
    var requestBytes = 0

    init(coordinator: Coordinator, limits: ResourceLimits, routes: RouteSet) {
        self.coordinator = coordinator
        self.limits = limits
        self.routes = routes
    }

    func releaseBody() {
        if reserved > 0 { limits.releaseBody(reserved); reserved = 0 }
    }

    func channelInactive(context: ChannelHandlerContext) {
        releaseBody()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            releaseBody()
            head = h; route = nil; identity = nil; body = []; discard = false; expected = 0
            requestBytes = 64 + h.uri.utf8.count + h.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }  // ≈ head bytes
            do throws(ProtocolError) { try begin(h) } catch {
                coordinator.count(error)
                discard = true
                respond(context: context, error: error, close: true)
            }
        case .body(var buf):
            guard !discard else { return }
            requestBytes += buf.readableBytes
            if body.count + buf.readableBytes > expected {
                discard = true
                releaseBody()
                respond(context: context, error: .badRequest("body longer than its Content-Length"), close: true)
                return
            }
            body += buf.readBytes(length: buf.readableBytes) ?? []
        case .end:
            guard !discard, let h = head, let r = route else { releaseBody(); return }
            if body.count != expected {
                releaseBody()
                respond(context: context, error: .badRequest("truncated body"), close: true)
                return
            }
            coordinator.count(bytesIn: requestBytes, bytesOut: 0)
            handle(context: context, head: h, route: r)
        }
    }

    /// Checks that need only the head: path, method, token, Content-Length against the limit.
    func begin(_ h: HTTPRequestHead) throws(ProtocolError) {
        if requestBytes - 64 + 16 > FlexHTTPServer.maxHeadBytes { throw .headerTooLarge("request line and headers exceed 8 KiB") }
        if h.headers.contains(name: "Transfer-Encoding") { throw .badRequest("chunked request bodies are not accepted") }
        let lengths = h.headers["Content-Length"]
        if lengths.count > 1 { throw .badRequest("more than one Content-Length") }
        let length: Int
        if let l = lengths.first {
            guard let v = Int(l), v >= 0 else { throw .badRequest("bad Content-Length") }
            length = v
        } else { length = 0 }
        let r = try Route.parse(h.uri)
        guard routes.allows(r) else {
            throw .notFound(r.isOperator ? "operator endpoints are served on the operator listener (docs/SERVER.md)"
                                         : "this listener serves only the operator endpoints")
        }
        guard h.method == r.method else { throw .methodNotAllowed("\(h.method) is not allowed on this path") }
        if r.needsToken { identity = try coordinator.authenticate(h.headers["Authorization"].first) }
        let limit: Int
        switch r {
        case .register: limit = FlexHTTPServer.registerLimit
        case .report: limit = coordinator.reportLimit(identity!)
        case .stats: limit = coordinator.statsLimit
        default: limit = 0
        }
        if r.method == .GET && length != 0 { throw .badRequest("a GET request has no body (Content-Length must be 0)") }
        if length > limit { throw .tooLarge("a body of \(length) bytes is over this endpoint's limit of \(limit)") }
        if length > 0 {
            guard limits.reserveBody(length) else {
                throw .busy("the server holds its limit of request bodies (max_body_bytes); retry later")
            }
            reserved = length
        }
        expected = length
        body.reserveCapacity(length)
        route = r
    }

    func handle(context: ChannelHandlerContext, head h: HTTPRequestHead, route r: Route) {
        let keepAlive = h.isKeepAlive
        do throws(ProtocolError) {
            switch r {
            case .status:
                respond(context: context, status: .ok, contentType: "application/json", body: coordinator.statusJSON(), keepAlive: keepAlive)
            case .metrics:
                respond(context: context, status: .ok, contentType: "text/plain; version=0.0.4", body: coordinator.metricsText(), keepAlive: keepAlive)
            case .register:
                let b = try coordinator.register(identity!, body: body)
                respond(context: context, status: .ok, body: b, keepAlive: keepAlive)
            case .round(let client, let wait, let after):
                let id = identity!
                _ = try coordinator.roundMessage(id, named: client)
                if wait > 0 {
                    let a = after ?? coordinator.currentRound
                    responding = true
                    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                    coordinator.waitForRound(after: a, wait: wait, on: context.eventLoop).whenComplete { _ in
                        let (handler, ctx) = bound.value
                        handler.responding = false
                        do throws(ProtocolError) {
                            let b = try handler.coordinator.roundMessage(id, named: client)
                            handler.respond(context: ctx, status: .ok, body: b, keepAlive: keepAlive)
                        } catch {
                            handler.respond(context: ctx, error: error, close: !keepAlive)
                        }
                    }
                } else {
                    respond(context: context, status: .ok, body: try coordinator.roundMessage(id, named: client), keepAlive: keepAlive)
                }
            case .stats:
                let b = try coordinator.stats(identity!, body: body)
                respond(context: context, status: .ok, body: b, keepAlive: keepAlive)
            case .normalization:
                let b = try coordinator.normalization(identity!)
                respond(context: context, status: .ok, contentType: "application/octet-stream", body: b, keepAlive: keepAlive,
                        etag: "\"n\"")
            case .extractor(let have), .expert(_, let have):
                var expert: Int? = nil
                if case .expert(let e, _) = r { expert = e }
                let (etag, bytes) = try coordinator.download(identity!, expert: expert, have: have,
                                                            ifNoneMatch: h.headers["If-None-Match"].first)
                if let b = bytes {
                    respond(context: context, status: .ok, contentType: "application/octet-stream", body: b, keepAlive: keepAlive, etag: etag)
                } else {
                    respond(context: context, status: .notModified, body: [], keepAlive: keepAlive, etag: etag)
                }
            case .report(let n):
                let b = try coordinator.report(identity!, round: n, body: body)
                respond(context: context, status: .ok, body: b, keepAlive: keepAlive)
            }
        } catch {
            coordinator.count(error)
            respond(context: context, error: error, close: !keepAlive)
        }
        body = []
        releaseBody()
    }

    func respond(context: ChannelHandlerContext, error: ProtocolError, close: Bool) {
        var extra: [(String, String)] = []
        if error.status == 503 || error.status == 429 { extra.append(("Retry-After", "5")) }
        if error.status == 401 { extra.append(("WWW-Authenticate", "Bearer")) }
        respond(context: context, status: HTTPResponseStatus(statusCode: error.status), body: error.body,
                keepAlive: !close, extra: extra)
    }

    func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String = "text/plain; charset=utf-8",
                 body: [UInt8], keepAlive: Bool, etag: String? = nil, extra: [(String, String)] = []) {
        let close = !keepAlive || inputClosed
        var head = HTTPResponseHead(version: .http1_1, status: status)
        if status != .notModified {
            head.headers.add(name: "Content-Type", value: contentType)
        }
        head.headers.add(name: "Content-Length", value: String(body.count))
        if let e = etag { head.headers.add(name: "ETag", value: e) }
        for (k, v) in extra { head.headers.add(name: k, value: v) }
        if close { head.headers.add(name: "Connection", value: "close") }
        coordinator.count(bytesIn: 0, bytesOut: body.count + 100)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !body.isEmpty {
            var buf = context.channel.allocator.buffer(capacity: body.count)
            buf.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // HTTP parse errors (malformed request, EOF in the middle of one): 400 and close.
        if error is HTTPParserError, !responding, !discard {
            discard = true
            coordinator.count(.badRequest(""))
            respond(context: context, error: .badRequest("malformed HTTP request: \(error)"), close: true)
        } else {
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            inputClosed = true
            if !responding { context.close(promise: nil) }
        } else if event is IdleStateHandler.IdleStateEvent {
            if !responding { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
