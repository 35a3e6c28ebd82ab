import FlexData
import FlexModel
import FlexTensor
import Testing
@testable import FlexEdge

/// The device side of federated standardisation: the statistics it sends and the in-place transform.
@Suite struct FeatureStatsTests {
    @Test func statisticsAreThoseOfTheTrainingRowsAndStandardisingCentresThem() throws {
        let shard = try DataSource.synthetic(client: 1, seed: 5, alpha: 1, beta: 1).load()
        let config = MoEConfig(inputDim: shard.train.dim, hidden: 8, expertHidden: 8, classes: shard.train.classes, experts: 3, topK: 2)
        let plan = DevicePlan.fixed(config: config, storage: .int8Block, update: .int8Block, kc: 2, warm: 0, batch: 8,
                                    samples: shard.train.count + shard.test.count)
        var random = FlexRandom(seed: 1)
        let rt = try EdgeRuntime(plan: plan, shard: shard, random: &random)
        let d = config.inputDim, n = shard.train.count
        var stats = [Float](repeating: -1, count: 3 * d)
        stats.withUnsafeMutableBufferPointer { rt.device.writeFeatureStats(into: $0.baseAddress!) }
        for j in 0..<d {
            var sum = 0.0
            for i in 0..<n { sum += Double(shard.train.features[i * d + j]) }
            let mean = sum / Double(n)
            var m2 = 0.0
            for i in 0..<n { m2 += (Double(shard.train.features[i * d + j]) - mean) * (Double(shard.train.features[i * d + j]) - mean) }
            #expect(stats[j] == Float(n))
            #expect(abs(Double(stats[d + j]) - mean) < 1e-5 * max(1, abs(mean)))
            #expect(abs(Double(stats[2 * d + j]) - (m2 / Double(n)).squareRoot()) < 1e-5)
        }
        // The statistics travel as a featureStats container that fits the planned report buffer.
        let bytes = try rt.workspace.writeFeatureStats(of: rt.device)
        #expect(bytes > 0 && bytes <= rt.workspace.report.count)

        // Standardised with its own statistics, the device's training rows have mean 0 and std 1.
        #expect(!rt.device.standardised)
        stats.withUnsafeBufferPointer { s in rt.device.standardise(mean: s.baseAddress! + d, std: s.baseAddress! + 2 * d) }
        #expect(rt.device.standardised)
        rt.device.withSplit(test: false) { x, _ in
            for j in 0..<d {
                var sum = 0.0, squares = 0.0
                for i in 0..<n { sum += Double(x[i * d + j]); squares += Double(x[i * d + j]) * Double(x[i * d + j]) }
                #expect(abs(sum / Double(n)) < 1e-4)
                #expect(abs(squares / Double(n) - 1) < 1e-3)
            }
        }
    }
}
