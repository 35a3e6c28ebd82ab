import FlexData
@testable import FlexModel
import FlexTensor
import Testing

/// `LocalTrainer.measureFitness`: the fitness of the downloaded experts, before any training.
@Suite struct FitnessTimingTests {
    @Test func measuringFitnessBeforeTrainingChangesNoWeightAndCountsEverySample() {
        let data = SyntheticGenerator(alpha: 1, beta: 1, maxSamples: 300, seed: 3).device(2)
        let config = MoEConfig(inputDim: data.dim, hidden: 16, expertHidden: 16, classes: data.classes, experts: 3, topK: 2)
        let trainer = LocalTrainer(config: config, capacity: 3, maxBatch: 16, options: .federated)
        var random = FlexRandom(seed: 1)
        trainer.extractor.initialise(random: &random)
        let gate = ClientGate(config)
        gate.initialise(random: &random)
        trainer.assign([0, 1, 2])
        for s in 0..<3 { trainer.experts[s].initialise(random: &random) }
        trainer.loadGate(from: gate)
        let weights = trainer.extractor.parameters.map { p in (0..<p.count).map { p.value[$0] } }
        let measured = trainer.measureFitness(features: data.features, labels: data.labels)
        #expect(trainer.extractor.parameters.map { p in (0..<p.count).map { p.value[$0] } } == weights)
        #expect(measured.map(\.expert) == [0, 1, 2])
        // Top-2 routing over the routed slots, plus the shared expert (slot 0) with the federated
        // defaults: every sample is counted by exactly three experts, once.
        #expect(trainer.sharedSlots == 1 && trainer.topK == 2)
        #expect(measured.map(\.usage).reduce(0, +) == 3 * data.count)
        #expect(measured[0].usage == data.count, "the shared expert sees every sample")
        #expect(measured.allSatisfy { $0.fitness >= 0 && $0.fitness <= 1 })
        // The same pass again gives the same numbers (nothing was learned).
        #expect(trainer.measureFitness(features: data.features, labels: data.labels) == measured)
    }
}

@Suite struct GateInitTests {
    @Test func aZeroGateStartsEveryExpertEvenAndDrawsTheSameRandomStream() {
        let config = MoEConfig(inputDim: 4, hidden: 6, expertHidden: 4, classes: 3, experts: 5, topK: 2)
        let zero = ClientGate(config), random = ClientGate(config)
        var a = FlexRandom(seed: 9), b = FlexRandom(seed: 9)
        zero.initialise(random: &a, mode: .zero)
        random.initialise(random: &b)
        #expect((0..<zero.Wg.count).allSatisfy { zero.Wg[$0] == 0 })
        #expect((0..<random.Wg.count).contains { random.Wg[$0] != 0 })
        #expect(a.nextInt(below: 1_000_000) == b.nextInt(below: 1_000_000), "later draws do not depend on the mode")
    }
}
