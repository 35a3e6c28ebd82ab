import ArgumentParser
import FlexData
import FlexModel
import FlexServer
import FlexSimulation
import FlexTensor
import Foundation

/// `flexmoe-server simulate`: federated rounds with in-process devices running the trainer, the
/// round planner, the report validator and the streaming aggregator (docs/RESULTS.md).
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate federated FLEX-MoE rounds with in-process devices; write rounds.csv, summary.json and SVG plots.")

    enum Defaults: DataDefaults {
        static let split = SplitSpec.dirichlet(0.3)
        static let seedHelp = "Seed (one run per strategy)."
    }

    @OptionGroup var data: DataOptions<Defaults>
    @Option(help: "Number of devices.")
    var clients = 32
    @Option(help: "Experts E.")
    var experts = 8
    @Option(help: "k_c of every device, or 'boards' (each device a board profile drawn at random: k_c 2, 4, 8 or 16, capped at E).")
    var capacity = "2"
    @Option(help: "Rounds.")
    var rounds = 20
    @Option(help: "Local epochs per round.")
    var localEpochs = TrainingOptions.federated.epochs
    @Option(help: "Comma list of: flex, greedy, random, fedavg-dense (one expert path), fedavg-dense-matched (dense at the smallest device's k_c experts' parameters).")
    var strategy = "flex,greedy,random,fedavg-dense"
    @Option(help: "Fitness: accuracy | loss (s = exp(-α_L·ℓ), α_L = --alpha-loss).")
    var fitness = "accuracy"
    @Option(help: "α_L of the loss fitness.")
    var alphaLoss: Float = 1
    @Option(help: "Comma list of seeds (repeated runs; overrides --seed).")
    var seeds: String?
    @Option(help: "Output directory.")
    var out = "sim-out"
    @Option(help: "Rounds-to-target threshold (default: 0.9 × the best strategy's mean final accuracy, rounded down to 0.01).")
    var targetAccuracy: Double?
    @Option(help: "Local batch size.")
    var batch = 32
    @Option(help: "Local learning rate (default: FlexModel's federated default, as the server sends).")
    var learningRate: Float = TrainingOptions.federated.learningRate
    @Option(help: "Local SGD momentum.")
    var momentum: Float = TrainingOptions.federated.momentum
    @Option(help: "Local gradient-norm clip (0 = off).")
    var gradientClip: Float = TrainingOptions.federated.gradientClip
    @Option(help: "Slack ε of the load bounds.")
    var epsilon = 0.012
    @Option(help: "Dtype of downloads (device storage): fp32 | fp16 | int8-block | int8-row.")
    var storageDtype = "int8-block"
    @Option(help: "Dtype of uploaded deltas (stochastic rounding): fp32 | fp16 | int8-block | int8-row.")
    var updateDtype = "int8-block"
    @Option(help: "Expert aggregation weight: usage | samples.")
    var expertWeighting = "usage"
    @Flag(inversion: .prefixedNo, help: "Standardise inputs with feature statistics pooled from the devices (the server's standardize_inputs).")
    var standardizeInputs = true
    @Option(help: "When devices measure fitness: during (local training) | before (a forward pass with the downloaded weights).")
    var fitnessTiming = "during"
    @Option(help: "Added to never-measured (client, expert) pairs when assigning: an exploration term (0: off).")
    var explorationBonus = 0.0
    @Option(help: "How devices initialise their own gate: random | zero (every expert starts even).")
    var gateInit = "random"
    @Flag(inversion: .prefixedNo, help: "Expert 0 is an always-on shared expert every device holds beside its routed experts (the server's shared_expert; MoE strategies only).")
    var sharedExpert = TrainingOptions.federated.sharedExpert
    @Option(help: "Expert-cache slots per device beyond k_c (capped at E − k_c): they keep recently assigned experts.")
    var warmSlots = 0
    @Flag(help: "Devices probe the unassigned experts in their warm slots, forward only, and report their fitness (the server's probe_warm).")
    var probeWarm = false
    @Option(help: "The server's weight_cap: a device weighs at most this × the median |D_c| (0: off).")
    var weightCap = ServerConfig().weightCap
    @Option(help: "The server's norm_bound: deltas clipped to this × last round's median norm, and to the training bound (0: training bound only).")
    var normBound = ServerConfig().normBound
    @Option(help: "Worker threads (results do not depend on it; default: the number of cores).")
    var threads: Int?
    @Flag(help: "No progress line.")
    var quiet = false

    func run() throws {
        func fail(_ s: String) -> Never {
            FileHandle.standardError.write(Data("flexmoe-server simulate: \(s)\n".utf8))
            Foundation.exit(2)
        }
        var s = SimulationSettings()
        s.dataset = data.dataset
        s.split = data.split
        do throws(SimulationError) {
            s.capacity = try SimulationCapacity.parse(capacity)
        } catch { fail(error.description) }
        guard clients >= 1, experts >= 1, rounds >= 1, localEpochs >= 1, batch >= 1 else {
            fail("--clients, --experts, --rounds, --local-epochs and --batch must be ≥ 1")
        }
        s.clients = clients; s.experts = experts; s.rounds = rounds; s.localEpochs = localEpochs
        var strategies: [SimulationStrategy] = []
        for name in strategy.split(separator: ",") {
            guard let x = SimulationStrategy(rawValue: String(name)) else { fail("unknown strategy '\(name)' (\(SimulationStrategy.allCases.map(\.rawValue).joined(separator: ", ")))") }
            if !strategies.contains(x) { strategies.append(x) }
        }
        guard !strategies.isEmpty else { fail("--strategy is empty") }
        s.strategies = strategies
        switch fitness {
        case "accuracy": s.fitness = .accuracy
        case "loss": s.fitness = .loss(alpha: alphaLoss)
        default: fail("--fitness accuracy|loss")
        }
        if let list = seeds {
            let parsed = list.split(separator: ",").map { UInt64($0) }
            guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else { fail("--seeds 1,2,3") }
            s.seeds = parsed.map { $0! }
        } else {
            s.seeds = [data.seed]
        }
        s.targetAccuracy = targetAccuracy
        s.testFraction = data.testFraction  // checked by DataOptions.validate
        s.batch = batch
        s.learningRate = learningRate
        guard momentum >= 0 && momentum < 1, gradientClip >= 0 else { fail("--momentum in [0, 1), --gradient-clip ≥ 0") }
        s.momentum = momentum
        s.gradientClip = gradientClip
        s.epsilon = epsilon
        guard let st = DType.named(storageDtype), let up = DType.named(updateDtype) else { fail("unknown dtype") }
        s.storage = st; s.update = up
        s.standardizeInputs = standardizeInputs
        guard let timing = FitnessTiming(rawValue: fitnessTiming) else { fail("--fitness-timing during|before") }
        s.fitnessTiming = timing
        guard explorationBonus >= 0 else { fail("--exploration-bonus ≥ 0") }
        s.explorationBonus = explorationBonus
        guard let g = GateInit(rawValue: gateInit) else { fail("--gate-init random|zero") }
        s.gateInit = g
        s.sharedExpert = sharedExpert
        guard warmSlots >= 0 else { fail("--warm-slots ≥ 0") }
        s.warmSlots = warmSlots
        s.probeWarm = probeWarm
        guard weightCap == 0 || weightCap >= 1, normBound == 0 || normBound >= 1 else { fail("--weight-cap and --norm-bound: 0 (off) or ≥ 1") }
        s.weightCap = weightCap
        s.normBound = normBound
        switch expertWeighting {
        case "usage": s.weightByUsage = true
        case "samples": s.weightByUsage = false
        default: fail("--expert-weighting usage|samples")
        }
        if let t = threads { guard t >= 1 else { fail("--threads ≥ 1") }; s.threads = t }

        let sim: Simulation
        do { sim = try Simulation(settings: s) } catch { fail("\(error)") }
        let tty = isatty(2) != 0
        let err = FileHandle.standardError
        err.write(Data(("simulate: \(s.dataset.name) (\(sim.sampleCount) samples, \(sim.featureCount) features, \(sim.classCount) classes), "
            + "split \(s.split.name), \(s.clients) clients, E=\(s.experts), k_c \(s.capacity.name), \(s.rounds) rounds × \(s.localEpochs) epochs, "
            + "strategies \(strategies.map(\.rawValue).joined(separator: ",")), seeds \(s.seeds.map(String.init).joined(separator: ","))\n").utf8))
        let denseMatched = strategies.contains(.fedavgDenseMatched) ? s.seeds.map { sim.denseMatch(seed: $0) } : []
        var widths: [(match: Simulation.DenseMatch, seeds: [UInt64])] = []  // one line per distinct k (in practice one)
        for m in denseMatched {
            if let i = widths.firstIndex(where: { $0.match.kc == m.kc }) { widths[i].seeds.append(m.seed) } else { widths.append((m, [m.seed])) }
        }
        for (m, seeds) in widths {
            err.write(Data(("simulate: fedavg-dense-matched: k = \(m.kc) (smallest k_c of the devices), expert hidden f' = \(m.expertHidden): "
                + "expert path \(m.parameters) parameters ≤ \(m.kc) experts × \(m.budgetParameters / m.kc) = \(m.budgetParameters), same extractor"
                + (widths.count > 1 ? " (seeds \(seeds.map(String.init).joined(separator: ",")))" : "") + "\n").utf8))
        }
        let started = Date()
        let rows = try sim.run { p in
            if quiet { return }
            let r = p.round
            let line = "[\(p.strategy.rawValue) seed \(p.seed) (\(p.seedIndex + 1)/\(p.seeds))] round \(r.round)/\(p.rounds)"
                + "  acc \(String(format: "%.3f", r.testAccuracy))  loss \(String(format: "%.3f", r.trainLoss))"
                + "  cv \(String(format: "%.4f", r.cv))  \(String(format: "%.1f", r.bytesPerClient / 1024)) KiB/client"
                + "  \(String(format: "%.2f", r.seconds)) s"
            if tty {
                err.write(Data(("\r\u{1B}[K" + line + (r.round == p.rounds ? "\n" : "")).utf8))
            } else {
                err.write(Data((line + "\n").utf8))
            }
        }
        let command = (["flexmoe-server"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let paths = try SimulationOutput.write(rows, settings: s, samples: sim.sampleCount, features: sim.featureCount,
                                               classes: sim.classCount, to: out, command: command, denseMatched: denseMatched)
        // Table on stdout.
        let target = SimulationOutput.target(rows, settings: s)
        let nameWidth = max(14, strategies.map(\.rawValue.count).max()! + 1)
        print("strategy".padding(toLength: nameWidth, withPad: " ", startingAt: 0)
            + " final acc        rounds to \(String(format: "%.2f", target))   mean load CV      KiB/client/round")
        for x in SimulationOutput.summarise(rows, settings: s, target: target) {
            let rt = x.reachedTarget == 0 ? "never (0/\(x.seeds))"
                : String(format: "%.1f ± %.1f", x.roundsToTarget.mean, x.roundsToTarget.std) + (x.reachedTarget < x.seeds ? " (\(x.reachedTarget)/\(x.seeds))" : "")
            print(x.strategy.rawValue.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                + String(format: " %.3f ± %.3f", x.finalAccuracy.mean, x.finalAccuracy.std).padding(toLength: 17, withPad: " ", startingAt: 0)
                + rt.padding(toLength: 18, withPad: " ", startingAt: 0)
                + (x.strategy.isDense ? "—".padding(toLength: 18, withPad: " ", startingAt: 0)
                    : String(format: "%.4f ± %.4f", x.meanCV.mean, x.meanCV.std).padding(toLength: 18, withPad: " ", startingAt: 0))
                + String(format: "%.1f ± %.1f", x.bytesPerRound.mean / 1024, x.bytesPerRound.std / 1024))
        }
        err.write(Data("simulate: \(String(format: "%.1f", Date().timeIntervalSince(started))) s; wrote \(paths.joined(separator: ", "))\n".utf8))
    }
}
