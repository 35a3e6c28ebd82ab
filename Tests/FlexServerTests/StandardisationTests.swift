import FlexModel
import FlexTensor
import FlexWire
import Foundation
import Logging
import Testing
@testable import FlexServer
import FlexServerTesting

/// Federated standardisation (docs/PROTOCOL.md `POST /v1/stats`): pooling, freezing, limits, persistence.
@Suite struct StandardisationTests {
    typealias M = RoundStateMachineTests

    @Test func poolingDevicesEqualsTheStatisticsOfAllTheirSamples() {
        var random = FlexRandom(seed: 3)
        let d = 4
        let parts = [7, 1, 30, 12].map { n in (0..<n).map { _ in (0..<d).map { j in Float(j * 100) + 50 * Float(random.nextGaussian()) } } }
        var pool = FeatureStatsPool(features: d)
        for rows in parts {
            let n = Double(rows.count)
            var mean = [Float](repeating: 0, count: d), std = [Float](repeating: 0, count: d)
            for j in 0..<d {
                let m = rows.reduce(0.0) { $0 + Double($1[j]) } / n
                let v = rows.reduce(0.0) { $0 + (Double($1[j]) - m) * (Double($1[j]) - m) } / n
                mean[j] = Float(m); std[j] = Float(v.squareRoot())
            }
            pool.add(count: n, mean: mean, std: std)
        }
        let all = parts.flatMap { $0 }
        let normalization = pool.normalization()
        #expect(normalization.samples == all.count && normalization.devices == parts.count)
        for j in 0..<d {
            let m = all.reduce(0.0) { $0 + Double($1[j]) } / Double(all.count)
            let s = (all.reduce(0.0) { $0 + (Double($1[j]) - m) * (Double($1[j]) - m) } / Double(all.count)).squareRoot()
            #expect(abs(Double(normalization.mean[j]) - m) < 1e-3 * max(1, abs(m)))
            #expect(abs(Double(normalization.std[j]) - s) < 1e-4 * s)
        }
        // A constant feature is left at scale 1.
        var constant = FeatureStatsPool(features: 1)
        constant.add(count: 5, mean: [3], std: [0])
        #expect(constant.normalization().std == [1] && constant.normalization().mean == [3])
    }

    @Test func theFirstRoundWaitsForStatisticsAndFreezesThem() throws {
        let m = try M.machine(M.config())
        var ids: [Int] = []
        for i in 0..<2 {
            ids.append(try m.register(M.identity(i), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host",
                                                                      samples: 10, maxBatch: 8), now: 0).clientId)
        }
        m.tick(now: 1)
        #expect(m.phase == .waiting && !m.roundMessage(client: ids[0], now: 1).normalizationReady, "no statistics yet")
        do { _ = try m.normalizationContainer(); Issue.record("a normalization before any statistics") } catch {
            #expect(error.status == 503)
        }
        try M.sendStats(m, client: ids[0], samples: 10, mean: 2, std: 1)
        try M.sendStats(m, client: ids[0], samples: 4, mean: 100, std: 9)  // a second copy is ignored
        m.tick(now: 2)
        #expect(m.phase == .waiting, "one device's statistics of two")
        try M.sendStats(m, client: ids[1], samples: 10, mean: 4, std: 1)
        m.tick(now: 3)
        #expect(m.phase == .open && m.roundMessage(client: ids[1], now: 3).normalizationReady)
        let n = try #require(m.normalization)
        #expect(n.devices == 2 && n.samples == 20)
        #expect(n.mean.allSatisfy { $0 == 3 } && n.std.allSatisfy { abs($0 - Float(2).squareRoot()) < 1e-6 })
        // Frozen: later statistics change nothing.
        try M.sendStats(m, client: ids[1], samples: 10, mean: 50, std: 1)
        #expect(m.normalization == n)
        let container = try m.normalizationContainer()
        let decoded = try GlobalModel.decode(container, shapes: [Shape(rows: 2, cols: m.config.inputDim)], kinds: [.normalization],
                                             decompressor: ZstdDecompressor())
        #expect(decoded.values == n.mean + n.std)
    }

    @Test func statisticsOutsideTheLimitsAreRefused() throws {
        let m = try M.machine(M.config())
        let id = try m.register(M.identity(0), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host",
                                                                samples: 10, maxBatch: 8), now: 0).clientId
        func refused(_ body: [UInt8]) -> ProtocolError? {
            do {
                try body.withUnsafeBytes { b in
                    Result { () throws(ProtocolError) in try m.receiveStats(client: id, body: b, decompressor: ZstdDecompressor()) }
                }.get()
                return nil
            } catch let e as ProtocolError { return e } catch { return nil }
        }
        let d = m.config.inputDim
        #expect(refused(ReportBuilder.featureStats(samples: 11, features: d))?.status == 422, "more samples than registered")
        #expect(refused(ReportBuilder.featureStats(samples: 0, features: d))?.status == 422)
        #expect(refused(ReportBuilder.featureStats(samples: 5, features: d, std: -1))?.status == 422)
        #expect(refused(ReportBuilder.featureStats(samples: 5, features: d, mean: 2e6))?.status == 422, "magnitude above 1e6")
        #expect(refused(ReportBuilder.featureStats(samples: 5, features: d + 1))?.status == 422, "wrong shape")
        #expect(refused(ReportBuilder.featureStats(samples: 5, features: d)) == nil)
    }

    @Test func aVersionOneDeviceIsToldToUpgrade() throws {
        let m = try M.machine(M.config())
        do {
            _ = try m.register(M.identity(0), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host",
                                                              samples: 10, maxBatch: 8, protocolVersion: 1), now: 0)
            Issue.record("a protocol-1 device was registered")
        } catch {
            #expect(error.status == 426 && error.message.contains("update flexmoe-edge"))
        }
        #expect(m.clients.isEmpty)
    }

    @Test func theNormalizationSurvivesARestartAndCanBeTurnedOff() throws {
        let dir = NSTemporaryDirectory() + "flexmoe-normalization-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = M.config()
        let m = try M.machine(c, store: try StateStore(dir: dir, keep: 2))
        _ = try M.register(m, 2)
        m.tick(now: 0)
        let frozen = try #require(m.normalization)
        let restarted = try M.machine(c, store: try StateStore(dir: dir, keep: 2))
        #expect(restarted.normalization == frozen)

        var off = c
        off.standardizeInputs = false
        let plain = try M.machine(off)
        for i in 0..<2 {
            _ = try plain.register(M.identity(i), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host",
                                                                  samples: 10, maxBatch: 8), now: 0)
        }
        plain.tick(now: 1)
        #expect(plain.phase == .open, "no statistics are awaited")
        #expect(plain.normalization?.mean.allSatisfy { $0 == 0 } == true && plain.normalization?.std.allSatisfy { $0 == 1 } == true)
    }
}
