import FlexEdge
import Foundation
import Testing

@Suite("board profiles")
struct BoardProfileTests {
    /// Boards/NAME.board (read by the build scripts) and the table compiled into flexmoe-edge agree.
    @Test("Boards/*.board files match the compiled-in profiles")
    func filesMatchTable() throws {
        let boards = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Boards")
        let files = try FileManager.default.contentsOfDirectory(atPath: boards.path).filter { $0.hasSuffix(".board") }.sorted()
        #expect(files.count == BoardProfile.all.count)
        for file in files {
            let text = try String(contentsOf: boards.appendingPathComponent(file), encoding: .utf8)
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
            let profile = try #require(BoardProfile.named(fields["name"] ?? ""), "no compiled profile for \(file)")
            #expect(fields["title"] == profile.title)
            #expect(fields["cpu"] == profile.cpu)
            #expect(Int(fields["ram_mib"] ?? "") == profile.ramMiB)
            #expect(Int(fields["default_budget_mib"] ?? "") == profile.defaultBudgetMiB)
            #expect(Int(fields["default_kc"] ?? "") == profile.defaultKc)
        }
    }
}
