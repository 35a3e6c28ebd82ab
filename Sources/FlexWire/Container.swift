import FlexTensor

/// What a container carries (docs/FORMAT.md, "Kinds").
public enum PartKind: UInt8, Sendable, CaseIterable {
    case expertWeights = 1, extractorWeights = 2, gateWeights = 3
    case expertDelta = 4, extractorDelta = 5, gateDelta = 6
    /// Protocol 2, federated standardisation: a device's feature statistics (3 x d: n, mean, std) and
    /// the pooled normalization the server hands out (2 x d: mean, std).
    case featureStats = 7, normalization = 8

    public var isDelta: Bool { self == .expertDelta || self == .extractorDelta || self == .gateDelta }
    public var isExpert: Bool { self == .expertWeights || self == .expertDelta }
}

public enum Codec: UInt8, Sendable {
    case stored = 0
    case zstd = 1
}

/// One tensor of a container's directory.
public struct TensorEntry: Equatable, Sendable {
    public var dtype: DType
    public var shape: Shape
    /// Whether the value plane is stored byte-shuffled (docs/FORMAT.md, "Byte-shuffle filter").
    public var shuffled: Bool

    public init(dtype: DType, shape: Shape, shuffled: Bool = false) {
        self.dtype = dtype
        self.shape = shape
        self.shuffled = shuffled && dtype.elementBytes > 1
    }

    public var payloadBytes: Int { dtype.payloadBytes(shape) }

    /// The entry FlexMoE writes by default: byte-shuffled for fp32 only, where it measurably helps
    /// zstd (docs/FORMAT.md, "Compression measurements"); for fp16 it gains nothing.
    public static func standard(dtype: DType, shape: Shape) -> TensorEntry {
        TensorEntry(dtype: dtype, shape: shape, shuffled: dtype == .fp32)
    }
}

/// A parsed and verified container header with its directory.
public struct ContainerHeader: Equatable, Sendable {
    public var kind: PartKind
    public var codec: Codec
    /// Expert index, or nil for the extractor and the gate.
    public var expertId: UInt32?
    public var modelVersion: UInt64
    public var tensors: [TensorEntry]
    public var payloadSize: Int
    public var storedSize: Int
    public var payloadHash: UInt64

    /// Bytes of the whole container (header, directory, stored payload).
    public var containerSize: Int { Container.headerSize + tensors.count * Container.entrySize + storedSize }
}

/// Encoder and decoder for the FlexWire container, version 1 (docs/FORMAT.md).
public enum Container {
    public static let magic: (UInt8, UInt8, UInt8, UInt8) = (0x46, 0x58, 0x4D, 0x57)  // "FXMW"
    public static let formatVersion: UInt16 = 1
    public static let headerSize = 64
    public static let entrySize = 16
    public static let maxTensors = 16
    public static let maxDimension = 1 << 24
    static let noExpert: UInt32 = 0xFFFF_FFFF

    /// Bytes an encoded container can take at most, for sizing output buffers.
    public static func maxEncodedSize(payloadBytes: Int, tensorCount: Int) -> Int {
        headerSize + tensorCount * entrySize + ZstdCompressor.bound(payloadBytes)
    }

    // MARK: encoding

    /// Encodes `payload` (the tensors' wire-layout bytes in directory order, unshuffled) into `output`
    /// and returns the container's size. `scratch` must hold the payload when any tensor is shuffled
    /// or the codec is zstd.
    public static func encode(
        kind: PartKind, expertId: UInt32?, modelVersion: UInt64, tensors: [TensorEntry],
        payload: UnsafeRawBufferPointer, codec: Codec, compressor: borrowing ZstdCompressor,
        scratch: UnsafeMutableRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        if tensors.isEmpty || tensors.count > maxTensors { throw .badField("tensor count \(tensors.count)") }
        if kind.isExpert != (expertId != nil) { throw .badField("expert id must be given exactly for expert kinds") }
        var total = 0
        for t in tensors {
            if t.shape.rows < 1 || t.shape.cols < 1 || t.shape.rows > maxDimension || t.shape.cols > maxDimension {
                throw .badField("shape \(t.shape.rows)x\(t.shape.cols)")
            }
            total += t.payloadBytes
        }
        if total != payload.count { throw .sizeMismatch("tensors need \(total) bytes, payload has \(payload.count)") }
        let directoryEnd = headerSize + tensors.count * entrySize
        if output.count < directoryEnd { throw .truncated(needed: directoryEnd, have: output.count) }

        // The stored form of the payload: shuffled value planes where asked.
        var body = payload
        if tensors.contains(where: { $0.shuffled }) {
            if scratch.count < payload.count { throw .truncated(needed: payload.count, have: scratch.count) }
            var offset = 0
            for t in tensors {
                let scales = t.dtype.scaleBytes(t.shape)
                let src = payload.baseAddress! + offset, dst = scratch.baseAddress! + offset
                dst.copyMemory(from: src, byteCount: scales)
                if t.shuffled {
                    ByteShuffle.shuffle(src + scales, into: dst + scales, count: t.shape.count, width: t.dtype.elementBytes)
                } else {
                    (dst + scales).copyMemory(from: src + scales, byteCount: t.payloadBytes - scales)
                }
                offset += t.payloadBytes
            }
            body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[0..<payload.count])
        }
        let payloadHash = XXHash64.hash(body)

        let stored: Int
        let region = UnsafeMutableRawBufferPointer(rebasing: output[directoryEnd...])
        switch codec {
        case .stored:
            if region.count < body.count { throw .truncated(needed: directoryEnd + body.count, have: output.count) }
            region.baseAddress!.copyMemory(from: body.baseAddress!, byteCount: body.count)
            stored = body.count
        case .zstd:
            stored = try compressor.compress(body, into: region)
        }

        var w = ByteWriter(UnsafeMutableRawBufferPointer(rebasing: output[0..<directoryEnd]))
        try w.bytes([magic.0, magic.1, magic.2, magic.3])
        try w.u16(formatVersion)
        try w.u8(kind.rawValue)
        try w.u8(codec.rawValue)
        try w.u16(UInt16(tensors.count))
        try w.u16(0)                                // flags
        try w.u32(expertId ?? noExpert)
        try w.u64(modelVersion)
        try w.u64(UInt64(payload.count))
        try w.u64(UInt64(stored))
        try w.u64(payloadHash)
        try w.u64(0)                                // reserved
        let headerHashAt = try w.reserve(8)
        for t in tensors {
            try w.u8(t.dtype.rawValue)
            try w.u8(t.shuffled ? 1 : 0)
            try w.u16(t.dtype == .int8Block ? UInt16(DType.blockSize) : 0)
            try w.u32(UInt32(t.shape.rows))
            try w.u32(UInt32(t.shape.cols))
            try w.u32(0)                            // reserved
        }
        let out = UnsafeRawBufferPointer(output)
        w.setU64(XXHash64.hash(UnsafeRawBufferPointer(rebasing: out[0..<headerHashAt]),
                               UnsafeRawBufferPointer(rebasing: out[headerSize..<directoryEnd])), at: headerHashAt)
        return directoryEnd + stored
    }

    // MARK: decoding

    /// Parses and verifies the header and directory of a complete container held in `bytes`
    /// (exactly one container, nothing after it). Checks every field before trusting any size.
    public static func parseHeader(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ContainerHeader {
        if bytes.count < headerSize { throw .truncated(needed: headerSize, have: bytes.count) }
        var r = ByteReader(bytes)
        try r.expectMagic([magic.0, magic.1, magic.2, magic.3])
        let version = try r.u16()
        if version != formatVersion { throw .unsupportedVersion(version) }
        let rawKind = try r.u8(), rawCodec = try r.u8()
        let count = Int(try r.u16())
        let flags = try r.u16()
        let rawExpert = try r.u32()
        let modelVersion = try r.u64(), payloadSize = try r.u64(), storedSize = try r.u64(), payloadHash = try r.u64()
        let reserved = try r.u64(), storedHeaderHash = try r.u64()

        if count < 1 || count > maxTensors { throw .badField("tensor count \(count)") }
        let directoryEnd = headerSize + count * entrySize
        if bytes.count < directoryEnd { throw .truncated(needed: directoryEnd, have: bytes.count) }
        let headerHash = XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<56]),
                                       UnsafeRawBufferPointer(rebasing: bytes[headerSize..<directoryEnd]))
        if headerHash != storedHeaderHash { throw .headerChecksum }

        guard let kind = PartKind(rawValue: rawKind) else { throw .badField("kind \(rawKind)") }
        guard let codec = Codec(rawValue: rawCodec) else { throw .badField("codec \(rawCodec)") }
        if flags != 0 || reserved != 0 { throw .badField("reserved bits set") }
        if kind.isExpert == (rawExpert == noExpert) { throw .badField("expert id \(rawExpert) for kind \(kind.rawValue)") }

        var tensors: [TensorEntry] = []
        tensors.reserveCapacity(count)
        var total = 0
        for i in 0..<count {
            let rawDType = try r.u8(), filter = try r.u8(), block = try r.u16()
            let rows = Int(try r.u32()), cols = Int(try r.u32()), entryReserved = try r.u32()
            guard let dtype = DType(rawValue: rawDType) else { throw .badField("tensor \(i): dtype \(rawDType)") }
            if filter > 1 { throw .badField("tensor \(i): filter \(filter)") }
            if filter == 1 && dtype.elementBytes == 1 { throw .badField("tensor \(i): shuffle of 1-byte values") }
            let expectedBlock: UInt16 = dtype == .int8Block ? UInt16(DType.blockSize) : 0
            if block != expectedBlock { throw .badField("tensor \(i): block size \(block)") }
            if rows < 1 || cols < 1 || rows > maxDimension || cols > maxDimension {
                throw .badField("tensor \(i): shape \(rows)x\(cols)")
            }
            if entryReserved != 0 { throw .badField("tensor \(i): reserved bits set") }
            let entry = TensorEntry(dtype: dtype, shape: Shape(rows: rows, cols: cols), shuffled: filter == 1)
            total += entry.payloadBytes
            tensors.append(entry)
        }
        if payloadSize != UInt64(total) { throw .sizeMismatch("header says \(payloadSize) payload bytes, tensors need \(total)") }
        if storedSize > UInt64(Int.max - directoryEnd) { throw .tooLarge(declared: Int.max, limit: bytes.count) }
        let end = directoryEnd + Int(storedSize)
        if bytes.count < end { throw .truncated(needed: end, have: bytes.count) }
        if bytes.count > end { throw .trailingBytes(bytes.count - end) }
        if codec == .stored && storedSize != payloadSize {
            throw .sizeMismatch("stored payload of \(storedSize) bytes, declared \(payloadSize)")
        }
        return ContainerHeader(kind: kind, codec: codec, expertId: kind.isExpert ? rawExpert : nil,
                               modelVersion: modelVersion, tensors: tensors, payloadSize: total,
                               storedSize: Int(storedSize), payloadHash: payloadHash)
    }

    /// Decodes the payload of a container whose header `parseHeader` returned, directly into
    /// `destination` (its first `header.payloadSize` bytes; no other payload-sized buffer is used).
    /// Refuses payloads above `maxPayload` or the destination's size before touching anything.
    /// On return the destination holds the tensors' wire layouts, unshuffled, checksum verified.
    public static func decodePayload(
        _ bytes: UnsafeRawBufferPointer, header: ContainerHeader, maxPayload: Int,
        decompressor: borrowing ZstdDecompressor, into destination: UnsafeMutableRawBufferPointer
    ) throws(WireError) {
        let limit = min(maxPayload, destination.count)
        if header.payloadSize > limit { throw .tooLarge(declared: header.payloadSize, limit: limit) }
        let start = headerSize + header.tensors.count * entrySize
        if bytes.count != start + header.storedSize { throw .truncated(needed: start + header.storedSize, have: bytes.count) }
        let stored = UnsafeRawBufferPointer(rebasing: bytes[start...])
        let out = UnsafeMutableRawBufferPointer(rebasing: destination[0..<header.payloadSize])
        switch header.codec {
        case .stored:
            out.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: header.payloadSize)
        case .zstd:
            try decompressor.decompress(stored, into: out)
        }
        if XXHash64.hash(UnsafeRawBufferPointer(out)) != header.payloadHash { throw .payloadChecksum }
        var offset = 0
        for t in header.tensors {
            if t.shuffled {
                let scales = t.dtype.scaleBytes(t.shape)
                ByteShuffle.unshuffleInPlace(out.baseAddress! + offset + scales, count: t.shape.count, width: t.dtype.elementBytes)
            }
            offset += t.payloadBytes
        }
    }
}

// MARK: - conveniences that allocate (host code, tests, tools)

extension Container {
    /// Encodes into a new array. `payload` holds the tensors' wire layouts in directory order.
    public static func encode(
        kind: PartKind, expertId: UInt32?, modelVersion: UInt64, tensors: [TensorEntry],
        payload: [UInt8], codec: Codec = .zstd, compressor: borrowing ZstdCompressor
    ) throws(WireError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: maxEncodedSize(payloadBytes: payload.count, tensorCount: tensors.count))
        var scratch = [UInt8](repeating: 0, count: payload.count)
        // Array's closures rethrow untyped errors; carry the typed error out through a Result.
        let result = payload.withUnsafeBytes { p in
            scratch.withUnsafeMutableBytes { s in
                output.withUnsafeMutableBytes { o in
                    Result { () throws(WireError) -> Int in
                        try encode(kind: kind, expertId: expertId, modelVersion: modelVersion, tensors: tensors,
                                   payload: p, codec: codec, compressor: compressor, scratch: s, into: o)
                    }
                }
            }
        }
        let size = try result.get()
        output.removeLast(output.count - size)
        return output
    }

    /// Parses, verifies and decodes a whole container into a new array of at most `maxPayload` bytes.
    public static func decode(_ container: [UInt8], maxPayload: Int, decompressor: borrowing ZstdDecompressor)
        throws(WireError) -> (header: ContainerHeader, payload: [UInt8])
    {
        let header = try container.withUnsafeBytes { b in
            Result { () throws(WireError) -> ContainerHeader in try parseHeader(b) }
        }.get()
        if header.payloadSize > maxPayload { throw .tooLarge(declared: header.payloadSize, limit: maxPayload) }
        var payload = [UInt8](repeating: 0, count: header.payloadSize)
        try container.withUnsafeBytes { b in
            payload.withUnsafeMutableBytes { d in
                Result { () throws(WireError) in
                    try decodePayload(b, header: header, maxPayload: maxPayload, decompressor: decompressor, into: d)
                }
            }
        }.get()
        return (header, payload)
    }
}
