import FlexEdge
import FlexModel
import FlexTensor
import FlexWire

/// `flexmoe-edge selftest`: exercises on the board itself what every round depends on — quantisation
/// in every dtype, the fast kernels against their references, and a container round trip through zstd
/// with checksums — and says `selftest ok` only if all of it holds.
enum SelfTest {
    struct Failure: Error {
        let message: String
    }

    static func run() -> Int32 {
        Console.out("flexmoe-edge selftest: quantisation, kernels, FlexWire container v\(Container.formatVersion) + zstd")
        do throws(Failure) {
            try kernels()
            let compressor = ZstdCompressor(level: 3)
            let decompressor = ZstdDecompressor()
            for dtype in DType.allCases {
                try containerRoundTrip(dtype, compressor: compressor, decompressor: decompressor)
            }
            try training()
        } catch {
            Console.error("selftest FAILED: \(error.message)")
            return 1
        }
        Console.out("selftest ok")
        return 0
    }

    /// Gaussian test data of the default expert's first layer shape (h = 64, f = 128).
    static func weights(rows: Int, cols: Int, seed: UInt64) -> Tensor<Float> {
        var random = FlexRandom(seed: seed)
        let t = Tensor<Float>(zeros: Shape(rows: rows, cols: cols))
        for i in 0..<t.count { t[i] = Float(random.nextGaussian()) * 0.1 }
        return t
    }

    static func kernels() throws(Failure) {
        let m = 9, k = 64, n = 37
        let a = weights(rows: m, cols: k, seed: 1), w = weights(rows: k, cols: n, seed: 2)
        let fast = Tensor<Float>(zeros: Shape(rows: m, cols: n)), reference = Tensor<Float>(zeros: Shape(rows: m, cols: n))
        var worst: Float = 0
        a.withUnsafeBufferPointer { pa in w.withUnsafeBufferPointer { pw in
            fast.withUnsafeMutableBufferPointer { pc in
                Kernels.gemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                             b: pw.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n, accumulate: false)
            }
            reference.withUnsafeMutableBufferPointer { pc in
                Kernels.gemmReference(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                                      b: pw.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n, accumulate: false)
            }
        }}
        for i in 0..<fast.count { worst = max(worst, abs(fast[i] - reference[i])) }
        for dtype in DType.allCases {
            let q = QuantizedTensor(dtype: dtype, shape: w.shape)
            Quantizer.quantize(w, into: q)
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
            for i in 0..<fast.count { worst = max(worst, abs(fast[i] - reference[i])) }
        }
        // Outputs are O(0.1); the kernels only reorder sums.
        if worst > 1e-5 { throw Failure(message: "SIMD kernels differ from the scalar reference by \(Format.fixed(Double(worst), 8))") }
        Console.out("  kernels     fp32/fp16/int8 GEMM vs scalar reference: max |diff| \(Format.fixed(Double(worst), 8))")
    }

    /// Both models (mlp and conv extractor) train a few epochs here; their losses must fall.
    static func training() throws(Failure) {
        let r = ModelSelfCheck.run()
        Console.out("  training    mlp loss \(Format.fixed(Double(r.mlp.0), 3)) -> \(Format.fixed(Double(r.mlp.1), 3)), conv loss \(Format.fixed(Double(r.conv.0), 3)) -> \(Format.fixed(Double(r.conv.1), 3))")
        if !(r.mlp.1 < 0.8 * r.mlp.0) || !(r.conv.1 < r.conv.0) {
            throw Failure(message: "local training did not reduce the loss")
        }
    }

    static func containerRoundTrip(_ dtype: DType, compressor: borrowing ZstdCompressor,
                                   decompressor: borrowing ZstdDecompressor) throws(Failure) {
        let w = weights(rows: 64, cols: 128, seed: UInt64(dtype.rawValue) + 10)
        let q = QuantizedTensor(dtype: dtype, shape: w.shape)
        Quantizer.quantize(w, into: q)
        let back = Tensor<Float>(zeros: w.shape)
        Quantizer.dequantize(q, into: back)
        var err = 0.0, ref = 0.0
        for i in 0..<w.count {
            let d = Double(w[i] - back[i])
            err += d * d
            ref += Double(w[i]) * Double(w[i])
        }
        let rmse = (err / ref).squareRoot()
        let limit: Double = dtype == .fp32 ? 0 : dtype == .fp16 ? 0.001 : 0.02
        if rmse > limit { throw Failure(message: "\(dtype.name) quantisation error \(Format.fixed(rmse, 6)) above \(limit)") }

        let payload = q.bytes.withUnsafeBufferPointer { Array($0) }
        let entries = [TensorEntry(dtype: dtype, shape: w.shape, shuffled: true)]
        let encoded = Result { () throws(WireError) -> [UInt8] in
            try Container.encode(kind: .expertWeights, expertId: 3, modelVersion: 1, tensors: entries,
                                 payload: payload, compressor: compressor)
        }
        guard case .success(let container) = encoded else {
            throw Failure(message: "\(dtype.name): encoding failed")
        }
        switch Result(catching: { () throws(WireError) in
            try Container.decode(container, maxPayload: payload.count, decompressor: decompressor)
        }) {
        case .failure(let error):
            throw Failure(message: "\(dtype.name) container: \(error.message)")
        case .success(let (header, decoded)):
            if decoded != payload || header.expertId != 3 || header.tensors != entries {
                throw Failure(message: "\(dtype.name) container round trip changed the data")
            }
        }
        // A corrupted payload must be caught by the checksum or the codec, never accepted.
        var corrupt = container
        corrupt[corrupt.count - 5] ^= 0x5A
        if case .success = Result(catching: { () throws(WireError) in
            try Container.decode(corrupt, maxPayload: payload.count, decompressor: decompressor)
        }) {
            throw Failure(message: "\(dtype.name): a corrupted container was accepted")
        }
        let ratio = Double(payload.count) / Double(container.count)
        Console.out("  \(pad(dtype.name, 10)) 64x128 rmse \(Format.fixed(rmse * 100, 3))%  payload \(payload.count) B -> container \(container.count) B (x\(Format.fixed(ratio, 2)))  corrupt copy rejected")
    }

    static func pad(_ s: String, _ width: Int) -> String {
        var s = s
        while s.count < width { s += " " }
        return s
    }
}
