@testable import FlexEdge
import FlexTensor
import FlexWire
import Testing

@Suite("expert cache")
struct ExpertCacheTests {
    let layout = ExpertLayout(shapes: [Shape(rows: 4, cols: 8), Shape(vector: 8), Shape(rows: 8, cols: 3), Shape(vector: 3)],
                              dtype: .int8Block)

    func fill(_ cache: ExpertCache, slot: Int, byte: UInt8) {
        let b = cache.slotBuffer(slot)
        for i in 0..<b.count { b[i] = byte }
    }

    @Test("hits, misses, versions, LRU eviction that spares pinned experts")
    func lifecycle() throws {
        let arena = try Arena(capacity: ExpertCache.bytes(layout: layout, slots: 3))
        let cache = try ExpertCache(layout: layout, slots: 3, arena: arena)
        #expect(arena.ledger.map(\.component) == ["expert cache"])
        for (round, expert) in [(1, 10), (2, 11), (3, 12)] {
            #expect(cache.lookup(expert: expert, version: 1, round: round) == nil)
            let slot = cache.reserve(expert: expert, pinned: [expert])
            fill(cache, slot: slot, byte: UInt8(expert))
            cache.commit(slot: slot, expert: expert, version: 1, fetchedBytes: 100, round: round)
        }
        #expect(cache.lookup(expert: 10, version: 1, round: 4) != nil)   // 10 is now the most recent
        #expect(cache.lookup(expert: 11, version: 2, round: 4) == nil)   // newer version: not a hit
        #expect(cache.cachedVersion(of: 11) == 1)
        // A fourth expert evicts the least recently used unpinned one: 11 (12 is pinned).
        let slot = cache.reserve(expert: 13, pinned: [13, 12])
        cache.commit(slot: slot, expert: 13, version: 1, fetchedBytes: 100, round: 5)
        #expect(cache.cachedVersion(of: 11) == nil)
        #expect(cache.cachedVersion(of: 10) == 1 && cache.cachedVersion(of: 12) == 1)
        #expect(cache.counters == ExpertCache.Counters(hits: 1, misses: 4, evictions: 1, bytesFetched: 400))
    }

    @Test("a slot whose bytes changed fails its checksum and is dropped")
    func checksum() throws {
        let arena = try Arena(capacity: ExpertCache.bytes(layout: layout, slots: 1))
        let cache = try ExpertCache(layout: layout, slots: 1, arena: arena)
        let slot = cache.reserve(expert: 1, pinned: [1])
        cache.commit(slot: slot, expert: 1, version: 3, fetchedBytes: 1, round: 1)
        #expect(cache.withExpert(slot: slot) { $0.count } == 4)
        cache.slotBuffer(slot)[5] ^= 1
        #expect(cache.withExpert(slot: slot) { $0.count } == nil)
        #expect(cache.cachedVersion(of: 1) == nil)
    }
}
