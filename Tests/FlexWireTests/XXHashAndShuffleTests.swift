import FlexWire
import Testing

@Suite("xxHash64 and byte shuffle")
struct XXHashAndShuffleTests {
    func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { XXHash64.hash($0) } }

    @Test("xxHash64 matches the reference implementation's vectors")
    func vectors() {
        #expect(hash([]) == 0xEF46_DB37_51D8_E999)
        #expect(hash(Array("a".utf8)) == 0xD24E_C4F1_A98C_6E5B)
        #expect(hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        #expect(hash(Array("Nobody inspects the spammish repetition".utf8)) == 0xFBCE_A83C_8A37_8BF1)
        var long: [UInt8] = []
        for _ in 0..<3 { long += (0...255).map { UInt8($0) } }
        long += Array("xyz".utf8)
        #expect(hash(long) == 0xE921_A1B4_5BD7_79F8)
    }

    @Test("hashing in parts equals hashing the whole")
    func streaming() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = hash(bytes)
        for split in [0, 1, 7, 31, 32, 33, 100, 999, 1000] {
            let parts = bytes.withUnsafeBytes { b in
                XXHash64.hash(UnsafeRawBufferPointer(rebasing: b[0..<split]), UnsafeRawBufferPointer(rebasing: b[split...]))
            }
            #expect(parts == whole, "split at \(split)")
        }
    }

    @Test("unshuffle in place inverts shuffle", arguments: [(1, 2), (4097, 2), (9000, 4), (10, 4), (8192, 2)])
    func shuffleRoundTrip(size: (Int, Int)) {
        let (count, width) = size
        let original = (0..<(count * width)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 / 7) }
        var shuffled = [UInt8](repeating: 0, count: original.count)
        original.withUnsafeBytes { src in shuffled.withUnsafeMutableBytes { dst in
            ByteShuffle.shuffle(src.baseAddress!, into: dst.baseAddress!, count: count, width: width)
        }}
        if count > 1 { #expect(shuffled != original) }
        shuffled.withUnsafeMutableBytes { ByteShuffle.unshuffleInPlace($0.baseAddress!, count: count, width: width) }
        #expect(shuffled == original)
    }
}
