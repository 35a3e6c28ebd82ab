import FlexTensor
import FlexTestSupport
import FlexWire
import Testing

/// An expert-shaped part in `dtype`: A1 (h x f), a1, A2 (f x K), a2, as the model lays it out.
func expertPayload(dtype: DType, h: Int = 8, f: Int = 40, k: Int = 3, seed: UInt64 = 1) -> ([TensorEntry], [UInt8]) {
    let shapes = [Shape(rows: h, cols: f), Shape(vector: f), Shape(rows: f, cols: k), Shape(vector: k)]
    var entries: [TensorEntry] = []
    var payload: [UInt8] = []
    for (i, shape) in shapes.enumerated() {
        let w = TestData.gaussian(rows: shape.rows, cols: shape.cols, sigma: 0.2, seed: seed + UInt64(i))
        let q = QuantizedTensor(dtype: dtype, shape: shape)
        Quantizer.quantize(w, into: q)
        q.bytes.withUnsafeBufferPointer { payload += $0 }
        entries.append(TensorEntry(dtype: dtype, shape: shape, shuffled: true))
    }
    return (entries, payload)
}

/// Rewrites header bytes and recomputes the header hash, to build containers that are well-formed
/// except for one chosen lie (a forged size, a wrong frame).
func forge(_ container: [UInt8], _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
    var c = container
    edit(&c)
    let count = Int(c[8]) | Int(c[9]) << 8
    let hash = c.withUnsafeBytes { b in
        XXHash64.hash(UnsafeRawBufferPointer(rebasing: b[0..<56]),
                      UnsafeRawBufferPointer(rebasing: b[64..<(64 + 16 * count)]))
    }
    for i in 0..<8 { c[56 + i] = UInt8(truncatingIfNeeded: hash >> (8 * UInt64(i))) }
    return c
}

func put64(_ c: inout [UInt8], _ offset: Int, _ v: UInt64) {
    for i in 0..<8 { c[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
}

@Suite("FlexWire container")
final class ContainerTests {
    let compressor = ZstdCompressor(level: 3)
    let decompressor = ZstdDecompressor()

    @Test("round trip of every dtype, kind and codec")
    func roundTrip() throws {
        for dtype in DType.allCases {
            let (entries, payload) = expertPayload(dtype: dtype)
            for kind in PartKind.allCases {
                for codec in [Codec.stored, .zstd] {
                    let id: UInt32? = kind.isExpert ? 7 : nil
                    let c = try Container.encode(kind: kind, expertId: id, modelVersion: 42, tensors: entries,
                                                 payload: payload, codec: codec, compressor: compressor)
                    let (header, back) = try Container.decode(c, maxPayload: 1 << 20, decompressor: decompressor)
                    #expect(back == payload)
                    #expect(header.kind == kind && header.expertId == id && header.modelVersion == 42)
                    #expect(header.tensors == entries && header.codec == codec)
                    #expect(header.containerSize == c.count)
                }
            }
        }
    }

    @Test("decoded values equal the quantised tensor's values")
    func valuesSurvive() throws {
        let w = TestData.gaussian(rows: 16, cols: 50, seed: 9)
        for dtype in DType.allCases {
            let q = QuantizedTensor(dtype: dtype, shape: w.shape)
            Quantizer.quantize(w, into: q)
            let payload = q.bytes.withUnsafeBufferPointer { Array($0) }
            let c = try Container.encode(kind: .gateWeights, expertId: nil, modelVersion: 1,
                                         tensors: [TensorEntry(dtype: dtype, shape: w.shape, shuffled: true)],
                                         payload: payload, compressor: compressor)
            let (_, back) = try Container.decode(c, maxPayload: 1 << 20, decompressor: decompressor)
            back.withUnsafeBytes { raw in
                let m = QuantizedMatrix(dtype: dtype, shape: w.shape, bytes: raw)
                q.withMatrix { orig in
                    for r in 0..<16 { for col in 0..<50 { #expect(m.value(r, col) == orig.value(r, col)) } }
                }
            }
        }
    }

    @Test("a flipped byte at every position is detected")
    func everyByteFlip() throws {
        for codec in [Codec.stored, .zstd] {
            let (entries, payload) = expertPayload(dtype: .int8Block, h: 2, f: 8, k: 2)
            let c = try Container.encode(kind: .expertDelta, expertId: 3, modelVersion: 9, tensors: entries,
                                         payload: payload, codec: codec, compressor: compressor)
            var undetected: [Int] = []
            for position in 0..<c.count {
                for mask: UInt8 in [0x01, 0x80, 0xFF] {
                    var bad = c
                    bad[position] ^= mask
                    do {
                        _ = try Container.decode(bad, maxPayload: 1 << 20, decompressor: decompressor)
                        undetected.append(position)
                    } catch {}
                }
            }
            #expect(undetected.isEmpty, "codec \(codec): flips at \(undetected) were not detected")
        }
    }

    @Test("truncation at every length is an error")
    func everyTruncation() throws {
        let (entries, payload) = expertPayload(dtype: .fp16, h: 2, f: 8, k: 2)
        let c = try Container.encode(kind: .expertWeights, expertId: 0, modelVersion: 1, tensors: entries,
                                     payload: payload, compressor: compressor)
        for length in 0..<c.count {
            #expect(throws: WireError.self) {
                _ = try Container.decode(Array(c[0..<length]), maxPayload: 1 << 20, decompressor: decompressor)
            }
        }
        #expect(throws: WireError.trailingBytes(1)) {
            _ = try Container.decode(c + [0], maxPayload: 1 << 20, decompressor: decompressor)
        }
    }

    @Test("wrong magic and unknown version are rejected by name")
    func magicAndVersion() throws {
        let (entries, payload) = expertPayload(dtype: .fp32)
        let c = try Container.encode(kind: .expertWeights, expertId: 0, modelVersion: 1, tensors: entries,
                                     payload: payload, compressor: compressor)
        #expect(throws: WireError.badMagic) {
            _ = try Container.decode(forge(c) { $0[0] = 0x47 }, maxPayload: 1 << 20, decompressor: decompressor)
        }
        #expect(throws: WireError.unsupportedVersion(2)) {
            _ = try Container.decode(forge(c) { $0[4] = 2 }, maxPayload: 1 << 20, decompressor: decompressor)
        }
    }

    @Test("a payload above the caller's limit is refused before any allocation")
    func oversized() throws {
        let (entries, payload) = expertPayload(dtype: .fp32)
        let c = try Container.encode(kind: .expertWeights, expertId: 0, modelVersion: 1, tensors: entries,
                                     payload: payload, compressor: compressor)
        #expect(throws: WireError.tooLarge(declared: payload.count, limit: 100)) {
            _ = try Container.decode(c, maxPayload: 100, decompressor: decompressor)
        }
        // A destination smaller than the payload is refused the same way.
        let header = try c.withUnsafeBytes { try Container.parseHeader($0) }
        var small = [UInt8](repeating: 0, count: 10)
        #expect(throws: WireError.tooLarge(declared: payload.count, limit: 10)) {
            try c.withUnsafeBytes { b in try small.withUnsafeMutableBytes { d in
                try Container.decodePayload(b, header: header, maxPayload: 1 << 20, decompressor: decompressor, into: d)
            }}
        }
        // A directory that claims a 2^24 x 2^24 fp32 tensor (1 PiB) is refused as too large.
        let huge = forge(c) { c in
            c[8] = 1; c[9] = 0
            let e = 64
            c[e] = 0; c[e + 1] = 0; c[e + 2] = 0; c[e + 3] = 0
            for i in 0..<4 { c[e + 4 + i] = [0, 0, 0, 1][i]; c[e + 8 + i] = [0, 0, 0, 1][i] }
            put64(&c, 24, UInt64(1) << 50)
        }
        #expect(throws: WireError.self) {
            _ = try Container.decode(huge, maxPayload: 1 << 30, decompressor: decompressor)
        }
    }

    @Test("bomb-like zstd frames are rejected")
    func bombs() throws {
        // A frame of 64 MiB of zeros compresses to a few KiB.
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(zeros.count))
        let n = try zeros.withUnsafeBytes { z in try frame.withUnsafeMutableBytes { try compressor.compress(z, into: $0) } }
        frame.removeLast(frame.count - n)
        #expect(frame.count < 64 << 10)

        // A small, honest container, then its zstd frame swapped for the bomb with the header re-hashed.
        let entries = [TensorEntry(dtype: .fp32, shape: Shape(rows: 4, cols: 4))]
        let c = try Container.encode(kind: .gateWeights, expertId: nil, modelVersion: 1, tensors: entries,
                                     payload: [UInt8](repeating: 0, count: 64), compressor: compressor)
        let bomb = forge(Array(c[0..<80]) + frame) { put64(&$0, 32, UInt64(frame.count)) }
        #expect(throws: WireError.self) {
            _ = try Container.decode(bomb, maxPayload: 1 << 20, decompressor: decompressor)
        }
        // The same frame under a header that declares 64 MiB is refused by the caller's limit.
        let declared = forge(bomb) { c in
            c[64 + 4] = 0; c[64 + 5] = 0; c[64 + 6] = 0x40; c[64 + 7] = 0  // rows = 2^22
            put64(&c, 24, UInt64(1) << 26)
        }
        #expect(throws: WireError.tooLarge(declared: 1 << 26, limit: 1 << 20)) {
            _ = try Container.decode(declared, maxPayload: 1 << 20, decompressor: decompressor)
        }
    }

    @Test("the decompressor refuses frames of the wrong size or without a declared size")
    func frameChecks() throws {
        let data = [UInt8](repeating: 7, count: 1000)
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(data.count))
        let n = try data.withUnsafeBytes { d in try frame.withUnsafeMutableBytes { try compressor.compress(d, into: $0) } }
        frame.removeLast(frame.count - n)
        var out = [UInt8](repeating: 0, count: 999)
        #expect(throws: WireError.self) {
            try frame.withUnsafeBytes { f in try out.withUnsafeMutableBytes { try decompressor.decompress(f, into: $0) } }
        }
        var exact = [UInt8](repeating: 0, count: 1000)
        try frame.withUnsafeBytes { f in try exact.withUnsafeMutableBytes { try decompressor.decompress(f, into: $0) } }
        #expect(exact == data)
        #expect(throws: WireError.self) {
            let twoFrames = frame + frame
            try twoFrames.withUnsafeBytes { f in try exact.withUnsafeMutableBytes { try decompressor.decompress(f, into: $0) } }
        }
    }

    @Test("encoder refuses inconsistent input")
    func encoderChecks() {
        let entries = [TensorEntry(dtype: .fp32, shape: Shape(rows: 2, cols: 2))]
        #expect(throws: WireError.self) {
            _ = try Container.encode(kind: .expertWeights, expertId: nil, modelVersion: 0, tensors: entries,
                                     payload: [UInt8](repeating: 0, count: 16), compressor: compressor)
        }
        #expect(throws: WireError.self) {
            _ = try Container.encode(kind: .gateWeights, expertId: nil, modelVersion: 0, tensors: entries,
                                     payload: [UInt8](repeating: 0, count: 15), compressor: compressor)
        }
    }
}

@Suite("zstd contexts in an arena")
struct StaticZstdTests {
    @Test("static compressor and decompressor round-trip a container's worth of data")
    func staticContexts() throws {
        let input = (0..<40_000).map { UInt8(truncatingIfNeeded: ($0 * 7919) >> 5) }
        let arena = try Arena(capacity: ZstdCompressor.workspaceBytes(level: 3, maxInput: input.count)
                                  + ZstdDecompressor.workspaceBytes + 4 * Arena.alignment)
        let compressor = try ZstdCompressor(level: 3, maxInput: input.count, arena: arena)
        let decompressor = try ZstdDecompressor(arena: arena)
        #expect(arena.ledger.map(\.component) == ["zstd"])
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(input.count))
        let n = try input.withUnsafeBytes { i in try frame.withUnsafeMutableBytes { try compressor.compress(i, into: $0) } }
        var out = [UInt8](repeating: 0, count: input.count)
        try frame[0..<n].withUnsafeBytes { f in try out.withUnsafeMutableBytes { try decompressor.decompress(f, into: $0) } }
        #expect(out == input)
    }
}
