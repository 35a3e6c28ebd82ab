import FlexTensor

/// Sizes of the reference `mlp-moe` model (docs/DESIGN §1): extractor d → h, experts h → f → K.
public struct MoEConfig: Sendable, Equatable {
    /// Input features d (for the conv extractor: channels × height × width).
    public var inputDim: Int
    /// Extractor output / gate input h.
    public var hidden: Int
    /// Expert hidden width f.
    public var expertHidden: Int
    /// Classes K.
    public var classes: Int
    /// Experts E in the global model (the gate file holds E columns; a client routes among its k_c).
    public var experts: Int
    /// Top-k routing; the effective k is min(topK, k_c).
    public var topK: Int

    public init(inputDim: Int = 60, hidden: Int = 64, expertHidden: Int = 128, classes: Int = 10,
                experts: Int = 8, topK: Int = 2) {
        precondition(inputDim > 0 && hidden > 0 && expertHidden > 0 && classes > 1 && experts > 0 && topK > 0)
        self.inputDim = inputDim
        self.hidden = hidden
        self.expertHidden = expertHidden
        self.classes = classes
        self.experts = experts
        self.topK = topK
    }

    /// Shapes of the mlp extractor's tensors, in docs/FORMAT.md "Kinds" order: W1 (d × h), b1 (1 × h).
    public var extractorShapes: [Shape] { [Shape(rows: inputDim, cols: hidden), Shape(vector: hidden)] }

    /// Shapes of an expert's tensors, in docs/FORMAT.md "Kinds" order: A1, a1, A2, a2.
    public var expertShapes: [Shape] {
        [Shape(rows: hidden, cols: expertHidden), Shape(vector: expertHidden),
         Shape(rows: expertHidden, cols: classes), Shape(vector: classes)]
    }

    /// Shapes of the (full, E-column) gate: Wg (h × E), bg (1 × E).
    public var gateShapes: [Shape] { [Shape(rows: hidden, cols: experts), Shape(vector: experts)] }

    /// fp32 parameters of one expert.
    public var expertParameterCount: Int {
        hidden * expertHidden + expertHidden + expertHidden * classes + classes
    }
}

/// Which number becomes the fitness s of an (client, expert) pair.
public enum FitnessVariant: Sendable, Equatable {
    /// s = accuracy a of the expert's own output on the samples routed to it.
    case accuracy
    /// s = exp(−α_L · ℓ), ℓ the mean cross-entropy of the expert's own output on its samples.
    case loss(alpha: Float)
}

/// Whose output the fitness is measured on.
public enum FitnessSource: Sendable, Equatable {
    /// The expert's own logits (default: tells apart experts that see the same samples).
    case expertOutput
    /// The mixture's logits on the samples routed to the expert (second option).
    case mixture
}

/// When a device measures its assigned experts' fitness (`TrainingOptions.fitnessTiming`).
public enum FitnessTiming: String, Sendable, CaseIterable {
    case during, before
}

/// Hyper-parameters of local training.
public struct TrainingOptions: Sendable, Equatable {
    public var learningRate: Float = 0.05
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
    public var batchSize: Int = 32
    public var epochs: Int = 1
    public var fitness: FitnessVariant = .accuracy
    public var fitnessSource: FitnessSource = .expertOutput
    /// Largest global L2 norm of a step's gradient (0: no clipping). Unnormalised inputs (LEAF
    /// Synthetic features reach |x| ≈ 6) otherwise make single steps explode on small devices.
    public var gradientClip: Float = 0
    /// When the fitness of the assigned experts is measured: over the forward passes of local
    /// training (`during`), or in one forward-only pass over the training data with the downloaded
    /// weights, before the device adapts them (`before`: says which global expert suits the device).
    public var fitnessTiming: FitnessTiming = .during
    /// How the device's own gate starts (applied when the device sets up, not per round).
    public var gateInit: GateInit = .random
    /// Slot 0 holds an always-on shared expert: every sample goes through it with weight 1, beside
    /// the top-k of the routed slots 1..<k_c (the server assigns it to every device).
    public var sharedExpert = false
    /// Before training, probe the experts the cache holds but were not assigned (warm slots, or last
    /// round's copies not yet replaced): one forward pass each over the training data (the expert
    /// alone), its own-output fitness reported.
    public var probeWarm = false

    /// Local-training defaults for federated rounds (server config, devices, simulator), on inputs
    /// standardised with federated statistics. Chosen by `Benchmarks/sweep.py` (docs/RESULTS.md,
    /// "Defaults"): on Synthetic(1,1) and raw-unit UCI digits, 5 seeds, lr 0.2 with momentum 0.5 and 2
    /// local epochs beat the old lr 0.02 / momentum 0.5 / 1 epoch by +0.12 and +0.34 (flex) and +0.05
    /// and +0.23 (dense FedAvg); the gradient-norm clip of 2 stays (without it lr 0.2 with momentum
    /// 0.9 diverged to NaN on Synthetic).
    /// The always-on shared expert (`sharedExpert`) is on: docs/RESULTS.md "shared expert" measured
    /// +4.4 (digits) and +1.8 (Synthetic) points for flex on the Dirichlet splits, no change on 2 classes.
    public static let federated = TrainingOptions(learningRate: 0.2, momentum: 0.5, epochs: 2, gradientClip: 2, sharedExpert: true)

    public init(learningRate: Float = 0.05, momentum: Float = 0.9, weightDecay: Float = 0,
                batchSize: Int = 32, epochs: Int = 1, fitness: FitnessVariant = .accuracy,
                fitnessSource: FitnessSource = .expertOutput, gradientClip: Float = 0, fitnessTiming: FitnessTiming = .during,
                gateInit: GateInit = .random, sharedExpert: Bool = false, probeWarm: Bool = false) {
        self.sharedExpert = sharedExpert
        self.probeWarm = probeWarm
        self.gradientClip = gradientClip
        self.fitnessTiming = fitnessTiming
        self.gateInit = gateInit
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.batchSize = batchSize
        self.epochs = epochs
        self.fitness = fitness
        self.fitnessSource = fitnessSource
    }
}

/// What local training measured for one assigned expert (over the samples the gate routed to it).
public struct ExpertFitness: Sendable, Equatable {
    /// Global expert id.
    public var expert: Int
    /// Usage u: samples routed to the expert (summed over epochs).
    public var usage: Int
    /// Accuracy a of the measured output (own or mixture, per `FitnessSource`) on those samples.
    public var accuracy: Float
    /// Mean cross-entropy ℓ of the measured output on those samples.
    public var meanLoss: Float
    /// s = a or exp(−α_L·ℓ), per `FitnessVariant`; 0 when usage is 0.
    public var fitness: Float
}

/// Summary of a call to `LocalTrainer.train`.
public struct TrainingReport: Sendable {
    public var steps: Int
    public var samples: Int
    /// Mean mixture loss over the first and the last epoch.
    public var firstEpochLoss: Float
    public var lastEpochLoss: Float
    /// Mixture accuracy over the last epoch (training samples, measured during training).
    public var lastEpochAccuracy: Float
    /// One entry per assigned slot, in slot order.
    public var experts: [ExpertFitness]
}
