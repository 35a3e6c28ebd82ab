import FlexTensor
import FlexWire

/// The device's expert cache: `slots` fixed-size slots carved from the arena at start-up, each able to
/// hold one expert in the storage dtype (its four tensors in wire layout, as a container payload).
/// k_c slots hold the experts assigned this round; any further slots keep recently assigned experts
/// warm, so an expert that comes back is not downloaded again. Entries are keyed by (expert, version)
/// and carry the payload's xxHash64, which is verified again before every use.
public final class ExpertCache {
    public struct Entry: Equatable {
        public var expert: Int
        public var version: UInt64
        public var hash: UInt64
        public var lastUsedRound: Int
    }

    public struct Counters: Equatable {
        public var hits = 0
        public var misses = 0
        public var evictions = 0
        public var bytesFetched = 0
    }

    public let entries: [TensorEntry]
    /// Bytes of one slot: the expert's payload, rounded up to the arena alignment so every slot starts
    /// aligned (and slots x slotBytes is exactly what the arena books).
    public let slotBytes: Int
    public let slotCount: Int
    private let memory: UnsafeMutablePointer<UInt8>
    public private(set) var slots: [Entry?]
    public private(set) var counters = Counters()

    /// Bytes the cache takes for `slots` experts of `config` stored as `dtype`.
    public static func bytes(layout: ExpertLayout, slots: Int) -> Int { Arena.rounded(layout.payloadBytes) * slots }

    public init(layout: ExpertLayout, slots: Int, arena: Arena) throws(ArenaError) {
        precondition(slots >= 1)
        self.entries = layout.entries
        self.slotBytes = Arena.rounded(layout.payloadBytes)
        self.slotCount = slots
        self.memory = try arena.allocate(UInt8.self, count: slotBytes * slots, component: MemoryComponent.expertCache.rawValue)
        self.slots = [Entry?](repeating: nil, count: slots)
    }

    /// The slot holding `expert` at `version`, counting a hit, or nil (a miss is counted by `reserve`).
    public func lookup(expert: Int, version: UInt64, round: Int) -> Int? {
        guard let i = slots.firstIndex(where: { $0?.expert == expert && $0?.version == version }) else { return nil }
        slots[i]!.lastUsedRound = round
        counters.hits += 1
        return i
    }

    /// The version cached for `expert`, if any (sent as `have=` so the server can answer 304).
    public func cachedVersion(of expert: Int) -> UInt64? {
        slots.first { $0?.expert == expert }??.version
    }

    /// Chooses a slot for a download of `expert`: its old version's slot, else an empty one, else the
    /// least recently used slot not in `pinned` (explicit eviction). Counts a miss.
    public func reserve(expert: Int, pinned: [Int]) -> Int {
        counters.misses += 1
        if let i = slots.firstIndex(where: { $0?.expert == expert }) {
            slots[i] = nil
            return i
        }
        if let i = slots.firstIndex(where: { $0 == nil }) { return i }
        var victim = -1
        for (i, e) in slots.enumerated() where !pinned.contains(e!.expert) {
            if victim < 0 || e!.lastUsedRound < slots[victim]!.lastUsedRound { victim = i }
        }
        precondition(victim >= 0, "more pinned experts than cache slots")
        slots[victim] = nil
        counters.evictions += 1
        return victim
    }

    /// The payload bytes of a slot, to decode a container into.
    public func slotBuffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: memory + slot * slotBytes, count: payloadBytes)
    }

    public var payloadBytes: Int { entries.reduce(0) { $0 + $1.payloadBytes } }

    /// Records that `slot` now holds `expert` at `version` (its payload verified by the decoder).
    public func commit(slot: Int, expert: Int, version: UInt64, fetchedBytes: Int, round: Int) {
        let hash = XXHash64.hash(UnsafeRawBufferPointer(slotBuffer(slot)))
        slots[slot] = Entry(expert: expert, version: version, hash: hash, lastUsedRound: round)
        counters.bytesFetched += fetchedBytes
    }

    /// Drops an entry (e.g. its checksum failed).
    public func evict(slot: Int) { slots[slot] = nil }

    /// Verifies a slot's checksum and hands its tensors to `body` as wire-layout views.
    public func withExpert<R>(slot: Int, _ body: ([QuantizedMatrix]) -> R) -> R? {
        guard let entry = slots[slot] else { return nil }
        let bytes = UnsafeRawBufferPointer(slotBuffer(slot))
        if XXHash64.hash(bytes) != entry.hash {
            slots[slot] = nil
            return nil
        }
        var views: [QuantizedMatrix] = []
        var offset = 0
        for e in entries {
            views.append(QuantizedMatrix(dtype: e.dtype, shape: e.shape,
                                         bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + e.payloadBytes)])))
            offset += e.payloadBytes
        }
        return body(views)
    }
}

/// How one expert is laid out in the cache and on the wire: its tensors in a storage dtype.
public struct ExpertLayout: Equatable {
    public var entries: [TensorEntry]

    public init(shapes: [Shape], dtype: DType) {
        entries = shapes.map { TensorEntry.standard(dtype: dtype, shape: $0) }
    }

    public var payloadBytes: Int { entries.reduce(0) { $0 + $1.payloadBytes } }
}
