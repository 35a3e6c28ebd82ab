import FlexTensor

/// fp32 working copy of one expert θ_e: relu(z·A1 + a1)·A2 + a2. Tensors in docs/FORMAT.md
/// "Kinds" order: A1 (h × f), a1 (1 × f), A2 (f × K), a2 (1 × K).
public final class ExpertParameters {
    public let A1: Parameter
    public let a1: Parameter
    public let A2: Parameter
    public let a2: Parameter
    public let parameters: [Parameter]
    /// Global expert id this slot currently holds (−1 when empty).
    public internal(set) var expertId: Int = -1

    public init(_ config: MoEConfig, memory: TensorMemory = .heap) {
        let shapes = config.expertShapes
        A1 = Parameter(shape: shapes[0], decays: true, memory: memory, component: .workingCopies)
        a1 = Parameter(shape: shapes[1], decays: false, memory: memory, component: .workingCopies)
        A2 = Parameter(shape: shapes[2], decays: true, memory: memory, component: .workingCopies)
        a2 = Parameter(shape: shapes[3], decays: false, memory: memory, component: .workingCopies)
        parameters = [A1, a1, A2, a2]
    }

    /// He initialisation (a fresh expert of the global model).
    public func initialise(random: inout FlexRandom) {
        A1.initialiseHe(fanIn: A1.shape.rows, random: &random)
        a1.value.fill(0)
        A2.initialiseHe(fanIn: A2.shape.rows, random: &random)
        a2.value.fill(0)
        for p in parameters { p.markDownloaded() }
    }
}

/// A client's own gate φ_c over all E experts: Wg (h × E), bg (1 × E) (gateWeights kind). It is
/// never aggregated; the trainer copies the columns of the assigned experts in and out.
public final class ClientGate {
    public let Wg: Tensor<Float>
    public let bg: Tensor<Float>

    public init(_ config: MoEConfig, memory: TensorMemory = .heap) {
        Wg = memory.floats(Shape(rows: config.hidden, cols: config.experts), .gate)
        bg = memory.floats(Shape(vector: config.experts), .gate)
    }

    /// `.random`: He-initialised columns; `.zero`: every column 0, so each expert starts with the same
    /// logit and a newly assigned expert competes evenly with the ones the gate has learned.
    public func initialise(random: inout FlexRandom, mode: GateInit = .random) {
        let sigma = (2.0 / Double(Wg.shape.rows)).squareRoot()
        for i in 0..<Wg.count {
            let w = Float(random.nextGaussian() * sigma)  // drawn either way: the random stream is the same
            Wg[i] = mode == .random ? w : 0
        }
        bg.fill(0)
    }
}

/// How a device's own gate starts (`TrainingOptions.gateInit`).
public enum GateInit: String, Sendable, CaseIterable {
    case random, zero
}
