import FlexTensor
import FlexTestSupport
import Testing

@Suite("kernels against their scalar references")
struct KernelTests {
    /// |fast - reference| <= Kernels.tolerance * sum_p |a_ip * b_pj| for every output element.
    func expectClose(_ fast: borrowing Tensor<Float>, _ reference: borrowing Tensor<Float>,
                     _ magnitude: borrowing Tensor<Float>, _ label: String) {
        var worst: Float = 0
        for i in 0..<fast.count {
            let allowed = Kernels.tolerance * max(magnitude[i], 1e-6)
            worst = max(worst, abs(fast[i] - reference[i]) / allowed)
        }
        #expect(worst <= 1, "\(label): worst error is \(worst) x the tolerance")
    }

    @Test("fp32 gemm, every transpose, ragged sizes", arguments: [
        (1, 1, 1), (4, 16, 8), (5, 17, 9), (33, 70, 64), (64, 128, 60), (3, 9, 130), (2, 4, 7),
    ])
    func gemm(size: (Int, Int, Int)) {
        let (m, n, k) = size
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = TestData.gaussian(rows: transA ? k : m, cols: transA ? m : k, seed: 1)
            let b = TestData.gaussian(rows: transB ? n : k, cols: transB ? k : n, seed: 2)
            let absA = Tensor<Float>(zeros: a.shape), absB = Tensor<Float>(zeros: b.shape)
            for i in 0..<a.count { absA[i] = abs(a[i]) }
            for i in 0..<b.count { absB[i] = abs(b[i]) }
            for accumulate in [false, true] {
                let fast = TestData.gaussian(rows: m, cols: n, seed: 3)
                let reference = TestData.gaussian(rows: m, cols: n, seed: 3)
                let magnitude = Tensor<Float>(zeros: Shape(rows: m, cols: n))
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                    fast.withUnsafeMutableBufferPointer { pc in
                        Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: a.shape.cols,
                                     b: pb.baseAddress!, ldb: b.shape.cols, c: pc.baseAddress!, ldc: n, accumulate: accumulate)
                    }
                    reference.withUnsafeMutableBufferPointer { pc in
                        Kernels.gemmReference(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!,
                                              lda: a.shape.cols, b: pb.baseAddress!, ldb: b.shape.cols,
                                              c: pc.baseAddress!, ldc: n, accumulate: accumulate)
                    }
                }}
                absA.withUnsafeBufferPointer { pa in absB.withUnsafeBufferPointer { pb in
                    magnitude.withUnsafeMutableBufferPointer { pc in
                        Kernels.gemmReference(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!,
                                              lda: a.shape.cols, b: pb.baseAddress!, ldb: b.shape.cols,
                                              c: pc.baseAddress!, ldc: n, accumulate: false)
                    }
                }}
                if accumulate { for i in 0..<magnitude.count { magnitude[i] += abs(reference[i]) } }
                expectClose(fast, reference, magnitude, "gemm \(size) tA=\(transA) tB=\(transB) acc=\(accumulate)")
            }
        }
    }

    @Test("gemm with quantised weights, every dtype", arguments: [(1, 8, 8), (5, 40, 17), (32, 64, 128), (3, 33, 100)])
    func gemmQuantized(size: (Int, Int, Int)) {
        let (m, k, n) = size
        let a = TestData.gaussian(rows: m, cols: k, seed: 9)
        let w = TestData.gaussian(rows: k, cols: n, seed: 10)
        for dtype in DType.allCases {
            let q = QuantizedTensor(dtype: dtype, shape: w.shape)
            Quantizer.quantize(w, into: q)
            let dense = Tensor<Float>(zeros: w.shape)
            Quantizer.dequantize(q, into: dense)
            let fast = Tensor<Float>(zeros: Shape(rows: m, cols: n))
            let reference = Tensor<Float>(zeros: Shape(rows: m, cols: n))
            let magnitude = Tensor<Float>(zeros: Shape(rows: m, cols: n))
            q.withMatrix { matrix in
                a.withUnsafeBufferPointer { pa in
                    fast.withUnsafeMutableBufferPointer { pc in
                        Kernels.gemmQuantized(m: m, a: pa.baseAddress!, lda: k, w: matrix, c: pc.baseAddress!, ldc: n, accumulate: false)
                    }
                    reference.withUnsafeMutableBufferPointer { pc in
                        Kernels.gemmQuantizedReference(m: m, a: pa.baseAddress!, lda: k, w: matrix, c: pc.baseAddress!, ldc: n, accumulate: false)
                    }
                }
            }
            for i in 0..<m { for j in 0..<n {
                var s: Float = 0
                for p in 0..<k { s += abs(a[i, p] * dense[p, j]) }
                magnitude[i, j] = s
            }}
            expectClose(fast, reference, magnitude, "gemmQuantized \(dtype.name) \(size)")
        }
    }
}
