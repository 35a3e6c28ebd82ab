import FlexTensor

/// Small row-wise helpers on raw fp32 memory used by the model layers (the matrix products go
/// through `Kernels.gemm`).
@usableFromInline enum Ops {
    /// y[i, :] += bias for `rows` rows of width n (row stride ld).
    @inline(__always) static func addBias(_ y: UnsafeMutablePointer<Float>, rows: Int, n: Int, ld: Int,
                                          bias: UnsafePointer<Float>) {
        for r in 0..<rows {
            let row = y + r * ld
            for j in 0..<n { row[j] += bias[j] }
        }
    }

    /// y[i, :] = relu(y[i, :] + bias).
    @inline(__always) static func addBiasRelu(_ y: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                                              bias: UnsafePointer<Float>) {
        for r in 0..<rows {
            let row = y + r * n
            for j in 0..<n { row[j] = max(row[j] + bias[j], 0) }
        }
    }

    /// dy[i] = 0 where the relu output y[i] is 0 (y = relu(u): y > 0 ⇔ u > 0).
    @inline(__always) static func reluBackward(_ dy: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>,
                                               count: Int) {
        for i in 0..<count where y[i] <= 0 { dy[i] = 0 }
    }

    /// out (cols × rows) = xᵀ, x rows × cols, in 8 × 8 blocks.
    @inline(__always) static func transpose(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                            into out: UnsafeMutablePointer<Float>) {
        var i = 0
        while i < rows {
            let ie = min(i + 8, rows)
            var j = 0
            while j < cols {
                let je = min(j + 8, cols)
                for r in i..<ie { for c in j..<je { out[c * rows + r] = x[r * cols + c] } }
                j = je
            }
            i = ie
        }
    }

    /// out[j] = Σ_i x[i, j] (overwrite).
    @inline(__always) static func columnSums(_ x: UnsafePointer<Float>, rows: Int, n: Int,
                                             into out: UnsafeMutablePointer<Float>) {
        for j in 0..<n { out[j] = 0 }
        for r in 0..<rows {
            let row = x + r * n
            for j in 0..<n { out[j] += row[j] }
        }
    }

    /// Plain product through the SIMD kernel: C (m × n) = op(A) · op(B).
    @inline(__always) static func gemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int,
                                       _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                                       _ c: UnsafeMutablePointer<Float>, _ ldc: Int, accumulate: Bool = false) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            if !accumulate { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = 0 } } }
            return
        }
        Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                     c: c, ldc: ldc, accumulate: accumulate)
    }

    /// Softmax of a row in place; returns log(Σ exp(x − max)) + max (the log-partition).
    @inline(__always) static func softmaxRow(_ x: UnsafeMutablePointer<Float>, n: Int) -> Float {
        var m = x[0]
        for j in 1..<max(n, 1) { m = max(m, x[j]) }
        var s: Float = 0
        for j in 0..<n {
            let e = FlexMath.exp(x[j] - m)
            x[j] = e
            s += e
        }
        let inv = 1 / s
        for j in 0..<n { x[j] *= inv }
        return FlexMath.log(s) + m
    }

    /// Cross-entropy of logits row against `label` and whether argmax == label (no writes).
    @inline(__always) static func crossEntropy(_ x: UnsafePointer<Float>, n: Int, label: Int) -> (loss: Float, correct: Bool) {
        var m = x[0], arg = 0
        for j in 1..<n where x[j] > m { m = x[j]; arg = j }
        var s: Float = 0
        for j in 0..<n { s += FlexMath.exp(x[j] - m) }
        return (FlexMath.log(s) + m - x[label], arg == label)
    }
}
