import ArgumentParser
import FlexTensor
import FlexWire
import Foundation

/// `flexmoe-bench zstd`: zstd level-3 speed of FlexWire's wrapper on a quantised expert of the default
/// model, against the `zstd -b3` command on the same bytes in the same run, plus the table of
/// compression ratios per dtype for weights and for small update deltas.
struct ZstdBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zstd",
        abstract: "zstd -3 MB/s of a quantised expert vs `zstd -b3` on the same bytes; ratio table per dtype.")

    @Option(help: "Extractor width h (expert input).") var h = 64
    @Option(help: "Expert hidden width f.") var f = 128
    @Option(help: "Classes K (expert output).") var classes = 10
    @Option(help: "Storage dtype of the expert for the speed figures (int8-block, int8-row, fp16, fp32).")
    var dtype = "int8-block"
    @Option(help: "Seconds per timed batch (the median of 5 batches is reported).") var seconds = 0.3

    /// The expert's tensors (A1, a1, A2, a2) as He-initialised weights, or as deltas of one local epoch
    /// (small, N(0, 0.01 x weight scale)), quantised to `dtype` and laid out as a container payload.
    func expertPayload(_ dtype: DType, delta: Bool, seed: UInt64) -> ([TensorEntry], [UInt8]) {
        var random = FlexRandom(seed: seed)
        let shapes = [Shape(rows: h, cols: f), Shape(vector: f), Shape(rows: f, cols: classes), Shape(vector: classes)]
        let fanIn = [h, h, f, f]
        var entries: [TensorEntry] = [], payload: [UInt8] = []
        for (i, shape) in shapes.enumerated() {
            let t = Tensor<Float>(zeros: shape)
            let sigma = (2.0 / Double(fanIn[i])).squareRoot() * (delta ? 0.01 : 1)
            let isBias = shape.rows == 1
            for j in 0..<t.count { t[j] = (isBias && !delta) ? Float(random.nextGaussian() * 0.01) : Float(random.nextGaussian() * sigma) }
            let q = QuantizedTensor(dtype: dtype, shape: shape)
            if delta { Quantizer.quantizeStochastic(t, into: q, random: &random) } else { Quantizer.quantize(t, into: q) }
            q.bytes.withUnsafeBufferPointer { payload += $0 }
            entries.append(TensorEntry(dtype: dtype, shape: shape, shuffled: false))
        }
        return (entries, payload)
    }

    /// The stored form of a payload (what zstd sees): shuffled value planes when `shuffle`.
    func storedForm(_ entries: [TensorEntry], _ payload: [UInt8], shuffle: Bool) -> [UInt8] {
        guard shuffle else { return payload }
        var out = payload
        var offset = 0
        payload.withUnsafeBytes { src in out.withUnsafeMutableBytes { dst in
            for t in entries {
                let scales = t.dtype.scaleBytes(t.shape)
                if t.dtype.elementBytes > 1 {
                    ByteShuffle.shuffle(src.baseAddress! + offset + scales, into: dst.baseAddress! + offset + scales,
                                        count: t.shape.count, width: t.dtype.elementBytes)
                }
                offset += t.payloadBytes
            }
        }}
        return out
    }

    func compressedSize(_ bytes: [UInt8], _ compressor: borrowing ZstdCompressor) throws -> Int {
        var out = [UInt8](repeating: 0, count: ZstdCompressor.bound(bytes.count))
        return try bytes.withUnsafeBytes { b in try out.withUnsafeMutableBytes { try compressor.compress(b, into: $0) } }
    }

    /// MB/s of `body` over `bytes` input bytes: median of 5 batches of about `seconds` each.
    func throughput(bytes: Int, _ body: () -> Void) -> Double {
        var iterations = 1
        while true {
            let t = Bench.median(runs: 1) { for _ in 0..<iterations { body() } }
            if t >= seconds / 4 { iterations = max(1, Int(Double(iterations) * seconds / t)); break }
            iterations *= 4
        }
        let t = Bench.median(runs: 5) { for _ in 0..<iterations { body() } }
        return Double(bytes * iterations) / t / 1e6
    }

    func run() throws {
        guard let speedType = DType.named(dtype) else { throw ValidationError("unknown dtype \(dtype)") }
        let compressor = ZstdCompressor(level: 3)
        let decompressor = ZstdDecompressor()

        // Speed: our wrapper vs the zstd command on the same bytes.
        let (entries, payload) = expertPayload(speedType, delta: false, seed: 1)
        let stored = storedForm(entries, payload, shuffle: speedType == .fp16)
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(stored.count))
        var frameSize = 0
        let compressMBs = throughput(bytes: stored.count) {
            frameSize = try! stored.withUnsafeBytes { b in try frame.withUnsafeMutableBytes { try compressor.compress(b, into: $0) } }
        }
        var restored = [UInt8](repeating: 0, count: stored.count)
        let compressed = Array(frame[0..<frameSize])
        let decompressMBs = throughput(bytes: stored.count) {
            try! compressed.withUnsafeBytes { b in try restored.withUnsafeMutableBytes { try decompressor.decompress(b, into: $0) } }
        }
        precondition(restored == stored, "zstd round trip changed the bytes")

        var figures: [String: Any] = [
            "bench": "zstd", "level": 3, "dtype": speedType.name, "expert_shape": [h, f, classes],
            "bytes": stored.count, "compressed_bytes": frameSize,
            "compress_mb_s": Bench.round(compressMBs, 1), "decompress_mb_s": Bench.round(decompressMBs, 1),
        ]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("flexmoe-expert-\(getpid()).bin")
        try Data(stored).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        if let output = Bench.run("zstd", ["-b3", "-i\(max(1, Int(seconds * 5)))", file.path]),
           let cli = parseZstdBench(output) {
            figures["zstd_cli_compress_mb_s"] = cli.compress
            figures["zstd_cli_decompress_mb_s"] = cli.decompress
            figures["ratio_compress_vs_cli"] = Bench.round(compressMBs / cli.compress)
            figures["ratio_decompress_vs_cli"] = Bench.round(decompressMBs / cli.decompress)
        } else {
            figures["zstd_cli"] = "unavailable (apt-get install zstd)"
        }

        // Compression ratios per dtype, for weights and for small update deltas.
        var table: [[String: Any]] = []
        let fp32Bytes = Double(expertPayload(.fp32, delta: false, seed: 1).1.count)
        for (label, type, shuffle) in [("fp32", DType.fp32, false), ("fp32 shuffled", .fp32, true), ("fp16", .fp16, false),
                                       ("fp16 shuffled", .fp16, true), ("int8-block", .int8Block, false),
                                       ("int8-row", .int8Row, false)] {
            var row: [String: Any] = ["dtype": label]
            for delta in [false, true] {
                let (e, p) = expertPayload(type, delta: delta, seed: delta ? 2 : 1)
                let size = try compressedSize(storedForm(e, p, shuffle: shuffle), compressor)
                let key = delta ? "delta" : "weights"
                row[key + "_zstd_ratio"] = Bench.round(Double(p.count) / Double(size))
                row[key + "_vs_fp32_raw"] = Bench.round(fp32Bytes / Double(size + Container.headerSize + 4 * Container.entrySize), 2)
            }
            table.append(row)
        }
        figures["ratios"] = table
        Bench.emit(figures)
    }

    /// Parses the summary line of `zstd -b3 FILE`: "... (x1.23), 123.4 MB/s, 456.7 MB/s".
    func parseZstdBench(_ output: String) -> (compress: Double, decompress: Double)? {
        let last = output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).last { $0.contains("MB/s") }
        guard let line = last else { return nil }
        let numbers = line.components(separatedBy: ",").compactMap { part -> Double? in
            let t = part.trimmingCharacters(in: .whitespaces)
            guard t.hasSuffix("MB/s") else { return nil }
            return Double(t.dropLast(4).trimmingCharacters(in: .whitespaces))
        }
        return numbers.count >= 2 ? (numbers[0], numbers[1]) : nil
    }
}
