#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import NIOConcurrencyHelpers

/// What clients can hold on the server at once (docs/SERVER.md "Limits"): open connections, in
/// total and per source address, and bytes of request bodies being received. One instance is shared
/// by every event loop; each check is O(1) under a short lock.
public final class ResourceLimits: Sendable {
    public let maxConnections: Int
    public let maxConnectionsPerAddress: Int
    public let maxBodyBytes: Int

    struct State {
        var connections = 0
        var perAddress: [String: Int] = [:]
        var bodyBytes = 0
    }
    let state = NIOLockedValueBox(State())

    public init(maxConnections: Int, maxConnectionsPerAddress: Int, maxBodyBytes: Int) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.maxBodyBytes = maxBodyBytes
    }

    /// Admits a new connection from `address`, or refuses it when either cap is reached.
    public func openConnection(address: String) -> Bool {
        state.withLockedValue { s in
            let mine = s.perAddress[address, default: 0]
            guard s.connections < maxConnections, mine < maxConnectionsPerAddress else { return false }
            s.connections += 1
            s.perAddress[address] = mine + 1
            return true
        }
    }

    public func closeConnection(address: String) {
        state.withLockedValue { s in
            s.connections -= 1
            let mine = s.perAddress[address, default: 1] - 1
            s.perAddress[address] = mine > 0 ? mine : nil
        }
    }

    /// Reserves `bytes` of the body budget before a body is read; false when it would exceed it.
    public func reserveBody(_ bytes: Int) -> Bool {
        state.withLockedValue { s in
            guard s.bodyBytes + bytes <= maxBodyBytes else { return false }
            s.bodyBytes += bytes
            return true
        }
    }

    public func releaseBody(_ bytes: Int) {
        state.withLockedValue { $0.bodyBytes -= bytes }
    }

    /// Open connections and reserved body bytes now (for /metrics and tests).
    public var usage: (connections: Int, bodyBytes: Int) {
        state.withLockedValue { ($0.connections, $0.bodyBytes) }
    }

    /// Raises this process's soft limit on open files to its hard limit (capped at 1,048,576) and
    /// returns the soft limit in force: the connection cap is sized from it.
    public static func raiseFileLimit() -> Int {
        var r = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return 1024 }
        let target = min(r.rlim_max, 1 << 20)
        if r.rlim_cur < target {
            var raised = r
            raised.rlim_cur = target
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { r = raised }
        }
        return Int(r.rlim_cur)
    }

    /// File descriptors kept free for everything but connections: checkpoints, the state files,
    /// the listening sockets, logs.
    public static let reservedFiles = 256

    /// The connection cap when the config leaves it to the server: what the file limit leaves after
    /// the reserve, so connections can never starve the state files of descriptors.
    public static func automaticConnectionCap(fileLimit: Int) -> Int {
        max(16, fileLimit - reservedFiles)
    }
}

/// A token bucket per key: `burst` requests at once, then `perSecond` (docs/SERVER.md "Limits").
/// Keys are authenticated identities, so the table holds at most one entry per enrolled device.
struct RateLimiter {
    let burst: Double
    let perSecond: Double
    var buckets: [String: (tokens: Double, at: Double)] = [:]

    /// Takes one token for `key` at time `now`; returns nil when allowed, else the seconds to wait.
    mutating func take(_ key: String, now: Double) -> Double? {
        var b = buckets[key] ?? (burst, now)
        b.tokens = min(burst, b.tokens + (now - b.at) * perSecond)
        b.at = now
        guard b.tokens >= 1 else {
            buckets[key] = b
            return (1 - b.tokens) / perSecond
        }
        b.tokens -= 1
        buckets[key] = b
        return nil
    }
}
