/// Expert load bounds L(e), Γ(e) around the fair share (DESIGN.md §1 step 1; docs/ALGORITHM.md §2).
///
/// Fair share m = W/E with W = Σ_c |D_c|·k_c. With slack ε and a per-expert shift δ_e (from the
/// expert's historical deficit, see `LoadHistory`):
///
///     L(e) = max(0, m·(1 − ε + δ_e)),   Γ(e) = m·(1 + ε + δ_e)
///
/// Every load of an assignment that meets such bounds lies within ±(ε + |δ_e|)·m of the mean m,
/// so CV ≤ ε + max|δ|.
public struct LoadBounds: Sendable, Equatable {
    public var lower: [Double]
    public var upper: [Double]

    /// Default slack ε = 0.012. Meeting the bounds guarantees CV ≤ ε (every load is within ε·m of
    /// the mean m); the solver leaves only the binding experts at the band edges, and measured CV is
    /// about 0.75·ε ≈ 0.009 (docs/ALGORITHM.md §2).
    public static let defaultSlack = 0.012

    public init(lower: [Double], upper: [Double]) {
        self.lower = lower
        self.upper = upper
    }

    /// W/E, the load every expert would carry under perfect balance.
    public static func fairShareLoad(capacity: [Int], dataSize: [Int], experts: Int) -> Double {
        var w = 0
        for c in capacity.indices { w += capacity[c] * dataSize[c] }
        return Double(w) / Double(max(experts, 1))
    }

    /// Fair share ± slack, shifted by `shift` (relative to m, one per expert; empty = no shift).
    public static func fairShare(capacity: [Int], dataSize: [Int], experts: Int, slack: Double,
                                 shift: [Double] = []) -> LoadBounds {
        let m = fairShareLoad(capacity: capacity, dataSize: dataSize, experts: experts)
        var lo = [Double](repeating: 0, count: experts), up = lo
        for e in 0..<experts {
            let d = e < shift.count ? shift[e] : 0
            lo[e] = max(0, m * (1 - slack + d))
            up[e] = max(lo[e], m * (1 + slack + d))
        }
        return LoadBounds(lower: lo, upper: up)
    }
}

/// Each expert's historical load deficit, turned into a shift of its bounds: experts that were
/// starved in past rounds get a higher band (so a higher lower bound), overloaded ones a lower band.
///
/// deficit_e ← ρ·deficit_e + (1 − ρ)·(m − load_e)/m after every round; the shift is
/// δ_e = clamp(gain·deficit_e, −maxShift, maxShift), then centred (Σ δ = 0) so that the bands stay
/// around W and the bounds stay satisfiable as a whole.
public struct LoadHistory: Sendable, Equatable {
    public let experts: Int
    public var decay: Double
    public var gain: Double
    public var maxShift: Double
    public private(set) var deficit: [Double]
    public private(set) var rounds = 0

    public init(experts: Int, decay: Double = 0.8, gain: Double = 0.5, maxShift: Double = 0.01) {
        self.experts = experts
        self.decay = decay
        self.gain = gain
        self.maxShift = maxShift
        deficit = [Double](repeating: 0, count: experts)
    }

    /// Records one round's loads.
    public mutating func record(load: [Int]) {
        precondition(load.count == experts, "one load per expert")
        var total = 0.0
        for x in load { total += Double(x) }
        let m = total / Double(experts)
        guard m > 0 else { return }
        for e in 0..<experts {
            deficit[e] = decay * deficit[e] + (1 - decay) * (m - Double(load[e])) / m
        }
        rounds += 1
    }

    /// δ_e for `LoadBounds.fairShare(shift:)`.
    public var shift: [Double] {
        var s = deficit.map { min(maxShift, max(-maxShift, gain * $0)) }
        let mean = s.reduce(0, +) / Double(max(experts, 1))
        for e in s.indices { s[e] -= mean }
        return s
    }
}

/// One loosening of the bounds, as reported in the round log.
public struct RelaxationStep: Sendable, Equatable, CustomStringConvertible {
    /// Why the bounds were loosened.
    public var reason: String
    /// The experts whose bounds moved (all of them for a uniform widening).
    public var experts: [Int]
    /// How far the lower bounds moved down (load units, ≥ 0).
    public var lowerDecrease: Double
    /// How far the upper bounds moved up (load units, ≥ 0; infinity = removed).
    public var upperIncrease: Double
    /// For a raise made room for one large client: that client's size (0 otherwise).
    public var pinnedSize = 0

    public init(reason: String, experts: [Int], lowerDecrease: Double, upperIncrease: Double) {
        self.reason = reason
        self.experts = experts
        self.lowerDecrease = lowerDecrease
        self.upperIncrease = upperIncrease
    }

    public var description: String {
        let who = experts.count > 8 ? "\(experts.count) experts" : "experts \(experts)"
        return "\(reason): \(who), lower −\(lowerDecrease), upper +\(upperIncrease)"
    }
}

enum Relaxer {
    /// Necessary conditions for feasibility that can be checked cheaply, each fixed by the smallest
    /// loosening that restores it. Mutates the bounds and returns the steps taken.
    static func necessary(_ inst: AssignmentInstance, lower: inout [Double], upper: inout [Double])
        -> [RelaxationStep]
    {
        var steps: [RelaxationStep] = []
        let E = inst.experts
        // 1. A client must find k_c experts whose upper bound can take it: |D_c| ≤ Γ(e).
        //    Raise the upper bounds of its best-fitting experts just enough.
        var order = Array(0..<inst.clients)
        order.sort { inst.dataSize[$0] > inst.dataSize[$1] }
        for c in order where inst.capacity[c] > 0 {
            let d = Double(inst.dataSize[c])
            let fits = (0..<E).filter { upper[$0] >= d }.count
            if fits >= inst.capacity[c] { continue }
            let need = inst.capacity[c] - fits
            // Raise the bounds of the experts this client fits best (then the nearest bounds): the
            // experts set aside for a large client follow its fitness, so they stay the same from
            // round to round instead of rotating with the deficit shifts.
            let cand = (0..<E).filter { upper[$0] < d }.sorted {
                (-inst.q(c, $0), d - upper[$0], $0) < (-inst.q(c, $1), d - upper[$1], $1)
            }
            let raised = Array(cand.prefix(need))
            var inc = 0.0
            for e in raised { inc = max(inc, d - upper[e]); upper[e] = d }
            var step = RelaxationStep(
                reason: "client \(c) (|D|=\(inst.dataSize[c]), k=\(inst.capacity[c])) is larger than the upper bound of all but \(fits) experts",
                experts: raised.sorted(), lowerDecrease: 0, upperIncrease: inc)
            step.pinnedSize = inst.dataSize[c]
            steps.append(step)
        }
        // 1b. Water-filling. The experts raised above hold a client larger than the band, so their load
        //     is that client's size whatever the others do, and the rest of the load W − pinned has to
        //     be shared by the other experts: their fair share is m' = (W − pinned)/(E − r), not W/E.
        //     Keeping the original band would leave every other expert below its lower bound and force a
        //     uniform widening that lets their loads drift apart; re-centring their band on m' (same
        //     relative slack) keeps them balanced among themselves.
        var pinned = [Double](repeating: 0, count: E)
        for step in steps {
            let size = Double(step.pinnedSize)
            for e in step.experts { pinned[e] = max(pinned[e], size) }
        }
        let reserved = (0..<E).filter { pinned[$0] > 0 }
        if !reserved.isEmpty && reserved.count < E {
            let others = (0..<E).filter { pinned[$0] == 0 }
            let w = Double(inst.totalLoad)
            let share = (w - reserved.reduce(0) { $0 + pinned[$1] }) / Double(others.count)
            let m = max(w / Double(E), 1)
            // The relative half-width of the given band (slack + shift), kept around m'.
            let halfWidth = others.map { (upper[$0] - lower[$0]) / (2 * m) }.min() ?? 0
            if share > 0 {
                var lowered = 0.0
                for e in others {
                    let lo = max(0, share * (1 - halfWidth)), hi = share * (1 + halfWidth)
                    lowered = max(lowered, lower[e] - lo)
                    lower[e] = min(lower[e], lo)
                    _ = hi  // the upper bound stays: relaxation only loosens
                }
                for e in reserved { lower[e] = min(lower[e], pinned[e]) }
                steps.append(RelaxationStep(
                    reason: "water-filling: experts \(reserved) carry clients larger than the fair share, the others share the rest (m' = \(share))",
                    experts: others, lowerDecrease: lowered, upperIncrease: 0))
            }
        }
        // 2. Σ_e load_e = W exactly, so Σ L ≤ W ≤ Σ Γ.
        let w = Double(inst.totalLoad)
        let sumL = lower.reduce(0, +)
        if sumL > w {
            let dec = (sumL - w) / Double(E)
            for e in 0..<E { lower[e] = max(0, lower[e] - dec) }
            steps.append(RelaxationStep(reason: "Σ lower = \(sumL) exceeds total load W = \(w)",
                                        experts: Array(0..<E), lowerDecrease: dec, upperIncrease: 0))
        }
        let sumU = upper.reduce(0, +)
        if sumU < w {
            let inc = (w - sumU) / Double(E)
            for e in 0..<E { upper[e] += inc }
            steps.append(RelaxationStep(reason: "Σ upper = \(sumU) is below total load W = \(w)",
                                        experts: Array(0..<E), lowerDecrease: 0, upperIncrease: inc))
        }
        // 3. An expert cannot carry more than every client that could hold it.
        var reach = [Double](repeating: 0, count: E)
        for c in 0..<inst.clients where inst.capacity[c] > 0 {
            for e in 0..<E where Double(inst.dataSize[c]) <= upper[e] { reach[e] += Double(inst.dataSize[c]) }
        }
        let short = (0..<E).filter { lower[$0] > reach[$0] }
        if !short.isEmpty {
            var dec = 0.0
            for e in short { dec = max(dec, lower[e] - reach[e]); lower[e] = reach[e] }
            steps.append(RelaxationStep(reason: "lower bound above what all clients together could bring",
                                        experts: short, lowerDecrease: dec, upperIncrease: 0))
        }
        return steps
    }
}
