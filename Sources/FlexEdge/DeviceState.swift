import FlexData
import FlexModel
import FlexTensor
import FlexWire

/// What one device keeps from round to round: its own gate (never sent), its expert cache, its
/// local data, and the extractor version it holds. On a board it lives in the runtime's arena; the
/// simulator keeps one per simulated device (each in a small arena of its own).
public final class DeviceState {
    public let gate: ClientGate
    /// The arena everything here lives in (kept alive as long as this is).
    public let arena: Arena
    public let cache: ExpertCache
    /// Local data: `trainCount` training rows, then the held-out rows.
    public let features: Tensor<Float>
    public let labels: Tensor<Int32>
    public let trainCount: Int
    /// The extractor version this device holds (nil before its first download).
    public var extractorVersion: UInt64?
    /// Whether the data has been standardised with the server's pooled normalization (done once).
    public private(set) var standardised = false

    /// Copies the local data (`train`, then the held-out `test` rows) into the arena.
    public init(plan: DevicePlan, train: borrowing Dataset, test: borrowing Dataset, arena: Arena,
                random: inout FlexRandom, gateInit: GateInit = .random) throws(EdgeError) {
        self.arena = arena
        let c = plan.config
        if train.dim != c.inputDim || (test.count > 0 && test.dim != c.inputDim) {
            throw .data("the local data has \(train.dim) features per sample, the model expects \(c.inputDim)")
        }
        do throws(ArenaError) {
            gate = ClientGate(c, memory: .arena(arena))
            cache = try ExpertCache(layout: ExpertLayout(shapes: c.expertShapes, dtype: plan.storage),
                                    slots: plan.kc + plan.warmSlots, arena: arena)
            let rows = train.count + test.count
            features = try Tensor(shape: Shape(rows: rows, cols: c.inputDim), arena: arena, component: MemoryComponent.data.rawValue)
            labels = try Tensor(shape: Shape(vector: rows), arena: arena, component: MemoryComponent.data.rawValue)
        } catch {
            throw .arena(error)
        }
        trainCount = train.count
        features.withUnsafeMutableBufferPointer { dst in
            train.features.withUnsafeBufferPointer { src in
                UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: src.baseAddress!, byteCount: src.count * 4)
            }
            test.features.withUnsafeBufferPointer { src in
                UnsafeMutableRawPointer(dst.baseAddress! + train.features.count).copyMemory(from: src.baseAddress!, byteCount: src.count * 4)
            }
        }
        for i in 0..<train.count { labels[i] = train.labels[i] }
        for i in 0..<test.count { labels[train.count + i] = test.labels[i] }
        gate.initialise(random: &random, mode: gateInit)
    }

    /// The statistics of the training rows, per feature, as the protocol sends them (docs/PROTOCOL.md
    /// `POST /v1/stats`): `out` receives 3 × d floats, row 0 the count, row 1 the mean, row 2 the
    /// population standard deviation. Two passes per feature in fp64; no memory beyond `out`.
    public func writeFeatureStats(into out: UnsafeMutablePointer<Float>) {
        let d = features.shape.cols, n = trainCount
        let x = features.ptr
        for j in 0..<d {
            var sum = 0.0
            for i in 0..<n { sum += Double(x[i * d + j]) }
            let mean = n > 0 ? sum / Double(n) : 0
            var m2 = 0.0
            for i in 0..<n { let e = Double(x[i * d + j]) - mean; m2 += e * e }
            out[j] = Float(n)
            out[d + j] = Float(mean)
            out[2 * d + j] = Float(n > 0 ? (m2 / Double(n)).squareRoot() : 0)
        }
    }

    /// Standardises every row (training and held out) in place: x ← (x − mean) / std, per feature.
    public func standardise(mean: UnsafePointer<Float>, std: UnsafePointer<Float>) {
        let d = features.shape.cols, rows = labels.count
        let x = features.ptr
        for i in 0..<rows {
            for j in 0..<d { x[i * d + j] = (x[i * d + j] - mean[j]) / std[j] }
        }
        standardised = true
    }

    /// Samples held out for the local test.
    public var testCount: Int { labels.count - trainCount }

    /// The first `trainCount` rows (training) or the rest (held out), as views.
    public func withSplit<R>(test: Bool, _ body: (borrowing Tensor<Float>, borrowing Tensor<Int32>) -> R) -> R {
        let d = features.shape.cols
        let start = test ? trainCount : 0
        let count = test ? testCount : trainCount
        return features.withUnsafeMutableBufferPointer { f in
            labels.withUnsafeMutableBufferPointer { l in
                let x = Tensor<Float>(shape: Shape(rows: count, cols: d), borrowing: f.baseAddress! + start * d)
                let y = Tensor<Int32>(shape: Shape(vector: count), borrowing: l.baseAddress! + start)
                return body(x, y)
            }
        }
    }
}
