import FlexModel
import FlexServer
import FlexSimulation
import Foundation
import Testing

/// `fedavg-dense-matched`: the dense baseline at the parameter budget of an MoE device.
@Suite struct DenseMatchedTests {
    /// Parameters of a dense expert path of width f (h·f + f + f·K + K).
    func pathParameters(_ c: MoEConfig, _ f: Int) -> Int { c.hidden * f + f + f * c.classes + c.classes }

    @Test func matchedWidthIsTheLargestWithinTheBudget() {
        let cases: [(h: Int, f: Int, K: Int, kc: Int, expected: Int)] = [
            (64, 128, 10, 2, 256),    // the RESULTS.md model, Pi Zero 2 W k_c: f' = 2f exactly (19210 ≤ 19220)
            (64, 128, 10, 16, 2050),  // 16 experts: 153760 ≤ 153760 (the K of the 15 extra experts buys 2 units)
            (64, 128, 10, 1, 128),    // one expert: the plain dense model
            (16, 32, 4, 3, 96),       // 2028 experts' parameters, 96 · 21 + 4 = 2020
            (64, 128, 62, 4, 513),    // 62 classes: 4f + ⌊3 · 62 / 127⌋
        ]
        for (h, f, K, kc, expected) in cases {
            let c = MoEConfig(inputDim: 60, hidden: h, expertHidden: f, classes: K, experts: 16, topK: 2)
            let budget = kc * c.expertParameterCount
            let w = SimulationStrategy.matchedExpertHidden(config: c, kc: kc)
            #expect(w == expected, "h \(h) f \(f) K \(K) k \(kc)")
            #expect(pathParameters(c, w) <= budget)
            #expect(pathParameters(c, w + 1) > budget)
            var dense = c
            dense.expertHidden = w
            #expect(dense.expertParameterCount == pathParameters(c, w))
        }
    }

    @Test func onlyTheFedAvgStrategiesAreDense() {
        #expect(SimulationStrategy.allCases.filter(\.isDense) == [.fedavgDense, .fedavgDenseMatched])
        #expect(SimulationStrategy(rawValue: "fedavg-dense-matched") == .fedavgDenseMatched)
    }

    @Test func kIsTheSmallestCapacityOfTheRun() throws {
        var s = smallSettings(strategies: [.fedavgDenseMatched])
        s.capacity = .fixed(3)
        let fixed = try Simulation(settings: s)
        #expect(fixed.denseMatch(seed: 1).kc == 3)
        s.capacity = .fixed(9)  // capped at E = 4
        #expect(try Simulation(settings: s).denseMatch(seed: 1).kc == 4)
        s.capacity = .boards
        s.clients = 8
        let boards = try Simulation(settings: s)
        for seed: UInt64 in [1, 2, 3] {
            let kcs = boards.capacities(seed: seed)
            #expect(kcs.count == 8)
            let m = boards.denseMatch(seed: seed)
            #expect(m.kc == kcs.min())
            let config = boards.serverConfig(strategy: .fedavgDenseMatched, seed: seed)
            #expect(config.expertHidden == m.expertHidden)
            #expect(config.experts == 1 && config.topK == 1)
            #expect(m.parameters == config.model.expertParameterCount)
            #expect(m.parameters <= m.budgetParameters)
            // The plain dense baseline keeps the settings' width.
            #expect(boards.serverConfig(strategy: .fedavgDense, seed: seed).expertHidden == s.expertHidden)
        }
    }

    @Test func aMatchedRunTrainsTheWiderModelAndMovesMoreBytes() throws {
        var s = smallSettings(strategies: [.fedavgDense, .fedavgDenseMatched], rounds: 3)
        s.capacity = .fixed(2)
        let sim = try Simulation(settings: s)
        let rows = try sim.run()
        #expect(rows.count == 2 * s.rounds)
        let plain = rows.filter { $0.strategy == .fedavgDense }, matched = rows.filter { $0.strategy == .fedavgDenseMatched }
        #expect(plain.count == s.rounds && matched.count == s.rounds)
        for (p, m) in zip(plain, matched) {
            #expect(m.testAccuracy.isFinite && m.testAccuracy >= 0 && m.testAccuracy <= 1)
            #expect(m.trainLoss.isFinite)
            #expect(m.load.count == 1 && m.cv == 0)
            #expect(m.bytesUp > p.bytesUp && m.bytesDown > p.bytesDown)
        }
        // The global model the server ended with is the matched one: f' = 2f + ⌊K/(h + 1 + K)⌋.
        let f = SimulationStrategy.matchedExpertHidden(config: sim.finalModels[0].config, kc: 2)
        #expect(sim.finalModels[0].config.expertHidden == s.expertHidden)
        #expect(sim.finalModels[1].config.expertHidden == f)
        #expect(sim.finalModels[1].config.experts == 1)
        #expect(f >= 2 * s.expertHidden)

        // Outputs: a dense strategy has no load plot or heatmap; summary.json states k and f'.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flexmoe-dense-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let matches = s.seeds.map { sim.denseMatch(seed: $0) }
        let paths = try SimulationOutput.write(rows, settings: s, samples: sim.sampleCount, features: sim.featureCount,
                                               classes: sim.classCount, to: dir, denseMatched: matches)
        #expect(!paths.contains { $0.hasSuffix("load_cv.svg") || $0.contains("heatmap_") })
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as! [String: Any]
        #expect(json["dense_matched_expert_hidden"] as? [Int] == [f])
        #expect(json["dense_matched_kc"] as? [Int] == [2])
        let strategies = json["strategies"] as! [String: Any]
        #expect(Set(strategies.keys) == ["fedavg-dense", "fedavg-dense-matched"])
    }
}
