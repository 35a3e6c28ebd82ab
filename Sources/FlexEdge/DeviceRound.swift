import FlexModel
import FlexTensor
import FlexWire

/// The device's round step, without sockets (DESIGN.md §1 step 2–3): take the round's assignment,
/// obtain the extractor and the assigned experts (through the cache), train with the device's own
/// gate, measure fitness, and write the report into the workspace's report buffer. The agent calls it
/// with a `fetch` that does HTTP; the simulator with one that asks the round state machine in process.
public enum DeviceRound {
    /// A part of the global model the device may need.
    public enum Part: Equatable {
        case extractor
        case expert(Int)
        /// The pooled feature normalization (fetched once, before the first round is trained).
        case normalization
    }

    /// What a round produced: the report fields (also written, with the deltas, into
    /// `workspace.report[0..<reportBytes]`) and what the device saw.
    public struct Outcome {
        public var fields: ReportFields
        public var reportBytes: Int
        public var cacheHits: Int
        public var cacheMisses: Int
    }

    /// Runs round `round` for `device` on `workspace`. `fetch(part, have)` places the part's container
    /// in `workspace.download` and returns its length, or nil when the server answers that `have` is
    /// current (304). Throws before anything is trained if the assignment does not fit the device.
    public static func run(_ round: RoundMessage, clientId: Int, device: DeviceState, workspace: RoundWorkspace,
                           random: inout FlexRandom,
                           fetch: (Part, UInt64?) throws(EdgeError) -> Int?) throws(EdgeError) -> Outcome {
        let config = workspace.plan.config
        let trainer = workspace.trainer
        let assigned = round.assigned
        if assigned.count > trainer.capacity || assigned.count > device.cache.slotCount || assigned.isEmpty
            || assigned.contains(where: { $0 < 0 || $0 >= config.experts }) {
            throw .protocolViolation("assignment \(assigned) does not fit this device (k_c \(min(trainer.capacity, device.cache.slotCount)))")
        }
        if trainer.options.sharedExpert && assigned[0] != 0 {
            throw .protocolViolation("assignment \(assigned) does not start with the shared expert 0")
        }
        let hitsBefore = device.cache.counters.hits, missesBefore = device.cache.counters.misses

        // Inputs are standardised with the federation's statistics before anything is trained.
        if !device.standardised {
            guard let n = try fetch(.normalization, nil) else {
                throw .protocolViolation("the server answered 304 for the normalization")
            }
            try workspace.applyNormalization(containerBytes: n, to: device)
        }

        // Extractor: download unless both the device and the trainer hold the round's version; either
        // way training starts from the downloaded value.
        let xv = round.extractorVersion
        if device.extractorVersion != xv || workspace.extractorVersion != xv {
            guard let n = try fetch(.extractor, device.extractorVersion) else {
                throw .protocolViolation("the server answered 304 for an extractor version this device does not hold")
            }
            try workspace.loadExtractor(containerBytes: n, version: xv)
            device.extractorVersion = xv
        }
        for p in trainer.extractor.parameters { p.value.copy(from: p.initial); p.velocity.fill(0) }

        // Probes (`probe_warm`): each expert the cache holds but was not assigned (a warm slot, or a
        // copy from last round not yet replaced, since probes run before this round's fetches), alone in
        // trainer slot 0, one forward pass over the training data with the round's extractor; its own
        // output's fitness tells the server about a pair nobody trains this round. The cached copy may
        // be older than the server's current version.
        var probed: [Int] = [], probedFitness: [Double] = []
        if trainer.options.probeWarm {
            for (cacheSlot, entry) in device.cache.slots.enumerated() {
                guard let e = entry, !assigned.contains(e.expert), e.expert < config.experts else { continue }
                trainer.assign([e.expert])
                do { try workspace.loadExpert(trainerSlot: 0, from: device.cache, slot: cacheSlot, expert: e.expert) } catch {
                    continue  // a copy that fails its checksum was dropped: nothing to probe
                }
                let f = device.withSplit(test: false) { x, y in trainer.measureFitness(features: x, labels: y) }
                probed.append(e.expert)
                probedFitness.append(Double(f[0].fitness))
            }
        }

        // Experts through the device's cache.
        trainer.assign(assigned)
        for (slot, expert) in assigned.enumerated() {
            let version = round.expertVersions[slot]
            var cacheSlot = device.cache.lookup(expert: expert, version: version, round: round.round)
            if cacheSlot == nil {
                let have = device.cache.cachedVersion(of: expert)
                let target = device.cache.reserve(expert: expert, pinned: assigned)
                guard let n = try fetch(.expert(expert), have) else {
                    throw .protocolViolation("expert \(expert): the server answered 304 for a version this device does not hold")
                }
                try workspace.decodeContainer(bodyLength: n, kind: .expertWeights, expert: expert,
                                              shapes: config.expertShapes, into: device.cache.slotBuffer(target))
                device.cache.commit(slot: target, expert: expert, version: version, fetchedBytes: n, round: round.round)
                cacheSlot = target
            }
            try workspace.loadExpert(trainerSlot: slot, from: device.cache, slot: cacheSlot!, expert: expert)
        }

        // Train with the device's own gate, measure, and keep the gate.
        trainer.loadGate(from: device.gate)
        let preTest = device.testCount > 0 ? device.withSplit(test: true) { x, y in trainer.evaluate(features: x, labels: y) } : nil
        let before = trainer.options.fitnessTiming == .before
            ? device.withSplit(test: false) { x, y in trainer.measureFitness(features: x, labels: y) } : nil
        let report = device.withSplit(test: false) { x, y in trainer.train(features: x, labels: y, random: &random) }
        let measured = before ?? report.experts
        let test = device.testCount > 0 ? device.withSplit(test: true) { x, y in trainer.evaluate(features: x, labels: y) } : nil
        // A diverged update is never sent (the server would refuse it, and quantising NaN has no meaning).
        for p in trainer.extractor.parameters + assigned.indices.flatMap({ trainer.experts[$0].parameters }) {
            for i in 0..<p.count where !p.value[i].isFinite {
                throw .diverged("a parameter of shape \(p.shape.rows)x\(p.shape.cols) is \(p.value[i].isNaN ? "NaN" : "infinite")")
            }
        }
        trainer.storeGate(into: device.gate)

        let fields = ReportFields(clientId: clientId, samples: device.trainCount, loss: Double(report.lastEpochLoss),
                                  accuracy: Double(report.lastEpochAccuracy), testAccuracy: test.map { Double($0.accuracy) },
                                  experts: measured.map { $0.expert }, usage: measured.map { $0.usage },
                                  fitness: measured.map { Double($0.fitness) }, preTestAccuracy: preTest.map { Double($0.accuracy) },
                                  probed: probed, probedFitness: probedFitness)
        let bytes = try workspace.writeReport(fields: fields.message(), extractorVersion: xv, experts: assigned,
                                              versions: round.expertVersions, random: &random)
        return Outcome(fields: fields, reportBytes: bytes, cacheHits: device.cache.counters.hits - hitsBefore,
                       cacheMisses: device.cache.counters.misses - missesBefore)
    }
}
