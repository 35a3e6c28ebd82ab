/// xxHash64 (seed 0 unless given), the container's checksum: fast, well specified, and with public
/// test vectors (checked in FlexWireTests).
public struct XXHash64 {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inlinable static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inlinable static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inlinable static func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    /// The hash of the concatenation of `parts` (so a header and its directory hash as one input
    /// without being copied together).
    public static func hash(_ parts: UnsafeRawBufferPointer..., seed: UInt64 = 0) -> UInt64 {
        var state = State(seed: seed)
        for part in parts { state.update(part) }
        return state.finish()
    }

    /// Streaming state: 32-byte stripes, with up to 31 bytes carried between updates.
    @usableFromInline struct State {
        var v1: UInt64, v2: UInt64, v3: UInt64, v4: UInt64
        let seed: UInt64
        var total: UInt64 = 0
        var carry = SIMD32<UInt8>()
        var carried = 0

        init(seed: UInt64) {
            self.seed = seed
            v1 = seed &+ XXHash64.p1 &+ XXHash64.p2
            v2 = seed &+ XXHash64.p2
            v3 = seed
            v4 = seed &- XXHash64.p1
        }

        mutating func stripe(_ p: UnsafeRawPointer) {
            v1 = XXHash64.round(v1, p.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian)
            v2 = XXHash64.round(v2, p.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian)
            v3 = XXHash64.round(v3, p.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian)
            v4 = XXHash64.round(v4, p.loadUnaligned(fromByteOffset: 24, as: UInt64.self).littleEndian)
        }

        mutating func update(_ input: UnsafeRawBufferPointer) {
            guard let base = input.baseAddress, input.count > 0 else { return }
            total &+= UInt64(input.count)
            var offset = 0
            if carried > 0 {
                let take = min(32 - carried, input.count)
                for i in 0..<take { carry[carried + i] = input[i] }
                carried += take
                offset = take
                if carried < 32 { return }
                withUnsafeBytes(of: carry) { stripe($0.baseAddress!) }
                carried = 0
            }
            while input.count - offset >= 32 {
                stripe(base + offset)
                offset += 32
            }
            for i in offset..<input.count { carry[i - offset] = input[i] }
            carried = input.count - offset
        }

        func finish() -> UInt64 {
            var h: UInt64
            if total >= 32 {
                h = XXHash64.rotl(v1, 1) &+ XXHash64.rotl(v2, 7) &+ XXHash64.rotl(v3, 12) &+ XXHash64.rotl(v4, 18)
                h = XXHash64.merge(h, v1)
                h = XXHash64.merge(h, v2)
                h = XXHash64.merge(h, v3)
                h = XXHash64.merge(h, v4)
            } else {
                h = seed &+ XXHash64.p5
            }
            h &+= total
            withUnsafeBytes(of: carry) { tail in
                var i = 0
                while i + 8 <= carried {
                    let k = XXHash64.round(0, tail.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian)
                    h = XXHash64.rotl(h ^ k, 27) &* XXHash64.p1 &+ XXHash64.p4
                    i += 8
                }
                if i + 4 <= carried {
                    h ^= UInt64(tail.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian) &* XXHash64.p1
                    h = XXHash64.rotl(h, 23) &* XXHash64.p2 &+ XXHash64.p3
                    i += 4
                }
                while i < carried {
                    h ^= UInt64(tail[i]) &* XXHash64.p5
                    h = XXHash64.rotl(h, 11) &* XXHash64.p1
                    i += 1
                }
            }
            h ^= h >> 33
            h &*= XXHash64.p2
            h ^= h >> 29
            h &*= XXHash64.p3
            h ^= h >> 32
            return h
        }
    }
}
