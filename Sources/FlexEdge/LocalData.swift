import FlexData
import FlexTensor

/// Where a device's data comes from: `synthetic:client=N,seed=S[,alpha=A,beta=B,max=M]` (the embedded
/// default: LEAF Synthetic(α, β) device N, no download ever) or the path of a shard file written by
/// `flexmoe-server partition`.
public enum DataSource: Equatable {
    /// `maxSamples` caps the device's samples (the generator's lognormal sizes reach thousands).
    case synthetic(client: Int, seed: UInt64, alpha: Double, beta: Double, maxSamples: Int = 3000)
    case shard(path: String)
    /// Gaussian features with labels from a random linear map (y = argmax(x·W)), for model shapes the
    /// synthetic generator does not produce (profiling, benchmarks).
    case random(rows: Int, dim: Int, classes: Int, seed: UInt64)

    public static func parse(_ text: String) throws(EdgeError) -> DataSource {
        let prefix = "synthetic:"
        guard text.hasPrefix(prefix) else {
            if text.isEmpty { throw .usage("--data needs a shard file path or synthetic:client=N,seed=S") }
            return .shard(path: text)
        }
        var client = -1
        var seed: UInt64 = 1
        var alpha = 1.0, beta = 1.0
        var maxSamples = 3000
        for part in text.dropFirst(prefix.count).split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw .usage("--data: '\(part)' is not key=value") }
            switch kv[0] {
            case "client":
                guard let v = Int(kv[1]), v >= 0 else { throw .usage("--data: client must be a number >= 0") }
                client = v
            case "seed":
                guard let v = UInt64(kv[1]) else { throw .usage("--data: seed must be a non-negative number") }
                seed = v
            case "alpha":
                guard let v = Format.parseReal(kv[1]), v >= 0 else { throw .usage("--data: bad alpha") }
                alpha = v
            case "beta":
                guard let v = Format.parseReal(kv[1]), v >= 0 else { throw .usage("--data: bad beta") }
                beta = v
            case "max":
                guard let v = Int(kv[1]), v >= 2 else { throw .usage("--data: max must be a number >= 2") }
                maxSamples = v
            default:
                throw .usage("--data: unknown key '\(kv[0])' (client, seed, alpha, beta, max)")
            }
        }
        if client < 0 { throw .usage("--data synthetic: needs client=N") }
        return .synthetic(client: client, seed: seed, alpha: alpha, beta: beta, maxSamples: maxSamples)
    }

    /// Loads the device's data as a shard: its training rows and its held-out rows (20% of a
    /// synthetic device, drawn with the seed; a shard file keeps its own split).
    public func load() throws(EdgeError) -> ClientShard {
        switch self {
        case .synthetic(let client, let seed, let alpha, let beta, let maxSamples):
            let all = SyntheticGenerator(alpha: alpha, beta: beta, maxSamples: maxSamples, seed: seed).device(client)
            var random = FlexRandom(seed: seed &+ UInt64(client) &* 7919)
            let (train, test) = Partitioner.trainTestSplit(Array(0..<all.count), testFraction: 0.2, random: &random)
            return ClientShard(client: client, train: all.subset(train), test: all.subset(test))
        case .random(let rows, let dim, let classes, let seed):
            var random = FlexRandom(seed: seed)
            let all = Dataset(count: rows, dim: dim, classes: classes)
            var w = [Float](repeating: 0, count: dim * classes)
            for i in 0..<w.count { w[i] = Float(random.nextGaussian()) }
            for r in 0..<rows {
                var best = 0
                var bestScore = -Float.infinity
                for j in 0..<dim { all.features[r * dim + j] = Float(random.nextGaussian()) }
                for k in 0..<classes {
                    var score: Float = 0
                    for j in 0..<dim { score += all.features[r * dim + j] * w[j * classes + k] }
                    if score > bestScore { bestScore = score; best = k }
                }
                all.labels[r] = Int32(best)
            }
            let split = rows - rows / 5
            return ClientShard(client: 0, train: all.subset(Array(0..<split)), test: all.subset(Array(split..<rows)))
        case .shard(let path):
            do throws(DataError) {
                return try ShardFile.read(path)
            } catch {
                throw .data(error.description)
            }
        }
    }
}
