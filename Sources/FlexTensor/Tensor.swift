/// An owning, fixed-size buffer of `Element`s with a shape. `~Copyable`: there is exactly one owner,
/// memory is freed in `deinit`, and nothing ever grows behind anyone's back.
///
/// A tensor either owns its memory (`init(shape:)`) or is a view into memory that someone else owns
/// and outlives it (`init(shape:borrowing:)`, used by the edge runtime's arena).
public struct Tensor<Element: BitwiseCopyable>: ~Copyable {
    public let shape: Shape
    @usableFromInline let base: UnsafeMutablePointer<Element>
    @usableFromInline let ownsMemory: Bool

    /// Allocates `shape.count` elements, filled with `value`.
    public init(shape: Shape, repeating value: Element) {
        self.shape = shape
        self.base = UnsafeMutablePointer<Element>.allocate(capacity: max(shape.count, 1))
        self.base.initialize(repeating: value, count: shape.count)
        self.ownsMemory = true
    }

    /// A view of memory owned elsewhere (an arena slot). The caller guarantees that `memory` holds
    /// `shape.count` elements and outlives this tensor.
    public init(shape: Shape, borrowing memory: UnsafeMutablePointer<Element>) {
        self.shape = shape
        self.base = memory
        self.ownsMemory = false
    }

    deinit {
        if ownsMemory { base.deallocate() }
    }

    public var count: Int { shape.count }

    @inlinable public subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < shape.count, "index out of range")
            return base[index]
        }
        nonmutating set {
            precondition(index >= 0 && index < shape.count, "index out of range")
            base[index] = newValue
        }
    }

    @inlinable public subscript(row: Int, col: Int) -> Element {
        get { self[row * shape.cols + col] }
        nonmutating set { self[row * shape.cols + col] = newValue }
    }

    @inlinable public func withUnsafeBufferPointer<R, E: Error>(
        _ body: (UnsafeBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeBufferPointer(start: base, count: shape.count))
    }

    @inlinable public func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableBufferPointer(start: base, count: shape.count))
    }

    @inlinable public func withUnsafeBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: shape.count * MemoryLayout<Element>.stride))
    }

    /// Copies every element from `other` (same count required).
    public func copy(from other: borrowing Tensor<Element>) {
        precondition(other.count == count, "copy between tensors of different sizes")
        base.update(from: other.base, count: count)
    }

    /// Sets every element to `value`.
    public func fill(_ value: Element) {
        base.update(repeating: value, count: count)
    }
}

extension Tensor where Element == Float {
    /// An fp32 tensor of zeros.
    public init(zeros shape: Shape) { self.init(shape: shape, repeating: 0) }
}

/// Bytes in a tensor's wire layout (docs/FORMAT.md): the value plane of fp32/fp16, or the scale plane
/// followed by the int8 value plane. This is what the expert cache holds and what containers carry.
public struct QuantizedTensor: ~Copyable {
    public let dtype: DType
    public let shape: Shape
    public let bytes: Tensor<UInt8>

    /// Allocates a zero-filled tensor in `dtype`'s layout.
    public init(dtype: DType, shape: Shape) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = Tensor<UInt8>(shape: Shape(vector: dtype.payloadBytes(shape)), repeating: 0)
    }

    /// A view of wire-layout bytes owned elsewhere (an arena slot or a decode buffer).
    public init(dtype: DType, shape: Shape, borrowing memory: UnsafeMutablePointer<UInt8>) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = Tensor<UInt8>(shape: Shape(vector: dtype.payloadBytes(shape)), borrowing: memory)
    }

    public var byteCount: Int { bytes.count }

    /// The weights as a `QuantizedMatrix`, valid only inside `body`.
    public func withMatrix<R, E: Error>(_ body: (QuantizedMatrix) throws(E) -> R) throws(E) -> R {
        try bytes.withUnsafeBytes { (raw) throws(E) -> R in
            try body(QuantizedMatrix(dtype: dtype, shape: shape, bytes: raw))
        }
    }
}
