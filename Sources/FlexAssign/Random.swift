import FlexTensor

/// FlexAssign draws from the project's one seeded generator, FlexTensor's `FlexRandom` (SplitMix64
/// seeding, xoshiro256**): the module never touches the system generator, so the same seed gives the
/// same numbers on every platform and run, which keeps solvers, baselines and tests reproducible.
public typealias AssignRNG = FlexRandom

extension FlexRandom {
    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func unit() -> Double { nextUniform() }

    /// Uniform integer in 0..<n (n > 0), by Lemire's multiply-shift (bias below 2^-64·n, irrelevant here).
    @inline(__always)
    public mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }
}
