import FlexTensor
import FlexWire

/// One client's data as a board loads it: its train and test samples, from a shard file
/// (docs/FORMAT.md, "Shard files"), so a board reads only its own data.
public struct ClientShard: ~Copyable {
    public let client: Int
    public let train: Dataset
    public let test: Dataset

    public init(client: Int, train: consuming Dataset, test: consuming Dataset) {
        precondition(train.dim == test.dim && train.classes == test.classes)
        self.client = client
        self.train = train
        self.test = test
    }
}

/// Shard file codec. Layout (little-endian), 48-byte header then the payload:
///
///     0  magic "FXSD" | 4 version u16 = 1 | 6 dtype u8 (0 fp32, 1 fp16) | 7 reserved u8 = 0
///     8  client u32 | 12 dim u32 | 16 classes u32 | 20 trainCount u32 | 24 testCount u32
///     28 reserved u32 = 0 | 32 payloadHash u64 (FNV-1a 64 of the payload) | 40 reserved u64 = 0
///     48 train features (trainCount × dim, dtype) | train labels (trainCount × u16)
///        test features | test labels
public enum ShardFile {
    public static let magic: [UInt8] = [0x46, 0x58, 0x53, 0x44]  // "FXSD"
    public static let headerBytes = 48
    public static let version: UInt16 = 1

    /// Exact file size for the given counts.
    public static func fileBytes(dim: Int, trainCount: Int, testCount: Int, dtype: DType) -> Int {
        let e = dtype == .fp16 ? 2 : 4
        return headerBytes + (trainCount + testCount) * (dim * e + 2)
    }

    /// Encodes a shard into a byte tensor (fp32 or fp16 features).
    public static func encode(_ shard: borrowing ClientShard, dtype: DType = .fp32) -> Tensor<UInt8> {
        precondition(dtype == .fp32 || dtype == .fp16, "shard features are fp32 or fp16")
        let dim = shard.train.dim, nTrain = shard.train.count, nTest = shard.test.count
        let size = fileBytes(dim: dim, trainCount: nTrain, testCount: nTest, dtype: dtype)
        let out = Tensor<UInt8>(shape: Shape(vector: size), repeating: 0)
        out.withUnsafeMutableBufferPointer { buf in
            var w = ByteWriter(UnsafeMutableRawBufferPointer(buf))
            func put(_ ds: borrowing Dataset) throws(WireError) {
                for i in 0..<(ds.count * dim) {
                    if dtype == .fp16 { try w.u16(Half.bits(from: ds.features[i])) } else { try w.u32(ds.features[i].bitPattern) }
                }
                for i in 0..<ds.count { try w.u16(UInt16(ds.labels[i])) }
            }
            do throws(WireError) {
                try w.bytes(magic)
                try w.u16(version)
                try w.u8(dtype.rawValue)
                try w.u8(0)
                for field in [shard.client, dim, shard.train.classes, nTrain, nTest, 0] { try w.u32(UInt32(field)) }
                let hashAt = try w.reserve(8)
                try w.u64(0)
                try put(shard.train)
                try put(shard.test)
                w.setU64(fnv1a(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(w.base)[headerBytes...])), at: hashAt)
            } catch {
                preconditionFailure("ShardFile.encode: \(error.message)")  // the tensor is sized exactly
            }
        }
        return out
    }

    /// Decodes a shard, checking magic, version, fields, exact size, labels and the payload hash.
    public static func decode(_ b: UnsafeRawBufferPointer, file: String) throws(DataError) -> ClientShard {
        if b.count < headerBytes { throw .truncated(file: file, offset: b.count, expected: headerBytes) }
        // At least the header is there, so reading it cannot fail.
        var r = ByteReader(b)
        func read<T>(_ field: (inout ByteReader) throws(WireError) -> T) throws(DataError) -> T {
            do throws(WireError) { return try field(&r) } catch {
                if case .badMagic = error { throw .badHeader(file: file, offset: 0, message: "bad magic (expected FXSD)") }
                if case .truncated(let needed, let have) = error { throw .truncated(file: file, offset: have, expected: needed) }
                throw .badHeader(file: file, offset: r.offset, message: error.message)
            }
        }
        try read { r throws(WireError) in try r.expectMagic(magic) }
        let ver = try read { r throws(WireError) in try r.u16() }
        if ver != version { throw .badHeader(file: file, offset: 4, message: "unsupported version \(ver)") }
        let rawDType = try read { r throws(WireError) in try r.u8() }
        guard let dtype = DType(rawValue: rawDType), dtype == .fp32 || dtype == .fp16 else {
            throw .badHeader(file: file, offset: 6, message: "bad dtype \(rawDType)")
        }
        let reserved7 = try read { r throws(WireError) in try r.u8() }
        var fields: [Int] = []
        for _ in 0..<6 { fields.append(Int(try read { r throws(WireError) in try r.u32() })) }
        let hash = try read { r throws(WireError) in try r.u64() }
        let reserved40 = try read { r throws(WireError) in try r.u64() }
        if reserved7 != 0 || fields[5] != 0 || reserved40 != 0 {
            throw .badHeader(file: file, offset: 7, message: "reserved field not zero")
        }
        let client = fields[0], dim = fields[1], classes = fields[2], nTrain = fields[3], nTest = fields[4]
        if dim == 0 || dim > 1 << 20 { throw .badHeader(file: file, offset: 12, message: "dim \(dim) out of range") }
        if classes < 2 || classes > 65535 { throw .badHeader(file: file, offset: 16, message: "classes \(classes) out of range") }
        if nTrain > 1 << 26 || nTest > 1 << 26 { throw .badHeader(file: file, offset: 20, message: "sample count out of range") }
        let size = fileBytes(dim: dim, trainCount: nTrain, testCount: nTest, dtype: dtype)
        if b.count < size { throw .truncated(file: file, offset: b.count, expected: size) }
        if b.count > size { throw .badHeader(file: file, offset: size, message: "trailing bytes") }
        if fnv1a(UnsafeRawBufferPointer(rebasing: b[headerBytes...])) != hash { throw .checksum(file: file) }
        // The size is exact, so reading the payload cannot fail either.
        func take(_ n: Int) throws(DataError) -> Dataset {
            let ds = Dataset(count: n, dim: dim, classes: classes)
            for i in 0..<(n * dim) {
                if dtype == .fp16 {
                    ds.features[i] = Half.float(fromBits: try read { r throws(WireError) in try r.u16() })
                } else {
                    ds.features[i] = Float(bitPattern: try read { r throws(WireError) in try r.u32() })
                }
            }
            for i in 0..<n {
                let at = r.offset
                let l = Int(try read { r throws(WireError) in try r.u16() })
                if l >= classes { throw .badValue(file: file, offset: at, message: "label \(l) ≥ \(classes) classes") }
                ds.labels[i] = Int32(l)
            }
            return ds
        }
        let train = try take(nTrain)
        let test = try take(nTest)
        return ClientShard(client: client, train: train, test: test)
    }

    /// Writes a shard file atomically.
    public static func write(_ shard: borrowing ClientShard, to path: String, dtype: DType = .fp32) throws(DataError) {
        let bytes = encode(shard, dtype: dtype)
        try Files.write(path, bytes.rawBytes)
    }

    /// Reads and decodes a shard file.
    public static func read(_ path: String) throws(DataError) -> ClientShard {
        let bytes = try Files.read(path)
        return try decode(bytes.rawBytes, file: path)
    }

    /// Splits each client's indices into train/test and writes `<directory>/client-<i>.shard` for
    /// every client. Returns the paths.
    public static func writeAll(_ data: borrowing Dataset, partition: [[Int]], testFraction: Double,
                                directory: String, dtype: DType = .fp32,
                                random: inout FlexRandom) throws(DataError) -> [String] {
        var paths: [String] = []
        for (client, indices) in partition.enumerated() {
            let (train, test) = Partitioner.trainTestSplit(indices, testFraction: testFraction, random: &random)
            let shard = ClientShard(client: client, train: data.subset(train), test: data.subset(test))
            let path = "\(directory)/client-\(client).shard"
            try write(shard, to: path, dtype: dtype)
            paths.append(path)
        }
        return paths
    }

    /// FNV-1a, 64 bit.
    public static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
