/// Tuning of the production solver (docs/ALGORITHM.md §3).
public struct FlexOptions: Sendable, Equatable {
    /// Subgradient iterations at most.
    public var maxIterations = 100
    /// Repair the relaxed solution into a feasible one every this many iterations (and at the end);
    /// intermediate repairs only run while clients × experts ≤ `intermediateRepairCells`, since on
    /// large instances they cost more than they help.
    public var repairEvery = 15
    public var intermediateRepairCells = 200_000
    /// Stop when (dual bound − best feasible) ≤ targetGap·|dual bound|.
    public var targetGap = 2e-4
    /// Passes of improving moves/swaps after the final repair (one pass above `intermediateRepairCells`).
    public var localSearchPasses = 3
    /// Optional wall-clock limit (the best feasible solution so far is returned when it expires;
    /// results are deterministic only when the limit is not hit).
    public var timeLimit: Duration? = nil
    /// Small instances (clients × experts ≤ `polishCells`) are finished by the exact branch-and-bound,
    /// seeded with the flex solution and multipliers and cut off after `polishNodes` nodes; it
    /// can only improve the answer, and proves it optimal when it finishes. 0 disables it.
    public var polishNodes = 50_000
    public var polishCells = 600
    /// Seeds the order in which local search visits clients.
    public var seed: UInt64 = 0

    public init() {}
}

/// Where the flex solver spent its effort (for benchmarks and the round log).
public struct FlexStats: Sendable, Equatable {
    public var iterations = 0
    public var repairs = 0
    public var repairMoves = 0
    public var repairSwaps = 0
    public var improvingMoves = 0
    public var improvingSwaps = 0
    public var secondsRelaxed = 0.0
    public var secondsRepair = 0.0
    public var secondsLocalSearch = 0.0
    public init() {}
}

@inline(__always)
func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// What one run of the flex solver on fixed bounds produced.
struct FlexOutcome {
    /// Best feasible assignment found (nil when repair never reached feasibility).
    var assignment: Assignment?
    var objective: Double
    /// Lagrangian dual bound: no assignment meeting the bounds has a larger objective.
    var dualBound: Double
    /// Smallest total bound violation reached when no feasible assignment was found.
    var residualViolation: Double
    var iterations: Int
    /// The multipliers of the dual bound, per unit of load.
    var multipliers: [Double]
    var stats: FlexStats
}

/// Lagrangian relaxation of the expert load rows + repair + local search.
///
/// For multipliers λ_e (positive: the upper bound binds; negative: the lower bound binds) the
/// relaxed problem separates by client: client c takes its k_c experts of largest reduced fitness
/// Q[c][e] − λ_e·|D_c|/m. Its value plus Σ_e (λ_e⁺·Γ_e − λ_e⁻·L_e)/m is an upper bound on the
/// optimum, minimised by Polyak subgradient steps. Relaxed solutions are repaired into feasible
/// ones by violation-reducing moves/swaps ranked by reduced-fitness loss per unit of violation
/// removed, then improved by feasible moves and pairwise swaps on the true fitness.
struct FlexCore {
    let C: Int, E: Int
    let q: [Float]
    let k: [Int]
    let d: [Int]
    let dn: [Float]
    let lo: [Double], up: [Double]
    let offsets: [Int]
    let scale: Double
    var sel: [Int32]
    var has: [UInt8]
    var load: [Int]
    var scratchV: [Float]
    var scratchI: [Int32]
    var clientOrder: [Int]
    var stats = FlexStats()

    init(_ inst: AssignmentInstance, lower: [Double], upper: [Double], seed: UInt64) {
        C = inst.clients; E = inst.experts
        q = inst.fitness; k = inst.capacity; d = inst.dataSize
        lo = lower; up = upper
        let w = Double(inst.totalLoad)
        scale = w > 0 ? w / Double(E) : 1
        dn = inst.dataSize.map { Float(Double($0) / (w > 0 ? w / Double(inst.experts) : 1)) }
        var off = [0]
        off.reserveCapacity(C + 1)
        for c in 0..<C { off.append(off[c] + inst.capacity[c]) }
        offsets = off
        sel = [Int32](repeating: 0, count: off[C])
        has = [UInt8](repeating: 0, count: C * E)
        load = [Int](repeating: 0, count: E)
        scratchV = [Float](repeating: 0, count: E + 1)
        scratchI = [Int32](repeating: 0, count: E + 1)
        var order = Array(0..<C)
        var rng = AssignRNG(seed: seed ^ 0x5EED_F1E7)
        if C > 1 {
            for i in stride(from: C - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
        }
        clientOrder = order
    }

    @inline(__always)
    func viol(_ e: Int, _ l: Int) -> Double {
        let x = Double(l)
        return x > up[e] ? x - up[e] : (x < lo[e] ? lo[e] - x : 0)
    }

    func totalViolation() -> Double {
        var v = 0.0
        for e in 0..<E { v += viol(e, load[e]) }
        return v
    }

    func objective() -> Double {
        var s = 0.0
        for c in 0..<C { for j in offsets[c]..<offsets[c + 1] { s += Double(q[c * E + Int(sel[j])]) } }
        return s
    }

    // MARK: relaxed problem

    /// Solves the relaxed problem for λ: fills `sel` and `load`, returns Σ_c top-k_c reduced fitness.
    mutating func relaxed(_ lam: [Float]) -> Double {
        let t0 = ContinuousClock.now
        defer { stats.secondsRelaxed += seconds(ContinuousClock.now - t0) }
        let C = C, E = E
        var total = 0.0
        for e in 0..<E { load[e] = 0 }
        q.withUnsafeBufferPointer { Q in
        lam.withUnsafeBufferPointer { L in
        dn.withUnsafeBufferPointer { DN in
        sel.withUnsafeMutableBufferPointer { S in
        load.withUnsafeMutableBufferPointer { LD in
        scratchV.withUnsafeMutableBufferPointer { V in
        scratchI.withUnsafeMutableBufferPointer { I in
            for c in 0..<C {
                let kc = k[c]
                if kc == 0 { continue }
                let row = Q.baseAddress! + c * E
                let dc = DN[c]
                let o = offsets[c]
                if kc >= E {
                    for e in 0..<E { S[o + e] = Int32(e); total += Double(row[e] - L[e] * dc) }
                } else if kc <= 32 {
                    // Sorted buffer of the kc best (descending; ties keep the lower index). After the
                    // first kc entries, 8 experts at a time are compared with the current k-th best
                    // and only chunks holding a better value go through the scalar insertion.
                    var n = 0
                    @inline(__always) func insert(_ v: Float, _ e: Int) {
                        if n == kc { n -= 1 }
                        var p = n
                        while p > 0 && V[p - 1] < v { V[p] = V[p - 1]; I[p] = I[p - 1]; p -= 1 }
                        V[p] = v; I[p] = Int32(e); n += 1
                    }
                    for e in 0..<kc { insert(row[e] - L[e] * dc, e) }
                    var e = kc
                    let dcv = SIMD8<Float>(repeating: dc)
                    let lp = UnsafeRawPointer(L.baseAddress!)
                    let rp = UnsafeRawPointer(row)
                    while e + 8 <= E {
                        let v = rp.loadUnaligned(fromByteOffset: e * 4, as: SIMD8<Float>.self)
                            - lp.loadUnaligned(fromByteOffset: e * 4, as: SIMD8<Float>.self) * dcv
                        if any(v .> SIMD8<Float>(repeating: V[kc - 1])) {
                            for i in 0..<8 where v[i] > V[kc - 1] { insert(v[i], e + i) }
                        }
                        e += 8
                    }
                    while e < E {
                        let v = row[e] - L[e] * dc
                        if v > V[kc - 1] { insert(v, e) }
                        e += 1
                    }
                    for j in 0..<kc { S[o + j] = I[j]; total += Double(V[j]) }
                } else {
                    var idx = Array(0..<E)
                    let vals = (0..<E).map { row[$0] - L[$0] * dc }
                    idx.sort { vals[$0] != vals[$1] ? vals[$0] > vals[$1] : $0 < $1 }
                    for j in 0..<kc { S[o + j] = Int32(idx[j]); total += Double(vals[idx[j]]) }
                }
                let dsz = d[c]
                for j in 0..<kc { LD[Int(S[o + j])] += dsz }
            }
        }}}}}}}
        return total
    }

    func dualTerm(_ lam: [Float]) -> Double {
        var s = 0.0
        for e in 0..<E {
            let l = Double(lam[e])
            if l > 0 { s += l * up[e] / scale } else if l < 0 { s += l * lo[e] / scale }
        }
        return s
    }

    // MARK: repair

    mutating func rebuildHas() {
        for i in has.indices { has[i] = 0 }
        for c in 0..<C { for j in offsets[c]..<offsets[c + 1] { has[c * E + Int(sel[j])] = 1 } }
    }

    @inline(__always)
    func red(_ c: Int, _ e: Int, _ lam: [Float]) -> Double {
        Double(q[c * E + e]) - Double(lam[e]) * Double(dn[c])
    }

    mutating func applyMove(_ c: Int, slot j: Int, to e2: Int) {
        let e1 = Int(sel[j])
        sel[j] = Int32(e2)
        has[c * E + e1] = 0; has[c * E + e2] = 1
        load[e1] -= d[c]; load[e2] += d[c]
    }

    func slot(of e: Int, _ c: Int) -> Int {
        for j in offsets[c]..<offsets[c + 1] where Int(sel[j]) == e { return j }
        fatalError("client \(c) does not hold expert \(e)")
    }

    /// Moves clients until every bound is met; false when no move or swap reduces the violation.
    mutating func repair(_ lam: [Float], deadline: ContinuousClock.Instant?) -> Bool {
        let t0 = ContinuousClock.now
        stats.repairs += 1
        defer { stats.secondsRepair += seconds(ContinuousClock.now - t0) }
        let tol = 1e-9
        var stuck = [Bool](repeating: false, count: E)
        var guardSteps = 0
        let maxSteps = 20 * (offsets[C] + E) + 1000
        while guardSteps < maxSteps {
            guardSteps += 1
            var es = -1, ev = tol
            for e in 0..<E where !stuck[e] {
                let v = viol(e, load[e])
                if v > ev { ev = v; es = e }
            }
            if es < 0 {
                if totalViolation() <= tol { return true }
                // Every violated expert is stuck for single moves: try one pairwise swap.
                if let dl = deadline, ContinuousClock.now > dl { return false }
                var swapped = false
                for e in 0..<E where viol(e, load[e]) > tol {
                    if swapRepair(e, lam) { swapped = true; stats.repairSwaps += 1; break }
                }
                if !swapped { return false }
                for e in 0..<E { stuck[e] = false }
                continue
            }
            let n = moveRepair(es, lam)
            if n > 0 {
                stats.repairMoves += n
                for e in 0..<E { stuck[e] = false }
            } else {
                stuck[es] = true
            }
        }
        return totalViolation() <= tol
    }

    /// Moves that reduce the violation of expert `es` (and the total), cheapest reduced-fitness loss
    /// per unit of violation first. One scan ranks every client's best move; they are then applied
    /// in that order, each re-checked (and its target re-chosen) against the current loads, until
    /// `es` meets its bounds. Returns the number of moves applied.
    mutating func moveRepair(_ es: Int, _ lam: [Float]) -> Int {
        let over = Double(load[es]) > up[es]
        var cands: [(ratio: Double, c: Int32)] = []
        for c in 0..<C {
            let dc = d[c]
            if dc == 0 || k[c] == 0 || k[c] == E { continue }
            let holds = has[c * E + es] != 0
            if holds != over { continue }
            if let (r, _) = bestRepairMove(c, es, over, lam) { cands.append((r, Int32(c))) }
        }
        cands.sort { $0.ratio != $1.ratio ? $0.ratio < $1.ratio : $0.c < $1.c }
        var applied = 0
        for (_, c32) in cands {
            if viol(es, load[es]) <= 1e-9 { break }
            let c = Int(c32)
            guard let (_, target) = bestRepairMove(c, es, over, lam) else { continue }
            if over { applyMove(c, slot: slot(of: es, c), to: target) } else { applyMove(c, slot: target, to: es) }
            applied += 1
        }
        return applied
    }

    /// For client c and violated expert es: over → (ratio, expert to move to); under → (ratio, slot to give up).
    @inline(__always)
    func bestRepairMove(_ c: Int, _ es: Int, _ over: Bool, _ lam: [Float]) -> (Double, Int)? {
        let dc = d[c]
        let v0 = viol(es, load[es])
        var bestRatio = Double.infinity, best = -1
        if over {
            let dE = viol(es, load[es] - dc) - v0
            let r0 = red(c, es, lam)
            for e2 in 0..<E where has[c * E + e2] == 0 {
                let delta = dE + viol(e2, load[e2] + dc) - viol(e2, load[e2])
                if delta < -1e-9 {
                    let ratio = (r0 - red(c, e2, lam)) / -delta
                    if ratio < bestRatio { bestRatio = ratio; best = e2 }
                }
            }
        } else {
            let dE = viol(es, load[es] + dc) - v0
            if dE >= 0 { return nil }
            let r0 = red(c, es, lam)
            for j in offsets[c]..<offsets[c + 1] {
                let e2 = Int(sel[j])
                let delta = dE + viol(e2, load[e2] - dc) - viol(e2, load[e2])
                if delta < -1e-9 {
                    let ratio = (red(c, e2, lam) - r0) / -delta
                    if ratio < bestRatio { bestRatio = ratio; best = j }
                }
            }
        }
        return best >= 0 ? (bestRatio, best) : nil
    }

    /// Best exchange c1: es→e2, c2: e2→es (load of es changes by |D_c2| − |D_c1|) reducing the violation.
    mutating func swapRepair(_ es: Int, _ lam: [Float]) -> Bool {
        let v0 = viol(es, load[es])
        var bestRatio = Double.infinity, b1 = -1, b2 = -1, be = -1
        for c1 in 0..<C where has[c1 * E + es] != 0 {
            let d1 = d[c1]
            let r1 = red(c1, es, lam)
            for c2 in 0..<C where has[c2 * E + es] == 0 && d[c2] != d1 && k[c2] > 0 {
                let net = d[c2] - d1
                let dE = viol(es, load[es] + net) - v0
                if dE >= 0 { continue }
                let r2 = red(c2, es, lam)
                for j in offsets[c2]..<offsets[c2 + 1] {
                    let e2 = Int(sel[j])
                    if has[c1 * E + e2] != 0 { continue }
                    let delta = dE + viol(e2, load[e2] - net) - viol(e2, load[e2])
                    if delta < -1e-9 {
                        let cost = r1 - red(c1, e2, lam) + red(c2, e2, lam) - r2
                        let ratio = cost / -delta
                        if ratio < bestRatio { bestRatio = ratio; b1 = c1; b2 = c2; be = e2 }
                    }
                }
            }
        }
        guard b1 >= 0 else { return false }
        applyMove(b1, slot: slot(of: es, b1), to: be)
        applyMove(b2, slot: slot(of: be, b2), to: es)
        return true
    }

    // MARK: local search

    @inline(__always)
    func canRemove(_ e: Int, _ dc: Int) -> Bool { Double(load[e] - dc) >= lo[e] }
    @inline(__always)
    func canAdd(_ e: Int, _ dc: Int) -> Bool { Double(load[e] + dc) <= up[e] }

    /// Feasible improving moves (one client changes one expert); returns the number applied.
    mutating func improveMoves() -> Int {
        var applied = 0
        for c in clientOrder {
            let dc = d[c]
            if k[c] == 0 || k[c] == E { continue }
            for j in offsets[c]..<offsets[c + 1] {
                let e1 = Int(sel[j])
                if dc > 0 && !canRemove(e1, dc) { continue }
                let q1 = q[c * E + e1]
                var bg: Float = 1e-6, b = -1
                for e2 in 0..<E where has[c * E + e2] == 0 {
                    let g = q[c * E + e2] - q1
                    if g > bg && (dc == 0 || canAdd(e2, dc)) { bg = g; b = e2 }
                }
                if b >= 0 { applyMove(c, slot: j, to: b); applied += 1 }
            }
        }
        return applied
    }

    /// Feasible improving exchanges between two clients holding different experts; for every
    /// ordered expert pair (e1, e2) the best c1 (e1→e2) and c2 (e2→e1) whose size difference the
    /// two loads can absorb. Returns the number applied.
    mutating func improveSwaps(deadline: ContinuousClock.Instant?) -> Int {
        var applied = 0
        // Holders per expert, rebuilt once per pass (stale entries are re-checked through `has`).
        var holders = [[Int32]](repeating: [], count: E)
        for c in 0..<C where k[c] < E { for j in offsets[c]..<offsets[c + 1] { holders[Int(sel[j])].append(Int32(c)) } }
        var g1: [(Float, Int32)] = [], g2: [(Float, Int32)] = []
        for e1 in 0..<E {
            if let dl = deadline, ContinuousClock.now > dl { break }
            for e2 in (e1 + 1)..<max(e1 + 1, E) {
                // c1 holds e1 (not e2) and gains by taking e2; c2 holds e2 (not e1).
                g1.removeAll(keepingCapacity: true); g2.removeAll(keepingCapacity: true)
                var m1: Float = -.infinity, m2: Float = -.infinity
                for c in holders[e1] where has[Int(c) * E + e1] != 0 && has[Int(c) * E + e2] == 0 {
                    let g = q[Int(c) * E + e2] - q[Int(c) * E + e1]
                    g1.append((g, c)); m1 = max(m1, g)
                }
                if g1.isEmpty { continue }
                for c in holders[e2] where has[Int(c) * E + e2] != 0 && has[Int(c) * E + e1] == 0 {
                    let g = q[Int(c) * E + e1] - q[Int(c) * E + e2]
                    g2.append((g, c)); m2 = max(m2, g)
                }
                if g2.isEmpty || m1 + m2 <= 1e-6 { continue }
                g1.sort { $0.0 > $1.0 }
                g2.sort { $0.0 > $1.0 }
                // Load of e1 changes by d2 − d1, of e2 by d1 − d2: d2 − d1 ∈ [a, b].
                let a = max(lo[e1] - Double(load[e1]), Double(load[e2]) - up[e2])
                let b = min(up[e1] - Double(load[e1]), Double(load[e2]) - lo[e2])
                if a > b { continue }
                var best: Float = 1e-6, bc1 = -1, bc2 = -1
                outer: for (ga, ca) in g1 {
                    if ga + g2[0].0 <= best { break }
                    let da = Double(d[Int(ca)])
                    for (gb, cb) in g2 {
                        if ga + gb <= best { break }
                        let diff = Double(d[Int(cb)]) - da
                        if diff >= a && diff <= b { best = ga + gb; bc1 = Int(ca); bc2 = Int(cb); continue outer }
                    }
                }
                if bc1 >= 0 {
                    applyMove(bc1, slot: slot(of: e1, bc1), to: e2)
                    applyMove(bc2, slot: slot(of: e2, bc2), to: e1)
                    holders[e2].append(Int32(bc1)); holders[e1].append(Int32(bc2))
                    applied += 1
                }
            }
        }
        return applied
    }

    mutating func localSearch(passes: Int, deadline: ContinuousClock.Instant?) {
        let t0 = ContinuousClock.now
        defer { stats.secondsLocalSearch += seconds(ContinuousClock.now - t0) }
        for _ in 0..<passes {
            if let dl = deadline, ContinuousClock.now > dl { return }
            let m = improveMoves()
            let w = improveSwaps(deadline: deadline)
            stats.improvingMoves += m; stats.improvingSwaps += w
            if m + w == 0 { return }
        }
    }

    // MARK: driver

    mutating func solve(_ opt: FlexOptions) -> FlexOutcome {
        let clock = ContinuousClock()
        let deadline = opt.timeLimit.map { clock.now + $0 }
        var lam = [Float](repeating: 0, count: E)
        // λ_e > 0 is pointless when Γ_e is infinite, λ_e < 0 when L_e ≤ 0 (the bound cannot bind).
        let canPos = (0..<E).map { up[$0].isFinite }
        let canNeg = (0..<E).map { lo[$0] > 0 }
        var bestSel: [Int32]? = nil
        var bestObj = -Double.infinity
        var minViolation = Double.infinity

        let small = C * E <= opt.intermediateRepairCells
        // Repairs the relaxed solution held in `s`; `full` adds swap local search (the expensive part).
        func candidate(_ s: inout FlexCore, _ lam: [Float], full: Bool) {
            s.rebuildHas()
            if s.repair(lam, deadline: deadline) {
                if full {
                    s.localSearch(passes: small ? opt.localSearchPasses : 1, deadline: deadline)
                } else {
                    s.stats.improvingMoves += s.improveMoves()
                }
                let obj = s.objective()
                if obj > bestObj { bestObj = obj; bestSel = s.sel }
                minViolation = 0
            } else {
                minViolation = min(minViolation, s.totalViolation())
            }
        }

        var D = relaxed(lam) + dualTerm(lam)
        var dBest = D, lamBest = lam
        var selAtBest = sel, loadAtBest = load
        var theta = 1.0, noImprove = 0, it = 0
        var h = [Double](repeating: 0, count: E)
        while it < opt.maxIterations {
            if let dl = deadline, clock.now > dl { break }
            if bestObj > -Double.infinity && dBest - bestObj <= opt.targetGap * max(abs(dBest), 1e-9) { break }
            it += 1
            var norm2 = 0.0
            for e in 0..<E {
                let l = Double(load[e])
                var g = 0.0
                if lam[e] > 0 { g = l - up[e] } else if lam[e] < 0 { g = l - lo[e] }
                else if l > up[e] { g = l - up[e] } else if l < lo[e] { g = l - lo[e] }
                g /= scale
                h[e] = g; norm2 += g * g
            }
            if norm2 == 0 {
                // Complementary slackness holds: the relaxed solution is feasible and optimal.
                candidate(&self, lam, full: false)
                break
            }
            let target = bestObj > -Double.infinity
                ? max(D - bestObj, 1e-6 * max(abs(D), 1)) : 0.02 * max(abs(D), 1)
            let step = theta * target / norm2
            for e in 0..<E {
                var v = Double(lam[e]) + step * h[e]
                if v > 0 && !canPos[e] { v = 0 }
                if v < 0 && !canNeg[e] { v = 0 }
                lam[e] = Float(v)
            }
            D = relaxed(lam) + dualTerm(lam)
            if D < dBest - 1e-12 * max(abs(dBest), 1) {
                dBest = D; lamBest = lam; selAtBest = sel; loadAtBest = load; noImprove = 0
            } else {
                noImprove += 1
                if noImprove >= 5 { theta *= 0.5; noImprove = 0 }
            }
            if theta < 1e-3 { break }
            if it % opt.repairEvery == 0 && small {
                let s0 = sel, l0 = load
                candidate(&self, lam, full: false)
                sel = s0; load = l0
            }
        }
        sel = selAtBest; load = loadAtBest
        candidate(&self, lamBest, full: true)

        stats.iterations = it
        var assignment: Assignment? = nil
        if let s = bestSel {
            var flat = s
            for c in 0..<C { flat[offsets[c]..<offsets[c + 1]].sort() }
            assignment = Assignment(offsets: offsets, experts: flat)
        }
        return FlexOutcome(assignment: assignment, objective: bestObj, dualBound: dBest,
                           residualViolation: bestSel == nil ? minViolation : 0, iterations: it,
                           multipliers: lamBest.map { Double($0) / scale }, stats: stats)
    }
}
