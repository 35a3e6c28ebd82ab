import FlexData
import FlexTensor
import FlexTestSupport
import Foundation
import Testing

/// What the shard fixtures in Fixtures/ hold (docs/FORMAT.md, "Golden fixtures"): client 5, dim 3,
/// 4 classes, two training samples and one test sample, values exact in fp16.
enum GoldenShard {
    static let client = 5, dim = 3, classes = 4
    static let trainFeatures: [Float] = [0.5, -1, 2, 0.25, 0, -0.125]
    static let trainLabels: [Int32] = [1, 3]
    static let testFeatures: [Float] = [1.5, -0.75, 3]
    static let testLabels: [Int32] = [2]

    static func dataset(_ features: [Float], _ labels: [Int32]) -> Dataset {
        let d = Dataset(count: labels.count, dim: dim, classes: classes)
        for (i, v) in features.enumerated() { d.features[i] = v }
        for (i, l) in labels.enumerated() { d.labels[i] = l }
        return d
    }

    static func shard() -> ClientShard {
        ClientShard(client: client, train: dataset(trainFeatures, trainLabels), test: dataset(testFeatures, testLabels))
    }

    static func name(_ dtype: DType) -> String { "shard-\(dtype.name)" }
}

/// Rewrites the shard fixtures; only with `FLEXMOE_WRITE_FIXTURES=1`.
@Suite("golden shard fixture generator")
struct ShardFixtureGenerator {
    @Test("write shard fixtures", .enabled(if: HexFixture.writeRequested))
    func write() throws {
        for dtype in [DType.fp32, .fp16] {
            let bytes = ShardFile.encode(GoldenShard.shard(), dtype: dtype).withUnsafeBytes { Array($0) }
            try HexFixture.write(bytes, name: GoldenShard.name(dtype), comment:
                "Shard file v1, \(dtype.name): client 5, dim 3, 4 classes; train \(GoldenShard.trainFeatures) "
                + "labels \(GoldenShard.trainLabels); test \(GoldenShard.testFeatures) labels \(GoldenShard.testLabels)",
                besides: #filePath)
        }
    }
}
