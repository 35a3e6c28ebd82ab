import FlexAssign

/// The server's round logic that does not depend on the network (DESIGN.md §1 steps 1, 4 and 5):
/// build the assignment instance from Q, k_c, |D_c|, the fair-share bounds and the historical
/// deficit shift; solve it; fold the measured fitness into Q as reports arrive; record the assigned
/// loads in the history when the round closes.
///
/// One type, used by both the live `Coordinator` and the in-process `Simulation`, so that a
/// simulated round and a served round assign experts the same way.
public struct RoundPlanner: Sendable {
    public let experts: Int
    /// Slack ε of the load bounds.
    public var epsilon: Double
    public var solver: SolverKind
    /// Base seed; round r solves with seed `seed &+ r`.
    public var seed: UInt64
    /// Q (clients × experts), measured pairs only; unknown pairs take the prior.
    public var fitness: FitnessMatrix
    /// Expert 0 is an always-on shared expert (`shared_expert`): every client holds it in one of its
    /// k_c slots, and the solver assigns the other E − 1 experts to the remaining k_c − 1 slots.
    public let sharedExpert: Bool
    /// Each routed expert's historical load deficit (shifts the bounds).
    public var history: LoadHistory

    public init(experts: Int, beta: Float, epsilon: Double, solver: SolverKind, seed: UInt64, sharedExpert: Bool = false) {
        precondition(!sharedExpert || experts >= 2, "a shared expert needs E ≥ 2")
        self.experts = experts
        self.epsilon = epsilon
        self.solver = solver
        self.seed = seed
        self.sharedExpert = sharedExpert
        fitness = FitnessMatrix(experts: experts, beta: beta)
        history = LoadHistory(experts: experts - (sharedExpert ? 1 : 0))
    }

    /// Experts the solver assigns: all E, or experts 1..<E beside a shared expert 0.
    var routed: Range<Int> { (sharedExpert ? 1 : 0)..<experts }

    /// The assignment instance of a round over the routed experts: Q rows of `clients` (in that
    /// order), their k_c (capped at E, less the shared slot) and |D_c|, bounds
    /// `LoadBounds.fairShare(ε, shift: history.shift)`. A client with k_c = 1 beside a shared expert
    /// has no routed slot (capacity 0 in the instance).
    public func instance(clients ids: [Int], capacity: [Int], dataSize: [Int]) -> AssignmentInstance {
        let off = routed.lowerBound, E = routed.count
        let kc = capacity.map { min(max($0, 1), experts) - off }
        var q = fitness.matrix(for: ids)
        if off > 0 {
            let full = q
            q = [Float](repeating: 0, count: ids.count * E)
            for i in ids.indices { for e in 0..<E { q[i * E + e] = full[i * experts + off + e] } }
        }
        let bounds = LoadBounds.fairShare(capacity: kc, dataSize: dataSize, experts: E, slack: epsilon, shift: history.shift)
        return AssignmentInstance(clients: ids.count, experts: E, fitness: q, capacity: kc,
                                  dataSize: dataSize, lower: bounds.lower, upper: bounds.upper)
    }

    /// A planned round: each client's experts (global ids, a shared expert first) and every expert's
    /// assigned load, beside the solver's answer over the routed experts.
    public struct Plan: Sendable {
        /// Per client, in the order given to `assign`.
        public var experts: [[Int]]
        /// Assigned load of each of the E experts (the shared expert's is every client's |D_c|).
        public var load: [Int]
        /// The solver's result over the routed experts (its metrics are the routed experts' balance).
        public var result: AssignmentResult
    }

    /// Solves round `round`'s instance. If the solver throws (it relaxes infeasible bounds itself,
    /// so only an internal failure does), the round falls back to round-robin and the error is
    /// returned for the log.
    public func assign(round: Int, clients ids: [Int], capacity: [Int], dataSize: [Int]) -> (plan: Plan, failure: AssignError?) {
        let inst = instance(clients: ids, capacity: capacity, dataSize: dataSize)
        var options = SolveOptions()
        options.seed = seed &+ UInt64(round)
        var failure: AssignError?
        let result: AssignmentResult
        do { result = try Assigner.solve(inst, solver: solver, options: options) } catch {
            result = try! Assigner.solve(inst, solver: .roundRobin, options: options)
            failure = error
        }
        let off = routed.lowerBound
        let experts = ids.indices.map { c in (off == 1 ? [0] : []) + result.assignment.experts(of: c).map { Int($0) + off } }
        var load = [Int](repeating: 0, count: self.experts)
        if off == 1 { load[0] = dataSize.reduce(0, +) }
        for (e, l) in result.metrics.load.enumerated() { load[e + off] = l }
        return (Plan(experts: experts, load: load, result: result), failure)
    }

    /// Balance metrics of a round's loads over the routed experts (a shared expert is not balanced).
    public func routedMetrics(_ load: [Int]) -> LoadMetrics {
        LoadMetrics(load: Array(load[routed]))
    }

    /// Folds one client's measured fitness into Q (measured pairs only).
    public mutating func record(client: Int, experts ids: [Int], fitness scores: [Double]) {
        fitness.update(client: client, scores: ids.indices.map { (expert: ids[$0], score: Float(scores[$0])) })
    }

    /// Closes a round: the routed experts' assigned loads (of all E) go into the load history.
    public mutating func close(assignedLoad: [Int]) {
        history.record(load: Array(assignedLoad[routed]))
    }
}
