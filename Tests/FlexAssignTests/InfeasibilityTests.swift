import Testing
@testable import FlexAssign

@Suite("Infeasibility")
struct InfeasibilityTests {
    /// One client larger than every expert's upper bound.
    func giantClient() -> AssignmentInstance {
        AssignmentInstance(clients: 3, experts: 2, fitness: [1, 0, 0, 1, 0.5, 0.5],
                           capacity: [1, 1, 1], dataSize: [100, 10, 10],
                           lower: [0, 0], upper: [50, 80])
    }

    @Test("a client larger than every upper bound is reported, not answered")
    func giantClientReported() throws {
        var strict = SolveOptions()
        strict.allowRelaxation = false
        #expect(throws: AssignError.self) { try Assigner.solve(giantClient(), solver: .flex, options: strict) }
        #expect(throws: AssignError.self) { try Assigner.solve(giantClient(), solver: .exact, options: strict) }
        let r = try Assigner.solve(giantClient(), solver: .flex)
        #expect(r.relaxed && !r.feasible)
        #expect(r.relaxation.first?.reason.contains("client 0") == true)
        #expect(r.upperUsed.max()! >= 100)
        #expect(meetsBounds(r.metrics.load, r.lowerUsed, r.upperUsed))
    }

    /// Every load is even, but the band admits only the odd load 3: infeasible though every
    /// cheap necessary condition holds. Exact proves it; flex cannot find an assignment; both relax.
    @Test("a parity-infeasible instance is proved infeasible and relaxed step by step")
    func parity() throws {
        let inst = AssignmentInstance(clients: 3, experts: 2, fitness: [1, 0, 0, 1, 1, 0],
                                      capacity: [1, 1, 1], dataSize: [2, 2, 2],
                                      lower: [2.5, 2.5], upper: [3.5, 3.5])
        let ex = try ExactSolver().solve(inst)
        #expect(ex.proved && ex.assignment == nil)
        var strict = SolveOptions()
        strict.allowRelaxation = false
        for kind in [SolverKind.flex, .exact] {
            do {
                _ = try Assigner.solve(inst, solver: kind, options: strict)
                Issue.record("\(kind) answered an infeasible instance")
            } catch let e {
                guard case .infeasible = e else { Issue.record("unexpected \(e)"); continue }
            }
            let r = try Assigner.solve(inst, solver: kind)
            #expect(r.relaxed && !r.feasible && !r.relaxation.isEmpty)
            #expect(meetsBounds(r.metrics.load, r.lowerUsed, r.upperUsed))
            #expect(r.relaxation.allSatisfy { $0.lowerDecrease >= 0 && $0.upperIncrease >= 0 })
        }
    }

    @Test("Σ lower above the total load is relaxed to it")
    func lowerSum() throws {
        let inst = AssignmentInstance(clients: 2, experts: 2, fitness: [1, 0, 0, 1],
                                      capacity: [1, 1], dataSize: [10, 10],
                                      lower: [15, 15], upper: [20, 20])
        let r = try Assigner.solve(inst, solver: .flex)
        #expect(r.relaxed)
        #expect(r.lowerUsed.reduce(0, +) <= 20)
        #expect(r.assignment.lists == [[0], [1]])
    }

    @Test("malformed instances are rejected", arguments: [
        AssignmentInstance(clients: 2, experts: 2, fitness: [1, 2, 3], capacity: [1, 1], dataSize: [1, 1], lower: [0, 0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, 2], capacity: [-1], dataSize: [1], lower: [0, 0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, 2], capacity: [3], dataSize: [1], lower: [0, 0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [.nan, 2], capacity: [1], dataSize: [1], lower: [0, 0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, .infinity], capacity: [1], dataSize: [1], lower: [0, 0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, 2], capacity: [1], dataSize: [-4], lower: [0, 0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, 2], capacity: [1], dataSize: [1], lower: [0, 10], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, 2], capacity: [1], dataSize: [1], lower: [0], upper: [9, 9]),
        AssignmentInstance(clients: 1, experts: 2, fitness: [1, 2], capacity: [1], dataSize: [1], lower: [.nan, 0], upper: [9, 9]),
    ])
    func malformed(_ inst: AssignmentInstance) {
        for kind in SolverKind.allCases {
            #expect(throws: AssignError.self) { try Assigner.solve(inst, solver: kind) }
        }
    }
}
