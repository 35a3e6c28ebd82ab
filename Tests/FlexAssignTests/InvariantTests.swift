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
