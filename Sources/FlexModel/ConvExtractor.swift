import FlexTensor

/// The small conv extractor for image inputs: conv3x3 (pad 1) → relu → maxpool 2×2, twice, then a
/// dense layer to h with relu: z = relu(flatten(pool(relu(conv2(pool(relu(conv1(x))))))) · Wd + bd).
///
/// Input rows are images in channel-major order (C × H × W, as CIFAR-10 and IDX store them); H and
/// W must be multiples of 4. Tensors (extractorWeights kind, in order): K1 (c1 × C·9), k1 (1 × c1),
/// K2 (c2 × c1·9), k2 (1 × c2), Wd (c2·(H/4)·(W/4) × h), bd (1 × h). Convolutions run as im2col +
/// `Kernels.gemm`, one image at a time; activations are stored pixel-major (HW × channels).
public final class ConvExtractor: FeatureExtractor {
    public let channels: Int, height: Int, width: Int
    public let c1: Int, c2: Int
    public let outputDim: Int
    public let maxBatch: Int
    public let K1: Parameter, k1: Parameter, K2: Parameter, k2: Parameter, Wd: Parameter, bd: Parameter
    public let parameters: [Parameter]

    public var inputDim: Int { channels * height * width }
    var flat: Int { c2 * (height / 4) * (width / 4) }

    // scratch: per-batch activations kept for backward, per-image buffers reused
    let act1: Tensor<Float>   // B × (H·W × c1), after relu
    let pool1: Tensor<Float>  // B × (H/2·W/2 × c1)
    let arg1: Tensor<Int32>   // B × (H/2·W/2 × c1), index into act1's image
    let act2: Tensor<Float>   // B × (H/2·W/2 × c2)
    let pool2: Tensor<Float>  // B × flat (pixel-major H/4·W/4 × c2)
    let arg2: Tensor<Int32>
    let cols: Tensor<Float>   // im2col of one image: H·W × max(C, c1)·9
    let dcols: Tensor<Float>
    let dAct1: Tensor<Float>  // one image
    let dPool1: Tensor<Float>
    let dAct2: Tensor<Float>
    let dFlat: Tensor<Float>  // B × flat

    public init(channels: Int, height: Int, width: Int, c1: Int = 8, c2: Int = 16, hidden: Int, maxBatch: Int,
                memory: TensorMemory = .heap) {
        precondition(height % 4 == 0 && width % 4 == 0, "conv extractor: H and W must be multiples of 4")
        self.channels = channels; self.height = height; self.width = width
        self.c1 = c1; self.c2 = c2; self.outputDim = hidden; self.maxBatch = maxBatch
        let hw = height * width, hw2 = hw / 4, hw4 = hw / 16
        let flat = c2 * hw4
        K1 = Parameter(shape: Shape(rows: c1, cols: channels * 9), decays: true, memory: memory, component: .extractor)
        k1 = Parameter(shape: Shape(vector: c1), decays: false, memory: memory, component: .extractor)
        K2 = Parameter(shape: Shape(rows: c2, cols: c1 * 9), decays: true, memory: memory, component: .extractor)
        k2 = Parameter(shape: Shape(vector: c2), decays: false, memory: memory, component: .extractor)
        Wd = Parameter(shape: Shape(rows: flat, cols: hidden), decays: true, memory: memory, component: .extractor)
        bd = Parameter(shape: Shape(vector: hidden), decays: false, memory: memory, component: .extractor)
        parameters = [K1, k1, K2, k2, Wd, bd]
        act1 = memory.floats(Shape(rows: maxBatch, cols: hw * c1), .activations)
        pool1 = memory.floats(Shape(rows: maxBatch, cols: hw2 * c1), .activations)
        arg1 = memory.tensor(Shape(rows: maxBatch, cols: hw2 * c1), 0, .activations)
        act2 = memory.floats(Shape(rows: maxBatch, cols: hw2 * c2), .activations)
        pool2 = memory.floats(Shape(rows: maxBatch, cols: flat), .activations)
        arg2 = memory.tensor(Shape(rows: maxBatch, cols: flat), 0, .activations)
        cols = memory.floats(Shape(rows: hw, cols: max(channels, c1) * 9), .activations)
        dcols = memory.floats(Shape(rows: hw, cols: max(channels, c1) * 9), .activations)
        dAct1 = memory.floats(Shape(rows: hw, cols: c1), .activations)
        dPool1 = memory.floats(Shape(rows: hw2, cols: c1), .activations)
        dAct2 = memory.floats(Shape(rows: hw2, cols: c2), .activations)
        dFlat = memory.floats(Shape(rows: maxBatch, cols: flat), .activations)
    }

    public func initialise(random: inout FlexRandom) {
        K1.initialiseHe(fanIn: channels * 9, random: &random)
        K2.initialiseHe(fanIn: c1 * 9, random: &random)
        Wd.initialiseHe(fanIn: flat, random: &random)
        k1.value.fill(0); k2.value.fill(0); bd.value.fill(0)
        for p in parameters { p.markDownloaded() }
    }

    /// im2col for a 3×3, pad-1 convolution: out[(y·W + x), c·9 + ky·3 + kx] = in(c, y+ky−1, x+kx−1).
    /// The input is addressed as in[c·channelStride + (y·w + x)·pixelStride].
    @inline(__always)
    static func im2col(_ input: UnsafePointer<Float>, channels: Int, h: Int, w: Int, channelStride: Int,
                       pixelStride: Int, into out: UnsafeMutablePointer<Float>) {
        let width = channels * 9
        for y in 0..<h {
            for x in 0..<w {
                let row = out + (y * w + x) * width
                for c in 0..<channels {
                    for ky in 0..<3 {
                        let yy = y + ky - 1
                        for kx in 0..<3 {
                            let xx = x + kx - 1
                            row[c * 9 + ky * 3 + kx] = (yy < 0 || yy >= h || xx < 0 || xx >= w)
                                ? 0 : input[c * channelStride + (yy * w + xx) * pixelStride]
                        }
                    }
                }
            }
        }
    }

    /// Adjoint of im2col (pixel-major output gradient, HW × channels).
    @inline(__always)
    static func col2im(_ cols: UnsafePointer<Float>, channels: Int, h: Int, w: Int, into out: UnsafeMutablePointer<Float>) {
        let width = channels * 9
        for i in 0..<(h * w * channels) { out[i] = 0 }
        for y in 0..<h {
            for x in 0..<w {
                let row = cols + (y * w + x) * width
                for c in 0..<channels {
                    for ky in 0..<3 {
                        let yy = y + ky - 1
                        if yy < 0 || yy >= h { continue }
                        for kx in 0..<3 {
                            let xx = x + kx - 1
                            if xx < 0 || xx >= w { continue }
                            out[(yy * w + xx) * channels + c] += row[c * 9 + ky * 3 + kx]
                        }
                    }
                }
            }
        }
    }

    /// 2×2 max pool of a pixel-major (h·w × c) map; records the winning index.
    @inline(__always)
    static func maxPool(_ input: UnsafePointer<Float>, c: Int, h: Int, w: Int,
                        into out: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
        let ho = h / 2, wo = w / 2
        for y in 0..<ho {
            for x in 0..<wo {
                for ch in 0..<c {
                    var best = -Float.infinity, arg = 0
                    for dy in 0..<2 {
                        for dx in 0..<2 {
                            let idx = ((2 * y + dy) * w + (2 * x + dx)) * c + ch
                            if input[idx] > best { best = input[idx]; arg = idx }
                        }
                    }
                    out[(y * wo + x) * c + ch] = best
                    argmax[(y * wo + x) * c + ch] = Int32(arg)
                }
            }
        }
    }

    public func forward(_ x: UnsafePointer<Float>, rows: Int, z: UnsafeMutablePointer<Float>) {
        let h = height, w = width, hw = h * w, hw2 = hw / 4
        let colsP = cols.ptr
        for r in 0..<rows {
            let img = x + r * inputDim
            let a1 = act1.ptr + r * hw * c1
            Self.im2col(img, channels: channels, h: h, w: w, channelStride: hw, pixelStride: 1, into: colsP)
            Ops.gemm(false, true, m: hw, n: c1, k: channels * 9, colsP, channels * 9, K1.value.ptr, channels * 9, a1, c1)
            Ops.addBiasRelu(a1, rows: hw, n: c1, bias: k1.value.ptr)
            let p1 = pool1.ptr + r * hw2 * c1
            Self.maxPool(a1, c: c1, h: h, w: w, into: p1, argmax: arg1.ptr + r * hw2 * c1)
            let a2 = act2.ptr + r * hw2 * c2
            Self.im2col(p1, channels: c1, h: h / 2, w: w / 2, channelStride: 1, pixelStride: c1, into: colsP)
            Ops.gemm(false, true, m: hw2, n: c2, k: c1 * 9, colsP, c1 * 9, K2.value.ptr, c1 * 9, a2, c2)
            Ops.addBiasRelu(a2, rows: hw2, n: c2, bias: k2.value.ptr)
            Self.maxPool(a2, c: c2, h: h / 2, w: w / 2, into: pool2.ptr + r * flat, argmax: arg2.ptr + r * flat)
        }
        Ops.gemm(false, false, m: rows, n: outputDim, k: flat, pool2.ptr, flat, Wd.value.ptr, outputDim, z, outputDim)
        Ops.addBiasRelu(z, rows: rows, n: outputDim, bias: bd.value.ptr)
    }

    public func backward(_ x: UnsafePointer<Float>, rows: Int, z: UnsafePointer<Float>, dz: UnsafeMutablePointer<Float>) {
        let h = height, w = width, hw = h * w, hw2 = hw / 4
        Ops.reluBackward(dz, output: z, count: rows * outputDim)
        Ops.gemm(true, false, m: flat, n: outputDim, k: rows, pool2.ptr, flat, dz, outputDim, Wd.grad.ptr, outputDim)
        Ops.columnSums(dz, rows: rows, n: outputDim, into: bd.grad.ptr)
        Ops.gemm(false, true, m: rows, n: flat, k: outputDim, dz, outputDim, Wd.value.ptr, outputDim, dFlat.ptr, flat)
        K1.grad.fill(0); k1.grad.fill(0); K2.grad.fill(0); k2.grad.fill(0)
        let colsP = cols.ptr, dcolsP = dcols.ptr
        for r in 0..<rows {
            // pool2 → act2
            let da2 = dAct2.ptr
            for i in 0..<(hw2 * c2) { da2[i] = 0 }
            let df = dFlat.ptr + r * flat, a2i = arg2.ptr + r * flat
            for i in 0..<flat { da2[Int(a2i[i])] += df[i] }
            Ops.reluBackward(da2, output: act2.ptr + r * hw2 * c2, count: hw2 * c2)
            // conv2: dK2 += da2ᵀ · cols(p1); dcols = da2 · K2
            let p1 = pool1.ptr + r * hw2 * c1
            Self.im2col(p1, channels: c1, h: h / 2, w: w / 2, channelStride: 1, pixelStride: c1, into: colsP)
            Ops.gemm(true, false, m: c2, n: c1 * 9, k: hw2, da2, c2, colsP, c1 * 9, K2.grad.ptr, c1 * 9, accumulate: true)
            for i in 0..<hw2 { for c in 0..<c2 { k2.grad.ptr[c] += da2[i * c2 + c] } }
            Ops.gemm(false, false, m: hw2, n: c1 * 9, k: c2, da2, c2, K2.value.ptr, c1 * 9, dcolsP, c1 * 9)
            Self.col2im(dcolsP, channels: c1, h: h / 2, w: w / 2, into: dPool1.ptr)
            // pool1 → act1
            let da1 = dAct1.ptr
            for i in 0..<(hw * c1) { da1[i] = 0 }
            let dp1 = dPool1.ptr, a1i = arg1.ptr + r * hw2 * c1
            for i in 0..<(hw2 * c1) { da1[Int(a1i[i])] += dp1[i] }
            Ops.reluBackward(da1, output: act1.ptr + r * hw * c1, count: hw * c1)
            // conv1: dK1 += da1ᵀ · cols(x)
            Self.im2col(x + r * inputDim, channels: channels, h: h, w: w, channelStride: hw, pixelStride: 1, into: colsP)
            Ops.gemm(true, false, m: c1, n: channels * 9, k: hw, da1, c1, colsP, channels * 9, K1.grad.ptr, channels * 9, accumulate: true)
            for i in 0..<hw { for c in 0..<c1 { k1.grad.ptr[c] += da1[i * c1 + c] } }
        }
    }
}
