/// One assignment problem: which k_c experts each client holds this round.
///
///     maximise   Σ_c Σ_e Q[c][e]·X[c][e]
///     subject to Σ_e X[c][e] = k_c                    (capacity of client c)
///                L(e) ≤ Σ_c |D_c|·X[c][e] ≤ Γ(e)      (load bounds of expert e)
///                X[c][e] ∈ {0, 1}
///
/// Fitness is stored row-major and flat (`fitness[c * experts + e]`), which is what the solvers'
/// hot loops want. Loads are integers (sums of sample counts) and are kept in `Int`; bounds are
/// `Double` so fractional bounds (fair share ± slack) need no rounding.
public struct AssignmentInstance: Sendable, Equatable {
    public var clients: Int
    public var experts: Int
    /// Row-major C × E fitness matrix Q.
    public var fitness: [Float]
    /// k_c: number of experts client c holds, 0 ≤ k_c ≤ E.
    public var capacity: [Int]
    /// |D_c|: number of training samples of client c (its weight in every expert load), ≥ 0.
    public var dataSize: [Int]
    /// L(e): lowest acceptable load of expert e.
    public var lower: [Double]
    /// Γ(e): highest acceptable load of expert e.
    public var upper: [Double]

    public init(clients: Int, experts: Int, fitness: [Float], capacity: [Int], dataSize: [Int],
                lower: [Double], upper: [Double]) {
        self.clients = clients
        self.experts = experts
        self.fitness = fitness
        self.capacity = capacity
        self.dataSize = dataSize
        self.lower = lower
        self.upper = upper
    }

    /// Instance whose bounds are the fair share W/E ± `slack` (see `LoadBounds`).
    public init(fitness: [Float], clients: Int, experts: Int, capacity: [Int], dataSize: [Int],
                slack: Double) {
        let bounds = LoadBounds.fairShare(capacity: capacity, dataSize: dataSize, experts: experts,
                                          slack: slack)
        self.init(clients: clients, experts: experts, fitness: fitness, capacity: capacity,
                  dataSize: dataSize, lower: bounds.lower, upper: bounds.upper)
    }

    @inline(__always)
    public func q(_ c: Int, _ e: Int) -> Float { fitness[c &* experts &+ e] }

    /// W = Σ_c |D_c|·k_c, the total load every assignment places on the experts.
    public var totalLoad: Int {
        var w = 0
        for c in 0..<clients { w += dataSize[c] * capacity[c] }
        return w
    }

    /// Checks shapes and values; every solver calls it first.
    public func validate() throws(AssignError) {
        func bad(_ s: String) -> AssignError { .invalidInstance(s) }
        guard clients >= 0 else { throw bad("clients must be ≥ 0, got \(clients)") }
        guard experts >= 1 else { throw bad("experts must be ≥ 1, got \(experts)") }
        let (cells, overflow) = clients.multipliedReportingOverflow(by: experts)
        guard !overflow else { throw bad("clients × experts overflows") }
        guard fitness.count == cells else {
            throw bad("fitness has \(fitness.count) entries, expected clients × experts = \(cells)")
        }
        guard capacity.count == clients else {
            throw bad("capacity has \(capacity.count) entries, expected \(clients)")
        }
        guard dataSize.count == clients else {
            throw bad("dataSize has \(dataSize.count) entries, expected \(clients)")
        }
        guard lower.count == experts else { throw bad("lower has \(lower.count) entries, expected \(experts)") }
        guard upper.count == experts else { throw bad("upper has \(upper.count) entries, expected \(experts)") }
        for i in fitness.indices where !fitness[i].isFinite {
            throw bad("fitness[\(i / experts)][\(i % experts)] is not finite (\(fitness[i]))")
        }
        var total = 0
        for c in 0..<clients {
            guard capacity[c] >= 0 else { throw bad("capacity[\(c)] = \(capacity[c]) is negative") }
            guard capacity[c] <= experts else {
                throw bad("capacity[\(c)] = \(capacity[c]) exceeds the number of experts (\(experts))")
            }
            guard dataSize[c] >= 0 else { throw bad("dataSize[\(c)] = \(dataSize[c]) is negative") }
            guard dataSize[c] <= 1 << 40 else { throw bad("dataSize[\(c)] = \(dataSize[c]) is too large") }
            total += dataSize[c] * capacity[c]
            guard total <= 1 << 52 else { throw bad("total load Σ |D_c|·k_c is too large") }
        }
        for e in 0..<experts {
            guard lower[e].isFinite else { throw bad("lower[\(e)] is not finite (\(lower[e]))") }
            guard !upper[e].isNaN else { throw bad("upper[\(e)] is NaN") }
            guard upper[e] >= lower[e] else {
                throw bad("lower[\(e)] = \(lower[e]) is above upper[\(e)] = \(upper[e])")
            }
        }
    }
}

/// A solution: the experts each client holds, stored flat (client c owns
/// `experts[offsets[c] ..< offsets[c + 1]]`, sorted ascending).
public struct Assignment: Sendable, Equatable {
    public var offsets: [Int]
    public var experts: [Int32]

    public init(offsets: [Int], experts: [Int32]) {
        self.offsets = offsets
        self.experts = experts
    }

    /// From one list per client (sorted on the way in).
    public init(lists: [[Int]]) {
        var offsets = [0]
        var flat: [Int32] = []
        for l in lists {
            flat.append(contentsOf: l.sorted().map { Int32($0) })
            offsets.append(flat.count)
        }
        self.init(offsets: offsets, experts: flat)
    }

    public var clients: Int { offsets.count - 1 }

    public func experts(of c: Int) -> ArraySlice<Int32> { experts[offsets[c] ..< offsets[c + 1]] }

    public var lists: [[Int]] { (0..<clients).map { experts(of: $0).map { Int($0) } } }
}

/// Why a solve did not give an assignment.
public enum AssignError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The instance is malformed (wrong lengths, negative or oversized capacity, NaN, lower > upper, ...).
    case invalidInstance(String)
    /// The bounds cannot be met (proved, or not found by the solver) and relaxation was not allowed.
    case infeasible(String)
    /// The exact solver hit its node or time limit before proving optimality.
    case limitReached(String)

    public var description: String {
        switch self {
        case .invalidInstance(let s): "invalid instance: \(s)"
        case .infeasible(let s): "infeasible: \(s)"
        case .limitReached(let s): "limit reached: \(s)"
        }
    }
}
