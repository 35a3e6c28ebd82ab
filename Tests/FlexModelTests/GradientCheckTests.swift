@testable import FlexModel
import FlexTensor
import Testing

/// Gradient checks: the trainer's analytic fp32 gradients against central finite differences of an
/// independent scalar reference of the same model in Double, with the routing (top-k choice) held
/// fixed at the trainer's. Error per parameter group: ‖g − g_fd‖ / max(‖g‖, ‖g_fd‖) ≤ 1e-3.
@Suite("gradient checks")
struct GradientCheckTests {
    typealias Params = [[Double]]

    /// The mixture loss in Double (mean cross-entropy over the rows), extractor given as a closure.
    static func referenceLoss(_ p: Params, extractorCount: Int, config c: MoEConfig, capacity: Int, slots: Int,
                              x: [Double], labels: [Int], rows: Int, top: [Int], k: Int, shared: Bool = false,
                              extractor: (Params, ArraySlice<Double>) -> [Double]) -> Double {
        let h = c.hidden, f = c.expertHidden, K = c.classes, d = c.inputDim
        let Wg = p[extractorCount], bg = p[extractorCount + 1]
        var total = 0.0
        for r in 0..<rows {
            let z = extractor(p, x[(r * d)..<((r + 1) * d)])
            // softmax over the routed slots (a shared slot 0 is always on, with weight 1)
            let first = shared ? 1 : 0
            var g = [Double](repeating: -.infinity, count: slots)
            for s in first..<slots {
                g[s] = bg[s]
                for i in 0..<h { g[s] += z[i] * Wg[i * capacity + s] }
            }
            let m = g.max()!
            let e = g.map { FlexMath.exp($0 - m) }
            let sum = e.reduce(0, +)
            var prob = e.map { $0 / sum }
            let chosen = Array(top[(r * k)..<((r + 1) * k)])
            var ptop = chosen.reduce(0.0) { $0 + prob[$1] }
            var logits = [Double](repeating: 0, count: K)
            if shared { prob[0] = 1; ptop = chosen.isEmpty ? 1 : ptop }
            for s in chosen + (shared ? [0] : []) {
                let base = extractorCount + 2 + 4 * s
                let A1 = p[base], a1 = p[base + 1], A2 = p[base + 2], a2 = p[base + 3]
                var hid = [Double](repeating: 0, count: f)
                for j in 0..<f {
                    var v = a1[j]
                    for i in 0..<h { v += z[i] * A1[i * f + j] }
                    hid[j] = max(v, 0)
                }
                for o in 0..<K {
                    var v = a2[o]
                    for j in 0..<f { v += hid[j] * A2[j * K + o] }
                    logits[o] += (s == 0 && shared ? 1 : prob[s] / ptop) * v
                }
            }
            let lm = logits.max()!
            let ls = logits.reduce(0.0) { $0 + FlexMath.exp($1 - lm) }
            total += FlexMath.log(ls) + lm - logits[labels[r]]
        }
        return total / Double(rows)
    }

    static func mlpExtractor(h: Int) -> (Params, ArraySlice<Double>) -> [Double] {
        { p, x in
            let W1 = p[0], b1 = p[1]
            return (0..<h).map { j in
                var v = b1[j]
                for (i, xi) in x.enumerated() { v += xi * W1[i * h + j] }
                return max(v, 0)
            }
        }
    }

    /// Direct (not im2col) conv extractor in Double: channel-major input.
    static func convExtractor(C: Int, H: Int, W: Int, c1: Int, c2: Int, h: Int) -> (Params, ArraySlice<Double>) -> [Double] {
        { p, xs in
            let x = Array(xs)
            func conv(_ input: [Double], cin: Int, cout: Int, hh: Int, ww: Int, K: [Double], b: [Double], chw: Bool) -> [Double] {
                // output pixel-major (hh·ww × cout); input channel-major when chw, else pixel-major
                var out = [Double](repeating: 0, count: hh * ww * cout)
                for y in 0..<hh { for xx in 0..<ww { for o in 0..<cout {
                    var v = b[o]
                    for ci in 0..<cin { for ky in 0..<3 { for kx in 0..<3 {
                        let yy = y + ky - 1, x2 = xx + kx - 1
                        if yy < 0 || yy >= hh || x2 < 0 || x2 >= ww { continue }
                        let iv = chw ? input[ci * hh * ww + yy * ww + x2] : input[(yy * ww + x2) * cin + ci]
                        v += iv * K[o * cin * 9 + ci * 9 + ky * 3 + kx]
                    } } }
                    out[(y * ww + xx) * cout + o] = max(v, 0)
                } } }
                return out
            }
            func pool(_ input: [Double], c: Int, hh: Int, ww: Int) -> [Double] {
                var out = [Double](repeating: 0, count: hh / 2 * ww / 2 * c)
                for y in 0..<(hh / 2) { for xx in 0..<(ww / 2) { for ch in 0..<c {
                    var m = -Double.infinity
                    for dy in 0..<2 { for dx in 0..<2 { m = max(m, input[((2 * y + dy) * ww + 2 * xx + dx) * c + ch]) } }
                    out[(y * (ww / 2) + xx) * c + ch] = m
                } } }
                return out
            }
            let a1 = pool(conv(x, cin: C, cout: c1, hh: H, ww: W, K: p[0], b: p[1], chw: true), c: c1, hh: H, ww: W)
            let a2 = pool(conv(a1, cin: c1, cout: c2, hh: H / 2, ww: W / 2, K: p[2], b: p[3], chw: false), c: c2, hh: H / 2, ww: W / 2)
            let Wd = p[4], bd = p[5]
            return (0..<h).map { j in
                var v = bd[j]
                for (i, ai) in a2.enumerated() { v += ai * Wd[i * h + j] }
                return max(v, 0)
            }
        }
    }

    /// Randomises the trainer, runs forward/backward, and returns group → relative error.
    func check<X: FeatureExtractor>(_ trainer: LocalTrainer<X>, rows: Int, seed: UInt64,
                                    extractor: @escaping (Params, ArraySlice<Double>) -> [Double]) -> [String: Double] {
        let c = trainer.config
        var random = FlexRandom(seed: seed)
        trainer.extractor.initialise(random: &random)
        for s in 0..<trainer.capacity { trainer.experts[s].initialise(random: &random) }
        for p in trainer.allParameters where p.shape.rows == 1 {
            for i in 0..<p.count { p.value[i] = Float(random.nextGaussian() * 0.1) }
        }
        for i in 0..<trainer.gateW.count { trainer.gateW.value[i] = Float(random.nextGaussian() * 0.5) }
        let x = Tensor<Float>(zeros: Shape(rows: rows, cols: c.inputDim))
        let y = Tensor<Int32>(shape: Shape(vector: rows), repeating: 0)
        for i in 0..<x.count { x[i] = Float(random.nextGaussian()) }
        for i in 0..<rows { y[i] = Int32(random.nextInt(below: c.classes)) }
        trainer.forward(x.ptr, labels: y.ptr, rows: rows, gradient: true)
        trainer.backward(x.ptr, rows: rows)
        let k = trainer.topK
        let top = (0..<(rows * k)).map { Int(trainer.top[$0]) }
        let params = trainer.allParameters
        var p: Params = params.map { q in (0..<q.count).map { Double(q.value[$0]) } }
        let xs = (0..<x.count).map { Double(x[$0]) }
        let labels = (0..<rows).map { Int(y[$0]) }
        let extractorCount = trainer.extractor.parameters.count
        let capacity = trainer.capacity, slots = trainer.activeSlots
        func loss(_ p: Params) -> Double {
            Self.referenceLoss(p, extractorCount: extractorCount, config: c, capacity: capacity,
                               slots: slots, x: xs, labels: labels, rows: rows, top: top, k: k,
                               shared: trainer.options.sharedExpert, extractor: extractor)
        }
        // the reference and the trainer agree on the loss itself
        trainer.freezeRouting = true
        let trainerLoss = trainer.forward(x.ptr, labels: y.ptr, rows: rows, gradient: false)
        trainer.freezeRouting = false
        let reference = loss(p)
        #expect(abs(Double(trainerLoss) - reference) < 1e-4 * max(1, abs(reference)))
        var errors: [String: Double] = [:]
        let eps = 1e-6
        for (g, param) in params.enumerated() {
            var diff = 0.0, na = 0.0, nf = 0.0
            for i in 0..<param.count {
                let saved = p[g][i]
                p[g][i] = saved + eps; let up = loss(p)
                p[g][i] = saved - eps; let down = loss(p)
                p[g][i] = saved
                let fd = (up - down) / (2 * eps)
                let an = Double(param.grad[i])
                diff += (fd - an) * (fd - an); na += an * an; nf += fd * fd
            }
            // a group whose gradient is exactly zero both ways (e.g. the gate with one slot) passes
            let rel = na + nf == 0 ? 0 : diff.squareRoot() / max(na.squareRoot(), nf.squareRoot())
            errors["\(g < 10 ? "0" : "")\(g):\(param.shape.rows)x\(param.shape.cols)"] = rel
        }
        return errors
    }

    @Test("mlp-moe: extractor, gate, experts (k_c = 3, top-2)")
    func mlp() {
        let c = MoEConfig(inputDim: 6, hidden: 5, expertHidden: 7, classes: 4, experts: 5, topK: 2)
        let trainer = LocalTrainer(config: c, capacity: 3, maxBatch: 8)
        trainer.assign([4, 0, 2])
        let errors = check(trainer, rows: 8, seed: 11, extractor: Self.mlpExtractor(h: 5))
        print("gradient check mlp-moe (group: relative error):", errors.sorted { $0.key < $1.key })
        #expect(errors.count == 2 + 2 + 12)
        for (group, e) in errors { #expect(e <= 1e-3, "group \(group): relative error \(e)") }
    }

    @Test("mlp-moe with ≥ 48 rows routed to an expert (the transposed-weight backward path)")
    func manyRows() {
        let c = MoEConfig(inputDim: 5, hidden: 4, expertHidden: 6, classes: 3, experts: 2, topK: 2)
        let trainer = LocalTrainer(config: c, capacity: 2, maxBatch: 56)
        let errors = check(trainer, rows: 56, seed: 21, extractor: Self.mlpExtractor(h: 4))
        for (group, e) in errors { #expect(e <= 1e-3, "group \(group): relative error \(e)") }
    }

    @Test("mlp-moe with top-1 routing, and with a single expert")
    func topOne() {
        for (cap, topK) in [(3, 1), (1, 2)] {
            let c = MoEConfig(inputDim: 4, hidden: 6, expertHidden: 5, classes: 3, experts: 4, topK: topK)
            let trainer = LocalTrainer(config: c, capacity: cap, maxBatch: 6)
            let errors = check(trainer, rows: 6, seed: 5, extractor: Self.mlpExtractor(h: 6))
            for (group, e) in errors { #expect(e <= 1e-3, "cap \(cap) top-\(topK) group \(group): relative error \(e)") }
        }
    }

    @Test("mlp-moe with an always-on shared expert in slot 0 (k_c = 4 and 3 with top-2, k_c = 1: shared only)")
    func sharedExpert() {
        for (cap, rows, seed) in [(4, 8, UInt64(31)), (3, 50, 32), (1, 6, 33)] {
            let c = MoEConfig(inputDim: 5, hidden: 6, expertHidden: 5, classes: 3, experts: 5, topK: 2)
            var options = TrainingOptions()
            options.sharedExpert = true
            let trainer = LocalTrainer(config: c, capacity: cap, maxBatch: rows, options: options)
            trainer.assign([0] + (1..<cap).map { $0 + 1 })
            #expect(trainer.topK == min(2, cap - 1))
            let errors = check(trainer, rows: rows, seed: seed, extractor: Self.mlpExtractor(h: 6))
            for (group, e) in errors { #expect(e <= 1e-3, "k_c \(cap) group \(group): relative error \(e)") }
            // the shared slot's gate column never learns
            for r in 0..<c.hidden { #expect(trainer.gateW.grad[r, 0] == 0) }
            #expect(trainer.gateB.grad[0] == 0)
        }
    }

    @Test("conv extractor: conv1, conv2, dense, with gate and experts")
    func conv() {
        let c = MoEConfig(inputDim: 2 * 8 * 8, hidden: 6, expertHidden: 5, classes: 3, experts: 3, topK: 2)
        let ex = ConvExtractor(channels: 2, height: 8, width: 8, c1: 3, c2: 4, hidden: 6, maxBatch: 4)
        let trainer = LocalTrainer(config: c, extractor: ex, capacity: 2, maxBatch: 4)
        let errors = check(trainer, rows: 4, seed: 3,
                           extractor: Self.convExtractor(C: 2, H: 8, W: 8, c1: 3, c2: 4, h: 6))
        print("gradient check conv (group: relative error):", errors.sorted { $0.key < $1.key })
        #expect(errors.count == 6 + 2 + 8)
        for (group, e) in errors { #expect(e <= 1e-3, "group \(group): relative error \(e)") }
    }
}
