import FlexData
import FlexModel
import FlexTensor
import FlexWire

/// A board's whole runtime, carved from one arena in the order of its `DevicePlan`: the round
/// workspace (trainer, network buffers, zstd contexts) and the device's own state (gate, expert
/// cache, local data). After `init` nothing large is allocated again.
public final class EdgeRuntime {
    public let plan: DevicePlan
    public let arena: Arena
    public let workspace: RoundWorkspace
    public let device: DeviceState

    public init(plan: DevicePlan, shard: borrowing ClientShard, random: inout FlexRandom,
                gateInit: GateInit = .random) throws(EdgeError) {
        self.plan = plan
        let arena: Arena
        do throws(ArenaError) { arena = try Arena(capacity: plan.book.total) } catch { throw .arena(error) }
        self.arena = arena
        workspace = try RoundWorkspace(plan: plan, arena: arena)
        device = try DeviceState(plan: plan, train: shard.train, test: shard.test, arena: arena, random: &random,
                                 gateInit: gateInit)
    }
}
