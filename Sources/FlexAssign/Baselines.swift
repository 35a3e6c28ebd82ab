/// Baseline assignments for comparison (DESIGN.md §1): none of them looks at the load bounds.
public enum Baselines {
    /// Each client takes its k_c experts of largest fitness (ties: lower expert id).
    public static func greedy(_ inst: AssignmentInstance) -> Assignment {
        var core = FlexCore(inst, lower: inst.lower, upper: inst.upper, seed: 0)
        _ = core.relaxed([Float](repeating: 0, count: inst.experts))
        var flat = core.sel
        for c in 0..<inst.clients { flat[core.offsets[c]..<core.offsets[c + 1]].sort() }
        return Assignment(offsets: core.offsets, experts: flat)
    }

    /// Each client takes k_c distinct experts uniformly at random (seeded, deterministic).
    public static func random(_ inst: AssignmentInstance, seed: UInt64) -> Assignment {
        var rng = AssignRNG(seed: seed)
        var perm = Array(0..<inst.experts)
        var offsets = [0], flat: [Int32] = []
        flat.reserveCapacity(inst.capacity.reduce(0, +))
        for c in 0..<inst.clients {
            let kc = inst.capacity[c]
            for i in 0..<kc { perm.swapAt(i, i + rng.below(inst.experts - i)) }
            flat.append(contentsOf: perm[0..<kc].sorted().map { Int32($0) })
            offsets.append(flat.count)
        }
        return Assignment(offsets: offsets, experts: flat)
    }

    /// Clients in order take the next k_c experts cyclically (equal counts per expert, sizes ignored).
    public static func roundRobin(_ inst: AssignmentInstance) -> Assignment {
        var next = 0
        var offsets = [0], flat: [Int32] = []
        for c in 0..<inst.clients {
            let kc = inst.capacity[c]
            flat.append(contentsOf: (0..<kc).map { Int32((next + $0) % inst.experts) }.sorted())
            next = (next + kc) % inst.experts
            offsets.append(flat.count)
        }
        return Assignment(offsets: offsets, experts: flat)
    }
}
