import FlexTensor

/// The shared feature extractor ψ: maps a batch of inputs (rows × inputDim) to features z
/// (rows × outputDim, after a relu). Implementations keep whatever they need for the backward pass
/// in scratch allocated once for `maxBatch` rows.
public protocol FeatureExtractor: AnyObject {
    var inputDim: Int { get }
    var outputDim: Int { get }
    var maxBatch: Int { get }
    /// Parameters in docs/FORMAT.md "Kinds" order (extractorWeights).
    var parameters: [Parameter] { get }
    /// z = ψ(x) for `rows` ≤ maxBatch rows.
    func forward(_ x: UnsafePointer<Float>, rows: Int, z: UnsafeMutablePointer<Float>)
    /// Given dL/dz (rows × outputDim; may be overwritten), writes every parameter's `grad`.
    /// `x` and `z` are the forward pass's input and output.
    func backward(_ x: UnsafePointer<Float>, rows: Int, z: UnsafePointer<Float>, dz: UnsafeMutablePointer<Float>)
    /// He initialisation of every parameter.
    func initialise(random: inout FlexRandom)
}

/// The `mlp-moe` extractor: z = relu(x·W1 + b1). Tensors: W1 (d × h), b1 (1 × h).
public final class MLPExtractor: FeatureExtractor {
    public let inputDim: Int
    public let outputDim: Int
    public let maxBatch: Int
    public let W1: Parameter
    public let b1: Parameter
    public let parameters: [Parameter]

    public init(inputDim: Int, hidden: Int, maxBatch: Int, memory: TensorMemory = .heap) {
        self.inputDim = inputDim
        self.outputDim = hidden
        self.maxBatch = maxBatch
        W1 = Parameter(shape: Shape(rows: inputDim, cols: hidden), decays: true, memory: memory, component: .extractor)
        b1 = Parameter(shape: Shape(vector: hidden), decays: false, memory: memory, component: .extractor)
        parameters = [W1, b1]
    }

    public convenience init(_ config: MoEConfig, maxBatch: Int, memory: TensorMemory = .heap) {
        self.init(inputDim: config.inputDim, hidden: config.hidden, maxBatch: maxBatch, memory: memory)
    }

    public func initialise(random: inout FlexRandom) {
        W1.initialiseHe(fanIn: inputDim, random: &random)
        b1.value.fill(0)
        W1.markDownloaded(); b1.markDownloaded()
    }

    public func forward(_ x: UnsafePointer<Float>, rows: Int, z: UnsafeMutablePointer<Float>) {
        Ops.gemm(false, false, m: rows, n: outputDim, k: inputDim, x, inputDim, W1.value.ptr, outputDim, z, outputDim)
        Ops.addBiasRelu(z, rows: rows, n: outputDim, bias: b1.value.ptr)
    }

    public func backward(_ x: UnsafePointer<Float>, rows: Int, z: UnsafePointer<Float>, dz: UnsafeMutablePointer<Float>) {
        Ops.reluBackward(dz, output: z, count: rows * outputDim)
        Ops.gemm(true, false, m: inputDim, n: outputDim, k: rows, x, inputDim, dz, outputDim, W1.grad.ptr, outputDim)
        Ops.columnSums(dz, rows: rows, n: outputDim, into: b1.grad.ptr)
    }
}
