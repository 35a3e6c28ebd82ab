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

@Suite("golden shard fixtures")
struct ShardFixtureTests {
    func fixture(_ dtype: DType) throws -> [UInt8] { try HexFixture.read(GoldenShard.name(dtype), in: Bundle.module) }

    func decode(_ bytes: [UInt8]) throws(DataError) -> ClientShard {
        try bytes.withUnsafeBytes { b in
            Result { () throws(DataError) -> ClientShardBox in ClientShardBox(try ShardFile.decode(b, file: "fixture")) }
        }.get().take()
    }

    @Test("shard fixtures decode to their header fields and samples", arguments: [DType.fp32, .fp16])
    func decodes(_ dtype: DType) throws {
        let bytes = try fixture(dtype)
        #expect(bytes.count == ShardFile.fileBytes(dim: 3, trainCount: 2, testCount: 1, dtype: dtype))
        #expect(Array(bytes[0..<8]) == [0x46, 0x58, 0x53, 0x44, 1, 0, dtype.rawValue, 0])
        #expect(Array(bytes[8..<12]) == [5, 0, 0, 0])
        let s = try decode(bytes)
        #expect(s.client == 5 && s.train.dim == 3 && s.train.classes == 4 && s.train.count == 2 && s.test.count == 1)
        for (i, v) in GoldenShard.trainFeatures.enumerated() { #expect(s.train.features[i] == v) }
        for (i, v) in GoldenShard.testFeatures.enumerated() { #expect(s.test.features[i] == v) }
        #expect(s.train.labels[0] == 1 && s.train.labels[1] == 3 && s.test.labels[0] == 2)
    }

    @Test("shard fixtures re-encode byte for byte", arguments: [DType.fp32, .fp16])
    func reencodes(_ dtype: DType) throws {
        let bytes = ShardFile.encode(GoldenShard.shard(), dtype: dtype).withUnsafeBytes { Array($0) }
        #expect(bytes == (try fixture(dtype)))
    }

    @Test("every truncation of a shard is a typed error, never a crash")
    func truncations() throws {
        let bytes = try fixture(.fp16)
        for length in 0..<bytes.count {
            let cut = Array(bytes[0..<length])
            #expect(throws: DataError.self) { _ = try decode(cut) }
        }
        var badLabel = bytes
        badLabel[48 + 6 * 2] = 9   // the first training label, fp16 features before it
        // the hash covers the label, so re-hash to reach the label check
        let hash = badLabel.withUnsafeBytes { ShardFile.fnv1a(UnsafeRawBufferPointer(rebasing: $0[48...])) }
        for i in 0..<8 { badLabel[32 + i] = UInt8(truncatingIfNeeded: hash >> (8 * UInt64(i))) }
        expectError(.badValue(file: "fixture", offset: 60, message: "label 9 ≥ 4 classes")) { () throws(DataError) in _ = try decode(badLabel) }
    }
}

/// Carries a `~Copyable` shard out of a `Result`.
final class ClientShardBox {
    var shard: ClientShard?
    init(_ shard: consuming ClientShard) { self.shard = consume shard }
    func take() -> ClientShard { shard.take()! }
}
