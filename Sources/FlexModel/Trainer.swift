import FlexTensor

/// Per-slot scratch: the rows routed to one assigned expert, gathered contiguously.
@usableFromInline final class SlotScratch {
    let rows: Tensor<Int32>      // batch row of each routed sample
    let position: Tensor<Int32>  // its top-k position (0..<k)
    let zr: Tensor<Float>        // gathered features (B × h)
    let ar: Tensor<Float>        // hidden activations after relu (B × f)
    let ye: Tensor<Float>        // the expert's own logits (B × K)
    var count = 0
    // fitness accumulators
    var usage = 0
    var correct = 0
    var lossSum = 0.0

    init(maxBatch: Int, _ c: MoEConfig, memory: TensorMemory) {
        rows = memory.tensor(Shape(vector: maxBatch), 0, .activations)
        position = memory.tensor(Shape(vector: maxBatch), 0, .activations)
        zr = memory.floats(Shape(rows: maxBatch, cols: c.hidden), .activations)
        ar = memory.floats(Shape(rows: maxBatch, cols: c.expertHidden), .activations)
        ye = memory.floats(Shape(rows: maxBatch, cols: c.classes), .activations)
    }
}

/// Local training on one client (docs/DESIGN §1 step 2): the shared extractor, the client's gate over
/// its assigned experts (softmax, top-k with k = min(topK, k_c), weights renormalised over the
/// top-k), the assigned experts' fp32 working copies, cross-entropy, SGD with momentum and weight
/// decay, and per-expert fitness over the samples routed to each expert.
///
/// Every buffer is allocated in `init` for `maxBatch` rows and `capacity` expert slots; a training
/// step allocates nothing. `LocalTrainer.plan(...)` reports what they take, per component.
public final class LocalTrainer<Extractor: FeatureExtractor> {
    public let config: MoEConfig
    public let extractor: Extractor
    public let maxBatch: Int
    /// Expert slots (k_c at most `capacity`).
    public let capacity: Int
    public let experts: [ExpertParameters]
    /// The gate's compact working copy over the slots: Wg (h × capacity), bg (1 × capacity).
    public let gateW: Parameter
    public let gateB: Parameter
    public var options: TrainingOptions

    /// Active slots k_c (set by `assign`).
    public private(set) var activeSlots: Int
    /// Effective top-k over the routed slots = min(config.topK, k_c − shared slots).
    public var topK: Int { min(config.topK, activeSlots - sharedSlots) }
    /// 1 when slot 0 is an always-on shared expert (`options.sharedExpert`), else 0.
    public var sharedSlots: Int { options.sharedExpert && activeSlots > 0 ? 1 : 0 }

    /// When true, the forward pass reuses the previous pass's top-k choice (gradient checks).
    public var freezeRouting = false
    /// When true, forward passes accumulate per-expert fitness statistics.
    public var measuring = true

    // scratch
    let xBatch: Tensor<Float>
    let yBatch: Tensor<Int32>
    let z: Tensor<Float>
    let dz: Tensor<Float>
    let probs: Tensor<Float>   // B × capacity (gate softmax)
    let dg: Tensor<Float>      // B × capacity
    let dp: Tensor<Float>      // capacity
    let top: Tensor<Int32>     // B × topK (internal: gradient checks read it)
    let weights: Tensor<Float> // B × topK
    let dweights: Tensor<Float>
    let logits: Tensor<Float>  // B × K
    let dlogits: Tensor<Float> // B × K
    let dy: Tensor<Float>      // B × K
    let dh: Tensor<Float>      // B × f
    let dzr: Tensor<Float>     // B × h
    let wT: Tensor<Float>      // a transposed expert weight (max(h·f, f·K)): dX = dY·Wᵀ runs as dY·(Wᵀ)
    let slots: [SlotScratch]
    // mixture statistics
    var mixLossSum = 0.0
    var mixCorrect = 0
    var mixSamples = 0

    public init(config: MoEConfig, extractor: Extractor, capacity: Int, maxBatch: Int,
                options: TrainingOptions = TrainingOptions(), memory: TensorMemory = .heap) {
        precondition(extractor.outputDim == config.hidden, "extractor output must be config.hidden")
        precondition(extractor.maxBatch >= maxBatch, "extractor scratch smaller than maxBatch")
        precondition(capacity >= 1 && maxBatch >= 1)
        self.config = config
        self.extractor = extractor
        self.maxBatch = maxBatch
        self.capacity = capacity
        self.options = options
        self.activeSlots = capacity
        var list: [ExpertParameters] = []
        for _ in 0..<capacity { list.append(ExpertParameters(config, memory: memory)) }
        experts = list
        gateW = Parameter(shape: Shape(rows: config.hidden, cols: capacity), decays: true, memory: memory, component: .gate)
        gateB = Parameter(shape: Shape(vector: capacity), decays: false, memory: memory, component: .gate)
        let b = maxBatch, h = config.hidden, f = config.expertHidden, K = config.classes
        let k = min(config.topK, capacity)
        xBatch = memory.floats(Shape(rows: b, cols: config.inputDim), .activations)
        yBatch = memory.tensor(Shape(vector: b), 0, .activations)
        z = memory.floats(Shape(rows: b, cols: h), .activations)
        dz = memory.floats(Shape(rows: b, cols: h), .activations)
        probs = memory.floats(Shape(rows: b, cols: capacity), .activations)
        dg = memory.floats(Shape(rows: b, cols: capacity), .activations)
        dp = memory.floats(Shape(vector: capacity), .activations)
        top = memory.tensor(Shape(rows: b, cols: k), 0, .activations)
        weights = memory.floats(Shape(rows: b, cols: k), .activations)
        dweights = memory.floats(Shape(rows: b, cols: k), .activations)
        logits = memory.floats(Shape(rows: b, cols: K), .activations)
        dlogits = memory.floats(Shape(rows: b, cols: K), .activations)
        dy = memory.floats(Shape(rows: b, cols: K), .activations)
        dh = memory.floats(Shape(rows: b, cols: f), .activations)
        dzr = memory.floats(Shape(rows: b, cols: h), .activations)
        wT = memory.floats(Shape(vector: max(h * f, f * K)), .activations)
        var s: [SlotScratch] = []
        for _ in 0..<capacity { s.append(SlotScratch(maxBatch: b, config, memory: memory)) }
        slots = s
        for (i, e) in experts.enumerated() { e.expertId = i }
    }

    /// The memory plan of the trainer `make` builds (extractor included): what an edge arena must hold,
    /// per component. Computed by a dry run of the constructors, so it cannot drift from them.
    public static func plan(_ make: (TensorMemory) -> LocalTrainer) -> MemoryBook {
        let planner = MemoryPlanner()
        _ = make(.planning(planner))
        return planner.book
    }

    public var allParameters: [Parameter] {
        var list = extractor.parameters + [gateW, gateB]
        for s in 0..<activeSlots { list += experts[s].parameters }
        return list
    }

    // MARK: - assignment, gate in/out

    /// Sets the experts this client trains this round (global ids, at most `capacity`). Load each
    /// slot's weights afterwards (`experts[slot].parameters[i].load(from:)`), and the gate columns
    /// with `loadGate(from:)`.
    public func assign(_ ids: [Int]) {
        precondition(!ids.isEmpty && ids.count <= capacity, "assign: 1...capacity experts")
        activeSlots = ids.count
        for (s, id) in ids.enumerated() { experts[s].expertId = id }
    }

    /// Global ids of the active slots.
    public var assigned: [Int] { (0..<activeSlots).map { experts[$0].expertId } }

    /// Copies the assigned experts' columns of the client's full gate into the working gate.
    public func loadGate(from gate: ClientGate) {
        let h = config.hidden, E = config.experts
        for s in 0..<activeSlots {
            let e = experts[s].expertId
            precondition(e >= 0 && e < E)
            for r in 0..<h { gateW.value[r, s] = gate.Wg[r * E + e] }
            gateB.value[s] = gate.bg[e]
        }
        gateW.markDownloaded(); gateB.markDownloaded()
    }

    /// Writes the working gate's columns back into the client's full gate.
    public func storeGate(into gate: ClientGate) {
        let h = config.hidden, E = config.experts
        for s in 0..<activeSlots {
            let e = experts[s].expertId
            for r in 0..<h { gate.Wg[r * E + e] = gateW.value[r, s] }
            gate.bg[e] = gateB.value[s]
        }
    }

    // MARK: - statistics

    public func resetStatistics() {
        for s in slots { s.usage = 0; s.correct = 0; s.lossSum = 0 }
        mixLossSum = 0; mixCorrect = 0; mixSamples = 0
    }

    /// Fitness of every active slot from the statistics gathered since `resetStatistics()`.
    public func fitness() -> [ExpertFitness] {
        (0..<activeSlots).map { s in
            let st = slots[s]
            let u = st.usage
            let acc: Float = u > 0 ? Float(st.correct) / Float(u) : 0
            let loss: Float = u > 0 ? Float(st.lossSum / Double(u)) : 0
            var fit: Float = 0
            if u > 0 {
                switch options.fitness {
                case .accuracy: fit = acc
                case .loss(let alpha): fit = FlexMath.exp(-alpha * loss)
                }
            }
            return ExpertFitness(expert: experts[s].expertId, usage: u, accuracy: acc, meanLoss: loss, fitness: fit)
        }
    }

    // MARK: - forward / backward

    /// Forward pass on `rows` ≤ maxBatch samples; returns the mean mixture cross-entropy. With
    /// `gradient`, leaves dL/dlogits for `backward`.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, gradient: Bool) -> Float {
        precondition(rows >= 1 && rows <= maxBatch)
        let h = config.hidden, f = config.expertHidden, K = config.classes
        let kc = activeSlots, cap = capacity, k = topK, first = sharedSlots
        extractor.forward(x, rows: rows, z: z.ptr)
        let zp = z.ptr, pp = probs.ptr, tp = top.ptr, wp = weights.ptr
        // gate over the assigned experts (a shared slot 0 is never routed: its column is unused)
        Ops.gemm(false, false, m: rows, n: kc, k: h, zp, h, gateW.value.ptr, cap, pp, cap)
        Ops.addBias(pp, rows: rows, n: kc, ld: cap, bias: gateB.value.ptr)
        for s in 0..<kc { slots[s].count = 0 }
        for r in 0..<rows {
            let pr = pp + r * cap
            if first > 0 {
                // every row goes to the shared expert with weight 1 (position −1 marks it)
                let slot = slots[0]
                slot.rows[slot.count] = Int32(r)
                slot.position[slot.count] = -1
                slot.count += 1
            }
            if k == 0 { continue }
            _ = Ops.softmaxRow(pr + first, n: kc - first)
            let tr = tp + r * k
            if !freezeRouting {
                // top-k by descending probability, lowest index first on ties; always k distinct
                // slots, even when a diverged gate gives NaN probabilities (they never compare
                // greater, so the lowest free slot is kept instead of none).
                for s in 0..<k {
                    var best = -1
                    var bestP: Float = 0
                    for c in first..<kc {
                        var taken = false
                        for q in 0..<s where Int(tr[q]) == c { taken = true }
                        if !taken && (best < 0 || pr[c] > bestP) { bestP = pr[c]; best = c }
                    }
                    tr[s] = Int32(best)
                }
            }
            var total: Float = 0
            for s in 0..<k { total += pr[Int(tr[s])] }
            for s in 0..<k {
                let c = Int(tr[s])
                wp[r * k + s] = pr[c] / total
                let slot = slots[c]
                slot.rows[slot.count] = Int32(r)
                slot.position[slot.count] = Int32(s)
                slot.count += 1
            }
        }
        // experts on their routed rows
        let lp = logits.ptr
        for i in 0..<(rows * K) { lp[i] = 0 }
        for s in 0..<kc {
            let slot = slots[s], n = slot.count
            if n == 0 { continue }
            let e = experts[s]
            let zr = slot.zr.ptr, ar = slot.ar.ptr, ye = slot.ye.ptr
            let rp = slot.rows.ptr, pos = slot.position.ptr
            for i in 0..<n { (zr + i * h).update(from: zp + Int(rp[i]) * h, count: h) }
            Ops.gemm(false, false, m: n, n: f, k: h, zr, h, e.A1.value.ptr, f, ar, f)
            Ops.addBiasRelu(ar, rows: n, n: f, bias: e.a1.value.ptr)
            Ops.gemm(false, false, m: n, n: K, k: f, ar, f, e.A2.value.ptr, K, ye, K)
            Ops.addBias(ye, rows: n, n: K, ld: K, bias: e.a2.value.ptr)
            for i in 0..<n {
                let r = Int(rp[i])
                let we: Float = pos[i] < 0 ? 1 : wp[r * k + Int(pos[i])]
                let out = lp + r * K, src = ye + i * K
                for j in 0..<K { out[j] += we * src[j] }
            }
        }
        // mixture loss and dL/dlogits
        var lossSum: Float = 0
        let dl = dlogits.ptr
        let invRows = 1 / Float(rows)
        for r in 0..<rows {
            let label = Int(labels[r])
            let (loss, correct) = Ops.crossEntropy(lp + r * K, n: K, label: label)
            lossSum += loss
            if measuring {
                mixLossSum += Double(loss); mixSamples += 1
                if correct { mixCorrect += 1 }
            }
            if gradient {
                let row = dl + r * K
                let src = lp + r * K
                var m = src[0]
                for j in 1..<K { m = max(m, src[j]) }
                var sum: Float = 0
                for j in 0..<K { let v = FlexMath.exp(src[j] - m); row[j] = v; sum += v }
                let scale = invRows / sum
                for j in 0..<K { row[j] *= scale }
                row[label] -= invRows
            }
        }
        // fitness over the samples routed to each expert
        if measuring {
            let own = options.fitnessSource == .expertOutput
            for s in 0..<kc {
                let slot = slots[s]
                for i in 0..<slot.count {
                    let r = Int(slot.rows[i])
                    let out = own ? slot.ye.ptr + i * K : lp + r * K
                    let (loss, correct) = Ops.crossEntropy(out, n: K, label: Int(labels[r]))
                    slot.usage += 1
                    slot.lossSum += Double(loss)
                    if correct { slot.correct += 1 }
                }
            }
        }
        return lossSum * invRows
    }

    /// Backward pass after `forward(..., gradient: true)` on the same rows: writes every
    /// parameter's `grad` (extractor, gate, active experts).
    public func backward(_ x: UnsafePointer<Float>, rows: Int) {
        let h = config.hidden, f = config.expertHidden, K = config.classes
        let kc = activeSlots, cap = capacity, k = topK, first = sharedSlots
        let dzp = dz.ptr, dl = dlogits.ptr, wp = weights.ptr, dwp = dweights.ptr
        for i in 0..<(rows * h) { dzp[i] = 0 }
        for s in 0..<kc {
            let slot = slots[s], n = slot.count
            let e = experts[s]
            if n == 0 {
                for p in e.parameters { p.grad.fill(0) }
                continue
            }
            let ar = slot.ar.ptr, ye = slot.ye.ptr, zr = slot.zr.ptr
            let rp = slot.rows.ptr, pos = slot.position.ptr
            let dyp = dy.ptr, dhp = dh.ptr, dzrp = dzr.ptr
            for i in 0..<n {
                let r = Int(rp[i]), shared = pos[i] < 0, q = r * k + Int(pos[i])
                let we: Float = shared ? 1 : wp[q]
                let g = dl + r * K, out = dyp + i * K, yrow = ye + i * K
                var dot: Float = 0
                for j in 0..<K { out[j] = g[j] * we; dot += g[j] * yrow[j] }
                if !shared { dwp[q] = dot }
            }
            Ops.gemm(true, false, m: f, n: K, k: n, ar, f, dyp, K, e.A2.grad.ptr, K)
            Ops.columnSums(dyp, rows: n, n: K, into: e.a2.grad.ptr)
            // dh = dy·A2ᵀ and dzr = dh·A1ᵀ through explicit transposes: the broadcast kernel is
            // faster than the dot-product kernel, and a transpose costs O(weights), not O(rows·weights)
            // (only for enough rows to pay for the transpose)
            let t = wT.ptr, viaTranspose = n >= 48
            if viaTranspose {
                Ops.transpose(e.A2.value.ptr, rows: f, cols: K, into: t)
                Ops.gemm(false, false, m: n, n: f, k: K, dyp, K, t, f, dhp, f)
            } else {
                Ops.gemm(false, true, m: n, n: f, k: K, dyp, K, e.A2.value.ptr, K, dhp, f)
            }
            Ops.reluBackward(dhp, output: ar, count: n * f)
            Ops.gemm(true, false, m: h, n: f, k: n, zr, h, dhp, f, e.A1.grad.ptr, f)
            Ops.columnSums(dhp, rows: n, n: f, into: e.a1.grad.ptr)
            if viaTranspose {
                Ops.transpose(e.A1.value.ptr, rows: h, cols: f, into: t)
                Ops.gemm(false, false, m: n, n: h, k: f, dhp, f, t, h, dzrp, h)
            } else {
                Ops.gemm(false, true, m: n, n: h, k: f, dhp, f, e.A1.value.ptr, f, dzrp, h)
            }
            for i in 0..<n {
                let dst = dzp + Int(rp[i]) * h, src = dzrp + i * h
                for j in 0..<h { dst[j] += src[j] }
            }
        }
        // through the renormalised top-k softmax of the gate
        let pp = probs.ptr, dgp = dg.ptr, tp = top.ptr, dpp = dp.ptr
        for r in 0..<rows {
            let pr = pp + r * cap, tr = tp + r * k, dgr = dgp + r * cap
            for c in 0..<kc { dgr[c] = 0 }  // the shared slot's column (and every column when k = 0)
            if k == 0 { continue }
            var ptop: Float = 0, sdw: Float = 0
            for s in 0..<k { ptop += pr[Int(tr[s])]; sdw += dwp[r * k + s] * wp[r * k + s] }
            for c in 0..<kc { dpp[c] = 0 }
            for s in 0..<k { dpp[Int(tr[s])] = (dwp[r * k + s] - sdw) / ptop }
            var dot: Float = 0
            for c in first..<kc { dot += dpp[c] * pr[c] }
            for c in first..<kc { dgr[c] = pr[c] * (dpp[c] - dot) }
        }
        gateW.grad.fill(0); gateB.grad.fill(0)
        Ops.gemm(true, false, m: h, n: kc, k: rows, z.ptr, h, dgp, cap, gateW.grad.ptr, cap)
        let gb = gateB.grad.ptr
        for r in 0..<rows { for c in 0..<kc { gb[c] += dgp[r * cap + c] } }
        Ops.gemm(false, true, m: rows, n: h, k: kc, dgp, cap, gateW.value.ptr, cap, dzp, h, accumulate: true)
        extractor.backward(x, rows: rows, z: z.ptr, dz: dzp)
    }

    /// Applies one SGD step (momentum, weight decay) to every active parameter.
    public func update() {
        let lr = options.learningRate, mu = options.momentum, wd = options.weightDecay
        if options.gradientClip > 0 { clipGradients(to: options.gradientClip) }
        for p in extractor.parameters { p.sgdStep(learningRate: lr, momentum: mu, weightDecay: wd) }
        gateW.sgdStep(learningRate: lr, momentum: mu, weightDecay: wd)
        gateB.sgdStep(learningRate: lr, momentum: mu, weightDecay: wd)
        for s in 0..<activeSlots {
            for p in experts[s].parameters { p.sgdStep(learningRate: lr, momentum: mu, weightDecay: wd) }
        }
    }

    /// One training step on `rows` contiguous samples; returns the batch's mean loss.
    @discardableResult
    public func step(_ x: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int) -> Float {
        let loss = forward(x, labels: labels, rows: rows, gradient: true)
        backward(x, rows: rows)
        update()
        return loss
    }

    // MARK: - epochs over a dataset

    /// Runs `options.epochs` epochs of shuffled minibatch SGD over `count` samples (features
    /// row-major count × inputDim, labels 0..<K) and returns the loss trajectory and per-expert
    /// fitness measured during training. Only the permutation (count Int32) is allocated per call.
    public func train(features: borrowing Tensor<Float>, labels: borrowing Tensor<Int32>,
                      random: inout FlexRandom) -> TrainingReport {
        let n = labels.count, d = config.inputDim
        precondition(features.count == n * d, "features must be count × inputDim")
        let batch = min(options.batchSize, maxBatch)
        resetStatistics()
        var report = TrainingReport(steps: 0, samples: 0, firstEpochLoss: 0, lastEpochLoss: 0,
                                    lastEpochAccuracy: 0, experts: [])
        if n == 0 { report.experts = fitness(); return report }
        let order = Tensor<Int32>(shape: Shape(vector: n), repeating: 0)
        for i in 0..<n { order[i] = Int32(i) }
        let fp = features.ptr, lp = labels.ptr, xb = xBatch.ptr, yb = yBatch.ptr
        for epoch in 0..<max(options.epochs, 1) {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = random.nextInt(below: i + 1)
                let t = order[i]; order[i] = order[j]; order[j] = t
            }
            let mixBefore = mixLossSum, correctBefore = mixCorrect, samplesBefore = mixSamples
            var start = 0
            while start < n {
                let rows = min(batch, n - start)
                for i in 0..<rows {
                    let src = Int(order[start + i])
                    (xb + i * d).update(from: fp + src * d, count: d)
                    yb[i] = lp[src]
                }
                step(xb, labels: yb, rows: rows)
                report.steps += 1
                report.samples += rows
                start += rows
            }
            let seen = Double(mixSamples - samplesBefore)
            let meanLoss = Float((mixLossSum - mixBefore) / max(seen, 1))
            if epoch == 0 { report.firstEpochLoss = meanLoss }
            report.lastEpochLoss = meanLoss
            report.lastEpochAccuracy = Float(Double(mixCorrect - correctBefore) / max(seen, 1))
        }
        report.experts = fitness()
        return report
    }

    /// The fitness of the assigned experts on a dataset with the current weights: one forward-only pass
    /// with statistics (no training). Leaves the statistics of this pass behind.
    public func measureFitness(features: borrowing Tensor<Float>, labels: borrowing Tensor<Int32>) -> [ExpertFitness] {
        let n = labels.count, d = config.inputDim
        resetStatistics()
        let wasMeasuring = measuring
        measuring = true
        defer { measuring = wasMeasuring }
        let fp = features.ptr, lp = labels.ptr
        var start = 0
        while start < n {
            let rows = min(maxBatch, n - start)
            _ = forward(fp + start * d, labels: lp + start, rows: rows, gradient: false)
            start += rows
        }
        return fitness()
    }

    /// Mixture loss and accuracy over a dataset (no training, no statistics).
    public func evaluate(features: borrowing Tensor<Float>, labels: borrowing Tensor<Int32>) -> (loss: Float, accuracy: Float) {
        let n = labels.count, d = config.inputDim, K = config.classes
        if n == 0 { return (0, 0) }
        let wasMeasuring = measuring
        measuring = false
        defer { measuring = wasMeasuring }
        var lossSum = 0.0, correct = 0, start = 0
        let fp = features.ptr, lp = labels.ptr
        while start < n {
            let rows = min(maxBatch, n - start)
            let loss = forward(fp + start * d, labels: lp + start, rows: rows, gradient: false)
            lossSum += Double(loss) * Double(rows)
            for r in 0..<rows {
                if Ops.crossEntropy(logits.ptr + r * K, n: K, label: Int(lp[start + r])).correct { correct += 1 }
            }
            start += rows
        }
        return (Float(lossSum / Double(n)), Float(correct) / Float(n))
    }

    /// Scales every trained parameter's gradient so that their global L2 norm is at most `limit`.
    func clipGradients(to limit: Float) {
        var active = extractor.parameters + [gateW, gateB]
        for s in 0..<activeSlots { active += experts[s].parameters }
        var sum: Float = 0
        for p in active {
            let g = p.grad.ptr
            for i in 0..<p.count { sum += g[i] * g[i] }
        }
        let norm = sum.squareRoot()
        guard norm > limit else { return }
        let scale = limit / norm
        for p in active {
            let g = p.grad.ptr
            for i in 0..<p.count { g[i] *= scale }
        }
    }

    /// Marks every parameter's current value as the downloaded one (deltas start from here).
    public func markDownloaded() {
        for p in allParameters { p.markDownloaded() }
    }
}

extension LocalTrainer where Extractor == MLPExtractor {
    /// The memory plan of an `mlp-moe` trainer (extractor included) — what the edge arena must hold.
    public static func plan(config: MoEConfig, capacity: Int, maxBatch: Int) -> MemoryBook {
        plan { LocalTrainer(config: config, capacity: capacity, maxBatch: maxBatch, memory: $0) }
    }

    /// An `mlp-moe` trainer: `capacity` expert slots, scratch for `maxBatch` rows, buffers from
    /// `memory` (the heap, or a device arena).
    public convenience init(config: MoEConfig, capacity: Int, maxBatch: Int, options: TrainingOptions = TrainingOptions(),
                            memory: TensorMemory = .heap) {
        self.init(config: config, extractor: MLPExtractor(config, maxBatch: maxBatch, memory: memory), capacity: capacity,
                  maxBatch: maxBatch, options: options, memory: memory)
    }
}
