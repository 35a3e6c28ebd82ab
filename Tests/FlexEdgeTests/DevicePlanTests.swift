@testable import FlexEdge
import FlexData
import FlexModel
import FlexTensor
import Testing

@Suite("device memory plan")
struct DevicePlanTests {
    let config = MoEConfig()  // the default mlp-moe: d 60, h 64, f 128, K 10, E 8

    @Test("the runtime carves exactly the planned bytes, component by component")
    func runtimeMatchesPlan() throws {
        let shard = try DataSource.synthetic(client: 3, seed: 1, alpha: 1, beta: 1).load()
        let plan = try DevicePlan.derive(budget: 8 << 20, config: config, storage: .int8Block, update: .int8Block,
                                         samples: shard.train.count + shard.test.count, preferredBatch: 32, maxKc: 3)
        #expect(plan.kc == 3 && plan.batch == 32)
        var random = FlexRandom(seed: 1)
        let runtime = try EdgeRuntime(plan: plan, shard: shard, random: &random)
        #expect(runtime.arena.used == plan.book.total)
        #expect(runtime.arena.ledger.map { $0.component } == plan.book.entries.map { $0.component })
        #expect(runtime.arena.ledger.map { $0.bytes } == plan.book.entries.map { $0.bytes })
        for c in MemoryComponent.allCases { #expect(plan.book.bytes(c) > 0, "\(c.rawValue) is planned") }
        // Training uses only what was carved.
        runtime.workspace.trainer.extractor.initialise(random: &random)
        for e in runtime.workspace.trainer.experts { e.initialise(random: &random) }
        runtime.workspace.trainer.assign([1, 4, 6])
        let report = runtime.device.withSplit(test: false) { x, y in runtime.workspace.trainer.train(features: x, labels: y, random: &random) }
        #expect(report.samples > 0 && runtime.arena.used == plan.book.total)
    }

    @Test("k_c grows with the budget; a tight budget lowers the batch; too small a budget is refused with the need")
    func derivation() throws {
        func derive(_ budget: Int, maxKc: Int? = nil) throws(EdgeError) -> DevicePlan {
            try DevicePlan.derive(budget: budget, config: config, storage: .int8Block, update: .int8Block, samples: 500,
                                  preferredBatch: 32, maxKc: maxKc)
        }
        let one = try derive(DevicePlan.outsideArenaAllowance + DevicePlan.book(config: config, storage: .int8Block, update: .int8Block,
                                                                              kc: 1, warm: 0, batch: 32, samples: 500).total)
        #expect(one.kc == 1 && one.batch == 32 && one.warmSlots == 0)
        let big = try derive(64 << 20)
        #expect(big.kc == config.experts)
        #expect(try derive(64 << 20, maxKc: 2).kc == 2 && (try derive(64 << 20, maxKc: 2).warmSlots) == 2)
        let minimum = DevicePlan.book(config: config, storage: .int8Block, update: .int8Block, kc: 1, warm: 0, batch: 1, samples: 500).total
        let tight = try derive(DevicePlan.outsideArenaAllowance + minimum + 100)
        #expect(tight.kc == 1 && tight.batch < 32)
        #expect(tight.book.total <= tight.budget - DevicePlan.outsideArenaAllowance)
        do {
            _ = try derive(DevicePlan.outsideArenaAllowance + minimum - 64)
            Issue.record("a budget below the minimum was accepted")
        } catch {
            guard case .budgetTooSmall(let needed, _) = error else { Issue.record("wrong error \(error.message)"); return }
            #expect(needed == DevicePlan.outsideArenaAllowance + minimum)
            #expect(error.message.contains("\(needed)"))
        }
    }

    @Test("data sources parse; bad ones say what is wrong")
    func dataSources() throws {
        #expect(try DataSource.parse("synthetic:client=4,seed=9") == .synthetic(client: 4, seed: 9, alpha: 1, beta: 1))
        #expect(try DataSource.parse("synthetic:client=0,alpha=0.5,beta=0") == .synthetic(client: 0, seed: 1, alpha: 0.5, beta: 0))
        #expect(try DataSource.parse("/data/client-3.shard") == .shard(path: "/data/client-3.shard"))
        for bad in ["synthetic:seed=1", "synthetic:client=x", "synthetic:client=1,color=red", "synthetic:client", ""] {
            #expect(throws: EdgeError.self) { _ = try DataSource.parse(bad) }
        }
    }
}
