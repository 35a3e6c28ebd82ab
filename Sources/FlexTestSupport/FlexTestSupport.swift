import FlexTensor

/// Helpers shared by the test targets: seeded random data and comparisons.
public enum TestData {
    /// An m x n fp32 tensor with N(0, sigma) entries from `seed`.
    public static func gaussian(rows: Int, cols: Int, sigma: Float = 1, seed: UInt64) -> Tensor<Float> {
        var random = FlexRandom(seed: seed)
        let t = Tensor<Float>(zeros: Shape(rows: rows, cols: cols))
        for i in 0..<t.count { t[i] = Float(random.nextGaussian()) * sigma }
        return t
    }

    /// Root-mean-square of (a - b) divided by the RMS of a.
    public static func relativeRMSE(_ a: borrowing Tensor<Float>, _ b: borrowing Tensor<Float>) -> Double {
        var err = 0.0, ref = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            err += d * d
            ref += Double(a[i]) * Double(a[i])
        }
        return (err / max(ref, .leastNonzeroMagnitude)).squareRoot()
    }
}
