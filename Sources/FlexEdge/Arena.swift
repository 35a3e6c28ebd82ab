/// The device's one block of memory. At start-up the runtime plans every large buffer (MemoryPlan),
/// allocates the arena once for the plan's total, and carves each buffer out of it; nothing is
/// allocated while training, so the budget is a promise, not a hope. Every carve is booked to a
/// component, so the memory profiler can show where each byte went.
public struct Arena: ~Copyable {
    public static let alignment = 64

    private let base: UnsafeMutableRawPointer
    public let capacity: Int
    /// Bytes handed out so far, and the most ever handed out (scratch regions are released).
    public private(set) var used = 0
    public private(set) var peak = 0
    /// Bytes booked per component, in booking order.
    public private(set) var ledger: [(component: String, bytes: Int)] = []

    public init(capacity: Int) throws(EdgeError) {
        guard capacity > 0 else { throw .outOfMemory(capacity) }
        // Untouched pages cost no RSS: the arena shows up in memory only as it is used.
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: Arena.alignment)
        self.capacity = capacity
    }

    deinit { base.deallocate() }

    /// Carves `count` elements of `T` for `component`, 64-byte aligned and zeroed.
    public mutating func allocate<T>(_ type: T.Type, count: Int, component: String) throws(EdgeError) -> UnsafeMutablePointer<T> {
        let bytes = Arena.rounded(max(count, 1) * MemoryLayout<T>.stride)
        if bytes > capacity - used { throw .budgetExceeded(component: component, needed: bytes, available: capacity - used) }
        let p = base + used
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        used += bytes
        peak = max(peak, used)
        if let i = ledger.firstIndex(where: { $0.component == component }) {
            ledger[i].bytes += bytes
        } else {
            ledger.append((component, bytes))
        }
        return p.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A point to release scratch back to (decode/encode buffers live only for their phase).
    public var mark: Int { used }

    /// Releases everything carved after `mark`; its bookings stay in the ledger as planned bytes.
    public mutating func release(to mark: Int) {
        precondition(mark <= used)
        used = mark
    }

    /// Bytes a request of `bytes` takes in the arena (aligned).
    public static func rounded(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }
}
