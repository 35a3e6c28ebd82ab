import FlexEdge
import FlexServer
import FlexSimulation
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// A small, fast configuration: a narrow model and few samples so that debug builds finish in seconds.
func smallSettings(strategies: [SimulationStrategy], rounds: Int = 3) -> SimulationSettings {
    var s = SimulationSettings()
    s.dataset = .synthetic(alpha: 1, beta: 1)
    s.split = .classes(2)
    s.clients = 12
    s.experts = 4
    s.capacity = .fixed(2)
    s.rounds = rounds
    s.strategies = strategies
    s.seeds = [1]
    s.hidden = 16
    s.expertHidden = 32
    s.syntheticMaxSamples = 150
    s.threads = 2
    return s
}

@Suite struct SimulationTests {
    @Test func flexBalancesTheLoadBetterThanGreedyOnASkewedSplit() throws {
        let s = smallSettings(strategies: [.flex, .greedy])
        let rows = try Simulation(settings: s).run()
        #expect(rows.count == 2 * s.rounds)
        let summary = SimulationOutput.summarise(rows, settings: s, target: 0.5)
        let flex = summary.first { $0.strategy == .flex }!, greedy = summary.first { $0.strategy == .greedy }!
        #expect(flex.meanCV.mean < greedy.meanCV.mean)
        #expect(flex.meanCV.mean < 0.5 * greedy.meanCV.mean)
        for r in rows {
            #expect(r.load.count == s.experts)
            #expect(r.load.reduce(0, +) > 0)
            #expect(r.bytesUp > 0 && r.bytesDown > 0)
            #expect(r.testAccuracy >= 0 && r.testAccuracy <= 1)
            #expect(r.trainLoss.isFinite)
        }
    }

    @Test func resultsDoNotDependOnTheNumberOfThreads() throws {
        var s = smallSettings(strategies: [.flex], rounds: 2)
        s.clients = 6
        s.threads = 1
        let one = try Simulation(settings: s).run()
        s.threads = 3
        let three = try Simulation(settings: s).run()
        #expect(one.map(\.testAccuracy) == three.map(\.testAccuracy))
        #expect(one.map(\.load) == three.map(\.load))
        #expect(one.map(\.bytesUp) == three.map(\.bytesUp))
    }

    @Test func outputFilesExistAndParse() throws {
        var s = smallSettings(strategies: [.flex, .greedy, .random, .fedavgDense], rounds: 2)
        s.clients = 8
        s.seeds = [1, 2]
        s.capacity = .boards
        let sim = try Simulation(settings: s)
        let rows = try sim.run()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flexmoe-sim-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SimulationOutput.write(rows, settings: s, samples: sim.sampleCount, features: sim.featureCount,
                                   classes: sim.classCount, to: dir)

        // rounds.csv: header, one row per strategy × seed × round, every row as wide as the header
        let csv = try String(contentsOfFile: dir + "/rounds.csv", encoding: .utf8)
        let lines = csv.split(separator: "\n").map(String.init)
        #expect(lines.first == SimulationOutput.csvColumns.joined(separator: ","))
        #expect(lines.count == 1 + 4 * 2 * 2)
        for l in lines.dropFirst() {
            let f = l.split(separator: ",", omittingEmptySubsequences: false)
            #expect(f.count == SimulationOutput.csvColumns.count)
            func column(_ name: String) -> Substring { f[SimulationOutput.csvColumns.firstIndex(of: name)!] }
            #expect(Double(column("test_accuracy")) != nil)
            #expect(Double(column("pre_test_accuracy")).map { $0 >= 0 && $0 <= 1 } == true)
            #expect(column("expert_load").split(separator: ";").count == (f[0] == "fedavg-dense" ? 1 : s.experts))
        }

        // summary.json
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as! [String: Any]
        for k in ["dataset", "split", "clients", "experts", "rounds", "seeds", "target_accuracy", "strategies"] {
            #expect(json[k] != nil, "summary.json lacks \(k)")
        }
        let strategies = json["strategies"] as! [String: Any]
        #expect(Set(strategies.keys) == ["flex", "greedy", "random", "fedavg-dense"])
        for (_, v) in strategies {
            let o = v as! [String: Any]
            for k in ["final_accuracy", "rounds_to_target", "mean_cv", "bytes_per_round"] {
                let stat = o[k] as? [String: Any]
                #expect(stat?["mean"] != nil && stat?["std"] != nil, "\(k)")
            }
            #expect(((o["final_accuracy"] as! [String: Any])["values"] as! [Any]).count == 2)
        }

        // SVGs: well-formed XML with the expected elements
        let expected: [(String, String, Int)] = [
            ("accuracy.svg", "polyline", 4), ("load_cv.svg", "polyline", 3),
            ("heatmap_flex.svg", "rect", s.experts * s.rounds), ("heatmap_greedy.svg", "rect", s.experts * s.rounds),
        ]
        for (name, element, atLeast) in expected {
            let counter = ElementCounter()
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            parser.delegate = counter
            #expect(parser.parse(), "\(name) is not well-formed XML: \(String(describing: parser.parserError))")
            #expect(counter.root == "svg", "\(name)")
            #expect(counter.counts[element, default: 0] >= atLeast, "\(name): \(counter.counts)")
            #expect(counter.counts["text", default: 0] >= 3, "\(name): title, axes, legend")
        }
    }

    @Test func capacityParses() throws {
        #expect(try SimulationCapacity.parse("boards") == .boards)
        #expect(try SimulationCapacity.parse("3") == .fixed(3))
        #expect(throws: SimulationError.self) { try SimulationCapacity.parse("0") }
    }
}

final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    var root: String?
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if root == nil { root = name }
        counts[name, default: 0] += 1
    }
}

@Suite struct MissedReportTests {
    /// A device whose training diverges (NaN/Inf weights) sends no update and misses the round (the
    /// deadline closes it, as on the live server); the run goes on and the model stays finite.
    @Test func divergedDevicesMissTheRoundAndTheRunGoesOn() throws {
        var s = smallSettings(strategies: [.flex], rounds: 2)
        s.clients = 6
        s.learningRate = 1e30
        s.gradientClip = 0
        let simulation = try Simulation(settings: s)
        let rows = try simulation.run()
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0.missedReports > 0 })
        for r in rows { #expect(r.trainLoss.isFinite || r.missedReports == s.clients) }
        let model = simulation.finalModels[0]
        #expect(model.extractor.allSatisfy(\.isFinite) && model.experts.allSatisfy { $0.allSatisfy(\.isFinite) })
    }
}

@Suite struct SharedExpertSimulationTests {
    /// With `sharedExpert` every device trains expert 0 beside its routed experts: expert 0 carries
    /// every device's samples each round, the routed experts are balanced, and the run learns.
    @Test func theSharedExpertCarriesEveryDeviceAndTheRoutedOnesStayBalanced() throws {
        var s = smallSettings(strategies: [.flex], rounds: 3)
        s.capacity = .fixed(3)
        s.sharedExpert = true
        let rows = try Simulation(settings: s).run()
        #expect(rows.count == 3)
        let total = rows[0].load[0]
        for r in rows {
            #expect(r.load[0] == total, "expert 0 holds every device's samples")
            let routed = Array(r.load.dropFirst())
            #expect(routed.reduce(0, +) == 2 * total, "two routed slots per device")
            #expect(r.cv < 0.05, "the routed experts are balanced (CV \(r.cv))")
        }
        #expect(rows.last!.testAccuracy > 0.6, "it learns (accuracy \(rows.last!.testAccuracy))")
    }
}

@Suite struct ProbeWarmSimulationTests {
    /// With `probeWarm`, devices probe the experts their cache holds but were not assigned (from the
    /// second round on, once the cache holds earlier assignments: warm slots, or last round's copies
    /// not yet replaced) and report them; without the switch nobody probes.
    @Test func devicesWithWarmSlotsProbeTheExpertsTheyWereNotAssigned() throws {
        var s = smallSettings(strategies: [.flex], rounds: 4)
        s.warmSlots = 2
        s.probeWarm = true
        let probing = try Simulation(settings: s).run()
        #expect(probing[0].probedPairs == 0, "round 1: the caches are empty")
        #expect(probing.dropFirst().contains { $0.probedPairs > 0 }, "\(probing.map(\.probedPairs))")
        // at most the cache's slots beyond the assigned ones, per device
        #expect(probing.allSatisfy { $0.probedPairs <= s.clients * s.warmSlots })
        s.warmSlots = 0
        let cold = try Simulation(settings: s).run()
        #expect(cold.allSatisfy { $0.probedPairs <= s.clients * 2 })
        s.probeWarm = false
        #expect(try Simulation(settings: s).run().allSatisfy { $0.probedPairs == 0 })
    }
}
