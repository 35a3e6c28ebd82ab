/// The device's one block of memory. At start-up the edge runtime plans every large buffer, creates
/// one arena of the planned size, and carves each buffer from it; nothing is allocated while
/// training, so the memory budget is a promise, not a hope. Every carve is booked to a named
/// component, so the memory profiler can show where each byte went.
///
/// A class (one owner, shared by reference with the constructors that carve from it); the memory is
/// freed in `deinit`, so the arena must outlive every tensor carved from it.
public final class Arena {
    public static let alignment = 64

    private let base: UnsafeMutableRawPointer
    public let capacity: Int
    /// Bytes handed out now, and the most ever handed out (scratch regions are released).
    public private(set) var used = 0
    public private(set) var peak = 0
    /// Bytes booked per component, in booking order (released scratch stays booked: it is planned).
    public private(set) var ledger: [(component: String, bytes: Int)] = []

    public init(capacity: Int) throws(ArenaError) {
        guard capacity > 0 else { throw .exhausted(component: "arena", needed: 1, available: 0) }
        // Untouched pages cost no RSS: the arena shows up in memory only as it is used.
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: Arena.alignment)
        self.capacity = capacity
    }

    deinit { base.deallocate() }

    /// Carves `count` elements of `T` for `component`, 64-byte aligned and zeroed.
    public func allocate<T>(_ type: T.Type, count: Int, component: String) throws(ArenaError) -> UnsafeMutablePointer<T> {
        let bytes = Arena.rounded(max(count, 1) * MemoryLayout<T>.stride)
        if bytes > capacity - used { throw .exhausted(component: component, needed: bytes, available: capacity - used) }
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

    /// A point to release scratch back to (decode and encode buffers live only for their phase).
    public var mark: Int { used }

    /// Releases everything carved after `mark`.
    public func release(to mark: Int) {
        precondition(mark <= used)
        used = mark
    }

    /// Bytes a request of `bytes` takes in the arena (aligned).
    public static func rounded(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }
}

public enum ArenaError: Error {
    case exhausted(component: String, needed: Int, available: Int)

    public var message: String {
        switch self {
        case .exhausted(let c, let needed, let available):
            return "memory plan exceeded: \(c) needs \(needed) bytes, \(available) left in the arena"
        }
    }
}

extension Tensor {
    /// A tensor carved from `arena` for `component` (zeroed); the arena owns the memory.
    public init(shape: Shape, arena: Arena, component: String) throws(ArenaError) {
        let memory = try arena.allocate(Element.self, count: shape.count, component: component)
        self.init(shape: shape, borrowing: memory)
    }
}
