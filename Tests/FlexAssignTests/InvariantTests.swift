import Testing
@testable import FlexAssign

@Suite("Invariants")
struct InvariantTests {
    /// Thousands of random instances (some infeasible): every solver gives k_c distinct experts per
    /// client; flex and exact meet the bounds they report (the given ones unless `relaxed`, and
    /// then a non-empty relaxation log whose bounds contain the given ones).
    @Test("k_c distinct experts per client, bounds met or relaxation reported", arguments: [1, 2, 3, 4] as [UInt64])
    func invariants(seed: UInt64) throws {
        var rng = AssignRNG(seed: seed)
        var relaxedCount = 0, strictCount = 0
        for i in 0..<600 {
            let inst = randomInstance(&rng, maxClients: 25, maxExperts: 8)
            var kinds: [SolverKind] = [.flex, .greedy, .random, .roundRobin]
            if i % 10 == 0 && inst.clients <= 8 && inst.experts <= 5 { kinds.append(.exact) }
            for kind in kinds {
                var opts = SolveOptions()
                opts.seed = UInt64(i)
                if i % 4 != 0 { opts.flex.polishNodes = 0 }  // keep the debug run short
                let r = try Assigner.solve(inst, solver: kind, options: opts)
                #expect(AssignmentCheck.structuralError(r.assignment, inst) == nil)
                #expect(r.metrics.load == LoadMetrics.loads(r.assignment, inst))
                #expect(abs(r.objective - AssignmentCheck.objective(r.assignment, inst)) <= 1e-6 * max(1, abs(r.objective)))
                #expect(r.feasible == meetsBounds(r.metrics.load, inst.lower, inst.upper))
                guard kind.honoursBounds else { continue }
                #expect(meetsBounds(r.metrics.load, r.lowerUsed, r.upperUsed))
                if r.relaxed {
                    relaxedCount += 1
                    #expect(!r.relaxation.isEmpty)
                    for e in 0..<inst.experts {
                        #expect(r.lowerUsed[e] <= inst.lower[e] && r.upperUsed[e] >= inst.upper[e])
                    }
                } else {
                    strictCount += 1
                    #expect(r.feasible)
                    #expect(r.relaxation.isEmpty)
                }
            }
        }
        #expect(relaxedCount > 0 && strictCount > 0)
    }
}

@Test("water-filling: one client larger than the fair share does not unbalance the other experts")
func waterFilling() throws {
    // The README demo's devices (Synthetic(1,1), seed 1): one holds 2,400 of 4,747 samples. With
    // k_c = 2 and E = 8 its two experts carry ≥ 2,400 each; the other six must share the rest.
    let sizes = [40, 42, 42, 42, 52, 58, 65, 78, 86, 119, 174, 259, 272, 482, 536, 2400]
    let c = sizes.count, e = 8
    var fitness = [Float](repeating: 0, count: c * e)
    for i in 0..<c { for j in 0..<e { fitness[i * e + j] = Float((i * 7 + j * 3) % 10) / 10 } }
    let inst = AssignmentInstance(fitness: fitness, clients: c, experts: e, capacity: [Int](repeating: 2, count: c),
                                  dataSize: sizes, slack: LoadBounds.defaultSlack)
    let r = try Assigner.solve(inst, solver: .flex)
    #expect(r.relaxed)
    #expect(r.relaxation.contains { $0.reason.hasPrefix("water-filling") })
    let others = r.metrics.load.filter { $0 < 2400 }
    #expect(others.count == 6, "loads \(r.metrics.load)")
    let mean = Double(others.reduce(0, +)) / Double(others.count)
    let spread = Double((others.max() ?? 0) - (others.min() ?? 0)) / mean
    print("water-filling: loads \(r.metrics.load), spread of the others \(spread)")
    #expect(spread <= 0.1, "the other experts stay balanced: \(others)")
}
