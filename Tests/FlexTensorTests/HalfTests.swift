import FlexTensor
import Testing

@Suite("fp16 conversion")
struct HalfTests {
    @Test("half -> float matches Float16 for all 65,536 bit patterns")
    func allHalfPatterns() {
        var mismatches = 0
        for bits in 0...UInt16.max {
            let ours = Half.float(fromBits: bits)
            let swift = Float(Float16(bitPattern: bits))
            if ours.bitPattern != swift.bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("float -> half matches Float16 on edge values and 2 million random floats")
    func floatSample() {
        var values: [Float] = [0, -0, 1, -1, 65504, 65505, 65519.99, 65520, -65520, .infinity, -.infinity,
                               .nan, -.nan, .signalingNaN, Float.leastNonzeroMagnitude, Float.greatestFiniteMagnitude,
                               0x1p-24, 0x1p-25, 0x1.8p-25, 0x1.000002p-25, 0x1p-14, 0x1.ffcp-15, 0x1.ffep-15,
                               2049, 2051, 4097, 1 + 0x1p-11, 1 + 0x1p-11 + 0x1p-23]
        var random = FlexRandom(seed: 42)
        for _ in 0..<1_000_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))) }
        // Dense sampling of the half range, where rounding decisions happen.
        for _ in 0..<1_000_000 {
            let e = Int(random.next() % 40) - 30
            let v = Float(random.nextUniform()) * Float(sign: .plus, exponent: e, significand: 1)
            values.append(random.next() & 1 == 0 ? v : -v)
        }
        var mismatches = 0
        for v in values {
            let ours = Half.bits(from: v)
            let swift = Float16(v).bitPattern
            if ours != swift { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("stochastic fp16 rounding is unbiased and lands on a neighbour")
    func stochasticUnbiased() {
        var random = FlexRandom(seed: 7)
        for value: Float in [0.1, -0.3337, 1.0001, 1e-6, -3e-7, 1234.567] {
            let down = Float(Float16(value).nextDown), up = Float(Float16(value).nextUp)
            var sum = 0.0
            let n = 200_000
            for _ in 0..<n {
                let h = Half.float(fromBits: Half.bitsStochastic(from: value, random: random.next()))
                #expect(h >= min(down, up) && h <= max(down, up))
                sum += Double(h)
            }
            let step = Double(abs(up - down)) / 2
            // The mean of n draws has std <= step/(2 sqrt(n)); allow 6 standard deviations.
            #expect(abs(sum / Double(n) - Double(value)) <= 6 * step / (2 * Double(n).squareRoot()))
        }
    }

    @Test("stochastic rounding of a representable value is exact")
    func stochasticExact() {
        var random = FlexRandom(seed: 1)
        for value: Float in [0.5, -2, 0x1p-24, 65504] {
            for _ in 0..<100 {
                #expect(Half.float(fromBits: Half.bitsStochastic(from: value, random: random.next())) == value)
            }
        }
    }
}
