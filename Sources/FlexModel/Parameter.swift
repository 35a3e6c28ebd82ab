import FlexTensor

/// One parameter tensor with its gradient, optimiser state and the value it was downloaded as.
/// A class so that the extractor, gate and experts can hand out references to the optimiser.
public final class Parameter {
    public let value: Tensor<Float>
    public let grad: Tensor<Float>
    public let velocity: Tensor<Float>
    /// The value at the last `markDownloaded()` — deltas are `value − initial`.
    public let initial: Tensor<Float>
    /// Biases get no weight decay.
    public let decays: Bool

    /// `component` books the value (extractor, gate or expert working copy); the gradient, optimiser
    /// state and downloaded copy are booked to their own components.
    public init(shape: Shape, decays: Bool, memory: TensorMemory = .heap, component: MemoryComponent = .workingCopies) {
        value = memory.floats(shape, component)
        grad = memory.floats(shape, .gradients)
        velocity = memory.floats(shape, .optimiserState)
        initial = memory.floats(shape, .downloadedCopies)
        self.decays = decays
    }

    public var shape: Shape { value.shape }
    public var count: Int { value.count }

    /// He-normal initialisation N(0, sqrt(2 / fanIn)).
    public func initialiseHe(fanIn: Int, random: inout FlexRandom) {
        let sigma = (2.0 / Double(fanIn)).squareRoot()
        for i in 0..<count { value[i] = Float(random.nextGaussian() * sigma) }
    }

    /// Records the current value as the downloaded one and clears the optimiser state.
    public func markDownloaded() {
        initial.copy(from: value)
        velocity.fill(0)
    }

    /// Loads weights from wire layout (any dtype) and marks them downloaded.
    public func load(from source: borrowing QuantizedTensor) {
        precondition(source.shape == value.shape, "parameter shape mismatch")
        Quantizer.dequantize(source, into: value)
        markDownloaded()
    }

    /// Loads fp32 weights and marks them downloaded.
    public func load(from source: borrowing Tensor<Float>) {
        value.copy(from: source)
        markDownloaded()
    }

    /// delta = value − initial (trained − downloaded), into `out` (same shape).
    public func delta(into out: borrowing Tensor<Float>) {
        precondition(out.count == count)
        value.withUnsafeBufferPointer { v in
            initial.withUnsafeBufferPointer { i in
                out.withUnsafeMutableBufferPointer { o in
                    for k in 0..<v.count { o[k] = v[k] - i[k] }
                }
            }
        }
    }

    /// SGD with momentum and decoupled-from-nothing (PyTorch-style) weight decay:
    /// g ← grad + wd·w; v ← μ·v + g; w ← w − lr·v. With μ = 0 the velocity is bypassed.
    @inline(__always)
    public func sgdStep(learningRate lr: Float, momentum mu: Float, weightDecay wd: Float) {
        let n = count
        let w = value.ptr, g = grad.ptr, v = velocity.ptr
        let decay: Float = decays ? wd : 0
        if mu == 0 {
            if decay == 0 {
                for i in 0..<n { w[i] -= lr * g[i] }
            } else {
                for i in 0..<n { w[i] -= lr * (g[i] + decay * w[i]) }
            }
        } else {
            for i in 0..<n {
                let vi = mu * v[i] + g[i] + decay * w[i]
                v[i] = vi
                w[i] -= lr * vi
            }
        }
    }
}

extension Tensor {
    /// Raw base pointer, for the model's kernels (valid while the tensor lives).
    @inlinable public var ptr: UnsafeMutablePointer<Element> {
        withUnsafeMutableBufferPointer { $0.baseAddress! }
    }
}
