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
    /// Each expert's historical load deficit (shifts the bounds).
    public var history: LoadHistory

    public init(experts: Int, beta: Float, epsilon: Double, solver: SolverKind, seed: UInt64) {
        self.experts = experts
        self.epsilon = epsilon
        self.solver = solver
        self.seed = seed
        fitness = FitnessMatrix(experts: experts, beta: beta)
        history = LoadHistory(experts: experts)
    }

    /// The assignment instance of a round: Q rows of `clients` (in that order), their k_c (capped
    /// at E) and |D_c|, bounds `LoadBounds.fairShare(ε, shift: history.shift)`.
    public func instance(clients ids: [Int], capacity: [Int], dataSize: [Int]) -> AssignmentInstance {
        let capacity = capacity.map { min(max($0, 1), experts) }
        let bounds = LoadBounds.fairShare(capacity: capacity, dataSize: dataSize, experts: experts, slack: epsilon,
                                          shift: history.shift)
        return AssignmentInstance(clients: ids.count, experts: experts, fitness: fitness.matrix(for: ids), capacity: capacity,
                                  dataSize: dataSize, lower: bounds.lower, upper: bounds.upper)
    }

    /// Solves round `round`'s instance. If the solver throws (it relaxes infeasible bounds itself,
    /// so only an internal failure does), the round falls back to round-robin and the error is
    /// returned for the log.
    public func assign(round: Int, clients ids: [Int], capacity: [Int], dataSize: [Int])
        -> (result: AssignmentResult, failure: AssignError?) {
        let inst = instance(clients: ids, capacity: capacity, dataSize: dataSize)
        var options = SolveOptions()
        options.seed = seed &+ UInt64(round)
        do { return (try Assigner.solve(inst, solver: solver, options: options), nil) } catch {
            return (try! Assigner.solve(inst, solver: .roundRobin, options: options), error)
        }
    }

    /// Folds one client's measured fitness into Q (measured pairs only).
    public mutating func record(client: Int, experts ids: [Int], fitness scores: [Double]) {
        fitness.update(client: client, scores: ids.indices.map { (expert: ids[$0], score: Float(scores[$0])) })
    }

    /// Closes a round: the assigned loads go into the load history.
    public mutating func close(assignedLoad: [Int]) {
        history.record(load: assignedLoad)
    }
}
