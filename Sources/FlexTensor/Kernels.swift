/// Matrix kernels, BLAS-style on row-major fp32 memory, each with a scalar reference beside it.
/// Tests hold every fast kernel to its reference within `Kernels.tolerance`.
///
/// The raw-pointer signatures are deliberate: this file and Quantize.swift are the named places where
/// the numeric core touches memory directly; the model layer wraps them in `Tensor`s.
public enum Kernels {
    /// Relative tolerance between a fast kernel and its scalar reference: both sum the same products,
    /// only in another order, so they differ by float rounding (about k * 2^-24 relative).
    public static let tolerance: Float = 1e-5

    // MARK: - fp32 GEMM

    /// C = op(A) * op(B) (+ C when `accumulate`), op(X) = X or Xᵀ. op(A) is m x k, op(B) is k x n.
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        if m == 0 || n == 0 { return }
        switch (transA, transB) {
        case (false, false):
            broadcastKernel(m: m, n: n, k: k, a: a, aRow: lda, aCol: 1, b: DenseRows(base: b, ld: ldb),
                            c: c, ldc: ldc, accumulate: accumulate)
        case (true, false):
            broadcastKernel(m: m, n: n, k: k, a: a, aRow: 1, aCol: lda, b: DenseRows(base: b, ld: ldb),
                            c: c, ldc: ldc, accumulate: accumulate)
        case (false, true):
            dotKernel(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, accumulate: accumulate)
        case (true, true):
            gemmReference(transA: true, transB: true, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                          c: c, ldc: ldc, accumulate: accumulate)
        }
    }

    /// Scalar reference for `gemm`.
    public static func gemmReference(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += av * bv
                }
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum
            }
        }
    }

    // MARK: - GEMM with quantised weights

    /// C = A * W (+ C), A m x k fp32 (row stride lda), W k x n in any storage dtype, dequantised on
    /// the fly 8 values at a time (no fp32 copy of W is made).
    public static func gemmQuantized(
        m: Int, a: UnsafePointer<Float>, lda: Int, w: QuantizedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let k = w.shape.rows, n = w.shape.cols
        if m == 0 || n == 0 { return }
        let base = w.bytes.baseAddress!
        switch w.dtype {
        case .fp32:
            broadcastKernel(m: m, n: n, k: k, a: a, aRow: lda, aCol: 1,
                            b: DenseRows(base: base.assumingMemoryBound(to: Float.self), ld: n),
                            c: c, ldc: ldc, accumulate: accumulate)
        case .fp16:
            broadcastKernel(m: m, n: n, k: k, a: a, aRow: lda, aCol: 1, b: HalfRows(base: base, ld: n),
                            c: c, ldc: ldc, accumulate: accumulate)
        case .int8Block:
            broadcastKernel(m: m, n: n, k: k, a: a, aRow: lda, aCol: 1,
                            b: Int8BlockRows(base: base, cols: n, values: w.dtype.scaleBytes(w.shape)),
                            c: c, ldc: ldc, accumulate: accumulate)
        case .int8Row:
            broadcastKernel(m: m, n: n, k: k, a: a, aRow: lda, aCol: 1,
                            b: Int8RowRows(base: base, cols: n, values: w.dtype.scaleBytes(w.shape)),
                            c: c, ldc: ldc, accumulate: accumulate)
        }
    }

    /// Scalar reference for `gemmQuantized`: element by element through `QuantizedMatrix.value`.
    public static func gemmQuantizedReference(
        m: Int, a: UnsafePointer<Float>, lda: Int, w: QuantizedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let k = w.shape.rows, n = w.shape.cols
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * lda + p] * w.value(p, j) }
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum
            }
        }
    }

    // MARK: - fast kernels

    /// Register-blocked kernel for C = A * B where rows of B are read 8 values at a time: a 4 x 16
    /// tile of C stays in eight SIMD8 accumulators while p runs over k. A is addressed through
    /// (aRow, aCol) strides so that Aᵀ needs no copy.
    @inlinable static func broadcastKernel<B: RowSource>(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, aRow: Int, aCol: Int, b: B,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let n16 = n - n % 16
        let n8 = n - n % 8
        var i = 0
        while i < m {
            let rows = min(4, m - i)
            let a0 = a + i * aRow
            let a1 = rows > 1 ? a0 + aRow : a0
            let a2 = rows > 2 ? a0 + 2 * aRow : a0
            let a3 = rows > 3 ? a0 + 3 * aRow : a0
            var j = 0
            while j < n16 {
                var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
                var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
                for p in 0..<k {
                    let b0 = b.load8(p, j), b1 = b.load8(p, j + 8)
                    let x0 = a0[p * aCol], x1 = a1[p * aCol], x2 = a2[p * aCol], x3 = a3[p * aCol]
                    fma(&c00, b0, x0); fma(&c01, b1, x0)
                    fma(&c10, b0, x1); fma(&c11, b1, x1)
                    fma(&c20, b0, x2); fma(&c21, b1, x2)
                    fma(&c30, b0, x3); fma(&c31, b1, x3)
                }
                store8(c00, c + i * ldc + j, accumulate); store8(c01, c + i * ldc + j + 8, accumulate)
                if rows > 1 { store8(c10, c + (i + 1) * ldc + j, accumulate); store8(c11, c + (i + 1) * ldc + j + 8, accumulate) }
                if rows > 2 { store8(c20, c + (i + 2) * ldc + j, accumulate); store8(c21, c + (i + 2) * ldc + j + 8, accumulate) }
                if rows > 3 { store8(c30, c + (i + 3) * ldc + j, accumulate); store8(c31, c + (i + 3) * ldc + j + 8, accumulate) }
                j += 16
            }
            while j < n8 {
                var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
                for p in 0..<k {
                    let b0 = b.load8(p, j)
                    fma(&c0, b0, a0[p * aCol]); fma(&c1, b0, a1[p * aCol])
                    fma(&c2, b0, a2[p * aCol]); fma(&c3, b0, a3[p * aCol])
                }
                store8(c0, c + i * ldc + j, accumulate)
                if rows > 1 { store8(c1, c + (i + 1) * ldc + j, accumulate) }
                if rows > 2 { store8(c2, c + (i + 2) * ldc + j, accumulate) }
                if rows > 3 { store8(c3, c + (i + 3) * ldc + j, accumulate) }
                j += 8
            }
            if j < n {
                // ragged edge (n % 8 columns): the same 4 x 8 tile with B's row gathered lane by lane
                let rem = n - j
                var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
                for p in 0..<k {
                    var b0 = SIMD8<Float>()
                    for l in 0..<rem { b0[l] = b.value(p, j + l) }
                    fma(&c0, b0, a0[p * aCol]); fma(&c1, b0, a1[p * aCol])
                    fma(&c2, b0, a2[p * aCol]); fma(&c3, b0, a3[p * aCol])
                }
                for r in 0..<rows {
                    let v = r == 0 ? c0 : (r == 1 ? c1 : (r == 2 ? c2 : c3))
                    let out = c + (i + r) * ldc + j
                    for l in 0..<rem { out[l] = accumulate ? out[l] + v[l] : v[l] }
                }
            }
            i += rows
        }
    }

    /// Kernel for C = A * Bᵀ: every C element is a dot product of two contiguous rows; a 2 x 4 tile
    /// of dot products shares its loads.
    @inlinable static func dotKernel(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let k8 = k - k % 8
        @inline(__always) func finish(_ acc: SIMD8<Float>, _ ar: UnsafePointer<Float>, _ br: UnsafePointer<Float>,
                                      _ out: UnsafeMutablePointer<Float>) {
            var sum = acc.sum()
            for p in k8..<k { sum += ar[p] * br[p] }
            out.pointee = accumulate ? out.pointee + sum : sum
        }
        var i = 0
        while i < m {
            let rows = min(2, m - i)
            let ar0 = a + i * lda, ar1 = rows > 1 ? ar0 + lda : ar0
            var j = 0
            while j + 4 <= n {
                let br0 = b + j * ldb, br1 = br0 + ldb, br2 = br1 + ldb, br3 = br2 + ldb
                var s00 = SIMD8<Float>(), s01 = SIMD8<Float>(), s02 = SIMD8<Float>(), s03 = SIMD8<Float>()
                var s10 = SIMD8<Float>(), s11 = SIMD8<Float>(), s12 = SIMD8<Float>(), s13 = SIMD8<Float>()
                var p = 0
                while p < k8 {
                    let x0 = load8(ar0 + p), x1 = load8(ar1 + p)
                    let y0 = load8(br0 + p), y1 = load8(br1 + p), y2 = load8(br2 + p), y3 = load8(br3 + p)
                    fma(&s00, x0, y0); fma(&s01, x0, y1); fma(&s02, x0, y2); fma(&s03, x0, y3)
                    fma(&s10, x1, y0); fma(&s11, x1, y1); fma(&s12, x1, y2); fma(&s13, x1, y3)
                    p += 8
                }
                finish(s00, ar0, br0, c + i * ldc + j); finish(s01, ar0, br1, c + i * ldc + j + 1)
                finish(s02, ar0, br2, c + i * ldc + j + 2); finish(s03, ar0, br3, c + i * ldc + j + 3)
                if rows > 1 {
                    finish(s10, ar1, br0, c + (i + 1) * ldc + j); finish(s11, ar1, br1, c + (i + 1) * ldc + j + 1)
                    finish(s12, ar1, br2, c + (i + 1) * ldc + j + 2); finish(s13, ar1, br3, c + (i + 1) * ldc + j + 3)
                }
                j += 4
            }
            while j < n {
                let br = b + j * ldb
                for r in 0..<rows {
                    let ar = r == 0 ? ar0 : ar1
                    var s = SIMD8<Float>()
                    var p = 0
                    while p < k8 { s += load8(ar + p) * load8(br + p); p += 8 }
                    finish(s, ar, br, c + (i + r) * ldc + j)
                }
                j += 1
            }
            i += rows
        }
    }

    /// acc += b * x, fused where the target has FMA (aarch64 always; x86 when built with
    /// `-Xswiftc -DFLEX_FMA` together with a target CPU that has FMA, e.g. `-target-cpu x86-64-v3`;
    /// without hardware FMA a fused multiply-add would be a slow library call).
    @inlinable @inline(__always) static func fma(_ acc: inout SIMD8<Float>, _ b: SIMD8<Float>, _ x: Float) {
        #if arch(arm64) || FLEX_FMA
        acc = acc.addingProduct(b, SIMD8<Float>(repeating: x))
        #else
        acc += b * x
        #endif
    }

    @inlinable @inline(__always) static func fma(_ acc: inout SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) {
        #if arch(arm64) || FLEX_FMA
        acc = acc.addingProduct(a, b)
        #else
        acc += a * b
        #endif
    }

    @inlinable @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inlinable @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        let raw = UnsafeMutableRawPointer(p)
        if accumulate {
            raw.storeBytes(of: raw.loadUnaligned(as: SIMD8<Float>.self) + v, as: SIMD8<Float>.self)
        } else {
            raw.storeBytes(of: v, as: SIMD8<Float>.self)
        }
    }
}

// MARK: - row sources: how the fast kernel reads 8 consecutive values of a row of B

/// A k x n matrix read row-wise, 8 values at a time (`col` a multiple of 8 with col + 8 <= n), or
/// one value at a time for the ragged edge.
@usableFromInline protocol RowSource {
    func load8(_ row: Int, _ col: Int) -> SIMD8<Float>
    func value(_ row: Int, _ col: Int) -> Float
}

@usableFromInline struct DenseRows: RowSource {
    @usableFromInline let base: UnsafePointer<Float>
    @usableFromInline let ld: Int
    @inlinable init(base: UnsafePointer<Float>, ld: Int) { self.base = base; self.ld = ld }
    @inlinable @inline(__always) func load8(_ row: Int, _ col: Int) -> SIMD8<Float> {
        UnsafeRawPointer(base + row * ld + col).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inlinable @inline(__always) func value(_ row: Int, _ col: Int) -> Float { base[row * ld + col] }
}

@usableFromInline struct HalfRows: RowSource {
    @usableFromInline let base: UnsafeRawPointer
    @usableFromInline let ld: Int
    @inlinable init(base: UnsafeRawPointer, ld: Int) { self.base = base; self.ld = ld }
    @inlinable @inline(__always) func load8(_ row: Int, _ col: Int) -> SIMD8<Float> {
        let h = base.loadUnaligned(fromByteOffset: (row * ld + col) * 2, as: SIMD8<UInt16>.self)
        var out = SIMD8<Float>()
        for lane in 0..<8 { out[lane] = Half.float(fromBits: h[lane]) }
        return out
    }
    @inlinable @inline(__always) func value(_ row: Int, _ col: Int) -> Float {
        Half.float(fromBits: base.loadUnaligned(fromByteOffset: (row * ld + col) * 2, as: UInt16.self))
    }
}

@usableFromInline struct Int8BlockRows: RowSource {
    @usableFromInline let base: UnsafeRawPointer
    @usableFromInline let cols: Int
    @usableFromInline let blocks: Int
    @usableFromInline let values: Int
    @inlinable init(base: UnsafeRawPointer, cols: Int, values: Int) {
        self.base = base; self.cols = cols; self.values = values
        self.blocks = DType.blocksPerRow(cols)
    }
    @inlinable @inline(__always) func scale(_ row: Int, _ col: Int) -> Float {
        Half.float(fromBits: base.loadUnaligned(fromByteOffset: (row * blocks + col / DType.blockSize) * 2, as: UInt16.self))
    }
    @inlinable @inline(__always) func load8(_ row: Int, _ col: Int) -> SIMD8<Float> {
        let q = base.loadUnaligned(fromByteOffset: values + row * cols + col, as: SIMD8<Int8>.self)
        return SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q)) * scale(row, col)
    }
    @inlinable @inline(__always) func value(_ row: Int, _ col: Int) -> Float {
        Float(base.load(fromByteOffset: values + row * cols + col, as: Int8.self)) * scale(row, col)
    }
}

@usableFromInline struct Int8RowRows: RowSource {
    @usableFromInline let base: UnsafeRawPointer
    @usableFromInline let cols: Int
    @usableFromInline let values: Int
    @inlinable init(base: UnsafeRawPointer, cols: Int, values: Int) {
        self.base = base; self.cols = cols; self.values = values
    }
    @inlinable @inline(__always) func load8(_ row: Int, _ col: Int) -> SIMD8<Float> {
        let q = base.loadUnaligned(fromByteOffset: values + row * cols + col, as: SIMD8<Int8>.self)
        return SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q)) * base.loadUnaligned(fromByteOffset: row * 4, as: Float.self)
    }
    @inlinable @inline(__always) func value(_ row: Int, _ col: Int) -> Float {
        Float(base.load(fromByteOffset: values + row * cols + col, as: Int8.self))
            * base.loadUnaligned(fromByteOffset: row * 4, as: Float.self)
    }
}
