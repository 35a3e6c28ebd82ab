import FlexModel
import FlexTensor
import FlexWire

/// What the device will hold, derived from its memory budget before anything large is allocated:
/// k_c (experts it can hold), warm cache slots, the training batch, and the bytes of every
/// component. The plan is computed by the same constructors that later carve the arena (a dry run),
/// so `arena.used == plan.book.total` after start-up; tests hold it to that.
public struct DevicePlan: Equatable {
    public var config: MoEConfig
    public var storage: DType
    public var updateDType: DType
    public var kc: Int
    public var warmSlots: Int
    public var batch: Int
    public var book: MemoryBook
    public var budget: Int

    /// Bytes the process needs besides the arena (code, libc, stacks, small heap objects): the budget
    /// keeps this much back for them.
    public static let outsideArenaAllowance = 4 * 1024 * 1024

    /// Largest container the device receives: the extractor or one expert in the storage dtype.
    public static func maxDownload(_ config: MoEConfig, _ storage: DType) -> Int {
        max(containerBound(shapes: config.extractorShapes, storage), containerBound(shapes: config.expertShapes, storage))
    }

    static func payloadBytes(shapes: [Shape], _ dtype: DType) -> Int { shapes.reduce(0) { $0 + dtype.payloadBytes($1) } }

    /// The largest payload of one part (the extractor or an expert) in any of `dtypes`: what the zstd
    /// compressor must take, and what the encode scratch holds.
    static func largestPart(_ c: MoEConfig, _ dtypes: [DType]) -> Int {
        var largest = 0
        for shapes in [c.extractorShapes, c.expertShapes] {
            for dtype in dtypes { largest = max(largest, payloadBytes(shapes: shapes, dtype)) }
        }
        return largest
    }

    /// Elements of the largest single tensor (the fp32 delta scratch).
    static func largestTensor(_ c: MoEConfig) -> Int { (c.extractorShapes + c.expertShapes).map { $0.count }.max()! }

    static func containerBound(shapes: [Shape], _ dtype: DType) -> Int {
        Container.maxEncodedSize(payloadBytes: payloadBytes(shapes: shapes, dtype), tensorCount: shapes.count)
    }

    /// Bytes of the report body: its fields and one container per trained part.
    public static func maxReport(_ c: MoEConfig, kc: Int, _ update: DType) -> Int {
        SmallMessage.maxBytes / 16 + 16 + 4 * (kc + 1)
            + containerBound(shapes: c.extractorShapes, update) + kc * containerBound(shapes: c.expertShapes, update)
    }

    /// The bookings of everything the runtime carves from its arena for (kc, warm, batch), with the
    /// local dataset of `samples` rows: the round workspace, then the device's own state.
    public static func book(config c: MoEConfig, storage: DType, update: DType, kc: Int, warm: Int, batch: Int,
                            samples: Int) -> MemoryBook {
        var book = workspaceBook(config: c, storage: storage, update: update, kc: kc, batch: batch)
        book.add(deviceBook(config: c, storage: storage, slots: kc + warm, samples: samples))
        return book
    }

    /// What `RoundWorkspace` carves: the trainer, the network buffers, the zstd contexts.
    public static func workspaceBook(config c: MoEConfig, storage: DType, update: DType, kc: Int, batch: Int) -> MemoryBook {
        var book = LocalTrainer<MLPExtractor>.plan(config: c, capacity: kc, maxBatch: batch)
        for bytes in networkBuffers(c, storage: storage, update: update, kc: kc) {
            book.add(MemoryComponent.network.rawValue, bytes: Arena.rounded(bytes))
        }
        book.add(MemoryComponent.zstd.rawValue,
                 bytes: Arena.rounded(ZstdCompressor.workspaceBytes(level: 3, maxInput: largestPart(c, [storage, update]))))
        book.add(MemoryComponent.zstd.rawValue, bytes: Arena.rounded(ZstdDecompressor.workspaceBytes))
        return book
    }

    /// What `DeviceState` carves: the gate, the expert cache of `slots` experts, the local data.
    public static func deviceBook(config c: MoEConfig, storage: DType, slots: Int, samples: Int) -> MemoryBook {
        let planner = MemoryPlanner()
        _ = ClientGate(c, memory: .planning(planner))
        var book = planner.book
        book.add(MemoryComponent.expertCache.rawValue,
                 bytes: ExpertCache.bytes(layout: ExpertLayout(shapes: c.expertShapes, dtype: storage), slots: slots))
        book.add(.data, Shape(rows: max(samples, 1), cols: c.inputDim))
        book.add(.data, Shape(vector: max(samples, 1)), elementBytes: 4)
        return book
    }

    /// A plan for exactly (kc, warm, batch), without a budget (the simulator's devices).
    public static func fixed(config c: MoEConfig, storage: DType, update: DType, kc: Int, warm: Int, batch: Int,
                             samples: Int) -> DevicePlan {
        let book = book(config: c, storage: storage, update: update, kc: kc, warm: warm, batch: batch, samples: samples)
        return DevicePlan(config: c, storage: storage, updateDType: update, kc: kc, warmSlots: warm, batch: batch,
                          book: book, budget: book.total + outsideArenaAllowance)
    }

    /// The network buffers, in carving order: download buffer (one container), report body, encode
    /// scratch (one part's quantised delta and its shuffle scratch, or the extractor decoded in the
    /// storage dtype), delta scratch (the largest fp32 tensor).
    static func networkBuffers(_ c: MoEConfig, storage: DType, update: DType, kc: Int) -> [Int] {
        // The feature statistics (3 × d fp32) go up through the scratch and the report buffer, the
        // normalization (2 × d fp32) comes down through the download buffer.
        let stats = Shape(rows: 3, cols: c.inputDim), normalization = Shape(rows: 2, cols: c.inputDim)
        let scratch = max(2 * largestPart(c, [update]), payloadBytes(shapes: c.extractorShapes, storage), 2 * 4 * stats.count)
        let download = max(maxDownload(c, storage), containerBound(shapes: [normalization], .fp32))
        let report = max(maxReport(c, kc: kc, update), containerBound(shapes: [stats], .fp32))
        return [download + 1024, report, scratch, 4 * largestTensor(c)]
    }

    /// Derives the largest k_c (then the largest batch, then warm slots) that fit `budget`.
    /// `preferredBatch` is the server's batch; it is lowered only when k_c = 1 does not fit.
    public static func derive(budget: Int, config c: MoEConfig, storage: DType, update: DType, samples: Int,
                              preferredBatch: Int, maxKc: Int? = nil) throws(EdgeError) -> DevicePlan {
        let arenaLimit = budget - outsideArenaAllowance
        func total(_ kc: Int, _ warm: Int, _ batch: Int) -> Int {
            book(config: c, storage: storage, update: update, kc: kc, warm: warm, batch: batch, samples: samples).total
        }
        let kcLimit = min(maxKc ?? c.experts, c.experts)
        var kc = 0
        var batch = max(1, preferredBatch)
        // k_c first: the method's quality grows with the experts a device can hold.
        var lo = 1, hi = kcLimit
        while lo <= hi {
            let mid = (lo + hi) / 2
            if total(mid, 0, batch) <= arenaLimit { kc = mid; lo = mid + 1 } else { hi = mid - 1 }
        }
        if kc == 0 {
            while batch > 1 && total(1, 0, batch) > arenaLimit { batch /= 2 }
            if total(1, 0, batch) > arenaLimit {
                throw .budgetTooSmall(needed: total(1, 0, 1) + outsideArenaAllowance, given: budget)
            }
            kc = 1
        }
        // Warm slots with what is left, at most k_c more: recently used experts skip a download.
        var warm = 0
        while warm < min(kc, c.experts - kc) && total(kc, warm + 1, batch) <= arenaLimit { warm += 1 }
        return DevicePlan(config: c, storage: storage, updateDType: update, kc: kc, warmSlots: warm, batch: batch,
                          book: book(config: c, storage: storage, update: update, kc: kc, warm: warm, batch: batch, samples: samples),
                          budget: budget)
    }
}
