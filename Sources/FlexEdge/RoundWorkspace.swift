import FlexModel
import FlexTensor
import FlexWire

/// The trainer and the buffers one local round needs: the trainer (extractor, gate columns, expert
/// working copies with gradients, momentum and downloaded copies, activations), the network buffers
/// (one downloaded container, a report body, the encode and delta scratch) and the zstd contexts.
/// A board has one; the simulator has one per worker thread and lends it to each device in turn.
public final class RoundWorkspace {
    public let plan: DevicePlan
    /// The arena everything here lives in (kept alive as long as this is).
    public let arena: Arena
    public let trainer: LocalTrainer<MLPExtractor>
    public let download: UnsafeMutableRawBufferPointer
    public let report: UnsafeMutableRawBufferPointer
    public let encodeScratch: UnsafeMutableRawBufferPointer
    public let deltaScratch: UnsafeMutablePointer<Float>
    public let compressor: ZstdCompressor
    public let decompressor: ZstdDecompressor
    /// The extractor version the trainer's downloaded copy holds (nil: none yet).
    public var extractorVersion: UInt64?

    public init(plan: DevicePlan, arena: Arena) throws(EdgeError) {
        self.plan = plan
        self.arena = arena
        let c = plan.config
        do throws(ArenaError) {
            trainer = LocalTrainer(config: c, capacity: plan.kc, maxBatch: plan.batch, memory: .arena(arena))
            let sizes = DevicePlan.networkBuffers(c, storage: plan.storage, update: plan.updateDType, kc: plan.kc)
            func buffer(_ bytes: Int) throws(ArenaError) -> UnsafeMutableRawBufferPointer {
                let p = try arena.allocate(UInt8.self, count: bytes, component: MemoryComponent.network.rawValue)
                return UnsafeMutableRawBufferPointer(start: p, count: bytes)
            }
            download = try buffer(sizes[0])
            report = try buffer(sizes[1])
            encodeScratch = try buffer(sizes[2])
            deltaScratch = try arena.allocate(Float.self, count: sizes[3] / 4, component: MemoryComponent.network.rawValue)
            compressor = try ZstdCompressor(level: 3, maxInput: DevicePlan.largestPart(c, [plan.storage, plan.updateDType]), arena: arena)
            decompressor = try ZstdDecompressor(arena: arena)
        } catch {
            throw .arena(error)
        }
    }

    /// Verifies and decodes the container of `bodyLength` bytes in the download buffer into `destination`
    /// (its tensors must be in `dtype`, by default the device's storage dtype).
    public func decodeContainer(bodyLength: Int, kind: PartKind, expert: Int?, shapes: [Shape], dtype: DType? = nil,
                                into destination: UnsafeMutableRawBufferPointer) throws(EdgeError) {
        let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(download)[0..<bodyLength])
        let header: ContainerHeader
        do throws(WireError) {
            header = try Container.parseHeader(bytes)
        } catch {
            throw .protocolViolation("bad container from the server: \(error.message)")
        }
        if header.kind != kind || header.expertId.map({ Int($0) }) != expert || header.tensors.map({ $0.shape }) != shapes
            || header.tensors.contains(where: { $0.dtype != (dtype ?? plan.storage) }) {
            throw .protocolViolation("the server sent a container of another kind, expert, shape or dtype")
        }
        do throws(WireError) {
            try Container.decodePayload(bytes, header: header, maxPayload: destination.count, decompressor: decompressor, into: destination)
        } catch {
            throw .protocolViolation("bad container from the server: \(error.message)")
        }
    }

    /// Decodes the extractor container in the download buffer (through the encode scratch) into the
    /// trainer's extractor, recorded as the downloaded value of `version`.
    public func loadExtractor(containerBytes: Int, version: UInt64) throws(EdgeError) {
        let shapes = plan.config.extractorShapes
        try decodeContainer(bodyLength: containerBytes, kind: .extractorWeights, expert: nil, shapes: shapes, into: encodeScratch)
        var offset = 0
        for (p, shape) in zip(trainer.extractor.parameters, shapes) {
            let n = plan.storage.payloadBytes(shape)
            let view = QuantizedMatrix(dtype: plan.storage, shape: shape,
                                       bytes: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(encodeScratch)[offset..<(offset + n)]))
            Quantizer.dequantize(view, into: UnsafeMutableBufferPointer(start: p.value.ptr, count: p.count))
            p.markDownloaded()
            offset += n
        }
        extractorVersion = version
    }

    /// Writes the device's feature statistics (`POST /v1/stats`, a `featureStats` container) into the
    /// report buffer; returns its length.
    public func writeFeatureStats(of device: DeviceState) throws(EdgeError) -> Int {
        let d = plan.config.inputDim
        let shape = Shape(rows: 3, cols: d)
        let payload = encodeScratch.baseAddress!.assumingMemoryBound(to: Float.self)
        device.writeFeatureStats(into: payload)
        let bytes = 12 * d
        do throws(WireError) {
            return try Container.encode(kind: .featureStats, expertId: nil, modelVersion: 0,
                                        tensors: [TensorEntry(dtype: .fp32, shape: shape)],
                                        payload: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(encodeScratch)[0..<bytes]),
                                        codec: .zstd, compressor: compressor,
                                        scratch: UnsafeMutableRawBufferPointer(rebasing: encodeScratch[bytes...]), into: report)
        } catch {
            throw .protocolViolation("encoding the feature statistics: \(error.message)")
        }
    }

    /// Decodes the server's `normalization` container in the download buffer and standardises the
    /// device's data with it (once).
    public func applyNormalization(containerBytes: Int, to device: DeviceState) throws(EdgeError) {
        let d = plan.config.inputDim
        try decodeContainer(bodyLength: containerBytes, kind: .normalization, expert: nil, shapes: [Shape(rows: 2, cols: d)],
                            dtype: .fp32, into: UnsafeMutableRawBufferPointer(rebasing: encodeScratch[0..<(8 * d)]))
        let values = encodeScratch.baseAddress!.assumingMemoryBound(to: Float.self)
        for j in 0..<d where !(values[j].isFinite && values[d + j].isFinite && values[d + j] > 0) {
            throw .protocolViolation("the server's normalization of feature \(j) is not usable")
        }
        device.standardise(mean: values, std: values + d)
    }

    /// Dequantises a cached expert (checksum verified first) into trainer slot `trainerSlot`.
    public func loadExpert(trainerSlot: Int, from cache: ExpertCache, slot cacheSlot: Int, expert: Int) throws(EdgeError) {
        let loaded: Bool? = cache.withExpert(slot: cacheSlot) { views in
            for (p, v) in zip(trainer.experts[trainerSlot].parameters, views) {
                Quantizer.dequantize(v, into: UnsafeMutableBufferPointer(start: p.value.ptr, count: p.count))
                p.markDownloaded()
            }
            return true
        }
        if loaded == nil { throw .protocolViolation("cached expert \(expert) failed its checksum; it was dropped") }
    }

    /// Writes the report body (docs/PROTOCOL.md) into the report buffer through FlexWire's one
    /// report writer: the fields, then the delta of the extractor and of each assigned expert.
    /// Returns its length.
    public func writeReport(fields: SmallMessage, extractorVersion: UInt64, experts: [Int],
                            versions: [UInt64], random: inout FlexRandom) throws(EdgeError) -> Int {
        do throws(WireError) {
            return try ReportFrame.write(fields: fields, containerCount: 1 + experts.count, into: report) {
                (part, space) throws(WireError) -> Int in
                part == 0
                    ? try encodeDelta(kind: .extractorDelta, expert: nil, version: extractorVersion,
                                      parameters: trainer.extractor.parameters, into: space, random: &random)
                    : try encodeDelta(kind: .expertDelta, expert: UInt32(experts[part - 1]), version: versions[part - 1],
                                      parameters: trainer.experts[part - 1].parameters, into: space, random: &random)
            }
        } catch {
            throw .protocolViolation("encoding the report: \(error.message)")
        }
    }

    /// Quantises (stochastic rounding: unbiased deltas) and encodes one part's delta.
    func encodeDelta(kind: PartKind, expert: UInt32?, version: UInt64, parameters: [Parameter],
                     into out: UnsafeMutableRawBufferPointer, random: inout FlexRandom) throws(WireError) -> Int {
        let dtype = plan.updateDType
        var entries: [TensorEntry] = []
        var offset = 0
        for p in parameters {
            let delta = Tensor<Float>(shape: p.shape, borrowing: deltaScratch)
            p.delta(into: delta)
            let q = QuantizedTensor(dtype: dtype, shape: p.shape, borrowing: encodeScratch.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset)
            Quantizer.quantizeStochastic(delta, into: q, random: &random)
            entries.append(TensorEntry.standard(dtype: dtype, shape: p.shape))
            offset += q.byteCount
        }
        let scratch = UnsafeMutableRawBufferPointer(rebasing: encodeScratch[offset...])
        return try Container.encode(kind: kind, expertId: expert, modelVersion: version, tensors: entries,
                                    payload: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(encodeScratch)[0..<offset]),
                                    codec: .zstd, compressor: compressor, scratch: scratch, into: out)
    }
}
