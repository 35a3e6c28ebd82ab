import FlexTensor

/// Errors of the edge runtime; each message says what was wrong and what to do.
public enum EdgeError: Error {
    case arena(ArenaError)
    case budgetTooSmall(needed: Int, given: Int)
    case usage(String)
    case network(String)
    case timeout(String)
    case http(status: Int, message: String)
    case protocolViolation(String)
    case data(String)
    /// Local training produced non-finite weights; the round's update is not sent.
    case diverged(String)
    case stopped

    public var message: String {
        switch self {
        case .arena(let e): return e.message
        case .budgetTooSmall(let needed, let given):
            return "--memory-budget of \(given) bytes cannot hold the minimum configuration (k_c = 1, batch 1), which needs \(needed) bytes; give at least that"
        case .usage(let what): return what
        case .network(let what): return "network: \(what)"
        case .timeout(let what): return "timed out: \(what)"
        case .http(let status, let message): return "server answered \(status): \(message)"
        case .protocolViolation(let what): return "protocol: \(what)"
        case .data(let what): return "data: \(what)"
        case .diverged(let what):
            return "local training diverged (\(what)); the update is not sent and this device misses the round"
                + " (a smaller learning_rate or a gradient_clip on the server avoids it)"
        case .stopped: return "stopped by signal"
        }
    }
}
