import FlexTensor
import FlexTestSupport
import Testing

@Suite("quantisation")
struct QuantizeTests {
    func roundTrip(_ dtype: DType, _ source: borrowing Tensor<Float>) -> Tensor<Float> {
        let q = QuantizedTensor(dtype: dtype, shape: source.shape)
        Quantizer.quantize(source, into: q)
        let back = Tensor<Float>(zeros: source.shape)
        Quantizer.dequantize(q, into: back)
        return back
    }

    /// The issue asks for <= 0.5%. On N(0,1), 32-value blocks have max|x| of about 2.33 on average,
    /// so any 8-bit uniform grid has a step of about 2.33/127 and an RMSE of step/sqrt(12) = 0.53%;
    /// even the best scale per block (exhaustive search) reaches only about 0.515%. Our quantiser
    /// (full int8 range, least-squares refined scale) gets 0.52%; this test pins that figure and that
    /// it beats plain Q8_0 (max|x|/127), computed here as the yardstick.
    @Test("int8 block quantisation: relative RMSE on N(0,1) is 0.52%, below plain Q8_0")
    func int8BlockAccuracy() {
        let w = TestData.gaussian(rows: 256, cols: 256, seed: 3)
        let rmse = TestData.relativeRMSE(w, roundTrip(.int8Block, w))
        var plainError = 0.0, energy = 0.0
        for r in 0..<w.shape.rows {
            for b in stride(from: 0, to: w.shape.cols, by: DType.blockSize) {
                var amax: Float = 0
                for j in b..<(b + DType.blockSize) { amax = max(amax, abs(w[r, j])) }
                let scale = Float(Float16(amax / 127))
                for j in b..<(b + DType.blockSize) {
                    let q = min(max((w[r, j] / scale).rounded(), -127), 127)
                    plainError += Double((q * scale - w[r, j]) * (q * scale - w[r, j]))
                    energy += Double(w[r, j] * w[r, j])
                }
            }
        }
        let plain = (plainError / energy).squareRoot()
        #expect(rmse <= 0.00525, "int8 block relative RMSE \(rmse)")
        #expect(rmse < 0.985 * plain, "ours \(rmse) vs plain Q8_0 \(plain)")
    }

    @Test("every dtype round-trips within its resolution, ragged shapes included",
          arguments: [(1, 1), (3, 33), (7, 64), (5, 100), (64, 10)])
    func roundTripAll(shape: (Int, Int)) {
        let w = TestData.gaussian(rows: shape.0, cols: shape.1, sigma: 0.5, seed: UInt64(shape.0 * 1000 + shape.1))
        let limits: [(DType, Double)] = [(.fp32, 0), (.fp16, 0.0005), (.int8Block, 0.01), (.int8Row, 0.02)]
        for (dtype, limit) in limits {
            let back = roundTrip(dtype, w)
            let rmse = TestData.relativeRMSE(w, back)
            #expect(rmse <= limit, "\(dtype.name) \(shape) rmse \(rmse)")
        }
    }

    @Test("payload sizes follow docs/FORMAT.md")
    func payloadSizes() {
        let s = Shape(rows: 3, cols: 33)
        #expect(DType.fp32.payloadBytes(s) == 396)
        #expect(DType.fp16.payloadBytes(s) == 198)
        #expect(DType.int8Block.payloadBytes(s) == 3 * 2 * 2 + 99)
        #expect(DType.int8Row.payloadBytes(s) == 3 * 4 + 99)
    }

    @Test("an all-zero block quantises to zeros with no NaN")
    func zeroBlock() {
        let w = Tensor<Float>(zeros: Shape(rows: 2, cols: 40))
        for dtype in DType.allCases {
            let back = roundTrip(dtype, w)
            for i in 0..<back.count { #expect(back[i] == 0) }
        }
    }

    @Test("stochastic int8 and fp16 rounding of deltas is unbiased", arguments: [DType.int8Block, .int8Row, .fp16])
    func stochasticUnbiased(dtype: DType) {
        // Small deltas with one large value per row, so the int8 step is coarse relative to most values.
        let delta = TestData.gaussian(rows: 4, cols: 64, sigma: 0.001, seed: 11)
        for r in 0..<4 { delta[r, 0] = 0.05 }
        var random = FlexRandom(seed: 5)
        let q = QuantizedTensor(dtype: dtype, shape: delta.shape)
        let back = Tensor<Float>(zeros: delta.shape)
        let trials = 2000
        var meanError = [Double](repeating: 0, count: delta.count)
        var nearestError = 0.0
        Quantizer.quantize(delta, into: q)
        Quantizer.dequantize(q, into: back)
        for i in 0..<delta.count { nearestError += abs(Double(back[i]) - Double(delta[i])) }
        for _ in 0..<trials {
            Quantizer.quantizeStochastic(delta, into: q, random: &random)
            Quantizer.dequantize(q, into: back)
            for i in 0..<delta.count { meanError[i] += (Double(back[i]) - Double(delta[i])) / Double(trials) }
        }
        // The systematic error of the average must be far below the per-element error of nearest rounding.
        let bias = meanError.reduce(0) { $0 + abs($1) }
        #expect(bias < 0.15 * nearestError + 1e-9, "\(dtype.name): bias \(bias) vs nearest \(nearestError)")
    }
}
