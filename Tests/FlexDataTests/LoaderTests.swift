import FlexData
import FlexTensor
import Foundation
import Testing

func tempDir() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flexdata-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func write(_ text: String, _ path: String) { try! text.write(toFile: path, atomically: true, encoding: .utf8) }
func write(_ bytes: [UInt8], _ path: String) { FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

func expectError(_ expected: DataError, _ body: () throws(DataError) -> Void) {
    do {
        try body()
        Issue.record("expected \(expected), got success")
    } catch {
        #expect(error == expected, "got \(error.description)")
    }
}

@Suite("loaders")
struct LoaderTests {
    @Test("CSV with header, CRLF and blank lines")
    func csv() throws {
        let dir = tempDir(), path = "\(dir)/a.csv"
        write("label,x1,x2\r\n1, 0.5, -2e-1\r\n\n0,3,4.25\n2,-1.5E2,0\n", path)
        let ds = try CSVLoader.load(path)
        #expect(ds.count == 3 && ds.dim == 2 && ds.classes == 3)
        #expect(ds.labels[0] == 1 && ds.labels[2] == 2)
        #expect(ds.features[0] == 0.5 && abs(ds.features[1] + 0.2) < 1e-7 && ds.features[3] == 4.25 && ds.features[4] == -150)
        let noHeader = "\(dir)/b.csv"
        write("3,1\n0,2", noHeader)
        let b = try CSVLoader.load(noHeader, classes: 5)
        #expect(b.count == 2 && b.classes == 5 && b.features[1] == 2)
    }

    @Test("malformed CSV names file and line")
    func csvErrors() {
        let dir = tempDir()
        let p1 = "\(dir)/cols.csv"
        write("y,a,b\n0,1,2\n1,2\n", p1)
        expectError(.malformedLine(file: p1, line: 3, message: "expected 3 columns, found 2")) { () throws(DataError) in _ = try CSVLoader.load(p1) }
        let p2 = "\(dir)/label.csv"
        write("0,1,2\n1.5,2,3\n", p2)
        expectError(.badLabel(file: p2, line: 2, value: "1.5")) { () throws(DataError) in _ = try CSVLoader.load(p2) }
        let p3 = "\(dir)/range.csv"
        write("0,1\n\n7,2\n", p3)
        expectError(.badLabel(file: p3, line: 3, value: "7")) { () throws(DataError) in _ = try CSVLoader.load(p3, classes: 5) }
        let p4 = "\(dir)/num.csv"
        write("0,1\n1,abc\n", p4)
        expectError(.malformedLine(file: p4, line: 2, message: "column 2: not a number 'abc'")) { () throws(DataError) in _ = try CSVLoader.load(p4) }
        let p5 = "\(dir)/missing.csv"
        do { _ = try CSVLoader.load(p5); Issue.record("missing file loaded") } catch {
            if case .io(let f, _) = error { #expect(f == p5) } else { Issue.record("\(error)") }
        }
    }

    static func idx(images n: Int, rows: Int, cols: Int, labels: [UInt8]) -> ([UInt8], [UInt8]) {
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        let img = [0, 0, 8, 3] + be(n) + be(rows) + be(cols) + (0..<(n * rows * cols)).map { UInt8($0 % 256) }
        let lab = [0, 0, 8, 1] + be(labels.count) + labels
        return (img, lab)
    }

    @Test("IDX raw and gzip (host)")
    func idx() throws {
        let dir = tempDir()
        let (img, lab) = Self.idx(images: 3, rows: 2, cols: 2, labels: [4, 0, 9])
        write(img, "\(dir)/i.idx"); write(lab, "\(dir)/l.idx")
        let ds = try IDXLoader.load(images: "\(dir)/i.idx", labels: "\(dir)/l.idx", classes: 10)
        #expect(ds.count == 3 && ds.dim == 4 && ds.labels[2] == 9)
        #expect(abs(ds.features[5] - 5.0 / 255) < 1e-7)
        // gzip through the system gzip tool
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/bin/sh")
        gz.arguments = ["-c", "gzip -k \(dir)/i.idx && gzip -k \(dir)/l.idx"]
        try gz.run(); gz.waitUntilExit()
        if gz.terminationStatus == 0 {
            let z = try IDXLoader.load(images: "\(dir)/i.idx.gz", labels: "\(dir)/l.idx.gz")
            #expect(z.count == 3 && z.classes == 10 && z.features[11] == ds.features[11])
        }
    }

    @Test("malformed IDX: wrong magic, truncated, count mismatch, bad label")
    func idxErrors() {
        let dir = tempDir()
        let (img, lab) = Self.idx(images: 3, rows: 2, cols: 2, labels: [1, 2, 3])
        let i = "\(dir)/i", l = "\(dir)/l"
        write(Array(img.dropLast(2)), i); write(lab, l)
        expectError(.truncated(file: i, offset: 16 + 10, expected: 16 + 12)) { () throws(DataError) in _ = try IDXLoader.load(images: i, labels: l) }
        var bad = img; bad[3] = 2
        write(bad, i)
        expectError(.badHeader(file: i, offset: 0, message: "bad magic 0 0 8 2 (expected 0 0 8 3: unsigned bytes, 3-d)")) { () throws(DataError) in
            _ = try IDXLoader.load(images: i, labels: l)
        }
        write(img, i); write(lab, l)
        expectError(.badValue(file: l, offset: 10, message: "label 3 ≥ 3 classes")) { () throws(DataError) in
            _ = try IDXLoader.load(images: i, labels: l, classes: 3)
        }
        write(Self.idx(images: 3, rows: 2, cols: 2, labels: [1, 2]).1, l)
        expectError(.mismatch(message: "\(i) has 3 images but \(l) has 2 labels")) { () throws(DataError) in _ = try IDXLoader.load(images: i, labels: l) }
        write([0, 0], l)
        expectError(.truncated(file: l, offset: 2, expected: 4)) { () throws(DataError) in _ = try IDXLoader.load(images: i, labels: l) }
    }

    @Test("CIFAR-10 binary: records, truncated, bad label")
    func cifar() throws {
        let dir = tempDir(), p = "\(dir)/data_batch_1.bin"
        var bytes: [UInt8] = []
        for r in 0..<2 { bytes.append(UInt8(r * 7)); bytes += [UInt8](repeating: UInt8(r * 100), count: 3072) }
        write(bytes, p)
        let ds = try CIFARLoader.load([p, p])
        #expect(ds.count == 4 && ds.dim == 3072 && ds.labels[1] == 7 && ds.labels[3] == 7)
        #expect(abs(ds.features[3072] - 100.0 / 255) < 1e-6)
        write(Array(bytes.dropLast(5)), p)
        expectError(.truncated(file: p, offset: 2 * 3073 - 5, expected: 2 * 3073)) { () throws(DataError) in _ = try CIFARLoader.load([p]) }
        bytes[3073] = 12
        write(bytes, p)
        expectError(.badValue(file: p, offset: 3073, message: "label 12 > 9")) { () throws(DataError) in _ = try CIFARLoader.load([p]) }
    }
}

@Suite("synthetic, partitioners, shards")
struct PartitionTests {
    @Test("Synthetic(α, β) is deterministic, 60-d, 10 classes, with lognormal sizes")
    func synthetic() {
        let gen = SyntheticGenerator(alpha: 1, beta: 1, seed: 7)
        let a = gen.device(3), b = gen.device(3)
        #expect(a.dim == 60 && a.classes == 10 && a.count == gen.sampleCount(device: 3) && a.count >= 50)
        for i in 0..<a.features.count { if a.features[i] != b.features[i] { Issue.record("not deterministic"); break } }
        let sizes = (0..<30).map { gen.sampleCount(device: $0) }
        #expect(sizes.allSatisfy { $0 >= 50 && $0 <= 3000 })
        #expect(Set(sizes).count > 20)
        // a device's labels concentrate on few classes (its own W_k, b_k)
        let counts = a.classCounts()
        #expect(counts.max()! > a.count / 10)
    }

    static func labels(_ n: Int, classes: Int) -> Tensor<Int32> {
        let t = Tensor<Int32>(shape: Shape(vector: n), repeating: 0)
        for i in 0..<n { t[i] = Int32(i % classes) }
        return t
    }

    func expectExactlyOnce(_ parts: [[Int]], _ n: Int) {
        var seen = [Int](repeating: 0, count: n)
        for p in parts { for i in p { seen[i] += 1 } }
        #expect(seen.allSatisfy { $0 == 1 }, "every sample exactly once")
    }

    @Test("IID and Dirichlet assign every sample exactly once; small α skews")
    func partitions() throws {
        var r = FlexRandom(seed: 1)
        let n = 2000, classes = 10
        let labels = Self.labels(n, classes: classes)
        let iid = try Partitioner.iid(count: n, clients: 7, random: &r)
        expectExactlyOnce(iid, n)
        #expect(iid.map(\.count).max()! - iid.map(\.count).min()! <= 1)
        func meanClasses(_ parts: [[Int]]) -> Double {
            var total = 0
            for p in parts {
                var counts = [Int](repeating: 0, count: classes)
                for i in p { counts[Int(labels[i])] += 1 }
                total += counts.filter { $0 * 20 >= p.count }.count
            }
            return Double(total) / Double(parts.count)
        }
        let skewed = try Partitioner.dirichlet(labels: labels, classes: classes, clients: 10, alpha: 0.1, random: &r)
        let flat = try Partitioner.dirichlet(labels: labels, classes: classes, clients: 10, alpha: 100, random: &r)
        expectExactlyOnce(skewed, n); expectExactlyOnce(flat, n)
        // classes holding ≥ 5% of a client's data: few under α = 0.1, nearly all under α = 100
        #expect(meanClasses(skewed) < 4)
        #expect(meanClasses(flat) > 9)
    }

    @Test("k classes per client respected")
    func kClasses() throws {
        var r = FlexRandom(seed: 2)
        let n = 1000
        let labels = Self.labels(n, classes: 10)
        let parts = try Partitioner.classesPerClient(labels: labels, classes: 10, clients: 10, k: 2, random: &r)
        expectExactlyOnce(parts, n)
        for p in parts { #expect(Set(p.map { labels[$0] }).count == 2) }
        let (train, test) = Partitioner.trainTestSplit(parts[0], testFraction: 0.2, random: &r)
        #expect(test.count == 20 && train.count == 80 && Set(train + test) == Set(parts[0]))
    }

    @Test("shard round trip (fp32 and fp16) and corrupted shards")
    func shards() throws {
        let dir = tempDir()
        let data = SyntheticGenerator(seed: 3).device(0)
        var r = FlexRandom(seed: 4)
        let parts = try Partitioner.iid(count: data.count, clients: 3, random: &r)
        let paths = try ShardFile.writeAll(data, partition: parts, testFraction: 0.25, directory: dir, random: &r)
        #expect(paths.count == 3)
        var total = 0
        for (c, p) in paths.enumerated() {
            let s = try ShardFile.read(p)
            #expect(s.client == c && s.train.dim == 60 && s.train.classes == 10)
            total += s.train.count + s.test.count
            let size = try FileManager.default.attributesOfItem(atPath: p)[.size] as! Int
            #expect(size == ShardFile.fileBytes(dim: 60, trainCount: s.train.count, testCount: s.test.count, dtype: .fp32))
        }
        #expect(total == data.count)
        // exact fp32 round trip of the rows
        let shard = ClientShard(client: 9, train: data.subset([0, 1, 2]), test: data.subset([3]))
        let p = "\(dir)/x.shard"
        try ShardFile.write(shard, to: p)
        let back = try ShardFile.read(p)
        for i in 0..<(3 * 60) { #expect(back.train.features[i] == data.features[i]) }
        #expect(back.test.labels[0] == data.labels[3] && back.client == 9)
        try ShardFile.write(shard, to: p, dtype: .fp16)
        let half = try ShardFile.read(p)
        for i in 0..<60 { #expect(abs(half.test.features[i] - data.features[180 + i]) <= abs(data.features[180 + i]) * 1e-3 + 1e-4) }
        // corruption
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        bytes[60] ^= 1
        write(bytes, p)
        expectError(.checksum(file: p)) { () throws(DataError) in _ = try ShardFile.read(p) }
        bytes[0] = 0
        write(bytes, p)
        expectError(.badHeader(file: p, offset: 0, message: "bad magic (expected FXSD)")) { () throws(DataError) in _ = try ShardFile.read(p) }
        write(Array(bytes.prefix(20)), p)
        expectError(.truncated(file: p, offset: 20, expected: 48)) { () throws(DataError) in _ = try ShardFile.read(p) }
    }
}
