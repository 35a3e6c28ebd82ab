import FlexTensor

/// A labelled dataset in memory: features row-major (count × dim, fp32) and labels (0..<classes).
/// `~Copyable` like the tensors it owns.
public struct Dataset: ~Copyable {
    public let features: Tensor<Float>
    public let labels: Tensor<Int32>
    public let classes: Int

    public init(count: Int, dim: Int, classes: Int) {
        features = Tensor(zeros: Shape(rows: count, cols: dim))
        labels = Tensor(shape: Shape(vector: count), repeating: 0)
        self.classes = classes
    }

    public var count: Int { labels.count }
    public var dim: Int { features.shape.cols }

    /// Samples per class.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for i in 0..<count { counts[Int(labels[i])] += 1 }
        return counts
    }

    /// A new dataset holding the given rows, in order.
    public func subset(_ indices: [Int]) -> Dataset {
        let out = Dataset(count: indices.count, dim: dim, classes: classes)
        let d = dim
        features.withUnsafeBufferPointer { src in
            out.features.withUnsafeMutableBufferPointer { dst in
                for (row, i) in indices.enumerated() {
                    for j in 0..<d { dst[row * d + j] = src[i * d + j] }
                }
            }
        }
        for (row, i) in indices.enumerated() { out.labels[row] = labels[i] }
        return out
    }

    /// Concatenation of several datasets with the same dim and classes.
    public static func concatenate(_ parts: [DatasetBox]) -> Dataset {
        let total = parts.reduce(0) { $0 + $1.dataset.count }
        let d = parts.first?.dataset.dim ?? 0
        let classes = parts.first?.dataset.classes ?? 0
        let out = Dataset(count: total, dim: d, classes: classes)
        var row = 0
        for p in parts {
            for i in 0..<p.dataset.count {
                for j in 0..<d { out.features[row * d + j] = p.dataset.features[i * d + j] }
                out.labels[row] = p.dataset.labels[i]
                row += 1
            }
        }
        return out
    }
}

/// A class box so that datasets can be kept in arrays (a `~Copyable` value cannot be an Array element).
public final class DatasetBox {
    public let dataset: Dataset
    public init(_ dataset: consuming Dataset) { self.dataset = dataset }
}

/// Errors of the loaders and shard files: each names the file and the line (text) or byte offset
/// (binary) where the input stops making sense.
public enum DataError: Error, CustomStringConvertible {
    /// The file could not be opened or read.
    case io(file: String, message: String)
    /// A text line is malformed (wrong column count, not a number, ...). Lines count from 1.
    case malformedLine(file: String, line: Int, message: String)
    /// A label outside 0..<classes or not an integer.
    case badLabel(file: String, line: Int, value: String)
    /// A binary file whose magic number or header field is wrong, at `offset`.
    case badHeader(file: String, offset: Int, message: String)
    /// A binary file that ends before `offset`, where more data was required.
    case truncated(file: String, offset: Int, expected: Int)
    /// A binary record with an invalid value at `offset` (e.g. a label > 9 in CIFAR-10).
    case badValue(file: String, offset: Int, message: String)
    /// Two files that must agree do not (e.g. IDX images and labels counts).
    case mismatch(message: String)
    /// The shard's payload hash does not match.
    case checksum(file: String)
    /// A request that cannot be met (e.g. more clients than samples).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .io(let f, let m): return "\(f): \(m)"
        case .malformedLine(let f, let l, let m): return "\(f):\(l): \(m)"
        case .badLabel(let f, let l, let v): return "\(f):\(l): bad label '\(v)'"
        case .badHeader(let f, let o, let m): return "\(f): byte \(o): \(m)"
        case .truncated(let f, let o, let e): return "\(f): truncated at byte \(o) (needs \(e) bytes)"
        case .badValue(let f, let o, let m): return "\(f): byte \(o): \(m)"
        case .mismatch(let m): return m
        case .checksum(let f): return "\(f): payload checksum mismatch"
        case .invalidArgument(let m): return m
        }
    }
}

#if !hasFeature(Embedded)
// Host only: String equality needs the Unicode normalisation tables, which the board binary omits.
extension DataError: Equatable {}
#endif
