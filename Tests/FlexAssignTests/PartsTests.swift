import Testing
@testable import FlexAssign

@Suite("Fitness, bounds, metrics, baselines")
struct PartsTests {
    @Test("EMA updates measured pairs only; unknown pairs use the prior; join and leave")
    func fitnessMatrix() {
        var q = FitnessMatrix(experts: 3, beta: 0.5, prior: .constant(0.2))
        q.addClient(7)
        #expect(q.value(client: 7, expert: 1) == 0.2)
        #expect(q.update(client: 7, scores: [(expert: 1, score: 1.0), (expert: 2, score: .nan), (expert: 9, score: 1)]) == 1)
        #expect(q.value(client: 7, expert: 1) == 0.6)   // 0.5·0.2 + 0.5·1
        #expect(q.value(client: 7, expert: 2) == 0.2)   // NaN skipped
        q.update(client: 7, scores: [(expert: 1, score: 0.0)])
        #expect(q.value(client: 7, expert: 1) == 0.3)
        #expect(q.value(client: 7, expert: 0) == 0.2)
        q.update(client: 9, scores: [(expert: 0, score: 1)])  // joins by reporting
        #expect(q.clientCount == 2)
        q.removeClient(7)
        #expect(!q.contains(7) && q.clientCount == 1)
        #expect(q.value(client: 9, expert: 0) == 0.6)
        #expect(q.matrix(for: [9, 42]) == [0.6, 0.2, 0.2, 0.2, 0.2, 0.2])

        var m = FitnessMatrix(experts: 2, beta: 1, prior: .expertMean(fallback: 0.5))
        m.update(client: 1, scores: [(expert: 0, score: 0.9)])
        m.update(client: 2, scores: [(expert: 0, score: 0.7)])
        m.addClient(3)
        #expect(abs(m.value(client: 3, expert: 0)! - 0.8) < 1e-6)
        #expect(m.value(client: 3, expert: 1) == 0.5)
    }

    @Test("load metrics: CV (population std), max/mean, Jain")
    func metrics() {
        let m = LoadMetrics(load: [10, 20, 30, 40])
        #expect(m.mean == 25)
        #expect(abs(m.cv - 125.0.squareRoot() / 25) < 1e-12)
        #expect(m.maxOverMean == 1.6)
        #expect(abs(m.jain - 10000.0 / (4 * 3000)) < 1e-12)
        let flat = LoadMetrics(load: [5, 5, 5])
        #expect(flat.cv == 0 && flat.jain == 1 && flat.maxOverMean == 1)
        #expect(LoadMetrics(load: [9, 0, 0]).jain == 1.0 / 3)
    }

    @Test("fair-share bounds, historical deficit shifts")
    func bounds() {
        let b = LoadBounds.fairShare(capacity: [1, 2], dataSize: [10, 20], experts: 5, slack: 0.1)
        #expect(b.lower == [9, 9, 9, 9, 9].map { $0 * 1.0 })
        #expect(b.upper.allSatisfy { abs($0 - 11) < 1e-12 })
        var h = LoadHistory(experts: 3)
        h.record(load: [50, 100, 150])
        let s = h.shift
        #expect(s[0] > 0 && s[2] < 0)                  // starved expert 0 gets a higher band
        #expect(abs(s.reduce(0, +)) < 1e-12)
        #expect(s.allSatisfy { abs($0) <= 2 * h.maxShift })
        let shifted = LoadBounds.fairShare(capacity: [1, 2], dataSize: [10, 20], experts: 3, slack: 0.01, shift: s)
        #expect(shifted.lower[0] > shifted.lower[1] && shifted.lower[1] > shifted.lower[2])
    }

    @Test("baselines: greedy takes top-k, random is seeded, round-robin is cyclic")
    func baselines() {
        let inst = AssignmentInstance(clients: 3, experts: 4,
                                      fitness: [0.1, 0.9, 0.5, 0.3,  0.8, 0.1, 0.2, 0.7,  0.4, 0.4, 0.9, 0.1],
                                      capacity: [2, 1, 3], dataSize: [1, 1, 1],
                                      lower: [0, 0, 0, 0], upper: [9, 9, 9, 9])
        #expect(Baselines.greedy(inst).lists == [[1, 2], [0], [0, 1, 2]])
        #expect(Baselines.random(inst, seed: 3) == Baselines.random(inst, seed: 3))
        #expect(AssignmentCheck.structuralError(Baselines.random(inst, seed: 4), inst) == nil)
        #expect(Baselines.roundRobin(inst).lists == [[0, 1], [2], [0, 1, 3]])
    }

    @Test("generator: power-law sizes, capacities from {1,2,4}, default-slack bounds")
    func generator() {
        let inst = InstanceGenerator(clients: 500, experts: 16).make(seed: 9)
        #expect((try? inst.validate()) != nil)
        #expect(Set(inst.capacity).isSubset(of: [1, 2, 4]))
        let sizes = inst.dataSize.sorted()
        #expect(sizes[0] >= 20 && sizes[sizes.count / 2] < 50 && sizes.last! > 300)
        #expect(abs(logD(10) - 2.302585092994046) < 1e-12 && abs(expD(1) - 2.718281828459045) < 1e-12)
    }
}
