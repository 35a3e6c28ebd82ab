import Testing
@testable import FlexAssign

@Suite("Solvers")
struct SolverTests {
    @Test("exact branch-and-bound equals brute-force enumeration")
    func exactMatchesBruteForce() throws {
        var rng = AssignRNG(seed: 11)
        var feasible = 0, infeasible = 0
        for _ in 0..<150 {
            let inst = randomInstance(&rng, maxClients: 5, maxExperts: 4)
            let brute = bruteForce(inst)
            let r = try ExactSolver().solve(inst)
            #expect(r.proved)
            if let b = brute {
                feasible += 1
                let a = try #require(r.assignment)
                #expect(AssignmentCheck.structuralError(a, inst) == nil)
                #expect(meetsBounds(LoadMetrics.loads(a, inst), inst.lower, inst.upper))
                #expect(abs(r.objective - b) <= 1e-9 * max(1, abs(b)))
            } else {
                infeasible += 1
                #expect(r.assignment == nil)
            }
        }
        #expect(feasible > 30 && infeasible > 10)
    }

    /// Flex against the proved optimum, with and without the branch-and-bound polish of small
    /// instances. Tolerance: flex finds a feasible assignment (without relaxing) in at least 97% of
    /// the instances that have one; heuristic alone: mean gap ≤ 1%, every gap ≤ 15%; with polish
    /// (the default): every gap ≤ 1%.
    @Test("flex is within 1% of the exact optimum on small random instances", arguments: [false, true])
    func flexNearOptimal(polish: Bool) throws {
        var rng = AssignRNG(seed: 2024)
        var gaps: [Double] = []
        var missed = 0, feasible = 0
        for i in 0..<400 {
            var inst = randomInstance(&rng, maxClients: 12, maxExperts: 5, slacks: [0.05, 0.1, 0.2, 0.3],
                                      zeroCapacity: false)
            if i % 2 == 0 {  // half with the benchmark's clustered fitness
                var g = InstanceGenerator(clients: inst.clients, experts: inst.experts)
                g.capacities = [1, 2, min(3, inst.experts)]
                g.slack = [0.05, 0.1, 0.2][i % 3]
                inst = g.make(seed: UInt64(i))
            }
            let ex = try ExactSolver().solve(inst)
            try #require(ex.proved)
            guard ex.assignment != nil else { continue }
            feasible += 1
            var opts = SolveOptions()
            opts.allowRelaxation = false
            if !polish { opts.flex.polishNodes = 0 }
            do {
                let r = try Assigner.solve(inst, solver: .flex, options: opts)
                #expect(r.feasible && !r.relaxed)
                #expect(r.objective <= ex.objective + 1e-6)
                gaps.append((ex.objective - r.objective) / max(abs(ex.objective), 1e-9))
            } catch {
                missed += 1
            }
        }
        let mean = gaps.reduce(0, +) / Double(max(gaps.count, 1))
        let worst = gaps.max() ?? 0
        let exact = gaps.filter { $0 <= 1e-9 }.count
        print("flex (polish: \(polish)) vs exact: \(feasible) feasible instances, \(missed) without a feasible flex answer, "
              + "mean gap \(mean), max gap \(worst), optimal in \(exact)")
        #expect(feasible > 200)
        #expect(Double(missed) <= 0.03 * Double(feasible))
        #expect(mean <= 0.01)
        #expect(worst <= (polish ? 0.01 : 0.15))
    }

    @Test("the exact solver through the front door proves optimality and beats or equals flex")
    func exactFrontDoor() throws {
        var g = InstanceGenerator(clients: 10, experts: 4)
        g.slack = 0.1
        for seed in 0..<10 as Range<UInt64> {
            let inst = g.make(seed: seed)
            let f = try Assigner.solve(inst, solver: .flex)
            let x = try Assigner.solve(inst, solver: .exact)
            #expect(x.proved)
            #expect(x.objective >= f.objective - 1e-9 || x.relaxed != f.relaxed)
            #expect(AssignmentCheck.structuralError(x.assignment, inst) == nil)
        }
    }

    @Test("flex is deterministic for a seed")
    func deterministic() throws {
        var g = InstanceGenerator(clients: 300, experts: 16)
        g.slack = 0.01
        let inst = g.make(seed: 5)
        let a = try Assigner.solve(inst, solver: .flex)
        let b = try Assigner.solve(inst, solver: .flex)
        #expect(a.assignment == b.assignment)
        #expect(a.objective == b.objective)
        #expect(a.feasible && a.metrics.cv <= 0.01)
    }

    @Test("flex on a clustered 2000 × 32 instance: feasible, CV ≤ ε, gap to its dual bound ≤ 1%")
    func mediumInstance() throws {
        var g = InstanceGenerator(clients: 2000, experts: 32)
        g.slack = LoadBounds.defaultSlack
        let inst = g.make(seed: 3)
        let r = try Assigner.solve(inst, solver: .flex)
        #expect(r.feasible && !r.relaxed)
        #expect(r.metrics.cv <= LoadBounds.defaultSlack)
        let gap = try #require(r.gapBound)
        #expect(gap <= 0.01)
        let greedy = try Assigner.solve(inst, solver: .greedy)
        #expect(greedy.metrics.cv > 10 * r.metrics.cv)
        #expect(greedy.objective >= r.objective)  // greedy ignores the bounds: an upper bound
    }
}
