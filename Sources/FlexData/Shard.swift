import FlexTensor

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
            let raw = UnsafeMutableRawBufferPointer(buf)
            raw[0] = 0x46; raw[1] = 0x58; raw[2] = 0x53; raw[3] = 0x44  // "FXSD"
            raw.storeBytes(of: version.littleEndian, toByteOffset: 4, as: UInt16.self)
            raw[6] = dtype.rawValue
            raw.storeBytes(of: UInt32(shard.client).littleEndian, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: UInt32(dim).littleEndian, toByteOffset: 12, as: UInt32.self)
            raw.storeBytes(of: UInt32(shard.train.classes).littleEndian, toByteOffset: 16, as: UInt32.self)
            raw.storeBytes(of: UInt32(nTrain).littleEndian, toByteOffset: 20, as: UInt32.self)
            raw.storeBytes(of: UInt32(nTest).littleEndian, toByteOffset: 24, as: UInt32.self)
            var o = headerBytes
            func put(_ ds: borrowing Dataset) {
                for i in 0..<(ds.count * dim) {
                    if dtype == .fp16 {
                        raw.storeBytes(of: Half.bits(from: ds.features[i]).littleEndian, toByteOffset: o, as: UInt16.self); o += 2
                    } else {
                        raw.storeBytes(of: ds.features[i].bitPattern.littleEndian, toByteOffset: o, as: UInt32.self); o += 4
                    }
                }
                for i in 0..<ds.count {
                    raw.storeBytes(of: UInt16(ds.labels[i]).littleEndian, toByteOffset: o, as: UInt16.self); o += 2
                }
            }
            put(shard.train)
            put(shard.test)
            let hash = fnv1a(UnsafeRawBufferPointer(rebasing: raw[headerBytes...]))
            raw.storeBytes(of: hash.littleEndian, toByteOffset: 32, as: UInt64.self)
        }
        return out
    }

    /// Decodes a shard, checking magic, version, fields, exact size, labels and the payload hash.
    public static func decode(_ b: UnsafeRawBufferPointer, file: String) throws(DataError) -> ClientShard {
        if b.count < headerBytes { throw .truncated(file: file, offset: b.count, expected: headerBytes) }
        if b[0] != 0x46 || b[1] != 0x58 || b[2] != 0x53 || b[3] != 0x44 {
            throw .badHeader(file: file, offset: 0, message: "bad magic (expected FXSD)")
        }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        let ver = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        if ver != version { throw .badHeader(file: file, offset: 4, message: "unsupported version \(ver)") }
        guard let dtype = DType(rawValue: b[6]), dtype == .fp32 || dtype == .fp16 else {
            throw .badHeader(file: file, offset: 6, message: "bad dtype \(b[6])")
        }
        if b[7] != 0 || u32(28) != 0 || b.loadUnaligned(fromByteOffset: 40, as: UInt64.self) != 0 {
            throw .badHeader(file: file, offset: 7, message: "reserved field not zero")
        }
        let client = u32(8), dim = u32(12), classes = u32(16), nTrain = u32(20), nTest = u32(24)
        if dim == 0 || dim > 1 << 20 { throw .badHeader(file: file, offset: 12, message: "dim \(dim) out of range") }
        if classes < 2 || classes > 65535 { throw .badHeader(file: file, offset: 16, message: "classes \(classes) out of range") }
        if nTrain > 1 << 26 || nTest > 1 << 26 { throw .badHeader(file: file, offset: 20, message: "sample count out of range") }
        let size = fileBytes(dim: dim, trainCount: nTrain, testCount: nTest, dtype: dtype)
        if b.count < size { throw .truncated(file: file, offset: b.count, expected: size) }
        if b.count > size { throw .badHeader(file: file, offset: size, message: "trailing bytes") }
        let hash = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        if fnv1a(UnsafeRawBufferPointer(rebasing: b[headerBytes...])) != hash { throw .checksum(file: file) }
        var o = headerBytes
        func take(_ n: Int) throws(DataError) -> Dataset {
            let ds = Dataset(count: n, dim: dim, classes: classes)
            for i in 0..<(n * dim) {
                if dtype == .fp16 {
                    ds.features[i] = Half.float(fromBits: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self))); o += 2
                } else {
                    ds.features[i] = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))); o += 4
                }
            }
            for i in 0..<n {
                let l = Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                if l >= classes { throw .badValue(file: file, offset: o, message: "label \(l) ≥ \(classes) classes") }
                ds.labels[i] = Int32(l); o += 2
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
