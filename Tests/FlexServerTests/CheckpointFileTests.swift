import FlexModel
import FlexServer
import FlexWire
import Testing

/// GlobalModel's checkpoints are `CheckpointFrame`s, and damaged ones are refused with messages
/// that say what is wrong.
@Suite struct CheckpointFileTests {
    let cfg = MoEConfig(inputDim: 5, hidden: 4, expertHidden: 6, classes: 3, experts: 2)

    @Test func checkpointIsAFrameOfTheModelsContainers() throws {
        let m = GlobalModel.initial(config: cfg, seed: 2)
        let bytes = m.checkpoint(round: 12)
        let (round, parts) = try bytes.withUnsafeBytes { try CheckpointFrame.parse($0) }
        #expect(round == 12 && parts.count == 3)
        #expect(Array(bytes[parts[0]]) == m.extractorContainer(dtype: .fp32))
        #expect(Array(bytes[parts[2]]) == m.expertContainer(1, dtype: .fp32))
    }

    func message(_ body: () throws -> Void) -> String? {
        do { try body() } catch let e as ServerError { return "\(e)" } catch { return "other: \(error)" }
        return nil
    }

    @Test func damagedCheckpointsAreRefusedByName() throws {
        let bytes = GlobalModel.initial(config: cfg, seed: 2).checkpoint(round: 1)
        var bad = bytes
        bad[0] = 0
        #expect(message { _ = try GlobalModel.load(checkpoint: bad, config: cfg) }?.contains("bad magic") == true)
        #expect(message { _ = try OfflineAggregation.config(ofCheckpoint: bad) }?.contains("bad magic") == true)
        #expect(message { _ = try GlobalModel.load(checkpoint: bytes + [0], config: cfg) }?.contains("trailing bytes") == true)
        for length in [0, 10, 20, 30, bytes.count - 1] {
            let cut = Array(bytes[0..<length])
            #expect(message { _ = try GlobalModel.load(checkpoint: cut, config: cfg) }?.contains("truncated") == true)
            #expect(message { _ = try OfflineAggregation.config(ofCheckpoint: cut) }?.contains("truncated") == true)
        }
        let other = MoEConfig(inputDim: 5, hidden: 4, expertHidden: 6, classes: 3, experts: 3)
        #expect(message { _ = try GlobalModel.load(checkpoint: bytes, config: other) }?.contains("3 parts, the model has 4") == true)
        #expect(try OfflineAggregation.config(ofCheckpoint: bytes) == cfg)
    }
}
