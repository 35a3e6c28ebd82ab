import FlexTensor
#if !hasFeature(Embedded)
#if canImport(CZlib)
import CZlib
#endif
#endif

/// IDX files (MNIST, EMNIST, Fashion-MNIST): big-endian magic `00 00 08 nd` (unsigned bytes, nd
/// dimensions), nd big-endian UInt32 sizes, then the bytes. Images (nd = 3) and labels (nd = 1) come
/// in two files. Pixels are scaled to [0, 1]. On the host, gzip'd files (`.gz`, detected by the
/// `1f 8b` magic) are inflated with zlib; the boards read raw files only.
public enum IDXLoader {
    /// Loads an images file and a labels file. `classes`: labels must be below it (nil: max + 1).
    public static func load(images: String, labels: String, classes: Int? = nil) throws(DataError) -> Dataset {
        let img = try readMaybeGzip(images)
        let lab = try readMaybeGzip(labels)
        return try parse(images: img.rawBytes, imagesFile: images, labels: lab.rawBytes, labelsFile: labels,
                         classes: classes)
    }

    /// Parses IDX bytes in memory.
    public static func parse(images ib: UnsafeRawBufferPointer, imagesFile: String, labels lb: UnsafeRawBufferPointer,
                             labelsFile: String, classes: Int? = nil) throws(DataError) -> Dataset {
        let imageDims = try header(ib, file: imagesFile, dims: 3)
        let labelDims = try header(lb, file: labelsFile, dims: 1)
        let n = imageDims[0], dim = imageDims[1] * imageDims[2]
        if labelDims[0] != n {
            throw .mismatch(message: "\(imagesFile) has \(n) images but \(labelsFile) has \(labelDims[0]) labels")
        }
        let imageStart = 4 + 12, labelStart = 4 + 4
        if ib.count < imageStart + n * dim { throw .truncated(file: imagesFile, offset: ib.count, expected: imageStart + n * dim) }
        if ib.count > imageStart + n * dim { throw .badHeader(file: imagesFile, offset: imageStart + n * dim, message: "trailing bytes") }
        if lb.count < labelStart + n { throw .truncated(file: labelsFile, offset: lb.count, expected: labelStart + n) }
        if lb.count > labelStart + n { throw .badHeader(file: labelsFile, offset: labelStart + n, message: "trailing bytes") }
        var maxLabel = 0
        for i in 0..<n {
            let l = Int(lb[labelStart + i])
            if let c = classes, l >= c {
                throw .badValue(file: labelsFile, offset: labelStart + i, message: "label \(l) ≥ \(c) classes")
            }
            maxLabel = max(maxLabel, l)
        }
        let out = Dataset(count: n, dim: dim, classes: classes ?? (maxLabel + 1))
        out.features.withUnsafeMutableBufferPointer { f in
            for i in 0..<(n * dim) { f[i] = Float(ib[imageStart + i]) * (1.0 / 255.0) }
        }
        for i in 0..<n { out.labels[i] = Int32(lb[labelStart + i]) }
        return out
    }

    static func header(_ b: UnsafeRawBufferPointer, file: String, dims: Int) throws(DataError) -> [Int] {
        if b.count < 4 { throw .truncated(file: file, offset: b.count, expected: 4) }
        if b[0] != 0 || b[1] != 0 || b[2] != 0x08 || Int(b[3]) != dims {
            throw .badHeader(file: file, offset: 0,
                             message: "bad magic \(b[0]) \(b[1]) \(b[2]) \(b[3]) (expected 0 0 8 \(dims): unsigned bytes, \(dims)-d)")
        }
        if b.count < 4 + 4 * dims { throw .truncated(file: file, offset: b.count, expected: 4 + 4 * dims) }
        var out: [Int] = []
        for i in 0..<dims {
            let o = 4 + 4 * i
            let v = Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3])
            if v == 0 || v > 1 << 26 { throw .badHeader(file: file, offset: o, message: "dimension \(v) out of range") }
            out.append(v)
        }
        return out
    }

    /// Reads a file, inflating it on the host when it is gzip'd.
    static func readMaybeGzip(_ path: String) throws(DataError) -> Tensor<UInt8> {
        let raw = try Files.read(path)
        if raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
            #if !hasFeature(Embedded) && canImport(CZlib)
            return try Gzip.inflate(raw, file: path)
            #else
            throw .badHeader(file: path, offset: 0, message: "gzip'd file: decompress it on the host first")
            #endif
        }
        return raw
    }
}

#if !hasFeature(Embedded) && canImport(CZlib)
/// Host-only gzip inflation (zlib), for the `.gz` files MNIST-like datasets ship as.
enum Gzip {
    static func inflate(_ input: borrowing Tensor<UInt8>, file: String) throws(DataError) -> Tensor<UInt8> {
        // gzip stores the uncompressed size mod 2^32 in its last 4 bytes
        let n = input.count
        var size = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
        if size == 0 { size = 1 }
        let out = Tensor<UInt8>(shape: Shape(vector: size), repeating: 0)
        var stream = z_stream()
        var rc = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        if rc != Z_OK { throw .badHeader(file: file, offset: 0, message: "zlib init failed") }
        defer { inflateEnd(&stream) }
        rc = input.withUnsafeBufferPointer { inb in
            out.withUnsafeMutableBufferPointer { outb in
                stream.next_in = UnsafeMutablePointer(mutating: inb.baseAddress!)
                stream.avail_in = UInt32(inb.count)
                stream.next_out = outb.baseAddress!
                stream.avail_out = UInt32(outb.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        if rc != Z_STREAM_END || Int(stream.total_out) != size {
            throw .badValue(file: file, offset: Int(stream.total_in), message: "gzip stream is corrupt or truncated")
        }
        return out
    }
}
#endif

/// CIFAR-10 binary batches: records of 1 label byte (0...9) then 3,072 pixel bytes (3 × 32 × 32,
/// channel-major), scaled to [0, 1]. Several batch files may be concatenated by passing them all.
public enum CIFARLoader {
    public static let recordBytes = 1 + 3 * 32 * 32

    public static func load(_ paths: [String]) throws(DataError) -> Dataset {
        var parts: [DatasetBox] = []
        for p in paths {
            let bytes = try Files.read(p)
            parts.append(DatasetBox(try parse(bytes.rawBytes, file: p)))
        }
        return Dataset.concatenate(parts)
    }

    public static func parse(_ b: UnsafeRawBufferPointer, file: String) throws(DataError) -> Dataset {
        let r = recordBytes
        if b.count == 0 { throw .truncated(file: file, offset: 0, expected: r) }
        if b.count % r != 0 {
            throw .truncated(file: file, offset: b.count, expected: (b.count / r + 1) * r)
        }
        let n = b.count / r, dim = r - 1
        let out = Dataset(count: n, dim: dim, classes: 10)
        out.features.withUnsafeMutableBufferPointer { f in
            for i in 0..<n { for j in 0..<dim { f[i * dim + j] = Float(b[i * r + 1 + j]) * (1.0 / 255.0) } }
        }
        for i in 0..<n {
            let l = b[i * r]
            if l > 9 { throw .badValue(file: file, offset: i * r, message: "label \(l) > 9") }
            out.labels[i] = Int32(l)
        }
        return out
    }
}
