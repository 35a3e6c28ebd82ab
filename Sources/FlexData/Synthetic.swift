import FlexTensor

/// LEAF / FedProx `Synthetic(α, β)`: the embedded default dataset, generated deterministically from
/// a seed, so no download is ever needed.
///
/// Per device k: u_k ~ N(0, α), B_k ~ N(0, β); W_k (classes × dim) and b_k with entries ~ N(u_k, 1);
/// v_k entries ~ N(B_k, 1); Σ diagonal with Σ_jj = j^(−1.2) (j from 1); x ~ N(v_k, Σ);
/// y = argmax(W_k·x + b_k). Samples per device: ⌊lognormal(4, 2)⌋ + 50, capped at `maxSamples`
/// (default 3,000: the lognormal's tail reaches 10^5 and more, which would let one device hold most
/// of the data and take minutes to generate on a board; the median, ≈ 105, is unaffected).
/// α and β are standard deviations (as in the FedProx generator, which uses numpy's `normal(0, α)`).
public struct SyntheticGenerator: Sendable {
    public var alpha: Double
    public var beta: Double
    public var dim: Int
    public var classes: Int
    public var maxSamples: Int
    public var seed: UInt64

    public init(alpha: Double = 1, beta: Double = 1, dim: Int = 60, classes: Int = 10,
                maxSamples: Int = 3000, seed: UInt64 = 0) {
        self.alpha = alpha; self.beta = beta; self.dim = dim; self.classes = classes
        self.maxSamples = maxSamples; self.seed = seed
    }

    /// Samples of device `k` (each device draws from its own stream derived from the seed, so a board
    /// can generate its own device without generating the others).
    public func sampleCount(device k: Int) -> Int {
        var r = FlexRandom(seed: seed &+ 0x9E37_79B9 &* UInt64(k + 1))
        let n = Int(FlexMath.exp(4 + 2 * r.nextGaussian())) + 50
        return min(n, maxSamples)
    }

    /// The data of device `k`.
    public func device(_ k: Int) -> Dataset {
        var r = FlexRandom(seed: seed &+ 0x9E37_79B9 &* UInt64(k + 1))
        let n = min(Int(FlexMath.exp(4 + 2 * r.nextGaussian())) + 50, maxSamples)
        let u = alpha * r.nextGaussian()
        let bk = beta * r.nextGaussian()
        let d = dim, K = classes
        var W = [Double](repeating: 0, count: K * d)
        var b = [Double](repeating: 0, count: K)
        var v = [Double](repeating: 0, count: d)
        var sd = [Double](repeating: 0, count: d)
        for i in 0..<(K * d) { W[i] = u + r.nextGaussian() }
        for i in 0..<K { b[i] = u + r.nextGaussian() }
        for j in 0..<d {
            v[j] = bk + r.nextGaussian()
            sd[j] = FlexMath.pow(Double(j + 1), -1.2).squareRoot()
        }
        let out = Dataset(count: n, dim: d, classes: K)
        var x = [Double](repeating: 0, count: d)
        for s in 0..<n {
            for j in 0..<d {
                x[j] = v[j] + sd[j] * r.nextGaussian()
                out.features[s * d + j] = Float(x[j])
            }
            var best = 0, bestV = -Double.infinity
            for c in 0..<K {
                var acc = b[c]
                for j in 0..<d { acc += W[c * d + j] * x[j] }
                if acc > bestV { bestV = acc; best = c }
            }
            out.labels[s] = Int32(best)
        }
        return out
    }

    /// All devices' data pooled (centralised training), in device order.
    public func pooled(devices: Int) -> Dataset {
        var parts: [DatasetBox] = []
        for k in 0..<devices { parts.append(DatasetBox(device(k))) }
        return Dataset.concatenate(parts)
    }
}
