/// IEEE-754 binary16 conversion, written out bit by bit so that host and board round identically
/// (round-to-nearest-even; subnormals, infinities and NaN handled like hardware: NaN stays NaN,
/// quietened, with the top payload bits kept). Tests hold it to Swift's `Float16` for all 65,536
/// half patterns and for a large sample of floats.
public enum Half {
    /// Float -> half bits, round to nearest even (scalar reference).
    @inlinable public static func bits(from value: Float) -> UInt16 {
        let x = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let exponent = Int((x >> 23) & 0xFF)
        let mantissa = x & 0x7F_FFFF
        if exponent == 0xFF {
            if mantissa == 0 { return sign | 0x7C00 }
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }
        let e = exponent - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            if e < -10 { return sign }
            let m = mantissa | 0x80_0000
            let shift = UInt32(14 - e)
            var h = m >> shift
            let rest = m & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if rest > halfway || (rest == halfway && (h & 1) == 1) { h += 1 }
            return sign | UInt16(truncatingIfNeeded: h)
        }
        var h = UInt32(e) << 10 | (mantissa >> 13)
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) { h += 1 }  // may carry into inf: correct
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// Float -> half bits with stochastic rounding: rounds up with probability equal to the discarded
    /// fraction, so the expected value equals the input (unbiased; used for update deltas).
    /// `random` supplies 64 uniform bits.
    @inlinable public static func bitsStochastic(from value: Float, random: UInt64) -> UInt16 {
        let x = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let exponent = Int((x >> 23) & 0xFF)
        let mantissa = x & 0x7F_FFFF
        if exponent == 0xFF { return bits(from: value) }
        let e = exponent - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        var m = UInt64(mantissa)
        var shift: UInt64 = 13
        if e <= 0 {
            if e < -24 { return sign }  // below 2^-39: rounding up would have probability < 2^-15
            m |= 0x80_0000
            shift = UInt64(14 - e)
        }
        var h = (e <= 0 ? 0 : UInt64(e) << 10) | (m >> shift)
        let rest = m & ((1 << shift) - 1)
        // Compare the discarded bits with `shift` uniform bits.
        let threshold = random >> (64 - shift)
        if threshold < rest { h += 1 }
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// Half bits -> Float (exact; scalar reference).
    @inlinable public static func float(fromBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32((h >> 10) & 0x1F)
        var mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }
            var e: UInt32 = 127 - 15 + 1
            while mantissa & 0x400 == 0 {
                mantissa <<= 1
                e -= 1
            }
            mantissa &= 0x3FF
            return Float(bitPattern: sign | e << 23 | mantissa << 13)
        }
        if exponent == 0x1F {
            if mantissa == 0 { return Float(bitPattern: sign | 0x7F80_0000) }
            return Float(bitPattern: sign | 0x7FC0_0000 | mantissa << 13)
        }
        return Float(bitPattern: sign | (exponent + 127 - 15) << 23 | mantissa << 13)
    }
}
