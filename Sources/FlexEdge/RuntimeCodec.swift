import FlexModel
import FlexTensor
import FlexWire

/// What the runtime does with containers, shared by the agent (over the network) and the memory
/// profiler (locally): decode downloads into the cache and the extractor, encode deltas into a report.
extension EdgeRuntime {
    /// Verifies and decodes the container in the download buffer into `destination`.
    public func decodeContainer(bodyLength: Int, kind: PartKind, expert: Int?, shapes: [Shape],
                         into destination: UnsafeMutableRawBufferPointer) throws(EdgeError) {
        let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(download)[0..<bodyLength])
        let header: ContainerHeader
        do throws(WireError) {
            header = try Container.parseHeader(bytes)
        } catch {
            throw .protocolViolation("bad container from the server: \(error.message)")
        }
        if header.kind != kind || header.expertId.map({ Int($0) }) != expert || header.tensors.map({ $0.shape }) != shapes
            || header.tensors.contains(where: { $0.dtype != plan.storage }) {
            throw .protocolViolation("the server sent a container of another kind, expert, shape or dtype")
        }
        do throws(WireError) {
            try Container.decodePayload(bytes, header: header, maxPayload: destination.count, decompressor: decompressor, into: destination)
        } catch {
            throw .protocolViolation("bad container from the server: \(error.message)")
        }
    }

    /// Decodes the extractor container in the download buffer (through the encode scratch) into the
    /// trainer's extractor, recorded as the downloaded value.
    public func loadExtractor(containerBytes: Int) throws(EdgeError) {
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
    }

    /// Dequantises a cached expert (checksum verified first) into trainer slot `trainerSlot`.
    public func loadExpert(trainerSlot: Int, cacheSlot: Int, expert: Int) throws(EdgeError) {
        let loaded: Bool? = cache.withExpert(slot: cacheSlot) { views in
            for (p, v) in zip(trainer.experts[trainerSlot].parameters, views) {
                Quantizer.dequantize(v, into: UnsafeMutableBufferPointer(start: p.value.ptr, count: p.count))
                p.markDownloaded()
            }
            return true
        }
        if loaded == nil { throw .protocolViolation("cached expert \(expert) failed its checksum; it was dropped") }
    }

    /// Writes the report body (docs/PROTOCOL.md) into the report buffer; returns its length.
    public func writeReport(fields: SmallMessage, extractorVersion: UInt64, experts: [Int],
                            versions: [UInt64], random: inout FlexRandom) throws(EdgeError) -> Int {
        let out = report
        var offset = 0
        func put(_ value: Int, _ bytes: Int) {
            for i in 0..<bytes { out[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
            offset += bytes
        }
        for b in ReportFrame.magic { out[offset] = b; offset += 1 }
        put(Int(ReportFrame.version), 2)
        put(0, 2)
        let text = fields.encoded()
        put(text.count, 4)
        for b in text { out[offset] = b; offset += 1 }
        put(1 + experts.count, 4)
        let parts: [(PartKind, UInt32?, UInt64, [Parameter])] =
            [(.extractorDelta, nil, extractorVersion, trainer.extractor.parameters)]
            + experts.enumerated().map { (.expertDelta, UInt32($0.element), versions[$0.offset], trainer.experts[$0.offset].parameters) }
        for (kind, expert, version, parameters) in parts {
            let lengthAt = offset
            offset += 4
            let size = try encodeDelta(kind: kind, expert: expert, version: version, parameters: parameters,
                                       into: UnsafeMutableRawBufferPointer(rebasing: out[offset...]), random: &random)
            offset = lengthAt
            put(size, 4)
            offset += size
        }
        return offset
    }

    /// Quantises (stochastic rounding: unbiased deltas) and encodes one part's delta.
    func encodeDelta(kind: PartKind, expert: UInt32?, version: UInt64, parameters: [Parameter],
                     into out: UnsafeMutableRawBufferPointer, random: inout FlexRandom) throws(EdgeError) -> Int {
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
        do throws(WireError) {
            return try Container.encode(kind: kind, expertId: expert, modelVersion: version, tensors: entries,
                                        payload: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(encodeScratch)[0..<offset]),
                                        codec: .zstd, compressor: compressor, scratch: scratch, into: out)
        } catch {
            throw .protocolViolation("encoding an update: \(error.message)")
        }
    }

}
