import FlexWire

/// A protocol error: an HTTP status, the `error=` code of docs/PROTOCOL.md and a message.
public enum ProtocolError: Error, Equatable, Sendable {
    case badRequest(String)
    case unauthorized(String)
    case forbidden(String)
    case notFound(String)
    case methodNotAllowed(String)
    case staleVersion(String)
    case duplicate(String)
    case notAssigned(String)
    case roundClosed(String)
    case tooLarge(String)
    case headerTooLarge(String)
    case invalidUpdate(String)
    /// A report or registration field outside its documented range (docs/PROTOCOL.md "Field ranges").
    case invalidField(String)
    case notReady(String)
    /// A server limit is reached (connections, bytes of request bodies): retry after `Retry-After`.
    case busy(String)
    /// Too many requests of this kind from one token: retry after `Retry-After`.
    case rateLimited(String)
    case upgradeRequired(String)

    public var status: Int {
        switch self {
        case .badRequest: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .staleVersion, .duplicate, .notAssigned, .roundClosed: 409
        case .tooLarge: 413
        case .headerTooLarge: 431
        case .invalidUpdate, .invalidField: 422
        case .notReady, .busy: 503
        case .rateLimited: 429
        case .upgradeRequired: 426
        }
    }

    public var code: String {
        switch self {
        case .badRequest: "bad_request"
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .staleVersion: "stale_version"
        case .duplicate: "duplicate"
        case .notAssigned: "not_assigned"
        case .roundClosed: "round_closed"
        case .tooLarge, .headerTooLarge: "too_large"
        case .invalidUpdate: "invalid_update"
        case .invalidField: "invalid_field"
        case .notReady: "not_ready"
        case .busy: "busy"
        case .rateLimited: "rate_limited"
        case .upgradeRequired: "upgrade_required"
        }
    }

    public var message: String {
        switch self {
        case .badRequest(let m), .unauthorized(let m), .forbidden(let m), .notFound(let m),
             .methodNotAllowed(let m), .staleVersion(let m), .duplicate(let m), .notAssigned(let m),
             .roundClosed(let m), .tooLarge(let m), .headerTooLarge(let m), .invalidUpdate(let m), .invalidField(let m), .notReady(let m), .busy(let m),
             .rateLimited(let m), .upgradeRequired(let m):
            return m
        }
    }

    public var body: [UInt8] {
        var m = SmallMessage()
        m.set("error", code)
        m.set("message", String(message.unicodeScalars.map { $0.value >= 0x20 && $0.value <= 0x7E ? Character($0) : " " }))
        return m.encoded()
    }

    /// Maps a FlexWire message error to a 400 (or 413 for an oversized message).
    public init(_ e: MessageError) {
        switch e {
        case .tooLarge: self = .tooLarge(e.message)
        default: self = .badRequest(e.message)
        }
    }
}
