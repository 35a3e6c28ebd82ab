import FlexTensor

/// Which data a run uses, as written on a command line (`--dataset`): `synthetic`, `synthetic:α,β`,
/// `csv:PATH`, `idx:IMAGES[,LABELS]`, `cifar:FILE[,FILE…]|DIR`. Used by `flexmoe-server simulate`
/// and `partition`.
public enum DatasetSpec: Sendable, Equatable {
    /// LEAF Synthetic(α, β), generated for `clients` devices and pooled, then split.
    case synthetic(alpha: Double, beta: Double)
    case csv(String)
    case idx(images: String, labels: String)
    case cifar([String])

    /// The accepted forms, for help and error texts.
    public static let forms = ["synthetic", "synthetic:α,β", "csv:PATH", "idx:IMAGES[,LABELS]", "cifar:FILE[,FILE...]", "cifar:DIR"]

    /// Parses one of the `forms` (syntax only: files are not looked at; `cifar:DIR` stays one path
    /// until `load`).
    public static func parse(_ s: String) throws(DataError) -> DatasetSpec {
        let (kind, arg) = s.firstIndex(of: ":").map { (String(s[..<$0]), String(s[s.index(after: $0)...])) } ?? (s, "")
        let parts = arg.split(separator: ",").map(String.init)
        switch kind {
        case "synthetic":
            if parts.isEmpty { return .synthetic(alpha: 1, beta: 1) }
            guard parts.count == 2, let a = SpecText.number(parts[0]), let b = SpecText.number(parts[1]) else {
                throw .invalidArgument("--dataset synthetic:α,β")
            }
            return .synthetic(alpha: a, beta: b)
        case "csv":
            guard parts.count == 1 else { throw .invalidArgument("--dataset csv:PATH") }
            return .csv(parts[0])
        case "idx":
            if parts.count == 2 { return .idx(images: parts[0], labels: parts[1]) }
            guard parts.count == 1 else { throw .invalidArgument("--dataset idx:IMAGES[,LABELS]") }
            // MNIST naming: the labels file sits beside the images file.
            let labels = SpecText.replacing(parts[0], "images-idx3", with: "labels-idx1")
            guard labels != parts[0] else { throw .invalidArgument("--dataset idx:IMAGES,LABELS (cannot derive the labels file)") }
            return .idx(images: parts[0], labels: labels)
        case "cifar":
            guard !parts.isEmpty else { throw .invalidArgument("--dataset cifar:FILE[,FILE…] or cifar:DIR") }
            return .cifar(parts)
        default:
            throw .invalidArgument("unknown --dataset '\(s)' (synthetic, csv:PATH, idx:PATH, cifar:PATH)")
        }
    }

    /// Loads the data: Synthetic(α, β) generated for `clients` devices and pooled, or the file(s);
    /// `cifar:DIR` reads the directory's `data_batch*.bin` files, sorted (host only: on a board every
    /// `cifar:` path is a file). Loader errors are passed on unchanged (they name the file).
    public func load(clients: Int, syntheticMaxSamples: Int = 3000, seed: UInt64 = 0) throws(DataError) -> Dataset {
        switch self {
        case .synthetic(let a, let b):
            return SyntheticGenerator(alpha: a, beta: b, maxSamples: syntheticMaxSamples, seed: seed).pooled(devices: clients)
        case .csv(let p): return try CSVLoader.load(p)
        case .idx(let i, let l): return try IDXLoader.load(images: i, labels: l)
        case .cifar(let files): return try CIFARLoader.load(try Self.cifarFiles(files))
        }
    }

    /// The files of a `cifar:` spec: a single directory stands for its `data_batch*.bin` files, sorted.
    static func cifarFiles(_ paths: [String]) throws(DataError) -> [String] {
        if paths.count == 1, let names = Files.directoryEntries(paths[0]) {
            let files = names.filter { $0.hasPrefix("data_batch") && $0.hasSuffix(".bin") }.sorted()
            guard !files.isEmpty else { throw .invalidArgument("no data_batch_*.bin in \(paths[0])") }
            return files.map { paths[0] + "/" + $0 }
        }
        return paths
    }

    /// Short name for logs and result files: `Synthetic(1,1)`, `csv:digits.csv`, `idx:FILE`, `cifar`.
    public var name: String {
        switch self {
        case .synthetic(let a, let b): return "Synthetic(\(SpecText.number(a)),\(SpecText.number(b)))"
        case .csv(let p): return "csv:" + SpecText.lastPathComponent(p)
        case .idx(let i, _): return "idx:" + SpecText.lastPathComponent(i)
        case .cifar: return "cifar"
        }
    }
}

/// How a dataset is split among the devices (`--split`): `iid`, `dirichlet:α`, `classes:k`.
public enum SplitSpec: Sendable, Equatable {
    case iid
    case dirichlet(Double)
    case classes(Int)

    /// The accepted forms, for help and error texts.
    public static let forms = ["iid", "dirichlet:α", "classes:k"]

    /// `iid`, `dirichlet:α` (α > 0), `classes:k` (k ≥ 1).
    public static func parse(_ s: String) throws(DataError) -> SplitSpec {
        if s == "iid" { return .iid }
        if s.hasPrefix("dirichlet:"), let a = SpecText.number(String(s.dropFirst(10))), a > 0 { return .dirichlet(a) }
        if s.hasPrefix("classes:"), let k = Int(String(s.dropFirst(8))), k >= 1 { return .classes(k) }
        throw .invalidArgument("unknown --split '\(s)' (iid, dirichlet:α, classes:k)")
    }

    /// The sample indices of each of `clients` devices (Dirichlet: at least 2 samples each).
    public func partition(_ data: borrowing Dataset, clients: Int, random: inout FlexRandom) throws(DataError) -> [[Int]] {
        switch self {
        case .iid: return try Partitioner.iid(count: data.count, clients: clients, random: &random)
        case .dirichlet(let a):
            return try Partitioner.dirichlet(labels: data.labels, classes: data.classes, clients: clients, alpha: a,
                                             minSamples: 2, random: &random)
        case .classes(let k):
            return try Partitioner.classesPerClient(labels: data.labels, classes: data.classes, clients: clients, k: k,
                                                    random: &random)
        }
    }

    /// The spec as it is written: `iid`, `dirichlet:0.3`, `classes:2`.
    public var name: String {
        switch self {
        case .iid: return "iid"
        case .dirichlet(let a): return "dirichlet:\(SpecText.number(a))"
        case .classes(let k): return "classes:\(k)"
        }
    }
}

/// The few text helpers the specs need, without Foundation.
enum SpecText {
    /// A decimal number, with an optional exponent ("1e-3"): the project's one parser.
    static func number(_ s: String) -> Double? { Format.parseReal(s) }

    /// A number as the project writes it ("1", "0.3"): `Format.real`, the one formatter.
    static func number(_ x: Double) -> String { Format.real(x) }

    /// `text` with every occurrence of `target` replaced by `replacement` (UTF-8 code units).
    static func replacing(_ text: String, _ target: String, with replacement: String) -> String {
        let t = Array(text.utf8), f = Array(target.utf8), r = Array(replacement.utf8)
        if f.isEmpty || t.count < f.count { return text }
        var out: [UInt8] = []
        var i = 0
        while i < t.count {
            if i + f.count <= t.count && t[i..<(i + f.count)].elementsEqual(f) {
                out += r
                i += f.count
            } else {
                out.append(t[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The last component of a `/` path, as NSString's `lastPathComponent`: trailing slashes are
    /// ignored, "/" stays "/".
    static func lastPathComponent(_ path: String) -> String {
        var p = Array(path.utf8)
        while p.count > 1 && p.last == 0x2F { p.removeLast() }
        if p == [0x2F] { return "/" }
        if let slash = p.lastIndex(of: 0x2F) { p = Array(p[(slash + 1)...]) }
        return String(decoding: p, as: UTF8.self)
    }
}
