import FlexModel
import FlexTensor
import FlexWire

/// The global model the server keeps in fp32: the extractor ψ and E experts θ_e, each with its
/// version (the last completed round that changed it; 0 = the initial model). Tensor order and
/// shapes come from FlexModel (`MoEConfig`), as docs/FORMAT.md "Kinds" fixes them.
public struct GlobalModel: Sendable, Equatable {
    public let config: MoEConfig
    public var extractor: [Float]
    public var experts: [[Float]]
    public var extractorVersion: UInt64
    public var expertVersions: [UInt64]

    public var extractorShapes: [Shape] { config.extractorShapes }
    public var expertShapes: [Shape] { config.expertShapes }

    public init(config: MoEConfig, extractor: [Float], experts: [[Float]], extractorVersion: UInt64,
                expertVersions: [UInt64]) {
        self.config = config
        self.extractor = extractor
        self.experts = experts
        self.extractorVersion = extractorVersion
        self.expertVersions = expertVersions
    }

    /// The initial model: FlexModel's He initialisation, seeded.
    public static func initial(config: MoEConfig, seed: UInt64) -> GlobalModel {
        var random = FlexRandom(seed: seed)
        let x = MLPExtractor(config, maxBatch: 1)
        x.initialise(random: &random)
        var extractor: [Float] = []
        for p in x.parameters { p.value.withUnsafeBufferPointer { extractor += $0 } }
        var experts: [[Float]] = []
        for _ in 0..<config.experts {
            let e = ExpertParameters(config)
            e.initialise(random: &random)
            var flat: [Float] = []
            for p in e.parameters { p.value.withUnsafeBufferPointer { flat += $0 } }
            experts.append(flat)
        }
        return GlobalModel(config: config, extractor: extractor, experts: experts, extractorVersion: 0,
                           expertVersions: [UInt64](repeating: 0, count: config.experts))
    }

    /// Largest accepted |value| in a container (weights and deltas alike).
    public static let maxMagnitude: Float = 1e6

    // MARK: containers

    /// Encodes fp32 values of `shapes` (flat, in order) as a container in `dtype`.
    public static func encode(_ values: [Float], shapes: [Shape], kind: PartKind, expertId: UInt32?,
                              version: UInt64, dtype: DType, codec: Codec = .zstd) -> [UInt8] {
        var payload: [UInt8] = []
        var entries: [TensorEntry] = []
        var offset = 0
        for s in shapes {
            let t = Tensor<Float>(zeros: s)
            t.withUnsafeMutableBufferPointer { b in
                for i in 0..<s.count { b[i] = values[offset + i] }
            }
            offset += s.count
            if dtype == .fp32 {
                t.withUnsafeBytes { payload += $0 }
            } else {
                let q = QuantizedTensor(dtype: dtype, shape: s)
                Quantizer.quantize(t, into: q)
                q.bytes.withUnsafeBufferPointer { payload += $0 }
            }
            entries.append(.standard(dtype: dtype, shape: s))
        }
        let compressor = ZstdCompressor()
        // Encoding well-formed tensors cannot fail.
        return try! Container.encode(kind: kind, expertId: expertId, modelVersion: version, tensors: entries,
                                     payload: payload, codec: codec, compressor: compressor)
    }

    public func extractorContainer(dtype: DType) -> [UInt8] {
        Self.encode(extractor, shapes: extractorShapes, kind: .extractorWeights, expertId: nil,
                    version: extractorVersion, dtype: dtype)
    }

    public func expertContainer(_ e: Int, dtype: DType) -> [UInt8] {
        Self.encode(experts[e], shapes: expertShapes, kind: .expertWeights, expertId: UInt32(e),
                    version: expertVersions[e], dtype: dtype)
    }

    /// Decodes a container into flat fp32 values, checking kind and shapes and that every value is
    /// finite. Errors are `invalidUpdate` (422) or `tooLarge` (413).
    public static func decode(_ bytes: UnsafeRawBufferPointer, shapes: [Shape], kinds: [PartKind],
                              decompressor: borrowing ZstdDecompressor) throws(ProtocolError) -> (header: ContainerHeader, values: [Float]) {
        let header: ContainerHeader
        do { header = try Container.parseHeader(bytes) } catch { throw .invalidUpdate(error.message) }
        if !kinds.contains(header.kind) { throw .invalidUpdate("container kind \(header.kind) where \(kinds) expected") }
        if header.tensors.count != shapes.count { throw .invalidUpdate("\(header.tensors.count) tensors, the model has \(shapes.count)") }
        for (i, t) in header.tensors.enumerated() where t.shape != shapes[i] {
            throw .invalidUpdate("tensor \(i) is \(t.shape.rows)x\(t.shape.cols), the model's is \(shapes[i].rows)x\(shapes[i].cols)")
        }
        let maxPayload = shapes.reduce(0) { $0 + $1.count * 4 }
        if header.payloadSize > maxPayload { throw .tooLarge("container payload of \(header.payloadSize) bytes") }
        var payload = [UInt8](repeating: 0, count: header.payloadSize)
        let r = payload.withUnsafeMutableBytes { d in
            Result { () throws(WireError) in
                try Container.decodePayload(bytes, header: header, maxPayload: maxPayload, decompressor: decompressor, into: d)
            }
        }
        do { try r.get() } catch { throw .invalidUpdate(error.message) }
        var values = [Float](repeating: 0, count: shapes.reduce(0) { $0 + $1.count })
        var byteOffset = 0, valueOffset = 0
        payload.withUnsafeBytes { p in
            values.withUnsafeMutableBufferPointer { v in
                for t in header.tensors {
                    let n = t.payloadBytes
                    let m = QuantizedMatrix(dtype: t.dtype, shape: t.shape,
                                            bytes: UnsafeRawBufferPointer(rebasing: p[byteOffset..<(byteOffset + n)]))
                    Quantizer.dequantize(m, into: UnsafeMutableBufferPointer(rebasing: v[valueOffset..<(valueOffset + t.shape.count)]))
                    byteOffset += n
                    valueOffset += t.shape.count
                }
            }
        }
        for x in values where !x.isFinite { throw .invalidUpdate("the update holds NaN or Inf values") }
        for x in values where abs(x) > maxMagnitude { throw .invalidUpdate("a value of magnitude above \(maxMagnitude)") }
        return (header, values)
    }

    public static func decode(_ bytes: [UInt8], shapes: [Shape], kinds: [PartKind],
                              decompressor: borrowing ZstdDecompressor) throws(ProtocolError) -> (header: ContainerHeader, values: [Float]) {
        try bytes.withUnsafeBytes { b in
            Result { () throws(ProtocolError) in try decode(b, shapes: shapes, kinds: kinds, decompressor: decompressor) }
        }.get()
    }

    // MARK: checkpoints

    /// Checkpoint file: a `CheckpointFrame` (docs/FORMAT.md) of the extractor (extractorWeights,
    /// fp32) then every expert (expertWeights, fp32), each container carrying its own version.
    public func checkpoint(round: UInt64) -> [UInt8] {
        var parts = [Self.encode(extractor, shapes: extractorShapes, kind: .extractorWeights, expertId: nil,
                                 version: extractorVersion, dtype: .fp32)]
        for e in 0..<config.experts {
            parts.append(Self.encode(experts[e], shapes: expertShapes, kind: .expertWeights, expertId: UInt32(e),
                                     version: expertVersions[e], dtype: .fp32))
        }
        return CheckpointFrame.encode(round: round, parts: parts)
    }

    /// Reads a checkpoint for the model `config`; returns the model and the round it was saved at.
    public static func load(checkpoint bytes: [UInt8], config: MoEConfig) throws -> (model: GlobalModel, round: UInt64) {
        let frame = try bytes.withUnsafeBytes { b in Result { () throws(WireError) in try CheckpointFrame.parse(b) } }
            .mapError { ServerError.checkpoint(CheckpointFrame.describe($0)) }.get()
        let count = frame.parts.count
        guard count == 1 + config.experts else { throw ServerError.checkpoint("\(count) parts, the model has \(1 + config.experts)") }
        let decompressor = ZstdDecompressor()
        var extractor: [Float] = [], experts: [[Float]] = [], xv: UInt64 = 0, ev: [UInt64] = []
        for (i, range) in frame.parts.enumerated() {
            let part = Array(bytes[range])
            do {
                if i == 0 {
                    let d = try decode(part, shapes: config.extractorShapes, kinds: [.extractorWeights], decompressor: decompressor)
                    extractor = d.values; xv = d.header.modelVersion
                } else {
                    let d = try decode(part, shapes: config.expertShapes, kinds: [.expertWeights], decompressor: decompressor)
                    guard d.header.expertId == UInt32(i - 1) else { throw ServerError.checkpoint("part \(i) is not expert \(i - 1)") }
                    experts.append(d.values); ev.append(d.header.modelVersion)
                }
            } catch let e as ProtocolError {
                throw ServerError.checkpoint("part \(i): \(e.message)")
            }
        }
        return (GlobalModel(config: config, extractor: extractor, experts: experts, extractorVersion: xv, expertVersions: ev), frame.round)
    }
}
