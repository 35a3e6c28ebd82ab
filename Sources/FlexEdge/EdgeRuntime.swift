import FlexData
import FlexModel
import FlexTensor
import FlexWire

/// Everything large the device holds, carved from one arena in the order of its `DevicePlan`:
/// the trainer (extractor, gate columns, expert working copies with gradients, momentum and
/// downloaded copies, activations), the client's own gate, the expert cache, the network buffers,
/// the zstd contexts and the local data. After `init` nothing large is allocated again.
public final class EdgeRuntime {
    public let plan: DevicePlan
    public let arena: Arena
    public let trainer: LocalTrainer<MLPExtractor>
    public let gate: ClientGate
    public let cache: ExpertCache
    /// One downloaded container; a report body; a quantised payload (+ shuffle scratch); one fp32 tensor.
    public let download: UnsafeMutableRawBufferPointer
    public let report: UnsafeMutableRawBufferPointer
    public let encodeScratch: UnsafeMutableRawBufferPointer
    public let deltaScratch: UnsafeMutablePointer<Float>
    public let compressor: ZstdCompressor
    public let decompressor: ZstdDecompressor
    /// Local data: `trainCount` training rows, then the held-out rows.
    public let features: Tensor<Float>
    public let labels: Tensor<Int32>
    public let trainCount: Int

    public init(plan: DevicePlan, shard: borrowing ClientShard) throws(EdgeError) {
        self.plan = plan
        let c = plan.config
        do throws(ArenaError) {
            let arena = try Arena(capacity: plan.book.total)
            self.arena = arena
            let memory = TensorMemory.arena(arena)
            trainer = LocalTrainer(config: c, capacity: plan.kc, maxBatch: plan.batch, memory: memory)
            gate = ClientGate(c, memory: memory)
            cache = try ExpertCache(layout: ExpertLayout(shapes: c.expertShapes, dtype: plan.storage),
                                    slots: plan.kc + plan.warmSlots, arena: arena)
            let sizes = DevicePlan.networkBuffers(c, storage: plan.storage, update: plan.updateDType, kc: plan.kc)
            func buffer(_ bytes: Int) throws(ArenaError) -> UnsafeMutableRawBufferPointer {
                let p = try arena.allocate(UInt8.self, count: bytes, component: MemoryComponent.network.rawValue)
                return UnsafeMutableRawBufferPointer(start: p, count: bytes)
            }
            download = try buffer(sizes[0])
            report = try buffer(sizes[1])
            encodeScratch = try buffer(sizes[2])
            deltaScratch = try arena.allocate(Float.self, count: sizes[3] / 4, component: MemoryComponent.network.rawValue)
            compressor = try ZstdCompressor(level: 3, maxInput: DevicePlan.largestPart(c, [plan.storage, plan.updateDType]), arena: arena)
            decompressor = try ZstdDecompressor(arena: arena)
            let rows = shard.train.count + shard.test.count
            features = try Tensor(shape: Shape(rows: rows, cols: c.inputDim), arena: arena, component: MemoryComponent.data.rawValue)
            labels = try Tensor(shape: Shape(vector: rows), arena: arena, component: MemoryComponent.data.rawValue)
        } catch {
            throw .arena(error)
        }
        if shard.train.dim != c.inputDim {
            throw .data("the local data has \(shard.train.dim) features per sample, the model expects \(c.inputDim)")
        }
        trainCount = shard.train.count
        features.withUnsafeMutableBufferPointer { dst in
            shard.train.features.withUnsafeBufferPointer { src in
                UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: src.baseAddress!, byteCount: src.count * 4)
            }
            shard.test.features.withUnsafeBufferPointer { src in
                UnsafeMutableRawPointer(dst.baseAddress! + shard.train.features.count).copyMemory(from: src.baseAddress!, byteCount: src.count * 4)
            }
        }
        for i in 0..<shard.train.count { labels[i] = shard.train.labels[i] }
        for i in 0..<shard.test.count { labels[shard.train.count + i] = shard.test.labels[i] }
    }

    /// The first `trainCount` rows (training) or the rest (held out), as views into the arena.
    public func withSplit<R>(test: Bool, _ body: (borrowing Tensor<Float>, borrowing Tensor<Int32>) -> R) -> R {
        let d = features.shape.cols
        let start = test ? trainCount : 0
        let count = test ? labels.count - trainCount : trainCount
        return features.withUnsafeMutableBufferPointer { f in
            labels.withUnsafeMutableBufferPointer { l in
                let x = Tensor<Float>(shape: Shape(rows: count, cols: d), borrowing: f.baseAddress! + start * d)
                let y = Tensor<Int32>(shape: Shape(vector: count), borrowing: l.baseAddress! + start)
                return body(x, y)
            }
        }
    }
}
