import CFlexSystem
import FlexEdge
import FlexModel
import FlexTensor

/// flexmoe-memprof: where every byte of a device's memory budget goes. Embedded-clean (hand-parsed
/// argv), so the same binary runs on the boards.
let usage = """
    usage: flexmoe-memprof [--board NAME | --memory-budget SIZE] [--storage DTYPE] [--update DTYPE]
                           [--data SOURCE] [--kc N] [--batch N]
                           [--d N] [--h N] [--f N] [--classes N] [--experts N] [--topk N]
                           [--json] [--svg FILE] [--no-round]

    Plans the device's memory for a board profile or an explicit budget, runs one real local round
    (decode a model from containers, train on the local data, encode the deltas) in the planned
    arena, and prints per component the planned bytes, the bytes in use per phase, and the process
    peak RSS (VmHWM) with what the arena does not explain. Then a what-if table: the largest k_c and
    batch per budget (16 MiB to 512 MiB) and storage dtype for the model shape, and which board
    profiles cannot hold their default k_c.

      --board NAME          pi-zero-2w (default) | pi-3b | pi-4b | pi-5: budget and k_c of the board
      --memory-budget SIZE  explicit budget, e.g. 48MiB (overrides the board's)
      --storage DTYPE       expert storage: int8 (default), int8-row, fp16, fp32
      --update DTYPE        dtype of the uploaded deltas (default int8)
      --data SOURCE         synthetic:client=N,seed=S (default synthetic:client=0,seed=1) or a shard file
      --kc N                most experts to hold (default: the board's k_c)
      --batch N             preferred batch (default 32)
      --d/--h/--f/--classes/--experts/--topk   model shape (default 60/64/128/10/8/2, mlp-moe)
      --json                one JSON object instead of tables
      --svg FILE            stacked bars of bytes in use, per phase and component
      --no-round            only the plan and the what-if table
    """

func main() -> Int32 {
    let args = Console.arguments()
    if args.contains("--help") || args.contains("-h") || args.first == "help" {
        Console.out(usage)
        return 0
    }
    do throws(EdgeError) {
        let o = try MemprofOptions.parse(args)
        if o.jsonOutput { return runJSON(o) }
        return try runTables(o)
    } catch {
        Console.error(error.message, program: "flexmoe-memprof")
        if case .usage = error { Console.error("see `flexmoe-memprof --help`", program: "flexmoe-memprof") }
        return 2
    }
}

csys_exit(main())
