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

/// The parts of a device's memory budget, as booked in the arena and shown by flexmoe-memprof.
public enum MemoryComponent: String, CaseIterable, Sendable {
    case extractor = "extractor"
    case gate = "gate"
    case expertCache = "expert cache"
    case workingCopies = "expert working copies"
    case gradients = "gradients"
    case optimiserState = "optimiser state"
    case downloadedCopies = "downloaded copies"
    case activations = "activations"
    case network = "network buffers"
    case zstd = "zstd"
    case data = "data"
}

/// Where a model's buffers come from: the heap (host, tests, simulation), a device arena (board),
/// where every buffer is booked to a component, or a planner that only books (a dry run of the
/// constructors, so a plan is computed by the very code that allocates and cannot drift from it).
public struct TensorMemory {
    enum Source {
        case heap
        case arena(Arena)
        case planner(MemoryPlanner)
    }

    let source: Source

    public static var heap: TensorMemory { TensorMemory(source: .heap) }
    public static func arena(_ arena: Arena) -> TensorMemory { TensorMemory(source: .arena(arena)) }
    public static func planning(_ planner: MemoryPlanner) -> TensorMemory { TensorMemory(source: .planner(planner)) }

    public var isPlanning: Bool { if case .planner = source { return true } else { return false } }

    /// A zeroed tensor for `component`. An arena that cannot hold it means the memory plan and the
    /// model disagree — a bug the planner tests exist to catch — so it stops with a message.
    /// While planning, the tensor has its shape but no memory: touching it traps, so a dry run that
    /// reads a buffer fails loudly instead of planning wrongly.
    public func tensor<Element: BitwiseCopyable>(_ shape: Shape, _ zero: Element, _ component: MemoryComponent) -> Tensor<Element> {
        switch source {
        case .heap:
            return Tensor(shape: shape, repeating: zero)
        case .arena(let arena):
            do {
                return try Tensor(shape: shape, arena: arena, component: component.rawValue)
            } catch {
                fatalError("memory plan too small: \(error.message)")
            }
        case .planner(let planner):
            planner.book.add(component, shape, elementBytes: MemoryLayout<Element>.stride)
            return Tensor(shape: shape, borrowing: UnsafeMutablePointer<Element>(bitPattern: Arena.alignment)!)
        }
    }

    public func floats(_ shape: Shape, _ component: MemoryComponent) -> Tensor<Float> { tensor(shape, 0, component) }
}

/// Collects the bookings of a dry run (see `TensorMemory.planning`).
public final class MemoryPlanner {
    public var book = MemoryBook()
    public init() {}
}

/// A memory plan: bytes per component, computed by the same rules the arena books by (each tensor
/// rounded up to the arena's alignment), so a plan and an arena's ledger can be compared exactly.
public struct MemoryBook: Equatable, Sendable {
    public private(set) var entries: [Entry] = []

    public struct Entry: Equatable, Sendable {
        public var component: String
        public var bytes: Int
    }

    public init() {}

    public mutating func add(_ component: String, bytes: Int) {
        if let i = entries.firstIndex(where: { $0.component == component }) {
            entries[i].bytes += bytes
        } else {
            entries.append(Entry(component: component, bytes: bytes))
        }
    }

    /// Books one tensor of `shape` with `elementBytes`-byte elements, as the arena would.
    public mutating func add(_ component: MemoryComponent, _ shape: Shape, elementBytes: Int = 4) {
        add(component.rawValue, bytes: Arena.rounded(max(shape.count, 1) * elementBytes))
    }

    public mutating func add(_ other: MemoryBook) {
        for e in other.entries { add(e.component, bytes: e.bytes) }
    }

    public func bytes(_ component: MemoryComponent) -> Int { entries.first { $0.component == component.rawValue }?.bytes ?? 0 }

    public var total: Int { entries.reduce(0) { $0 + $1.bytes } }
}
