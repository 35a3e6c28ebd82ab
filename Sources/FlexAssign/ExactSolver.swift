/// Exact branch-and-bound for small instances (tests, benchmark reference; docs/ALGORITHM.md §4).
///
/// Clients are fixed one at a time (largest |D_c| first); for each, every k_c-subset of experts is
/// tried in order of decreasing reduced fitness. A node is cut when
/// - an expert is above its upper bound, or cannot reach its lower bound with all remaining clients;
/// - its bound does not beat the incumbent. The bound is the Lagrangian one, valid for any λ:
///   fixed fitness + Σ_{remaining c} top-k_c(Q[c] − λ·|D_c|) + Σ_e λ_e⁺(Γ_e − load_e) − λ_e⁻(L_e − load_e),
///   where the first sum is a precomputed suffix sum, so the bound costs O(E) per node. It is
///   taken as the minimum over λ = 0 and the λ of the flex solver's dual.
public struct ExactSolver {
    public struct Result: Sendable {
        /// Best assignment found (nil when none meets the bounds).
        public var assignment: Assignment?
        public var objective: Double
        /// true when the search finished: the assignment is optimal, or nil means infeasible.
        public var proved: Bool
        public var nodes: Int
    }

    public var nodeLimit: Int
    public var timeLimit: Duration?

    public init(nodeLimit: Int = 20_000_000, timeLimit: Duration? = nil) {
        self.nodeLimit = nodeLimit
        self.timeLimit = timeLimit
    }

    /// Optimum under the instance's own bounds.
    public func solve(_ inst: AssignmentInstance) throws(AssignError) -> Result {
        try inst.validate()
        return run(inst, lower: inst.lower, upper: inst.upper, multipliers: [], incumbent: nil)
    }

    /// `multipliers`: extra λ vectors (per unit of load) for the bound; `incumbent`: a known
    /// feasible objective (only strictly better-or-equal solutions, up to 1e-7 relative, are sought).
    func run(_ inst: AssignmentInstance, lower: [Double], upper: [Double], multipliers: [[Double]],
             incumbent: Double?) -> Result {
        let C = inst.clients, E = inst.experts
        let order = (0..<C).sorted { (inst.dataSize[$0], -$0) > (inst.dataSize[$1], -$1) }
        let lams: [[Double]] = [[Double](repeating: 0, count: E)] + multipliers.filter { $0.count == E }
        // Suffix sums of the relaxed top-k per λ, over clients in branching order.
        var suffix = [[Double]](repeating: [Double](repeating: 0, count: C + 1), count: lams.count)
        for (li, lam) in lams.enumerated() {
            for i in stride(from: C - 1, through: 0, by: -1) {
                let c = order[i]
                let vals = (0..<E).map { Double(inst.q(c, $0)) - lam[$0] * Double(inst.dataSize[c]) }
                suffix[li][i] = suffix[li][i + 1] + vals.sorted(by: >).prefix(inst.capacity[c]).reduce(0, +)
            }
        }
        var remaining = [Int](repeating: 0, count: C + 1)
        for i in stride(from: C - 1, through: 0, by: -1) {
            remaining[i] = remaining[i + 1] + (inst.capacity[order[i]] > 0 ? inst.dataSize[order[i]] : 0)
        }
        // Candidate subsets per client, best first under the last λ (or λ = 0).
        let guide = lams[lams.count - 1]
        var subsets: [[([Int], Double)]] = []
        for i in 0..<C {
            let c = order[i]
            var list: [(set: [Int], value: Double, reduced: Double)] = []
            var cur: [Int] = []
            func gen(_ start: Int) {
                if cur.count == inst.capacity[c] {
                    var v = 0.0, r = 0.0
                    for e in cur {
                        v += Double(inst.q(c, e))
                        r += Double(inst.q(c, e)) - guide[e] * Double(inst.dataSize[c])
                    }
                    list.append((cur, v, r)); return
                }
                if E - start < inst.capacity[c] - cur.count { return }
                for e in start..<E { cur.append(e); gen(e + 1); cur.removeLast() }
            }
            gen(0)
            list.sort { $0.reduced > $1.reduced }
            subsets.append(list.map { ($0.set, $0.value) })
        }
        var load = [Int](repeating: 0, count: E)
        var choice = [Int](repeating: 0, count: C)
        var bestChoice: [Int]? = nil
        var best = incumbent.map { $0 - 1e-7 * max(1, abs($0)) } ?? -Double.infinity
        var nodes = 0
        var aborted = false
        let clock = ContinuousClock()
        let deadline = timeLimit.map { clock.now + $0 }

        func bound(_ i: Int, _ fixed: Double) -> Double {
            var b = Double.infinity
            for li in lams.indices {
                var s = fixed + suffix[li][i]
                let lam = lams[li]
                for e in 0..<E {
                    if lam[e] > 0 { s += lam[e] * (upper[e] - Double(load[e])) }
                    else if lam[e] < 0 { s += lam[e] * (lower[e] - Double(load[e])) }
                }
                b = min(b, s)
            }
            return b
        }

        func dfs(_ i: Int, _ fixed: Double) {
            nodes += 1
            if nodes > nodeLimit { aborted = true; return }
            if nodes & 1023 == 0, let dl = deadline, clock.now > dl { aborted = true; return }
            for e in 0..<E where Double(load[e] + remaining[i]) < lower[e] { return }
            if i == C {
                if fixed > best { best = fixed; bestChoice = choice }
                return
            }
            let tolerance = 1e-9 * max(1, abs(best))
            if bound(i, fixed) <= best + tolerance { return }
            let c = order[i]
            let dc = inst.dataSize[c]
            for (si, (set, v)) in subsets[i].enumerated() {
                var ok = true
                for e in set where Double(load[e] + dc) > upper[e] { ok = false; break }
                if !ok { continue }
                for e in set { load[e] += dc }
                choice[i] = si
                dfs(i + 1, fixed + v)
                for e in set { load[e] -= dc }
                if aborted { return }
            }
        }
        dfs(0, 0)
        var assignment: Assignment? = nil
        if let bc = bestChoice {
            var lists = [[Int]](repeating: [], count: C)
            for i in 0..<C { lists[order[i]] = subsets[i][bc[i]].0 }
            assignment = Assignment(lists: lists)
        }
        return Result(assignment: assignment, objective: assignment == nil ? -.infinity : best,
                      proved: !aborted, nodes: nodes)
    }
}
