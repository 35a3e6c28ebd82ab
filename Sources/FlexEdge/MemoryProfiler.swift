import FlexData
import FlexModel
import FlexTensor
import FlexWire

/// What `flexmoe-memprof` measures: the plan, a real local round (decode → train → encode) in the
/// planned arena, and where the bytes went.
public struct MemoryProfile {
    public static let phases = ["decode", "train", "encode"]

    /// One row of the table: a component (or one expert cache slot), its planned bytes and the bytes
    /// actually in use in each phase (from the round's own sizes: containers, reports, buffers).
    public struct Row {
        public var name: String
        public var planned: Int
        public var used: [Int]
        public var peak: Int { used.max() ?? 0 }
    }

    public var plan: DevicePlan
    public var rows: [Row]
    public var arenaCapacity: Int
    public var arenaUsed: Int
    /// Process RSS before the arena existed, and VmHWM after each phase.
    public var baselineRSS: Int?
    public var peakRSSAfterPhase: [Int?]
    public var trainingLoss: Float
    public var reportBytes: Int

    /// Peak RSS the plan predicts: what the process held before the arena, plus the arena.
    public var predictedPeakRSS: Int? { baselineRSS.map { $0 + arenaCapacity } }
    public var measuredPeakRSS: Int? { peakRSSAfterPhase.last ?? nil }
    /// Peak RSS not explained by the arena (code, libraries, stacks, small heap objects).
    public var unaccounted: Int? { measuredPeakRSS.map { max(0, $0 - arenaCapacity) } }
}

public struct ProfileOptions {
    public var budget: Int
    public var config: MoEConfig
    public var storage: DType
    public var update: DType
    public var data: DataSource
    public var maxKc: Int?
    public var batch: Int
    public var seed: UInt64

    public init(budget: Int, config: MoEConfig, storage: DType, update: DType, data: DataSource, maxKc: Int?,
                batch: Int, seed: UInt64) {
        self.budget = budget; self.config = config; self.storage = storage; self.update = update
        self.data = data; self.maxKc = maxKc; self.batch = batch; self.seed = seed
    }
}

public enum MemoryProfiler {
    /// Plans, builds the runtime in its arena, and runs one local round without a server: the global
    /// model is made here (He initialisation), shipped through real containers into the download
    /// buffer, decoded into the cache, trained on the local data, and its deltas encoded into a report.
    public static func run(_ o: ProfileOptions) throws(EdgeError) -> MemoryProfile {
        let shard = try o.data.load()
        if shard.train.dim != o.config.inputDim {
            throw .data("the data has \(shard.train.dim) features per sample, the model \(o.config.inputDim) (--d)")
        }
        let plan = try DevicePlan.derive(budget: o.budget, config: o.config, storage: o.storage, update: o.update,
                                         samples: shard.train.count + shard.test.count, preferredBatch: o.batch, maxKc: o.maxKc)
        let c = plan.config
        var random = FlexRandom(seed: o.seed)
        // The "server's" global model is made before the baseline: it is not the device's memory.
        let global = LocalTrainer(config: c, capacity: 1, maxBatch: 1)
        ProcessMemory.resetPeak()
        let baseline = ProcessMemory.currentRSS
        let rt = try EdgeRuntime(plan: plan, shard: shard, random: &random)
        // Bytes in use per component and phase. (Arrays, not a Dictionary: String-keyed dictionaries
        // crashed the Embedded aarch64 build, see FlagValues.)
        var used: [(name: String, bytes: [Int])] = []
        func use(_ name: String, _ phase: Int, _ bytes: Int) {
            if let i = used.firstIndex(where: { $0.name == name }) {
                used[i].bytes[phase] = max(used[i].bytes[phase], bytes)
            } else {
                var row = [0, 0, 0]
                row[phase] = bytes
                used.append((name, row))
            }
        }
        func planned(_ component: MemoryComponent) -> Int { plan.book.bytes(component) }
        var peaks: [Int?] = []

        // Phase 0, decode: a global model arrives as containers and is decoded into the cache.
        let assigned = Array(0..<plan.kc).map { ($0 * 3) % c.experts }.reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }
        let experts = assigned.count < plan.kc ? Array(0..<plan.kc) : assigned
        global.extractor.initialise(random: &random)
        let extractorSize = try ship(parameters: global.extractor.parameters, kind: .extractorWeights, expert: nil, rt: rt)
        try rt.workspace.loadExtractor(containerBytes: extractorSize, version: 1)
        var largestDownload = extractorSize
        rt.workspace.trainer.assign(experts)
        for (slot, expert) in experts.enumerated() {
            global.experts[0].initialise(random: &random)
            let size = try ship(parameters: global.experts[0].parameters, kind: .expertWeights, expert: expert, rt: rt)
            largestDownload = max(largestDownload, size)
            let target = rt.device.cache.reserve(expert: expert, pinned: experts)
            try rt.workspace.decodeContainer(bodyLength: size, kind: .expertWeights, expert: expert, shapes: c.expertShapes,
                                   into: rt.device.cache.slotBuffer(target))
            rt.device.cache.commit(slot: target, expert: expert, version: 1, fetchedBytes: size, round: 1)
            try rt.workspace.loadExpert(trainerSlot: slot, from: rt.device.cache, slot: target, expert: expert)
        }
        rt.device.gate.initialise(random: &random)
        rt.workspace.trainer.loadGate(from: rt.device.gate)
        use(MemoryComponent.network.rawValue, 0, Arena.rounded(largestDownload))
        use(MemoryComponent.zstd.rawValue, 0, Arena.rounded(ZstdDecompressor.workspaceBytes))
        for component in [MemoryComponent.extractor, .workingCopies, .downloadedCopies, .gate] {
            use(component.rawValue, 0, planned(component))
        }
        peaks.append(ProcessMemory.peakRSS)

        // Phase 1, train: one local round on the training split.
        rt.workspace.trainer.options = TrainingOptions(batchSize: plan.batch, epochs: 1)
        let report = rt.device.withSplit(test: false) { x, y in rt.workspace.trainer.train(features: x, labels: y, random: &random) }
        rt.workspace.trainer.storeGate(into: rt.device.gate)
        for component in [MemoryComponent.extractor, .gate, .workingCopies, .gradients, .optimiserState, .downloadedCopies, .activations, .data] {
            use(component.rawValue, 1, planned(component))
        }
        peaks.append(ProcessMemory.peakRSS)

        // Phase 2, encode: stochastic-rounded deltas, compressed into the report body.
        var fields = SmallMessage()
        fields.set("client_id", 0)
        fields.set("experts", list: experts)
        let reportBytes = try rt.workspace.writeReport(fields: fields, extractorVersion: 1, experts: experts,
                                             versions: experts.map { _ in 1 }, random: &random)
        use(MemoryComponent.network.rawValue, 2, Arena.rounded(reportBytes)
            + Arena.rounded(2 * DevicePlan.largestPart(c, [plan.updateDType])) + Arena.rounded(4 * DevicePlan.largestTensor(c)))
        use(MemoryComponent.zstd.rawValue, 2, planned(.zstd) - Arena.rounded(ZstdDecompressor.workspaceBytes))
        use(MemoryComponent.extractor.rawValue, 2, planned(.extractor))
        use(MemoryComponent.workingCopies.rawValue, 2, planned(.workingCopies))
        use(MemoryComponent.downloadedCopies.rawValue, 2, planned(.downloadedCopies))
        peaks.append(ProcessMemory.peakRSS)

        var rows: [MemoryProfile.Row] = []
        for entry in plan.book.entries where entry.component != MemoryComponent.expertCache.rawValue {
            rows.append(MemoryProfile.Row(name: entry.component, planned: entry.bytes,
                                          used: used.first { $0.name == entry.component }?.bytes ?? [0, 0, 0]))
        }
        for slot in 0..<rt.device.cache.slotCount {
            let held = rt.device.cache.slots[slot]
            let label = held.map { "expert cache slot \(slot) (expert \($0.expert))" } ?? "expert cache slot \(slot) (warm, empty)"
            let inUse = held == nil ? 0 : rt.device.cache.slotBytes
            rows.append(MemoryProfile.Row(name: label, planned: rt.device.cache.slotBytes, used: [inUse, inUse, inUse]))
        }
        return MemoryProfile(plan: plan, rows: rows, arenaCapacity: rt.arena.capacity, arenaUsed: rt.arena.used,
                             baselineRSS: baseline, peakRSSAfterPhase: peaks, trainingLoss: report.lastEpochLoss,
                             reportBytes: reportBytes)
    }

    /// Quantises `parameters` to the storage dtype and encodes them as a container in the download
    /// buffer, as the server would send them. Returns the container's size.
    static func ship(parameters: [Parameter], kind: PartKind, expert: Int?, rt: EdgeRuntime) throws(EdgeError) -> Int {
        var entries: [TensorEntry] = []
        var offset = 0
        let base = rt.workspace.encodeScratch.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for p in parameters {
            let q = QuantizedTensor(dtype: rt.plan.storage, shape: p.shape, borrowing: base + offset)
            Quantizer.quantize(p.value, into: q)
            entries.append(TensorEntry(dtype: rt.plan.storage, shape: p.shape))  // unshuffled: no scratch needed
            offset += q.byteCount
        }
        do throws(WireError) {
            return try Container.encode(kind: kind, expertId: expert.map { UInt32($0) }, modelVersion: 1, tensors: entries,
                                        payload: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(rt.workspace.encodeScratch)[0..<offset]),
                                        codec: .zstd, compressor: rt.workspace.compressor,
                                        scratch: UnsafeMutableRawBufferPointer(start: nil, count: 0), into: rt.workspace.download)
        } catch {
            throw .protocolViolation("encoding the test model: \(error.message)")
        }
    }

    /// What-if: the largest k_c and batch per budget and storage dtype for a model shape.
    public struct WhatIf {
        public var budgetMiB: Int
        public var storage: DType
        public var kc: Int?
        public var batch: Int?
        public var arenaBytes: Int?
    }

    public static let whatIfBudgetsMiB = [16, 32, 64, 128, 256, 512]

    public static func whatIf(config: MoEConfig, update: DType, samples: Int, batch: Int) -> [WhatIf] {
        var out: [WhatIf] = []
        for storage in [DType.int8Block, .fp16, .fp32] {
            for mib in whatIfBudgetsMiB {
                let plan = try? DevicePlan.derive(budget: mib << 20, config: config, storage: storage, update: update,
                                                  samples: samples, preferredBatch: batch)
                out.append(WhatIf(budgetMiB: mib, storage: storage, kc: plan?.kc, batch: plan?.batch, arenaBytes: plan?.book.total))
            }
        }
        return out
    }

    /// Board profiles whose default budget cannot hold their default k_c (at the preferred batch).
    public static func boardChecks(config: MoEConfig, storage: DType, update: DType, samples: Int, batch: Int)
        -> [(board: BoardProfile, kc: Int?, fits: Bool)]
    {
        BoardProfile.all.map { board in
            let plan = try? DevicePlan.derive(budget: board.defaultBudgetBytes, config: config, storage: storage, update: update,
                                              samples: samples, preferredBatch: batch, maxKc: board.defaultKc)
            let fits = plan.map { $0.kc >= min(board.defaultKc, config.experts) && $0.batch == batch } ?? false
            return (board, plan?.kc, fits)
        }
    }
}
