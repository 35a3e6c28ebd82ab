import FlexTestSupport
import FlexWire
import Testing

/// Rewrites the golden fixtures in Fixtures/ from `Golden`. Not part of a normal test run: only with
/// `FLEXMOE_WRITE_FIXTURES=1` (docs/FORMAT.md, "Golden fixtures").
@Suite("golden fixture generator")
struct FixtureGenerator {
    @Test("write FlexWire fixtures", .enabled(if: HexFixture.writeRequested))
    func write() throws {
        for c in Golden.containers {
            try HexFixture.write(try Golden.encode(c), name: c.name, comment: c.comment, besides: #filePath)
        }
        let report = ReportFrame.encode(fields: Golden.reportFields,
                                        containers: try Golden.reportContainers.map { try Golden.encode($0) })
        try HexFixture.write(report, name: "report", comment:
            "ReportFrame v1: fields client_id=3, round=7, samples=12; containers: "
            + Golden.reportContainers.map(\.name).joined(separator: ", "), besides: #filePath)
        let checkpoint = CheckpointFrame.encode(round: Golden.checkpointRound, parts: try Golden.checkpointParts())
        try HexFixture.write(checkpoint, name: "checkpoint", comment:
            "CheckpointFrame v1: round 7; parts: extractorWeights fp32 stored (W1 2x3, b1 1x3, version 5), "
            + "expertWeights fp32 stored (expert 0: A1 3x2, a1 1x2, A2 2x2, a2 1x2, version 6)", besides: #filePath)
    }
}
