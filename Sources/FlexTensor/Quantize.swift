/// Read-only view of a tensor in wire layout (docs/FORMAT.md), valid while its owner lives.
/// This is one of the few named places that hold raw pointers.
public struct QuantizedMatrix {
    public let dtype: DType
    public let shape: Shape
    public let bytes: UnsafeRawBufferPointer

    public init(dtype: DType, shape: Shape, bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= dtype.payloadBytes(shape), "buffer smaller than its layout")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// The element at (row, col) as fp32: the scalar reference for every fast kernel.
    public func value(_ row: Int, _ col: Int) -> Float {
        let index = row * shape.cols + col
        switch dtype {
        case .fp32:
            return bytes.loadUnaligned(fromByteOffset: index * 4, as: Float.self)
        case .fp16:
            return Half.float(fromBits: bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
        case .int8Block:
            let block = row * DType.blocksPerRow(shape.cols) + col / DType.blockSize
            let scale = Half.float(fromBits: bytes.loadUnaligned(fromByteOffset: block * 2, as: UInt16.self))
            let q = bytes.load(fromByteOffset: dtype.scaleBytes(shape) + index, as: Int8.self)
            return Float(q) * scale
        case .int8Row:
            let scale = bytes.loadUnaligned(fromByteOffset: row * 4, as: Float.self)
            let q = bytes.load(fromByteOffset: dtype.scaleBytes(shape) + index, as: Int8.self)
            return Float(q) * scale
        }
    }
}

/// How a value is rounded to its stored representation.
@usableFromInline protocol Rounder {
    /// Rounds x (already divided by the scale) to an integer value.
    mutating func roundToInt(_ x: Float) -> Float
    mutating func half(_ x: Float) -> UInt16
}

@usableFromInline struct NearestRounder: Rounder {
    @inlinable init() {}
    @inlinable func roundToInt(_ x: Float) -> Float { x.rounded(.toNearestOrAwayFromZero) }
    @inlinable func half(_ x: Float) -> UInt16 { Half.bits(from: x) }
}

@usableFromInline struct StochasticRounder: Rounder {
    @usableFromInline var random: FlexRandom
    @inlinable init(random: FlexRandom) { self.random = random }
    @inlinable mutating func roundToInt(_ x: Float) -> Float {
        let u = Float(random.next() >> 40) * 0x1.0p-24  // uniform in [0, 1)
        return (x + u).rounded(.down)
    }
    @inlinable mutating func half(_ x: Float) -> UInt16 { Half.bitsStochastic(from: x, random: random.next()) }
}

/// Quantisation between fp32 tensors and the storage dtypes.
public enum Quantizer {
    /// Quantises `source` into `destination` (same shape) with round-to-nearest.
    public static func quantize(_ source: borrowing Tensor<Float>, into destination: borrowing QuantizedTensor) {
        var rounder = NearestRounder()
        quantize(source, into: destination, rounder: &rounder)
    }

    /// Quantises with stochastic rounding: E[dequantised] = source, for update deltas whose small
    /// systematic errors would otherwise add up over rounds. Advances `random`.
    public static func quantizeStochastic(
        _ source: borrowing Tensor<Float>, into destination: borrowing QuantizedTensor,
        random: inout FlexRandom
    ) {
        var rounder = StochasticRounder(random: random)
        quantize(source, into: destination, rounder: &rounder)
        random = rounder.random
    }

    /// Dequantises `source` into the fp32 `destination` (same shape).
    public static func dequantize(_ source: borrowing QuantizedTensor, into destination: borrowing Tensor<Float>) {
        precondition(source.shape == destination.shape, "dequantize: shape mismatch")
        source.withMatrix { m in
            destination.withUnsafeMutableBufferPointer { out in dequantize(m, into: out) }
        }
    }

    /// Dequantises a wire-layout view into fp32 memory (row-major, `matrix.shape.count` floats).
    public static func dequantize(_ matrix: QuantizedMatrix, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count >= matrix.shape.count)
        let rows = matrix.shape.rows, cols = matrix.shape.cols
        switch matrix.dtype {
        case .fp32:
            UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: matrix.bytes.baseAddress!, byteCount: rows * cols * 4)
        case .fp16:
            for i in 0..<(rows * cols) {
                out[i] = Half.float(fromBits: matrix.bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            }
        case .int8Block, .int8Row:
            let values = matrix.dtype.scaleBytes(matrix.shape)
            let blocks = DType.blocksPerRow(cols)
            for r in 0..<rows {
                var c = 0
                while c < cols {
                    let end = matrix.dtype == .int8Block ? min(c + DType.blockSize, cols) : cols
                    let scale = matrix.dtype == .int8Block
                        ? Half.float(fromBits: matrix.bytes.loadUnaligned(
                            fromByteOffset: (r * blocks + c / DType.blockSize) * 2, as: UInt16.self))
                        : matrix.bytes.loadUnaligned(fromByteOffset: r * 4, as: Float.self)
                    for j in c..<end {
                        out[r * cols + j] = Float(matrix.bytes.load(fromByteOffset: values + r * cols + j, as: Int8.self)) * scale
                    }
                    c = end
                }
            }
        }
    }

    @inlinable static func quantize<R: Rounder>(
        _ source: borrowing Tensor<Float>, into destination: borrowing QuantizedTensor, rounder: inout R
    ) {
        precondition(source.shape == destination.shape, "quantize: shape mismatch")
        let rows = source.shape.rows, cols = source.shape.cols
        let dtype = destination.dtype
        source.withUnsafeBufferPointer { src in
            destination.bytes.withUnsafeMutableBufferPointer { dstBytes in
                let dst = UnsafeMutableRawBufferPointer(dstBytes)
                switch dtype {
                case .fp32:
                    for i in 0..<(rows * cols) { dst.storeBytes(of: src[i], toByteOffset: i * 4, as: Float.self) }
                case .fp16:
                    for i in 0..<(rows * cols) {
                        dst.storeBytes(of: rounder.half(src[i]), toByteOffset: i * 2, as: UInt16.self)
                    }
                case .int8Block, .int8Row:
                    let values = dtype.scaleBytes(source.shape)
                    let blocks = DType.blocksPerRow(cols)
                    for r in 0..<rows {
                        var c = 0
                        while c < cols {
                            let end = dtype == .int8Block ? min(c + DType.blockSize, cols) : cols
                            let x = src.baseAddress! + r * cols + c
                            let q = UnsafeMutableRawPointer(dst.baseAddress! + values + r * cols + c)
                                .assumingMemoryBound(to: Int8.self)
                            let scale = quantizeGroup(x, count: end - c, into: q, fp16Scale: dtype == .int8Block,
                                                      rounder: &rounder)
                            if dtype == .int8Block {
                                dst.storeBytes(of: Half.bits(from: scale),
                                               toByteOffset: (r * blocks + c / DType.blockSize) * 2, as: UInt16.self)
                            } else {
                                dst.storeBytes(of: scale, toByteOffset: r * 4, as: Float.self)
                            }
                            c = end
                        }
                    }
                }
            }
        }
    }

    /// Quantises one group (a block, or a whole row) to int8 and returns its scale (exactly
    /// representable in fp16 when `fp16Scale`).
    ///
    /// The grid uses all of int8: the scale is max(max/127, -min/128), rounded *up* to its stored
    /// precision so nothing is clipped (clipping would bias stochastic deltas). With round-to-nearest
    /// the scale is then refined once by least squares (s = Σxq / Σq²), kept only if it lowers the
    /// squared error: about 2% less error than plain max|x|/127 on Gaussian weights.
    @inlinable static func quantizeGroup<R: Rounder>(
        _ x: UnsafePointer<Float>, count: Int, into q: UnsafeMutablePointer<Int8>, fp16Scale: Bool,
        rounder: inout R
    ) -> Float {
        var high: Float = 0, low: Float = 0
        for j in 0..<count {
            high = max(high, x[j])
            low = min(low, x[j])
        }
        var scale = stored(max(high / 127, -low / 128), fp16: fp16Scale, roundUp: true)
        if scale == 0 {
            for j in 0..<count { q[j] = 0 }
            return 0
        }
        @inline(__always) func fill(_ scale: Float, _ rounder: inout R) -> Float {
            let inverse = 1 / scale
            var error: Float = 0
            for j in 0..<count {
                let v = min(max(rounder.roundToInt(x[j] * inverse), -128), 127)
                q[j] = Int8(v)
                let e = v * scale - x[j]
                error += e * e
            }
            return error
        }
        let error = fill(scale, &rounder)
        guard R.self == NearestRounder.self else { return scale }
        var xq: Float = 0, qq: Float = 0
        for j in 0..<count {
            xq += x[j] * Float(q[j])
            qq += Float(q[j]) * Float(q[j])
        }
        let refined = stored(xq / qq, fp16: fp16Scale, roundUp: false)
        if refined > 0 && refined != scale && fill(refined, &rounder) < error {
            scale = refined
        } else {
            _ = fill(scale, &rounder)
        }
        return scale
    }

    /// A positive scale in its stored precision (fp16 or fp32), rounded up when asked.
    @inlinable static func stored(_ scale: Float, fp16: Bool, roundUp: Bool) -> Float {
        guard fp16 else { return scale }
        var bits = Half.bits(from: scale)
        if roundUp && Half.float(fromBits: bits) < scale && bits < 0x7BFF { bits += 1 }
        return Half.float(fromBits: bits)
    }
}
