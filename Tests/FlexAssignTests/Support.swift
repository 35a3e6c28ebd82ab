@testable import FlexAssign

/// Small random instances for property tests: power-law sizes, random capacities, bounds around
/// the fair share with a random slack (some instances are infeasible on purpose).
func randomInstance(_ rng: inout AssignRNG, maxClients: Int, maxExperts: Int,
                    slacks: [Double] = [0.02, 0.05, 0.1, 0.2, 0.4], zeroCapacity: Bool = true) -> AssignmentInstance {
    let E = 1 + rng.below(maxExperts)
    let C = 1 + rng.below(maxClients)
    var fitness = [Float](repeating: 0, count: C * E)
    for i in fitness.indices { fitness[i] = Float(rng.unit()) }
    let capacity = (0..<C).map { _ in zeroCapacity ? rng.below(E + 1) : 1 + rng.below(E) }
    let dataSize = (0..<C).map { _ in Int(5 / max(rng.unit(), 0.02)) }  // power law, 5…250
    let slack = slacks[rng.below(slacks.count)]
    return AssignmentInstance(fitness: fitness, clients: C, experts: E, capacity: capacity,
                              dataSize: dataSize, slack: slack)
}

/// Optimum by enumerating every assignment (tiny instances only).
func bruteForce(_ inst: AssignmentInstance) -> Double? {
    let E = inst.experts
    var subsets: [[[Int]]] = []
    for c in 0..<inst.clients {
        var list: [[Int]] = []
        for mask in 0..<(1 << E) where mask.nonzeroBitCount == inst.capacity[c] {
            list.append((0..<E).filter { mask & (1 << $0) != 0 })
        }
        subsets.append(list)
    }
    var best: Double? = nil
    var load = [Int](repeating: 0, count: E)
    func rec(_ c: Int, _ obj: Double) {
        if c == inst.clients {
            for e in 0..<E where Double(load[e]) < inst.lower[e] || Double(load[e]) > inst.upper[e] { return }
            if best == nil || obj > best! { best = obj }
            return
        }
        for s in subsets[c] {
            var v = 0.0
            for e in s { load[e] += inst.dataSize[c]; v += Double(inst.q(c, e)) }
            rec(c + 1, obj + v)
            for e in s { load[e] -= inst.dataSize[c] }
        }
    }
    rec(0, 0)
    return best
}

func meetsBounds(_ load: [Int], _ lower: [Double], _ upper: [Double]) -> Bool {
    AssignmentCheck.violation(load: load, lower: lower, upper: upper) == 0
}
