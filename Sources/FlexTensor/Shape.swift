/// A 2-D shape, row-major. Vectors are 1 x n; conv kernels are flattened to out x (in*9).
public struct Shape: Equatable, Sendable {
    public var rows: Int
    public var cols: Int

    public init(rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "negative shape")
        self.rows = rows
        self.cols = cols
    }

    public init(vector count: Int) { self.init(rows: 1, cols: count) }

    public var count: Int { rows * cols }
}

/// Storage types for weights and deltas. Raw values are the wire codes of docs/FORMAT.md.
public enum DType: UInt8, Sendable, CaseIterable {
    /// IEEE-754 binary32.
    case fp32 = 0
    /// IEEE-754 binary16, round-to-nearest-even.
    case fp16 = 1
    /// int8 in blocks of 32 along a row, one fp16 scale per block (like ggml's Q8_0).
    case int8Block = 2
    /// int8 with one fp32 scale per row.
    case int8Row = 3

    /// Elements per quantisation block along a row (int8Block), the whole row (int8Row), else 1.
    public static let blockSize = 32

    public var name: String {
        switch self {
        case .fp32: return "fp32"
        case .fp16: return "fp16"
        case .int8Block: return "int8-block"
        case .int8Row: return "int8-row"
        }
    }

    public static func named(_ name: String) -> DType? {
        switch name {
        case "fp32": return .fp32
        case "fp16": return .fp16
        case "int8", "int8-block", "q8": return .int8Block
        case "int8-row": return .int8Row
        default: return nil
        }
    }

    /// Blocks per row for int8Block (the last one may be short).
    public static func blocksPerRow(_ cols: Int) -> Int { (cols + blockSize - 1) / blockSize }

    /// Bytes of the scale plane that precedes the int8 values (docs/FORMAT.md, "payload layouts").
    public func scaleBytes(_ shape: Shape) -> Int {
        switch self {
        case .fp32, .fp16: return 0
        case .int8Block: return shape.rows * DType.blocksPerRow(shape.cols) * 2
        case .int8Row: return shape.rows * 4
        }
    }

    /// Exact payload bytes of a tensor of this dtype and shape.
    public func payloadBytes(_ shape: Shape) -> Int {
        switch self {
        case .fp32: return shape.count * 4
        case .fp16: return shape.count * 2
        case .int8Block, .int8Row: return scaleBytes(shape) + shape.count
        }
    }

    /// Bytes per element of the value plane (used by the byte-shuffle filter).
    public var elementBytes: Int {
        switch self {
        case .fp32: return 4
        case .fp16: return 2
        case .int8Block, .int8Row: return 1
        }
    }
}
