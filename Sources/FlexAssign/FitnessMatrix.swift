/// How a (client, expert) pair that was never measured is valued.
public enum FitnessPrior: Sendable, Equatable {
    /// Every unknown pair is worth this constant.
    case constant(Float)
    /// An unknown pair is worth the mean of the measured values of the same expert (what the
    /// federation as a whole thinks of that expert), or `fallback` while nobody has measured it.
    case expertMean(fallback: Float)
}

/// The fitness matrix Q (clients × experts) kept by the server across rounds (DESIGN.md §1 step 4).
///
/// - Measured pairs follow an exponential moving average: Q ← (1−β)·Q + β·s. The first measurement
///   of a pair starts the average from the pair's prior, so one lucky score does not dominate.
/// - Pairs that were not measured this round keep their value.
/// - Unknown pairs are worth the prior (default `.expertMean(fallback: 0.5)`): a newcomer starts
///   from the federation's average opinion of each expert, which is neutral between experts when
///   nothing is known and still lets popular experts attract newcomers.
/// - Clients join (`addClient`) and leave (`removeClient`) by id; rows are dense and
///   removal is a swap with the last row, so `clientIDs` order changes on removal.
public struct FitnessMatrix: Sendable {
    public let experts: Int
    public var beta: Float
    public var prior: FitnessPrior
    /// Added to never-measured pairs in the solver's view (`matrix(for:)`) only, not to the start of
    /// their moving average: an exploration term that makes untried (client, expert) pairs attractive
    /// until they are measured. 0 = off.
    public var explorationBonus: Float = 0
    public private(set) var clientIDs: [Int] = []
    private var row: [Int: Int] = [:]
    private var values: [Float] = []
    private var measured: [Bool] = []

    public init(experts: Int, beta: Float = 0.3, prior: FitnessPrior = .expertMean(fallback: 0.5)) {
        precondition(experts >= 1, "experts must be ≥ 1")
        precondition(beta > 0 && beta <= 1, "beta must be in (0, 1]")
        self.experts = experts
        self.beta = beta
        self.prior = prior
    }

    public var clientCount: Int { clientIDs.count }

    public func contains(_ client: Int) -> Bool { row[client] != nil }

    /// Adds a client with every pair unknown; no effect if it is already present.
    public mutating func addClient(_ client: Int) {
        guard row[client] == nil else { return }
        row[client] = clientIDs.count
        clientIDs.append(client)
        values.append(contentsOf: repeatElement(0, count: experts))
        measured.append(contentsOf: repeatElement(false, count: experts))
    }

    /// Removes a client and its history; no effect if absent.
    public mutating func removeClient(_ client: Int) {
        guard let r = row.removeValue(forKey: client) else { return }
        let last = clientIDs.count - 1
        if r != last {
            let moved = clientIDs[last]
            clientIDs[r] = moved
            row[moved] = r
            for e in 0..<experts {
                values[r * experts + e] = values[last * experts + e]
                measured[r * experts + e] = measured[last * experts + e]
            }
        }
        clientIDs.removeLast()
        values.removeLast(experts)
        measured.removeLast(experts)
    }

    /// The prior value of expert e right now.
    public func priorValue(expert e: Int) -> Float {
        switch prior {
        case .constant(let v): return v
        case .expertMean(let fallback):
            var sum = 0.0, n = 0
            for r in 0..<clientIDs.count where measured[r * experts + e] {
                sum += Double(values[r * experts + e]); n += 1
            }
            return n > 0 ? Float(sum / Double(n)) : fallback
        }
    }

    public func isMeasured(client: Int, expert e: Int) -> Bool {
        guard let r = row[client], e >= 0, e < experts else { return false }
        return measured[r * experts + e]
    }

    /// Q[client][e]: the moving average if measured, else the prior (nil for an unknown client).
    public func value(client: Int, expert e: Int) -> Float? {
        guard let r = row[client], e >= 0, e < experts else { return nil }
        return measured[r * experts + e] ? values[r * experts + e] : priorValue(expert: e)
    }

    /// Applies one round's measurements of one client. Unknown clients are added. Scores that are
    /// not finite, and expert ids out of range, are skipped; the return value counts applied updates.
    @discardableResult
    public mutating func update(client: Int, scores: [(expert: Int, score: Float)]) -> Int {
        addClient(client)
        let r = row[client]!
        // Priors are read before any write so that the order of `scores` does not matter.
        var start: [Float] = []
        for (e, s) in scores {
            let known = e >= 0 && e < experts && measured[r * experts + e]
            start.append(known || !(e >= 0 && e < experts) || !s.isFinite ? 0 : priorValue(expert: e))
        }
        var applied = 0
        for (i, (e, s)) in scores.enumerated() where e >= 0 && e < experts && s.isFinite {
            let j = r * experts + e
            let old = measured[j] ? values[j] : start[i]
            values[j] = (1 - beta) * old + beta * s
            measured[j] = true
            applied += 1
        }
        return applied
    }

    /// Row-major Q for the given clients (in that order), priors (plus the exploration bonus) filled
    /// in; the solver's input.
    public func matrix(for clients: [Int]) -> [Float] {
        let priors = (0..<experts).map { priorValue(expert: $0) + explorationBonus }
        var out = [Float](repeating: 0, count: clients.count * experts)
        for (i, id) in clients.enumerated() {
            guard let r = row[id] else {
                for e in 0..<experts { out[i * experts + e] = priors[e] }
                continue
            }
            for e in 0..<experts {
                let j = r * experts + e
                out[i * experts + e] = measured[j] ? values[j] : priors[e]
            }
        }
        return out
    }
}
