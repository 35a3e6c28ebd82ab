/// The one place FlexMoE's binary formats read and write integers: a bounds-checked little-endian
/// reader and writer over a caller's buffer. Every format (containers, report and checkpoint frames,
/// shard files) goes through these two, so a length is checked in one place and a read past the end
/// is a typed `WireError.truncated`, never a crash. Embedded-clean: no allocation, no existentials.
///
/// A read or write that fails leaves the offset where it was, so `offset` then names the byte at
/// which the input ran short.

/// Reads little-endian integers and byte ranges from `base`, front to back.
public struct ByteReader {
    /// The bytes being read.
    public let base: UnsafeRawBufferPointer
    /// The next byte to read.
    public private(set) var offset: Int

    public init(_ base: UnsafeRawBufferPointer, offset: Int = 0) {
        precondition(offset >= 0 && offset <= base.count, "reader offset outside its buffer")
        self.base = base
        self.offset = offset
    }

    /// Bytes not read yet.
    public var remaining: Int { base.count - offset }

    /// Checks that `count` more bytes exist, and returns where they start.
    @inline(__always)
    mutating func advance(_ count: Int) throws(WireError) -> Int {
        if count < 0 { throw .badField("negative length \(count)") }
        if count > remaining {
            // Saturating: a huge declared length must not overflow the error's own arithmetic.
            let needed = count > Int.max - offset ? Int.max : offset + count
            throw .truncated(needed: needed, have: base.count)
        }
        let at = offset
        offset += count
        return at
    }

    public mutating func u8() throws(WireError) -> UInt8 {
        base.load(fromByteOffset: try advance(1), as: UInt8.self)
    }

    public mutating func u16() throws(WireError) -> UInt16 {
        UInt16(littleEndian: base.loadUnaligned(fromByteOffset: try advance(2), as: UInt16.self))
    }

    public mutating func u32() throws(WireError) -> UInt32 {
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: try advance(4), as: UInt32.self))
    }

    public mutating func u64() throws(WireError) -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: try advance(8), as: UInt64.self))
    }

    /// Skips `count` bytes and returns their range in `base`.
    public mutating func range(_ count: Int) throws(WireError) -> Range<Int> {
        let at = try advance(count)
        return at..<(at + count)
    }

    /// Skips `count` bytes and returns them, rebased (indices from 0).
    public mutating func bytes(_ count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: base[try range(count)])
    }

    /// Reads a u32 length and skips that many bytes; returns their range (a length-prefixed record,
    /// as in report and checkpoint frames).
    public mutating func lengthPrefixed() throws(WireError) -> Range<Int> {
        let start = offset
        let length = Int(try u32())
        do throws(WireError) { return try range(length) } catch {
            offset = start
            throw error
        }
    }

    /// Reads `magic.count` bytes and throws `badMagic` unless they are `magic`.
    public mutating func expectMagic(_ magic: [UInt8]) throws(WireError) {
        let at = try advance(magic.count)
        for i in 0..<magic.count where base[at + i] != magic[i] {
            offset = at
            throw .badMagic
        }
    }

    /// Throws `trailingBytes` unless every byte has been read.
    public func expectEnd() throws(WireError) {
        if remaining != 0 { throw .trailingBytes(remaining) }
    }
}

/// Writes little-endian integers and bytes into `base`, front to back; `reserve` leaves room for a
/// field (a length, a hash) that is known only later and back-patched with `set…(at:)`.
public struct ByteWriter {
    /// The buffer being written.
    public let base: UnsafeMutableRawBufferPointer
    /// The next byte to write; the bytes before it are written.
    public private(set) var offset: Int

    public init(_ base: UnsafeMutableRawBufferPointer, offset: Int = 0) {
        precondition(offset >= 0 && offset <= base.count, "writer offset outside its buffer")
        self.base = base
        self.offset = offset
    }

    /// Room left.
    public var remaining: Int { base.count - offset }

    /// The unwritten rest of the buffer, for a callee that writes in place; follow with `advance`.
    public var space: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: base[offset...]) }

    /// Checks that `count` more bytes fit, moves past them and returns where they start. Use after
    /// writing `count` bytes into `space` directly.
    @discardableResult
    public mutating func advance(_ count: Int) throws(WireError) -> Int {
        if count < 0 { throw .badField("negative length \(count)") }
        if count > remaining {
            let needed = count > Int.max - offset ? Int.max : offset + count
            throw .truncated(needed: needed, have: base.count)
        }
        let at = offset
        offset += count
        return at
    }

    public mutating func u8(_ value: UInt8) throws(WireError) {
        base.storeBytes(of: value, toByteOffset: try advance(1), as: UInt8.self)
    }

    public mutating func u16(_ value: UInt16) throws(WireError) {
        base.storeBytes(of: value.littleEndian, toByteOffset: try advance(2), as: UInt16.self)
    }

    public mutating func u32(_ value: UInt32) throws(WireError) {
        base.storeBytes(of: value.littleEndian, toByteOffset: try advance(4), as: UInt32.self)
    }

    public mutating func u64(_ value: UInt64) throws(WireError) {
        base.storeBytes(of: value.littleEndian, toByteOffset: try advance(8), as: UInt64.self)
    }

    public mutating func bytes(_ source: UnsafeRawBufferPointer) throws(WireError) {
        let at = try advance(source.count)
        if source.count > 0 { (base.baseAddress! + at).copyMemory(from: source.baseAddress!, byteCount: source.count) }
    }

    public mutating func bytes(_ source: [UInt8]) throws(WireError) {
        let at = try advance(source.count)
        for (i, b) in source.enumerated() { base[at + i] = b }
    }

    /// Copies `source` to the start of `space` and returns its length: the part callback of a frame
    /// writer when the parts are already encoded (host code building a frame from arrays).
    public static func copy(_ source: [UInt8], into space: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var w = ByteWriter(space)
        try w.bytes(source)
        return w.offset
    }

    /// Writes `count` zero bytes and returns where they start: room for a field to back-patch.
    @discardableResult
    public mutating func reserve(_ count: Int) throws(WireError) -> Int {
        let at = try advance(count)
        for i in at..<(at + count) { base[i] = 0 }
        return at
    }

    /// Back-patches a field inside the written part (`at + size <= offset`).
    public func setU32(_ value: UInt32, at: Int) {
        precondition(at >= 0 && at <= offset - 4, "back-patch outside the written bytes")
        base.storeBytes(of: value.littleEndian, toByteOffset: at, as: UInt32.self)
    }

    public func setU64(_ value: UInt64, at: Int) {
        precondition(at >= 0 && at <= offset - 8, "back-patch outside the written bytes")
        base.storeBytes(of: value.littleEndian, toByteOffset: at, as: UInt64.self)
    }

    /// Writes a length-prefixed record in place: reserves the u32 length, lets `body` write into the
    /// rest of the buffer and return how many bytes it wrote, then writes the length before them.
    public mutating func lengthPrefixed(_ body: (UnsafeMutableRawBufferPointer) throws(WireError) -> Int) throws(WireError) {
        let lengthAt = try reserve(4)
        let length: Int
        do throws(WireError) {
            length = try body(space)
            if length > Int(UInt32.max) { throw WireError.tooLarge(declared: length, limit: Int(UInt32.max)) }
            try advance(length)
        } catch {
            offset = lengthAt
            throw error
        }
        setU32(UInt32(length), at: lengthAt)
    }
}

// MARK: - host convenience: writing into a new array

extension ByteWriter {
    /// Runs `body` with a writer over a new zeroed array of `capacity` bytes and returns the bytes it
    /// wrote. The encoding logic stays in `body`; this only owns the memory.
    public static func array(capacity: Int, _ body: (inout ByteWriter) throws(WireError) -> Void) throws(WireError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: capacity)
        var written = 0
        let result = out.withUnsafeMutableBytes { raw in
            Result { () throws(WireError) in
                var writer = ByteWriter(raw)
                try body(&writer)
                written = writer.offset
            }
        }
        try result.get()
        out.removeLast(capacity - written)
        return out
    }
}

extension ByteReader {
    /// Runs `body` with a reader over `bytes` (Array's closures rethrow untyped errors; this keeps
    /// the error typed).
    public static func reading<T>(_ bytes: [UInt8], _ body: (inout ByteReader) throws(WireError) -> T) throws(WireError) -> T {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(WireError) -> T in
                var reader = ByteReader(raw)
                return try body(&reader)
            }
        }.get()
    }
}
