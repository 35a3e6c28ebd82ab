import FlexTensor

/// What a container carries (docs/FORMAT.md, "Kinds").
public enum PartKind: UInt8, Sendable, CaseIterable {
    case expertWeights = 1, extractorWeights = 2, gateWeights = 3
    case expertDelta = 4, extractorDelta = 5, gateDelta = 6

    public var isDelta: Bool { rawValue >= 4 }
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

        let out = output.baseAddress!
        for i in 0..<headerSize { out.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        out.storeBytes(of: magic.0, toByteOffset: 0, as: UInt8.self)
        out.storeBytes(of: magic.1, toByteOffset: 1, as: UInt8.self)
        out.storeBytes(of: magic.2, toByteOffset: 2, as: UInt8.self)
        out.storeBytes(of: magic.3, toByteOffset: 3, as: UInt8.self)
        out.storeBytes(of: formatVersion.littleEndian, toByteOffset: 4, as: UInt16.self)
        out.storeBytes(of: kind.rawValue, toByteOffset: 6, as: UInt8.self)
        out.storeBytes(of: codec.rawValue, toByteOffset: 7, as: UInt8.self)
        out.storeBytes(of: UInt16(tensors.count).littleEndian, toByteOffset: 8, as: UInt16.self)
        out.storeBytes(of: (expertId ?? noExpert).littleEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: modelVersion.littleEndian, toByteOffset: 16, as: UInt64.self)
        out.storeBytes(of: UInt64(payload.count).littleEndian, toByteOffset: 24, as: UInt64.self)
        out.storeBytes(of: UInt64(stored).littleEndian, toByteOffset: 32, as: UInt64.self)
        out.storeBytes(of: payloadHash.littleEndian, toByteOffset: 40, as: UInt64.self)
        for (i, t) in tensors.enumerated() {
            let e = headerSize + i * entrySize
            for j in 0..<entrySize { out.storeBytes(of: 0, toByteOffset: e + j, as: UInt8.self) }
            out.storeBytes(of: t.dtype.rawValue, toByteOffset: e, as: UInt8.self)
            out.storeBytes(of: UInt8(t.shuffled ? 1 : 0), toByteOffset: e + 1, as: UInt8.self)
            let block: UInt16 = t.dtype == .int8Block ? UInt16(DType.blockSize) : 0
            out.storeBytes(of: block.littleEndian, toByteOffset: e + 2, as: UInt16.self)
            out.storeBytes(of: UInt32(t.shape.rows).littleEndian, toByteOffset: e + 4, as: UInt32.self)
            out.storeBytes(of: UInt32(t.shape.cols).littleEndian, toByteOffset: e + 8, as: UInt32.self)
        }
        let headerHash = XXHash64.hash(UnsafeRawBufferPointer(start: out, count: 56),
                                       UnsafeRawBufferPointer(start: out + headerSize, count: tensors.count * entrySize))
        out.storeBytes(of: headerHash.littleEndian, toByteOffset: 56, as: UInt64.self)
        return directoryEnd + stored
    }

    // MARK: decoding

    /// Parses and verifies the header and directory of a complete container held in `bytes`
    /// (exactly one container, nothing after it). Checks every field before trusting any size.
    public static func parseHeader(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ContainerHeader {
        if bytes.count < headerSize { throw .truncated(needed: headerSize, have: bytes.count) }
        func u8(_ o: Int) -> UInt8 { bytes.load(fromByteOffset: o, as: UInt8.self) }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }

        if u8(0) != magic.0 || u8(1) != magic.1 || u8(2) != magic.2 || u8(3) != magic.3 { throw .badMagic }
        let version = u16(4)
        if version != formatVersion { throw .unsupportedVersion(version) }
        let count = Int(u16(8))
        if count < 1 || count > maxTensors { throw .badField("tensor count \(count)") }
        let directoryEnd = headerSize + count * entrySize
        if bytes.count < directoryEnd { throw .truncated(needed: directoryEnd, have: bytes.count) }
        let headerHash = XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<56]),
                                       UnsafeRawBufferPointer(rebasing: bytes[headerSize..<directoryEnd]))
        if headerHash != u64(56) { throw .headerChecksum }

        guard let kind = PartKind(rawValue: u8(6)) else { throw .badField("kind \(u8(6))") }
        guard let codec = Codec(rawValue: u8(7)) else { throw .badField("codec \(u8(7))") }
        if u16(10) != 0 || u64(48) != 0 { throw .badField("reserved bits set") }
        let rawExpert = u32(12)
        if kind.isExpert == (rawExpert == noExpert) { throw .badField("expert id \(rawExpert) for kind \(kind.rawValue)") }

        var tensors: [TensorEntry] = []
        tensors.reserveCapacity(count)
        var total = 0
        for i in 0..<count {
            let e = headerSize + i * entrySize
            guard let dtype = DType(rawValue: u8(e)) else { throw .badField("tensor \(i): dtype \(u8(e))") }
            let filter = u8(e + 1)
            if filter > 1 { throw .badField("tensor \(i): filter \(filter)") }
            if filter == 1 && dtype.elementBytes == 1 { throw .badField("tensor \(i): shuffle of 1-byte values") }
            let expectedBlock: UInt16 = dtype == .int8Block ? UInt16(DType.blockSize) : 0
            if u16(e + 2) != expectedBlock { throw .badField("tensor \(i): block size \(u16(e + 2))") }
            let rows = Int(u32(e + 4)), cols = Int(u32(e + 8))
            if rows < 1 || cols < 1 || rows > maxDimension || cols > maxDimension {
                throw .badField("tensor \(i): shape \(rows)x\(cols)")
            }
            if u32(e + 12) != 0 { throw .badField("tensor \(i): reserved bits set") }
            let entry = TensorEntry(dtype: dtype, shape: Shape(rows: rows, cols: cols), shuffled: filter == 1)
            total += entry.payloadBytes
            tensors.append(entry)
        }
        let payloadSize = u64(24), storedSize = u64(32)
        if payloadSize != UInt64(total) { throw .sizeMismatch("header says \(payloadSize) payload bytes, tensors need \(total)") }
        if storedSize > UInt64(Int.max - directoryEnd) { throw .tooLarge(declared: Int.max, limit: bytes.count) }
        let end = directoryEnd + Int(storedSize)
        if bytes.count < end { throw .truncated(needed: end, have: bytes.count) }
        if bytes.count > end { throw .trailingBytes(bytes.count - end) }
        if codec == .stored && storedSize != payloadSize {
            throw .sizeMismatch("stored payload of \(storedSize) bytes, declared \(payloadSize)")
        }
        return ContainerHeader(kind: kind, codec: codec, expertId: kind.isExpert ? rawExpert : nil,
                               modelVersion: u64(16), tensors: tensors, payloadSize: total,
                               storedSize: Int(storedSize), payloadHash: u64(40))
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
