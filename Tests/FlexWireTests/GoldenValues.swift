import FlexTensor
import FlexWire
import Testing

/// What the golden fixtures in Fixtures/ hold (docs/FORMAT.md, "Golden fixtures"). The fixtures are
/// checked-in hex files, read through the test bundle's resources (`.copy("Fixtures")` in
/// Package.swift) rather than embedded as literals, so that a format change shows up as a diff of
/// readable files; `FixtureGenerator` rewrites them from the values here.
enum Golden {
    /// Every container fixture carries two tensors, W (2×3) and b (1×3), exact in fp16.
    static let w: [Float] = [-0.75, -0.375, 0, 0.375, 0.75, 1.125]
    static let b: [Float] = [0.5, -0.25, 0.125]
    static let shapes = [Shape(rows: 2, cols: 3), Shape(vector: 3)]

    struct ContainerCase: Sendable, CustomTestStringConvertible {
        let kind: PartKind
        let dtype: DType
        let codec: Codec
        var expertId: UInt32? { kind.isExpert ? 2 : nil }
        var modelVersion: UInt64 { 100 + UInt64(kind.rawValue) }
        var entries: [TensorEntry] { Golden.shapes.map { TensorEntry.standard(dtype: dtype, shape: $0) } }
        var testDescription: String { name }
        var name: String { "container-\(dtype.name)-\(kind)-\(codec == .stored ? "stored" : "zstd")" }
        var comment: String {
            "FlexWire container v1: kind \(kind) (\(kind.rawValue)), dtype \(dtype.name), codec \(codec), "
                + "expertId \(expertId.map { String($0) } ?? "none"), modelVersion \(modelVersion)\n"
                + "tensors W 2x3 = \(Golden.w), b 1x3 = \(Golden.b)"
                + (dtype == .fp32 ? " (byte-shuffled)" : "")
        }
    }

    /// Each kind once per codec; kind i is in dtype i mod 4, so every dtype and every kind appears
    /// with both codecs. The protocol-2 kinds (feature statistics, normalization) are fp32, as sent.
    static let containers: [ContainerCase] = PartKind.allCases.enumerated().flatMap { i, kind in
        let dtype = kind == .featureStats || kind == .normalization ? DType.fp32 : DType.allCases[i % DType.allCases.count]
        return [Codec.stored, .zstd].map { ContainerCase(kind: kind, dtype: dtype, codec: $0) }
    }

    static func container(_ kind: PartKind, _ codec: Codec) -> ContainerCase {
        containers.first { $0.kind == kind && $0.codec == codec }!
    }

    /// The payload of W and b in `dtype`. The int8 payloads are literal, as FlexTensor's quantiser
    /// wrote them when the fixtures were made (scale plane, then values, per tensor), so that these
    /// tests do not depend on how an encoder picks scales (docs/FORMAT.md leaves that open).
    static func payload(_ dtype: DType) -> [UInt8] {
        var out: [UInt8] = []
        switch dtype {
        case .fp32: for v in w + b { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        case .fp16: for v in w + b { withUnsafeBytes(of: Half.bits(from: v).littleEndian) { out += $0 } }
        case .int8Block: out = int8BlockPayload
        case .int8Row: out = int8RowPayload
        }
        return out
    }

    /// W: fp16 scales 0x1e00 (0.005859375), 0x2088; values −128 −64 0 / 42 85 127.
    /// b: scale 0x1c09; values 127 −63 32.
    static let int8BlockPayload: [UInt8] = [
        0x00, 0x1e, 0x88, 0x20, 0x80, 0xc0, 0x00, 0x2a, 0x55, 0x7f,
        0x09, 0x1c, 0x7f, 0xc1, 0x20,
    ]
    /// W: fp32 scales 0x3bc00000 (0.005859375), 0x3c110d11; values as int8-block. b: scale 0x3b80c3d9;
    /// values 127 −64 32.
    static let int8RowPayload: [UInt8] = [
        0x00, 0x00, 0xc0, 0x3b, 0x11, 0x0d, 0x11, 0x3c, 0x80, 0xc0, 0x00, 0x2a, 0x55, 0x7f,
        0xd9, 0xc3, 0x80, 0x3b, 0x7f, 0xc0, 0x20,
    ]

    static func encode(_ c: ContainerCase, codec: Codec? = nil) throws(WireError) -> [UInt8] {
        try Container.encode(kind: c.kind, expertId: c.expertId, modelVersion: c.modelVersion, tensors: c.entries,
                             payload: payload(c.dtype), codec: codec ?? c.codec, compressor: ZstdCompressor(level: 3))
    }

    // MARK: report

    static var reportFields: SmallMessage {
        var m = SmallMessage()
        m.set("client_id", 3)
        m.set("round", 7)
        m.set("samples", 12)
        return m
    }

    /// A report's containers: an extractor delta and an expert delta, both stored.
    static let reportContainers = [container(.extractorDelta, .stored), container(.expertDelta, .stored)]

    // MARK: checkpoint

    /// A model-shaped checkpoint (d = 2, h = 3, f = 2, K = 2, one expert), fp32, codec stored.
    static let checkpointRound: UInt64 = 7
    static let checkpointExtractorShapes = [Shape(rows: 2, cols: 3), Shape(vector: 3)]
    static let checkpointExpertShapes = [Shape(rows: 3, cols: 2), Shape(vector: 2), Shape(rows: 2, cols: 2), Shape(vector: 2)]
    /// Values 0.125 × (i + 1) for the extractor's i-th value, −0.0625 × (i + 1) for the expert's.
    static func checkpointValues(_ shapes: [Shape], step: Float) -> [UInt8] {
        let n = shapes.reduce(0) { $0 + $1.count }
        var out: [UInt8] = []
        for i in 0..<n { withUnsafeBytes(of: (step * Float(i + 1)).bitPattern.littleEndian) { out += $0 } }
        return out
    }

    static func checkpointParts() throws(WireError) -> [[UInt8]] {
        let compressor = ZstdCompressor(level: 3)
        let extractor = try Container.encode(
            kind: .extractorWeights, expertId: nil, modelVersion: 5,
            tensors: checkpointExtractorShapes.map { .standard(dtype: .fp32, shape: $0) },
            payload: checkpointValues(checkpointExtractorShapes, step: 0.125), codec: .stored, compressor: compressor)
        let expert = try Container.encode(
            kind: .expertWeights, expertId: 0, modelVersion: 6,
            tensors: checkpointExpertShapes.map { .standard(dtype: .fp32, shape: $0) },
            payload: checkpointValues(checkpointExpertShapes, step: -0.0625), codec: .stored, compressor: compressor)
        return [extractor, expert]
    }
}
