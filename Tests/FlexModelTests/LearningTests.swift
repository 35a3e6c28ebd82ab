import FlexData
@testable import FlexModel
import FlexTensor
import Foundation
import Testing

/// Learning that is shown: the trainer on generated data, and centralised training on pooled
/// Synthetic(1,1) and on a CSV file, printing accuracy.
@Suite("learning")
struct LearningTests {
    /// Trains centrally (one "client" holding every expert) and returns (report, test accuracy).
    static func centralised(_ train: borrowing Dataset, _ test: borrowing Dataset, experts: Int = 4, epochs: Int,
                            hidden: Int = 32, expertHidden: Int = 32, seed: UInt64 = 1) -> (TrainingReport, Float) {
        let config = MoEConfig(inputDim: train.dim, hidden: hidden, expertHidden: expertHidden,
                               classes: train.classes, experts: experts, topK: 2)
        let options = TrainingOptions(learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4, batchSize: 32, epochs: epochs)
        let trainer = LocalTrainer(config: config, capacity: experts, maxBatch: 32, options: options)
        var random = FlexRandom(seed: seed)
        trainer.extractor.initialise(random: &random)
        let gate = ClientGate(config)
        gate.initialise(random: &random)
        trainer.assign(Array(0..<experts))
        for s in 0..<experts { trainer.experts[s].initialise(random: &random) }
        trainer.loadGate(from: gate)
        let report = trainer.train(features: train.features, labels: train.labels, random: &random)
        let (_, acc) = trainer.evaluate(features: test.features, labels: test.labels)
        return (report, acc)
    }

    static func split(_ data: borrowing Dataset, seed: UInt64) -> (DatasetBox, DatasetBox) {
        var r = FlexRandom(seed: seed)
        let (tr, te) = Partitioner.trainTestSplit(Array(0..<data.count), testFraction: 0.2, random: &r)
        return (DatasetBox(data.subset(tr)), DatasetBox(data.subset(te)))
    }

    @Test("loss falls and accuracy ends well above chance; fitness is measured per expert")
    func learns() {
        let data = SyntheticGenerator(alpha: 0, beta: 0, maxSamples: 1500, seed: 5).device(1)
        let (train, test) = Self.split(data, seed: 1)
        let (report, acc) = Self.centralised(train.dataset, test.dataset, epochs: 8)
        print("learning: loss \(report.firstEpochLoss) → \(report.lastEpochLoss), train acc \(report.lastEpochAccuracy), test acc \(acc), classes \(data.classCounts())")
        #expect(report.lastEpochLoss < 0.5 * report.firstEpochLoss)
        let majority = Float(data.classCounts().max()!) / Float(data.count)
        #expect(acc > max(0.6, majority + 0.15))
        #expect(report.experts.count == 4)
        #expect(report.experts.reduce(0) { $0 + $1.usage } == 2 * report.samples)
        for e in report.experts where e.usage > 0 { #expect(e.fitness >= 0 && e.fitness <= 1 && e.meanLoss > 0) }
    }

    @Test("centralised training on pooled Synthetic(1,1) prints a sensible accuracy")
    func pooledSynthetic() {
        let data = SyntheticGenerator(alpha: 1, beta: 1, maxSamples: 400, seed: 0).pooled(devices: 12)
        let (train, test) = Self.split(data, seed: 2)
        let (report, acc) = Self.centralised(train.dataset, test.dataset, experts: 4, epochs: 6)
        print("centralised Synthetic(1,1), \(data.count) samples from 12 devices: test accuracy \(acc) (loss \(report.firstEpochLoss) → \(report.lastEpochLoss))")
        #expect(acc > 0.45)
    }

    @Test("centralised training on a CSV dataset prints a sensible accuracy")
    func csv() throws {
        // a generated 3-class CSV: label = which of three Gaussian blobs in 8-d a sample comes from
        var r = FlexRandom(seed: 9)
        var text = "label," + (0..<8).map { "x\($0)" }.joined(separator: ",") + "\n"
        for i in 0..<900 {
            let c = i % 3
            let x = (0..<8).map { j in (j % 3 == c ? 1.5 : 0) + r.nextGaussian() }
            text += "\(c)," + x.map { String(format: "%.4f", $0) }.joined(separator: ",") + "\n"
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flexmoe-\(UUID().uuidString).csv").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try CSVLoader.load(path)
        let (train, test) = Self.split(data, seed: 3)
        let (report, acc) = Self.centralised(train.dataset, test.dataset, experts: 2, epochs: 6, hidden: 16, expertHidden: 16)
        print("centralised CSV (\(data.count) samples, \(data.dim) features, \(data.classes) classes): test accuracy \(acc) (loss \(report.firstEpochLoss) → \(report.lastEpochLoss))")
        #expect(acc > 0.8)
    }

    @Test("deltas, gate round trip, quantised expert download, memory report")
    func plumbing() {
        let c = MoEConfig(inputDim: 10, hidden: 8, expertHidden: 16, classes: 3, experts: 6, topK: 2)
        let trainer = LocalTrainer(config: c, capacity: 2, maxBatch: 16)
        var random = FlexRandom(seed: 1)
        trainer.extractor.initialise(random: &random)
        let gate = ClientGate(c); gate.initialise(random: &random)
        // the cache holds experts as int8; the trainer works on fp32 copies
        let source = ExpertParameters(c); source.initialise(random: &random)
        trainer.assign([5, 2])
        for slot in 0..<2 {
            for (i, p) in source.parameters.enumerated() {
                let q = QuantizedTensor(dtype: .int8Block, shape: p.shape)
                Quantizer.quantize(p.value, into: q)
                trainer.experts[slot].parameters[i].load(from: q)
            }
        }
        trainer.loadGate(from: gate)
        #expect(trainer.assigned == [5, 2])
        let data = SyntheticGenerator(dim: 10, classes: 3, maxSamples: 200, seed: 1).device(0)
        trainer.options.epochs = 2
        let report = trainer.train(features: data.features, labels: data.labels, random: &random)
        #expect(report.experts.map(\.expert) == [5, 2])
        let delta = Tensor<Float>(zeros: trainer.experts[0].A1.shape)
        trainer.experts[0].A1.delta(into: delta)
        var norm: Float = 0
        for i in 0..<delta.count { norm += delta[i] * delta[i] }
        #expect(norm > 0)
        #expect(abs(trainer.experts[0].A1.value[3] - trainer.experts[0].A1.initial[3] - delta[3]) < 1e-6)
        trainer.storeGate(into: gate)
        #expect(gate.Wg[0 * 6 + 5] == trainer.gateW.value[0, 0] && gate.bg[2] == trainer.gateB.value[1])
        // the memory plan covers at least every parameter (value, gradient, momentum, downloaded copy)
        let plan = LocalTrainer<MLPExtractor>.plan(config: c, capacity: 2, maxBatch: 16)
        #expect(plan.total > 4 * 4 * (2 * c.expertParameterCount + c.inputDim * c.hidden))
        let lossVariant = LocalTrainer(config: c, capacity: 2, maxBatch: 16,
                                       options: TrainingOptions(fitness: .loss(alpha: 1), fitnessSource: .mixture))
        lossVariant.extractor.initialise(random: &random)
        let r2 = lossVariant.train(features: data.features, labels: data.labels, random: &random)
        for e in r2.experts where e.usage > 0 { #expect(abs(e.fitness - FlexMath.exp(-e.meanLoss)) < 1e-5) }
    }
}

@Test("model self-check (used by the edge self-test): both models' losses fall")
func modelSelfCheck() {
    let r = ModelSelfCheck.run()
    print("self-check: mlp \(r.mlp.0) → \(r.mlp.1), conv \(r.conv.0) → \(r.conv.1)")
    #expect(r.mlp.1 < 0.8 * r.mlp.0)
    #expect(r.conv.1 < 0.9 * r.conv.0)
}

@Test("a trainer built in an arena books exactly its plan, component by component, and trains")
func trainerInArena() throws {
    let c = MoEConfig(inputDim: 10, hidden: 8, expertHidden: 12, classes: 3, experts: 6, topK: 2)
    let plan = LocalTrainer<MLPExtractor>.plan(config: c, capacity: 3, maxBatch: 16)
    let arena = try Arena(capacity: plan.total)
    let trainer = LocalTrainer(config: c, capacity: 3, maxBatch: 16, memory: .arena(arena))
    #expect(arena.used == plan.total)
    #expect(arena.ledger.map(\.component) == plan.entries.map(\.component))
    #expect(arena.ledger.map(\.bytes) == plan.entries.map(\.bytes))
    for component in [MemoryComponent.extractor, .gate, .workingCopies, .gradients, .optimiserState, .downloadedCopies, .activations] {
        #expect(plan.bytes(component) > 0, "\(component.rawValue) is booked")
    }
    var random = FlexRandom(seed: 4)
    trainer.extractor.initialise(random: &random)
    for e in trainer.experts { e.initialise(random: &random) }
    trainer.assign([0, 3, 5])
    let data = SyntheticGenerator(dim: 10, classes: 3, maxSamples: 200, seed: 2).device(1)
    trainer.options.epochs = 3
    let report = trainer.train(features: data.features, labels: data.labels, random: &random)
    #expect(report.lastEpochLoss < report.firstEpochLoss)
    #expect(arena.used == plan.total)
}

@Test("the conv trainer's plan matches what it books in an arena")
func convTrainerInArena() throws {
    let c = MoEConfig(inputDim: 64, hidden: 8, expertHidden: 12, classes: 3, experts: 4, topK: 2)
    func make(_ memory: TensorMemory) -> LocalTrainer<ConvExtractor> {
        LocalTrainer(config: c, extractor: ConvExtractor(channels: 1, height: 8, width: 8, c1: 4, c2: 8, hidden: 8, maxBatch: 4, memory: memory),
                     capacity: 2, maxBatch: 4, memory: memory)
    }
    let plan = LocalTrainer<ConvExtractor>.plan(make)
    let arena = try Arena(capacity: plan.total)
    _ = make(.arena(arena))
    #expect(arena.ledger.map(\.bytes) == plan.entries.map(\.bytes) && arena.used == plan.total)
}

@Test("gradient clipping bounds the global gradient norm of a step, and leaves small gradients alone")
func gradientClipping() {
    let c = MoEConfig(inputDim: 10, hidden: 8, expertHidden: 12, classes: 3, experts: 4, topK: 2)
    var random = FlexRandom(seed: 9)
    let data = SyntheticGenerator(dim: 10, classes: 3, maxSamples: 200, seed: 3).device(0)
    for limit: Float in [0.01, 1000] {
        let t = LocalTrainer(config: c, capacity: 2, maxBatch: 16, options: TrainingOptions(gradientClip: limit))
        t.extractor.initialise(random: &random)
        for e in t.experts { e.initialise(random: &random) }
        t.assign([0, 1])
        t.forward(data.features.ptr, labels: data.labels.ptr, rows: 16, gradient: true)
        t.backward(data.features.ptr, rows: 16)
        func norm() -> Float {
            var s: Float = 0
            for p in t.allParameters { for i in 0..<p.count { s += p.grad[i] * p.grad[i] } }
            return s.squareRoot()
        }
        let before = norm()
        t.clipGradients(to: limit)
        let after = norm()
        if before > limit {
            #expect(abs(after - limit) <= 1e-3 * limit, "clipped to \(after), limit \(limit)")
        } else {
            #expect(after == before)
        }
    }
}
