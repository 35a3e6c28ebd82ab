import FlexAssign
import FlexModel
import FlexTensor
import FlexWire
import Foundation
import Logging
import Testing
@testable import FlexServer
import FlexServerTesting

/// The round state machine on a fake clock: no sockets, no processes, time is an argument.
@Suite struct RoundStateMachineTests {
    static func config(rounds: Int = 5, deadline: Double = 10, strikes: Int = 2) -> ServerConfig {
        var c = ServerConfig()
        c.inputDim = 4; c.hidden = 4; c.expertHidden = 4; c.classes = 2; c.experts = 3; c.topK = 2
        c.rounds = rounds; c.minClients = 2; c.roundDeadline = deadline; c.maxStrikes = strikes
        return c
    }

    static func machine(_ c: ServerConfig, store: any RoundStore = TransientStore()) throws -> RoundStateMachine {
        try RoundStateMachine(config: c, store: store, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    static func identity(_ i: Int) -> RoundStateMachine.Identity { .init(hash: "hash-\(i)", name: "device-\(i)") }

    /// Registers `n` devices (k_c 2, 10 samples each) and sends their feature statistics (mean 0,
    /// std 1); returns their client ids.
    static func register(_ m: RoundStateMachine, _ n: Int, now: Double = 0) throws -> [Int] {
        try (0..<n).map { i in
            let id = try m.register(identity(i), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host",
                                                                 samples: 10, maxBatch: 8), now: now).clientId
            try sendStats(m, client: id, samples: 10)
            return id
        }
    }

    static func sendStats(_ m: RoundStateMachine, client: Int, samples: Int, mean: Float = 0, std: Float = 1) throws {
        try ReportBuilder.featureStats(samples: samples, features: m.config.inputDim, mean: mean, std: std).withUnsafeBytes { b in
            Result { () throws(ProtocolError) in try m.receiveStats(client: client, body: b, decompressor: ZstdDecompressor()) }
        }.get()
    }

    /// The whole report path a live request takes: frame, ticket, validation, fold.
    @discardableResult
    static func report(_ m: RoundStateMachine, client c: Int, now: Double, builder: inout ReportBuilder) throws -> ReportReceipt {
        let message = m.roundMessage(client: c, now: now)
        let body = builder.report(client: c, samples: 10, round: message.message())
        return try body.withUnsafeBytes { b in
            Result { () throws(ProtocolError) -> ReportReceipt in
                let (fields, ranges) = try ReportValidator.fields(b)
                let ticket = try m.beginReport(client: c, round: message.round)
                let v = try RoundStateMachine.validate(b, fields: fields, containers: ranges, ticket: ticket,
                                                       decompressor: ZstdDecompressor())
                return try m.finishReport(ticket, v, now: now)
            }
        }.get()
    }

    @Test func aRoundOpensWhenEnoughClientsAreActiveAndClosesWhenAllReport() throws {
        let c = Self.config()
        let m = try Self.machine(c)
        var builder = ReportBuilder(config: c.model)
        let ids = try Self.register(m, 1)
        m.tick(now: 0)
        #expect(m.phase == .waiting && m.round == 0, "one client is below min_clients")
        let more = try Self.register(m, 2)
        #expect(more[0] == ids[0], "registering again keeps the id")
        m.tick(now: 1)
        #expect(m.phase == .open && m.round == 1)
        let msg = m.roundMessage(client: more[1], now: 4)
        #expect(msg.assigned.count == 2 && msg.expertVersions == [0, 0])
        #expect(msg.deadlineMilliseconds == 7000, "opened at 1 with a 10 s deadline, asked at 4")
        try Self.report(m, client: more[0], now: 2, builder: &builder)
        #expect(m.phase == .open)
        try Self.report(m, client: more[1], now: 3, builder: &builder)
        #expect(m.phase == .waiting && m.completedRound == 1)
        #expect(m.lastRound?.participants == 2 && m.lastRound?.dropped == [])
        #expect(m.lastRound?.durationSeconds == 2)
        #expect(m.model.extractorVersion == 1)
    }

    @Test func aSharedExpertIsFirstInEveryAssignmentAndOnlyTheRoutedExpertsAreBalanced() throws {
        var c = Self.config()
        c.experts = 5; c.sharedExpert = true; c.minClients = 6
        let m = try Self.machine(c)
        var builder = ReportBuilder(config: c.model)
        // k_c 3 (two routed slots) for five devices, k_c 1 (the shared expert only) for one.
        let kcs = [3, 3, 3, 3, 3, 1], samples = [10, 20, 30, 40, 50, 60]
        var ids: [Int] = []
        for (i, kc) in kcs.enumerated() {
            let reply = try m.register(Self.identity(i), RegisterRequest(memoryBudget: 1 << 24, kc: kc, storage: .int8Block,
                                                                         board: "host", samples: samples[i], maxBatch: 8), now: 0)
            #expect(reply.sharedExpert)
            try Self.sendStats(m, client: reply.clientId, samples: samples[i])
            ids.append(reply.clientId)
        }
        m.tick(now: 0)
        #expect(m.phase == .open)
        for (i, id) in ids.enumerated() {
            let a = try #require(m.assignment[id])
            #expect(a.first == 0, "the shared expert comes first")
            #expect(a.count == kcs[i] && Set(a).count == a.count)
            #expect(a.dropFirst().allSatisfy { $0 >= 1 && $0 < c.experts }, "routed slots hold experts 1..<E")
        }
        #expect(m.assignedLoad[0] == samples.reduce(0, +), "every device's samples load the shared expert")
        let routed = Array(m.assignedLoad.dropFirst())
        let routedTotal: Int = routed.reduce(0, +), twoSlots: Int = 2 * samples.prefix(5).reduce(0, +)
        #expect(routedTotal == twoSlots)
        for id in ids { try Self.report(m, client: id, now: 1, builder: &builder) }
        let record = try #require(m.lastRound)
        let routedCV = FlexAssign.LoadMetrics(load: routed).finiteCV
        #expect(record.loadCV == routedCV, "the round's load CV is the routed experts'")
        #expect(record.loadCV < FlexAssign.LoadMetrics(load: m.loadHistory[0]).finiteCV)
    }

    @Test(arguments: [true, false]) func probesOfUnassignedExpertsGoIntoQOnlyWhenProbingIsOn(probeWarm: Bool) throws {
        var c = Self.config()
        c.probeWarm = probeWarm
        let m = try Self.machine(c)
        var builder = ReportBuilder(config: c.model)
        let ids = try Self.register(m, 2)
        m.tick(now: 0)
        let message = m.roundMessage(client: ids[0], now: 0)
        let unassigned = try #require((0..<c.experts).first { !message.assigned.contains($0) })
        var fields = ReportBuilder.fields(client: ids[0], samples: 10, experts: message.assigned)
        fields.set("probed", String(unassigned))
        fields.set("probed_fitness", "0.9")
        var containers = [builder.delta(kind: .extractorDelta, expert: nil, version: message.extractorVersion)]
        for (i, e) in message.assigned.enumerated() {
            containers.append(builder.delta(kind: .expertDelta, expert: e, version: message.expertVersions[i]))
        }
        let body = ReportFrame.encode(fields: fields, containers: containers)
        try body.withUnsafeBytes { b in
            try Result { () throws(ProtocolError) in
                let (f, r) = try ReportValidator.fields(b)
                let ticket = try m.beginReport(client: ids[0], round: message.round)
                let v = try RoundStateMachine.validate(b, fields: f, containers: r, ticket: ticket, decompressor: ZstdDecompressor())
                _ = try m.finishReport(ticket, v, now: 1)
            }.get()
        }
        #expect(m.planner.fitness.isMeasured(client: ids[0], expert: unassigned) == probeWarm)
        // Folded like a measured pair: β·s + (1 − β)·prior, the prior 0.5 before anything is measured.
        let beta = Float(c.beta)
        if probeWarm { #expect(abs(m.planner.fitness.value(client: ids[0], expert: unassigned)! - (beta * 0.9 + (1 - beta) * 0.5)) < 1e-6) }
    }

    /// The poisoning scenario of issue #13: one device that registered 1,000 samples (honest ones 10)
    /// reports every delta at ±1e6 with the largest usage it may claim. The weight cap (4 × the median
    /// |D_c| = 40) and the training norm bound keep what it can do to the model to its share.
    @Test func onePoisoningDeviceMovesTheModelAtMostByItsShare() throws {
        var c = Self.config()
        c.minClients = 5
        let m = try Self.machine(c)
        var honest = ReportBuilder(config: c.model, dtype: .fp32)
        var ids = try Self.register(m, 4)
        let attacker = try m.register(Self.identity(99), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block,
                                                                        board: "host", samples: 1000, maxBatch: 8), now: 0).clientId
        try Self.sendStats(m, client: attacker, samples: 1000)
        ids.append(attacker)
        // A registration above max_samples is refused with its reason.
        do {
            _ = try m.register(Self.identity(100), RegisterRequest(memoryBudget: 1 << 24, kc: 2, storage: .int8Block, board: "host",
                                                                   samples: c.maxSamples + 1, maxBatch: 8), now: 0)
            Issue.record("a registration above max_samples was accepted")
        } catch { #expect(error.code == "invalid_field") }
        m.tick(now: 0)
        let before = m.model
        for id in ids.dropLast() { try Self.report(m, client: id, now: 1, builder: &honest) }
        // The attacker: ±1e6 everywhere, usage = 1000 samples × 2 epochs (the most it may claim).
        let message = m.roundMessage(client: attacker, now: 1)
        var evil = ReportBuilder(config: c.model, dtype: .fp32)
        var containers = [evil.delta(kind: .extractorDelta, expert: nil, version: message.extractorVersion, value: 1e6)]
        for (i, e) in message.assigned.enumerated() {
            containers.append(evil.delta(kind: .expertDelta, expert: e, version: message.expertVersions[i], value: -1e6))
        }
        let fields = ReportBuilder.fields(client: attacker, samples: 1000, experts: message.assigned,
                                          usage: message.assigned.map { _ in 1000 * c.localEpochs })
        try ReportFrame.encode(fields: fields, containers: containers).withUnsafeBytes { b in
            try Result { () throws(ProtocolError) in
                let (f, r) = try ReportValidator.fields(b)
                let ticket = try m.beginReport(client: attacker, round: message.round)
                let v = try RoundStateMachine.validate(b, fields: f, containers: r, ticket: ticket, decompressor: ZstdDecompressor())
                _ = try m.finishReport(ticket, v, now: 1)
            }.get()
        }
        #expect(m.completedRound == 1)
        // Weight cap 4 × median(10, 10, 10, 10, 1000) = 40 against the honest 4 × 10: a share of 1/2 of
        // the training bound 1.25 · η · T · g / (1 − μ), T = 2 epochs × ⌈40 / 8⌉ steps.
        let bound = 1.25 * c.learningRate * Double(c.localEpochs) * 5 * c.gradientClip / (1 - c.momentum)
        var moved = 0.0
        for (a, b) in zip(m.model.extractor, before.extractor) { moved += Double(a - b) * Double(a - b) }
        #expect(moved.squareRoot() <= 0.5 * bound + 0.1, "the extractor moved by \(moved.squareRoot()), bound \(0.5 * bound)")
        #expect(m.model.extractor.allSatisfy { abs($0) < 100 })
        #expect(m.lastRound?.clippedUpdates ?? 0 >= 1 + message.assigned.count, "the attacker's deltas were clipped")
        // The next round's bound adds 3 × the median norm of round 1's deltas.
        #expect(m.lastMedianNorms.extractor != nil && m.lastMedianNorms.expert != nil)
    }

    @Test func theDeadlineClosesARoundWithStragglersAndStrikesRetireThem() throws {
        let c = Self.config(deadline: 10, strikes: 2)
        let m = try Self.machine(c)
        var builder = ReportBuilder(config: c.model)
        let ids = try Self.register(m, 3)
        m.tick(now: 0)
        #expect(m.round == 1 && m.assignment.count == 3)
        try Self.report(m, client: ids[0], now: 1, builder: &builder)
        try Self.report(m, client: ids[1], now: 2, builder: &builder)
        #expect(m.tick(now: 9.9) == false, "before the deadline nothing changes")
        #expect(m.phase == .open)
        #expect(m.tick(now: 10.0), "at the deadline the round closes and the next opens")
        #expect(m.completedRound == 1 && m.lastRound?.dropped == [ids[2]] && m.lastRound?.participants == 2)
        // One strike: still active, assigned again in round 2; it misses again and is retired.
        #expect(m.round == 2 && m.assignment[ids[2]] != nil)
        try Self.report(m, client: ids[0], now: 11, builder: &builder)
        try Self.report(m, client: ids[1], now: 12, builder: &builder)
        m.tick(now: 20.0)
        #expect(m.completedRound == 2 && !m.active.contains(ids[2]))
        #expect(m.round == 3 && m.assignment[ids[2]] == nil, "a retired client is not assigned")
        // Its next request brings it back for the round after.
        _ = m.roundMessage(client: ids[2], now: 21)
        #expect(m.active.contains(ids[2]))
        try Self.report(m, client: ids[0], now: 22, builder: &builder)
        try Self.report(m, client: ids[1], now: 23, builder: &builder)
        m.tick(now: 24)
        #expect(m.round == 4 && m.assignment[ids[2]] != nil)
    }

    @Test func aReportAfterCloseOrTwiceOrUnassignedIsRefused() throws {
        let c = Self.config()
        let m = try Self.machine(c)
        var builder = ReportBuilder(config: c.model)
        let ids = try Self.register(m, 2)
        m.tick(now: 0)
        try Self.report(m, client: ids[0], now: 1, builder: &builder)
        #expect(throws: ProtocolError.self) { try Self.report(m, client: ids[0], now: 1, builder: &builder) }
        do { _ = try m.beginReport(client: ids[0], round: 1); Issue.record("a duplicate was accepted") } catch {
            #expect(error.status == 409 && error.code == "duplicate")
        }
        m.tick(now: 10)  // deadline: round 1 closes with a straggler, round 2 opens
        do { _ = try m.beginReport(client: ids[1], round: 1); Issue.record("a late report was accepted") } catch {
            #expect(error.code == "round_closed")
        }
        do { _ = try m.beginReport(client: ids[1], round: 7); Issue.record("a future round was accepted") } catch {
            #expect(error.code == "not_assigned")
        }
        // A ticket that is abandoned frees the place; one that outlives its round is refused at the fold.
        let t = try m.beginReport(client: ids[1], round: 2)
        m.abandonReport(t)
        let t2 = try m.beginReport(client: ids[1], round: 2)
        m.tick(now: 20)
        let v = try builder.report(client: ids[1], samples: 10, round: m.roundMessage(client: ids[1], now: 20).message()).withUnsafeBytes { b in
            Result { () throws(ProtocolError) -> ValidatedReport in
                let (f, r) = try ReportValidator.fields(b)
                return try ReportValidator.validate(b, fields: f, containers: r, model: c.model, extractorVersion: nil,
                                                    expertVersions: nil, assigned: nil, limits: .offline, decompressor: ZstdDecompressor())
            }
        }.get()
        do { _ = try m.finishReport(t2, v, now: 20); Issue.record("a report outliving its round was folded") } catch {
            #expect(error.code == "round_closed")
        }
    }

    @Test func aRestartResumesFromThePersistedState() throws {
        let dir = NSTemporaryDirectory() + "flexmoe-machine-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = Self.config()
        c.stateDir = dir
        let store = try StateStore(dir: dir, keep: 3)
        let m = try Self.machine(c, store: store)
        var builder = ReportBuilder(config: c.model)
        let ids = try Self.register(m, 2)
        m.tick(now: 0)
        for id in ids { try Self.report(m, client: id, now: 1, builder: &builder) }
        m.tick(now: 2)
        #expect(m.completedRound == 1 && m.round == 2 && m.phase == .open)

        let restarted = try Self.machine(c, store: try StateStore(dir: dir, keep: 3))
        #expect(restarted.completedRound == 1 && restarted.round == 1 && restarted.phase == .waiting)
        #expect(restarted.model == m.model)
        #expect(Set(restarted.clients.keys) == Set(ids))
        for id in ids {
            for e in 0..<c.experts {
                #expect(restarted.planner.fitness.value(client: id, expert: e) == m.planner.fitness.value(client: id, expert: e))
            }
        }
        // Round 2 is run again from the persisted state; the clients come back with their ids.
        #expect(try Self.register(restarted, 2) == ids)
        restarted.tick(now: 100)
        #expect(restarted.round == 2 && restarted.phase == .open)
        let lines = DurableFile.lines(store.roundsPath)
        #expect(lines.count == 1)
        let record = try RecordJSON.decode(RoundRecord.self, from: Array(lines[0].utf8))
        #expect(record.round == 1 && record.participants == 2)
    }
}
