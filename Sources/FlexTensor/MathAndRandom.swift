import CFlexMath

/// Elementary functions for the numeric core (libm through CFlexMath, the same on host and board).
public enum FlexMath {
    @inlinable public static func exp(_ x: Float) -> Float { flex_expf(x) }
    @inlinable public static func log(_ x: Float) -> Float { flex_logf(x) }
    @inlinable public static func cos(_ x: Float) -> Float { flex_cosf(x) }
    @inlinable public static func pow(_ x: Float, _ y: Float) -> Float { flex_powf(x, y) }
    @inlinable public static func exp(_ x: Double) -> Double { flex_exp(x) }
    @inlinable public static func log(_ x: Double) -> Double { flex_log(x) }
    @inlinable public static func cos(_ x: Double) -> Double { flex_cos(x) }
    @inlinable public static func pow(_ x: Double, _ y: Double) -> Double { flex_pow(x, y) }
}

/// xoshiro256** seeded through SplitMix64: small, fast, reproducible across host and board (the
/// system generator is unavailable in Embedded Swift and is not reproducible anyway).
public struct FlexRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&x); s1 = splitMix(&x); s2 = splitMix(&x); s3 = splitMix(&x)
    }

    @inlinable public mutating func next() -> UInt64 { nextValue() }

    @usableFromInline mutating func nextValue() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUniform() -> Double { Double(nextValue() >> 11) * 0x1.0p-53 }

    /// Uniform integer in 0..<bound (bound > 0), without modulo bias.
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }

    /// Standard normal N(0, 1) by Box-Muller.
    public mutating func nextGaussian() -> Double {
        var u1 = nextUniform()
        while u1 <= 0 { u1 = nextUniform() }
        let u2 = nextUniform()
        return (-2 * FlexMath.log(u1)).squareRoot() * FlexMath.cos(2 * Double.pi * u2)
    }

    /// Gamma(shape, 1) by Marsaglia-Tsang (shape < 1 through the boost U^(1/shape)).
    public mutating func nextGamma(shape: Double) -> Double {
        precondition(shape > 0)
        if shape < 1 {
            let u = nextUniform()
            return nextGamma(shape: shape + 1) * FlexMath.pow(max(u, 1e-300), 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = nextGaussian()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = nextUniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if FlexMath.log(max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + FlexMath.log(v)) { return d * v }
        }
    }
}
