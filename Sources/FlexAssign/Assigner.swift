/// Which algorithm assigns experts.
public enum SolverKind: String, Sendable, CaseIterable, Codable {
    /// Lagrangian relaxation + repair + local search: the production solver.
    case flex
    /// Branch-and-bound optimum (small instances only).
    case exact
    /// Top-k_c by fitness, bounds ignored.
    case greedy
    /// Seeded uniform random, bounds ignored.
    case random
    /// Cyclic, bounds ignored.
    case roundRobin = "round-robin"

    /// Whether the solver works to meet the load bounds.
    public var honoursBounds: Bool { self == .flex || self == .exact }
}

public struct SolveOptions: Sendable {
    public var seed: UInt64 = 0
    /// Wall-clock budget of the whole solve (flex returns its best so far; exact gives up).
    public var timeLimit: Duration? = nil
    /// When false, bounds that cannot be met give `AssignError.infeasible` instead of being relaxed.
    public var allowRelaxation = true
    public var flex = FlexOptions()
    public var exactNodeLimit = 20_000_000

    public init() {}
}

/// A solve's answer, as logged per round.
public struct AssignmentResult: Sendable {
    public var solver: SolverKind
    public var assignment: Assignment
    public var objective: Double
    public var metrics: LoadMetrics
    /// The assignment meets the bounds given in the instance.
    public var feasible: Bool
    /// The bounds had to be loosened (see `relaxation`); the assignment meets `lowerUsed`/`upperUsed`.
    public var relaxed: Bool
    public var relaxation: [RelaxationStep]
    public var lowerUsed: [Double]
    public var upperUsed: [Double]
    /// An upper bound on the optimum under the bounds used (flex: Lagrangian dual; exact: the
    /// objective when proved optimal); nil when unknown.
    public var upperBound: Double?
    /// Exact solver: optimality proved.
    public var proved: Bool
    public var iterations: Int
    /// Flex solver effort (zero for the other solvers).
    public var stats = FlexStats()

    /// (upperBound − objective)/|upperBound|, or nil.
    public var gapBound: Double? {
        guard let u = upperBound, u.isFinite else { return nil }
        return max(0, u - objective) / max(abs(u), 1e-12)
    }
}

/// Front door: validates, checks and relaxes bounds, runs a solver, measures the result.
public enum Assigner {
    /// Relaxation widens every band by m·step·2^i (m = W/E) at attempt i, then drops the bounds.
    static let relaxStep = 0.005
    static let relaxAttempts = 12

    public static func solve(_ inst: AssignmentInstance, solver: SolverKind = .flex,
                             options: SolveOptions = SolveOptions()) throws(AssignError) -> AssignmentResult {
        try inst.validate()
        switch solver {
        case .greedy: return finish(inst, solver, Baselines.greedy(inst))
        case .random: return finish(inst, solver, Baselines.random(inst, seed: options.seed))
        case .roundRobin: return finish(inst, solver, Baselines.roundRobin(inst))
        case .flex, .exact: break
        }
        let clock = ContinuousClock()
        let start = clock.now
        var lower = inst.lower, upper = inst.upper
        var steps = Relaxer.necessary(inst, lower: &lower, upper: &upper)
        if !steps.isEmpty && !options.allowRelaxation {
            throw .infeasible(steps.map(\.description).joined(separator: "; "))
        }
        let m = max(LoadBounds.fairShareLoad(capacity: inst.capacity, dataSize: inst.dataSize,
                                             experts: inst.experts), 1)
        var attempt = 0
        while true {
            let remaining = options.timeLimit.map { $0 - (clock.now - start) }
            var flexOpt = options.flex
            flexOpt.seed = options.seed
            if let r = remaining { flexOpt.timeLimit = flexOpt.timeLimit.map { min($0, r) } ?? r }
            var core = FlexCore(inst, lower: lower, upper: upper, seed: options.seed)
            let out = core.solve(flexOpt)
            var found: Assignment? = out.assignment
            var objective = out.objective
            var bound: Double? = out.dualBound
            var proved = false
            var failure = "flex solver found no assignment within the bounds (least total violation \(out.residualViolation))"
            if solver == .flex, let a = found, options.flex.polishNodes > 0,
               inst.clients * inst.experts <= options.flex.polishCells {
                let ex = ExactSolver(nodeLimit: options.flex.polishNodes, timeLimit: nil)
                let res = ex.run(inst, lower: lower, upper: upper, multipliers: [out.multipliers],
                                 incumbent: out.objective)
                if let b = res.assignment, res.objective > objective {
                    found = b; objective = res.objective
                } else {
                    found = a
                }
                if res.proved { bound = objective; proved = true }
            }
            if solver == .exact {
                let ex = ExactSolver(nodeLimit: options.exactNodeLimit,
                                     timeLimit: options.timeLimit.map { $0 - (clock.now - start) })
                let res = ex.run(inst, lower: lower, upper: upper, multipliers: [out.multipliers],
                                 incumbent: out.assignment == nil ? nil : out.objective)
                if let a = res.assignment {
                    found = a; objective = res.objective
                } else if out.assignment == nil && !res.proved {
                    throw .limitReached("exact search stopped after \(res.nodes) nodes without a feasible assignment")
                }
                // Otherwise nothing beat the flex incumbent: it is optimal if the search finished.
                proved = res.proved
                bound = res.proved ? objective : out.dualBound
                failure = "no assignment meets the bounds (proved by exhaustive search)"
            }
            if let a = found {
                var r = finish(inst, solver, a)
                r.objective = objective
                r.relaxed = !steps.isEmpty
                r.relaxation = steps
                r.lowerUsed = lower; r.upperUsed = upper
                r.upperBound = bound
                r.proved = proved
                r.iterations = out.iterations
                r.stats = out.stats
                return r
            }
            guard options.allowRelaxation else { throw .infeasible(failure) }
            attempt += 1
            if attempt > relaxAttempts {
                steps.append(RelaxationStep(reason: failure + "; bounds removed", experts: Array(0..<inst.experts),
                                            lowerDecrease: lower.max() ?? 0, upperIncrease: .infinity))
                lower = [Double](repeating: 0, count: inst.experts)
                upper = [Double](repeating: .infinity, count: inst.experts)
            } else {
                let delta = m * relaxStep * Double(1 << (attempt - 1))
                for e in 0..<inst.experts { lower[e] = max(0, lower[e] - delta); upper[e] += delta }
                steps.append(RelaxationStep(reason: failure, experts: Array(0..<inst.experts),
                                            lowerDecrease: delta, upperIncrease: delta))
            }
        }
    }

    static func finish(_ inst: AssignmentInstance, _ solver: SolverKind, _ a: Assignment) -> AssignmentResult {
        let metrics = LoadMetrics(a, inst)
        let feasible = AssignmentCheck.violation(load: metrics.load, lower: inst.lower, upper: inst.upper) == 0
        return AssignmentResult(solver: solver, assignment: a, objective: AssignmentCheck.objective(a, inst),
                                metrics: metrics, feasible: feasible, relaxed: false, relaxation: [],
                                lowerUsed: inst.lower, upperUsed: inst.upper, upperBound: nil,
                                proved: false, iterations: 0)
    }
}
