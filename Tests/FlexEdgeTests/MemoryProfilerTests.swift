@testable import FlexEdge
import FlexModel
import FlexTensor
import Foundation
import Testing

@Suite("memory profiler")
struct MemoryProfilerTests {
    func options(budget: Int = 48 << 20, config: MoEConfig = MoEConfig(), data: DataSource = .synthetic(client: 0, seed: 1, alpha: 1, beta: 1)) -> ProfileOptions {
        ProfileOptions(budget: budget, config: config, storage: .int8Block, update: .int8Block, data: data, maxKc: 2, batch: 32, seed: 1)
    }

    @Test("the table's planned bytes add up to the arena's, and nothing is used beyond its plan")
    func accounting() throws {
        let profile = try MemoryProfiler.run(options())
        #expect(profile.rows.reduce(0) { $0 + $1.planned } == profile.arenaUsed)
        #expect(profile.arenaUsed == profile.arenaCapacity && profile.arenaUsed == profile.plan.book.total)
        for row in profile.rows {
            #expect(row.peak <= row.planned, "\(row.name) uses \(row.peak) of \(row.planned)")
        }
        #expect(profile.rows.filter { $0.name.hasPrefix("expert cache slot") }.count == profile.plan.kc + profile.plan.warmSlots)
        #expect(profile.reportBytes > 0 && profile.trainingLoss.isFinite)
    }

    @Test("a budget below the minimum is refused with what is needed")
    func outOfBudget() {
        do {
            _ = try MemoryProfiler.run(options(budget: 2 << 20))
            Issue.record("a 2 MiB budget was accepted")
        } catch {
            #expect(error.message.contains("cannot hold the minimum configuration"))
        }
    }

    /// In a fresh process (the flexmoe-memprof binary), the predicted peak RSS — RSS before the arena
    /// plus the arena — is within 5% of the measured VmHWM.
    @Test("the planner's prediction is within 5% of the measured peak RSS")
    func predictionWithinFivePercent() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = root.appendingPathComponent(".build/debug/flexmoe-memprof")
        try #require(FileManager.default.fileExists(atPath: binary.path), "build flexmoe-memprof first (swift build)")
        for args in [["--board", "pi-zero-2w"], ["--board", "pi-3b", "--d", "784", "--h", "128", "--f", "256", "--classes", "47", "--experts", "64"]] {
            let process = Process()
            process.executableURL = binary
            process.arguments = args + ["--json"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let predicted = try #require(json["predicted_peak_rss"] as? Int)
            let measured = try #require((json["peak_rss"] as? [Int])?.last)
            let error = abs(Double(measured - predicted)) / Double(predicted)
            #expect(error <= 0.05, "\(args): predicted \(predicted), measured \(measured)")
            let components = try #require(json["components"] as? [[String: Any]])
            #expect(components.reduce(0) { $0 + ($1["planned"] as? Int ?? 0) } == json["arena_used"] as? Int)
        }
    }
}
