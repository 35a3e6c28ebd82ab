import FlexTensor

/// Partitioners: split sample indices among clients. Every sample goes to exactly one client
/// (k-classes may leave samples of classes no client drew unassigned: see there). Deterministic
/// from the `FlexRandom` passed in.
public enum Partitioner {
    /// Shuffled, then dealt in near-equal contiguous parts.
    public static func iid(count: Int, clients: Int, random: inout FlexRandom) throws(DataError) -> [[Int]] {
        if clients < 1 || clients > count { throw .invalidArgument("iid: need 1 ≤ clients ≤ samples") }
        var order = Array(0..<count)
        shuffle(&order, &random)
        var out: [[Int]] = []
        for c in 0..<clients {
            let lo = c * count / clients, hi = (c + 1) * count / clients
            out.append(Array(order[lo..<hi]))
        }
        return out
    }

    /// Dirichlet(α) over labels: for each class, proportions p ~ Dir(α) over the clients and the
    /// class's samples are dealt accordingly (small α: few classes per client). Redrawn up to 100
    /// times until every client has at least `minSamples`.
    public static func dirichlet(labels: borrowing Tensor<Int32>, classes: Int, clients: Int, alpha: Double,
                                 minSamples: Int = 1, random: inout FlexRandom) throws(DataError) -> [[Int]] {
        if clients < 1 || alpha <= 0 { throw .invalidArgument("dirichlet: need clients ≥ 1 and α > 0") }
        let byClass = group(labels, classes: classes)
        for _ in 0..<100 {
            var out = [[Int]](repeating: [], count: clients)
            for c in 0..<classes {
                var idx = byClass[c]
                shuffle(&idx, &random)
                var p = (0..<clients).map { _ in random.nextGamma(shape: alpha) }
                let s = p.reduce(0, +)
                p = p.map { $0 / max(s, 1e-300) }
                var start = 0, cum = 0.0
                for k in 0..<clients {
                    cum += p[k]
                    let end = k == clients - 1 ? idx.count : min(idx.count, Int((cum * Double(idx.count)).rounded()))
                    if end > start { out[k] += idx[start..<end] }
                    start = max(start, end)
                }
            }
            if out.allSatisfy({ $0.count >= minSamples }) { return out }
        }
        throw .invalidArgument("dirichlet: could not give every client \(minSamples) samples in 100 draws")
    }

    /// Each client gets `k` distinct classes (class c of client i starts at (i·k + j) mod classes,
    /// so the classes are spread evenly); each class's samples are split equally among the clients
    /// holding it. Classes no client holds (only when clients·k < classes) stay unassigned.
    public static func classesPerClient(labels: borrowing Tensor<Int32>, classes: Int, clients: Int, k: Int,
                                        random: inout FlexRandom) throws(DataError) -> [[Int]] {
        if k < 1 || k > classes || clients < 1 { throw .invalidArgument("k-classes: need 1 ≤ k ≤ classes") }
        var byClass = group(labels, classes: classes)
        var holders = [[Int]](repeating: [], count: classes)
        let offset = random.nextInt(below: classes)
        for i in 0..<clients {
            for j in 0..<k { holders[(offset + i * k + j) % classes].append(i) }
        }
        var out = [[Int]](repeating: [], count: clients)
        for c in 0..<classes where !holders[c].isEmpty {
            shuffle(&byClass[c], &random)
            let h = holders[c], n = byClass[c].count
            for (q, client) in h.enumerated() {
                out[client] += byClass[c][(q * n / h.count)..<((q + 1) * n / h.count)]
            }
        }
        return out
    }

    /// Per-client train/test split: a shuffled `testFraction` of the indices (at least one when
    /// there are two or more) goes to test.
    public static func trainTestSplit(_ indices: [Int], testFraction: Double,
                                      random: inout FlexRandom) -> (train: [Int], test: [Int]) {
        var idx = indices
        shuffle(&idx, &random)
        var nTest = Int((Double(idx.count) * testFraction).rounded())
        if testFraction > 0 && idx.count >= 2 { nTest = max(nTest, 1) }
        nTest = min(nTest, idx.count)
        return (Array(idx[nTest...]), Array(idx[..<nTest]))
    }

    static func group(_ labels: borrowing Tensor<Int32>, classes: Int) -> [[Int]] {
        var byClass = [[Int]](repeating: [], count: classes)
        for i in 0..<labels.count { byClass[Int(labels[i])].append(i) }
        return byClass
    }

    static func shuffle(_ a: inout [Int], _ random: inout FlexRandom) {
        if a.count < 2 { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = random.nextInt(below: i + 1)
            a.swapAt(i, j)
        }
    }
}
