/// Synthetic instances like a FLEX-MoE round (benchmark and tests; docs/ALGORITHM.md §5).
///
/// - |D_c|: power law (Pareto, exponent `alpha`, minimum `minSize`), capped at `maxSize`;
/// - k_c drawn uniformly from `capacities`;
/// - clustered fitness: each client belongs to one of E/4 groups and strongly prefers 3 experts of
///   its group's pool of 6; `popular` experts (E/8, at least 1) are good for everyone; the rest is noise.
public struct InstanceGenerator: Sendable {
    public var clients: Int
    public var experts: Int
    public var capacities: [Int] = [1, 2, 4]
    public var alpha = 1.5
    public var minSize = 20
    public var maxSize = 2000
    public var slack = LoadBounds.defaultSlack

    public init(clients: Int, experts: Int) {
        self.clients = clients
        self.experts = experts
    }

    public func make(seed: UInt64) -> AssignmentInstance {
        var rng = AssignRNG(seed: seed)
        let C = clients, E = experts
        let popular = max(1, E / 8)
        var popularSet = [Bool](repeating: false, count: E)
        var perm = Array(0..<E)
        for i in 0..<E { perm.swapAt(i, i + rng.below(E - i)) }
        for i in 0..<popular { popularSet[perm[i]] = true }
        let groups = max(1, E / 4)
        let pool = min(6, E)
        let groupPool: [[Int]] = (0..<groups).map { _ in
            var p = Array(0..<E)
            for i in 0..<pool { p.swapAt(i, i + rng.below(E - i)) }
            return Array(p[0..<pool])
        }
        var fitness = [Float](repeating: 0, count: C * E)
        var capacity = [Int](repeating: 0, count: C)
        var dataSize = [Int](repeating: 0, count: C)
        for c in 0..<C {
            capacity[c] = min(E, capacities[rng.below(capacities.count)])
            let u = max(rng.unit(), 1e-12)
            dataSize[c] = min(maxSize, Int(Double(minSize) * pow(u, -1 / alpha)))
            var p = groupPool[rng.below(groups)]
            for i in 0..<min(3, pool) { p.swapAt(i, i + rng.below(pool - i)) }
            for e in 0..<E { fitness[c * E + e] = Float(0.25 * rng.unit()) }
            for e in p.prefix(3) { fitness[c * E + e] += Float(0.45 + 0.2 * rng.unit()) }
            for e in 0..<E where popularSet[e] { fitness[c * E + e] += Float(0.25 + 0.05 * rng.unit()) }
        }
        return AssignmentInstance(fitness: fitness, clients: C, experts: E, capacity: capacity,
                                  dataSize: dataSize, slack: slack)
    }
}

/// x^y for x > 0 as exp(y·ln x); the standard library has no pow and FlexAssign avoids Foundation.
@inline(__always)
func pow(_ x: Double, _ y: Double) -> Double { expD(y * logD(x)) }

/// Natural logarithm for x > 0 (atanh series after reduction to [1/√2, √2]); ~1e-15 relative.
func logD(_ x: Double) -> Double {
    var m = x.significand          // [1, 2)
    var e = Double(x.exponent)
    if m > 1.4142135623730951 { m /= 2; e += 1 }
    let t = (m - 1) / (m + 1), t2 = t * t
    var term = t, sum = 0.0, n = 1.0
    for _ in 0..<30 { sum += term / n; term *= t2; n += 2 }
    return 2 * sum + e * 0.6931471805599453
}

/// e^x (reduction by ln 2, Taylor series); ~1e-15 relative for moderate x.
func expD(_ x: Double) -> Double {
    let k = (x / 0.6931471805599453).rounded()
    let r = x - k * 0.6931471805599453
    var term = 1.0, sum = 1.0
    for i in 1..<25 { term *= r / Double(i); sum += term }
    return Double(sign: .plus, exponent: Int(k), significand: 1) * sum
}
