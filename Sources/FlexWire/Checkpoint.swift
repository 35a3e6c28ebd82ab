/// The server's checkpoint file, `ckpt-NNNNNNNN.fxck` (docs/FORMAT.md, "Checkpoint frame"): "FXCK",
/// u16 version 1, u16 0, u64 round, u32 count, then count × (u32 length, container). Little-endian.
/// Which containers a checkpoint holds (the extractor, then every expert) is the server's business;
/// the frame only checks its own lengths. One writer (`write`, and `encode` through it) and one reader.
public enum CheckpointFrame {
    public static let magic: [UInt8] = [0x46, 0x58, 0x43, 0x4B]  // "FXCK"
    public static let version: UInt16 = 1
    /// Bytes before the first part: magic, version, reserved, round, count.
    public static let headerBytes = 20

    /// Writes a checkpoint in place: `part(index, space)` writes part `index` at the start of `space`
    /// and returns its length; the frame writes the u32 length before it.
    public static func write(
        round: UInt64, partCount: Int, to w: inout ByteWriter,
        part: (_ index: Int, _ space: UnsafeMutableRawBufferPointer) throws(WireError) -> Int
    ) throws(WireError) {
        if partCount < 0 || partCount > Int(UInt32.max) { throw .badField("\(partCount) parts") }
        try w.bytes(magic)
        try w.u16(version)
        try w.u16(0)
        try w.u64(round)
        try w.u32(UInt32(partCount))
        for i in 0..<partCount {
            try w.lengthPrefixed { space throws(WireError) in try part(i, space) }
        }
    }

    /// A checkpoint of `parts` (encoded containers) in a new array (host code).
    public static func encode(round: UInt64, parts: [[UInt8]]) -> [UInt8] {
        let size = parts.reduce(headerBytes) { $0 + 4 + $1.count }
        do throws(WireError) {
            return try ByteWriter.array(capacity: size) { w throws(WireError) in
                try write(round: round, partCount: parts.count, to: &w) { i, space throws(WireError) in
                    try ByteWriter.copy(parts[i], into: space)
                }
            }
        } catch {
            preconditionFailure("CheckpointFrame.encode: \(error.message)")  // the array is sized exactly
        }
    }

    /// Reads a checkpoint's round and the byte ranges of its parts, checking every length; the parts
    /// themselves are decoded and verified by the caller. Errors: `badMagic`, `unsupportedVersion`,
    /// `badField` (reserved bits), `truncated`, `trailingBytes`.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (round: UInt64, parts: [Range<Int>]) {
        var r = ByteReader(bytes)
        try r.expectMagic(magic)
        let v = try r.u16()
        if v != version { throw .unsupportedVersion(v) }
        if try r.u16() != 0 { throw .badField("reserved bits set") }
        let round = try r.u64()
        let count = Int(try r.u32())
        // Each part takes at least its 4-byte length: refuse a count the bytes cannot hold before
        // reserving anything for it.
        if count > r.remaining / 4 { throw .truncated(needed: r.offset + 4 * count, have: bytes.count) }
        var parts: [Range<Int>] = []
        parts.reserveCapacity(count)
        for _ in 0..<count { parts.append(try r.lengthPrefixed()) }
        try r.expectEnd()
        return (round, parts)
    }

    /// What a checkpoint error means, for the server's messages ("not a checkpoint (bad magic)", ...).
    public static func describe(_ error: WireError) -> String {
        switch error {
        case .badMagic: return "not a checkpoint (bad magic)"
        case .unsupportedVersion(let v): return "unsupported checkpoint version \(v)"
        case .badField: return "unsupported checkpoint version (reserved bits set)"
        case .truncated(let needed, let have): return "truncated: needs \(needed) bytes, has \(have)"
        case .trailingBytes(let n): return "trailing bytes (\(n))"
        default: return error.message
        }
    }
}
