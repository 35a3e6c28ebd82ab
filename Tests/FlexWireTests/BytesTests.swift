import FlexWire
import Testing

@Suite("ByteReader and ByteWriter")
struct BytesTests {
    /// magic "AB", u8, u16, u32, u64, a length-prefixed record of 3 bytes, then 2 raw bytes.
    static let sample: [UInt8] = [
        0x41, 0x42, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
        0x03, 0x00, 0x00, 0x00, 0xA1, 0xA2, 0xA3, 0xF1, 0xF2,
    ]

    func write(_ w: inout ByteWriter) throws(WireError) {
        try w.bytes([0x41, 0x42])
        try w.u8(0x01)
        try w.u16(0x0302)
        try w.u32(0x0706_0504)
        try w.u64(0x0F0E_0D0C_0B0A_0908)
        try w.lengthPrefixed { space throws(WireError) in
            var inner = ByteWriter(space)
            try inner.bytes([0xA1, 0xA2, 0xA3])
            return inner.offset
        }
        let at = try w.reserve(2)
        #expect(at == 24)
        w.base[at] = 0xF1
        w.base[at + 1] = 0xF2
    }

    struct Read: Equatable { var a: UInt8, b: UInt16, c: UInt32, d: UInt64, record: Range<Int>, tail: [UInt8] }

    func read(_ r: inout ByteReader) throws(WireError) -> Read {
        try r.expectMagic([0x41, 0x42])
        let a = try r.u8(), b = try r.u16(), c = try r.u32(), d = try r.u64()
        let record = try r.lengthPrefixed()
        let tail = Array(try r.bytes(2))
        try r.expectEnd()
        return Read(a: a, b: b, c: c, d: d, record: record, tail: tail)
    }

    @Test("little-endian puts and gets, back-patched lengths, rebased byte ranges")
    func roundTrip() throws {
        let bytes = try ByteWriter.array(capacity: 64) { w throws(WireError) in try write(&w) }
        #expect(bytes == Self.sample)
        let got = try ByteReader.reading(bytes) { r throws(WireError) in try read(&r) }
        #expect(got == Read(a: 1, b: 0x0302, c: 0x0706_0504, d: 0x0F0E_0D0C_0B0A_0908, record: 21..<24, tail: [0xF1, 0xF2]))
    }

    @Test("reading every truncation throws truncated at the short field, never crashes")
    func readerTruncation() throws {
        // Where each field starts: a read that fails leaves the offset there.
        let starts = [0, 2, 3, 5, 9, 17, 24]
        for length in 0..<Self.sample.count {
            let cut = Array(Self.sample[0..<length])
            var failedAt = -1
            do throws(WireError) {
                _ = try ByteReader.reading(cut) { r throws(WireError) in
                    do throws(WireError) { return try read(&r) } catch {
                        failedAt = r.offset
                        throw error
                    }
                }
                Issue.record("a \(length)-byte prefix read without error")
            } catch {
                guard case .truncated(let needed, let have) = error else { Issue.record("\(error)"); continue }
                #expect(have == length && needed > length)
                #expect(failedAt == starts.last { $0 <= length })
            }
        }
        #expect(throws: WireError.trailingBytes(1)) {
            try ByteReader.reading(Self.sample + [0]) { r throws(WireError) in _ = try read(&r) }
        }
    }

    @Test("writing into every buffer too small throws truncated, never crashes")
    func writerTruncation() throws {
        for capacity in 0..<Self.sample.count {
            #expect(throws: WireError.self) {
                _ = try ByteWriter.array(capacity: capacity) { w throws(WireError) in try write(&w) }
            }
        }
    }

    @Test("bad magic, negative and huge lengths are typed errors")
    func badInput() throws {
        #expect(throws: WireError.badMagic) {
            try ByteReader.reading([0x41, 0x43]) { r throws(WireError) in try r.expectMagic([0x41, 0x42]) }
        }
        #expect(throws: WireError.self) {
            try ByteReader.reading([1, 2, 3]) { r throws(WireError) in _ = try r.range(-1) }
        }
        #expect(throws: WireError.truncated(needed: Int.max, have: 5)) {
            try ByteReader.reading([0, 1, 2, 3, 4]) { r throws(WireError) in
                _ = try r.u8()
                _ = try r.range(Int.max)
            }
        }
        // A declared length of 0xFFFFFFFF: truncated, and the reader is back before the length.
        try ByteReader.reading([0xFF, 0xFF, 0xFF, 0xFF, 9]) { r throws(WireError) in
            #expect(throws: WireError.truncated(needed: 4 + 0xFFFF_FFFF, have: 5)) { _ = try r.lengthPrefixed() }
            #expect(r.offset == 0 && r.remaining == 5)
        }
    }

    @Test("a failed record leaves the writer before its length")
    func writerRewinds() throws {
        var buffer = [UInt8](repeating: 0, count: 8)
        buffer.withUnsafeMutableBytes { raw in
            var w = ByteWriter(raw)
            #expect(throws: WireError.truncated(needed: 9, have: 8)) {
                try w.u16(7)
                try w.lengthPrefixed { _ throws(WireError) in 3 }
            }
            #expect(w.offset == 2 && w.remaining == 6)
        }
    }
}
