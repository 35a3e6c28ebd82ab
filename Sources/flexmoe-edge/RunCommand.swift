import CFlexSystem
import FlexEdge
import FlexTensor

/// `flexmoe-edge run ...`: hand-parsed flags (Embedded Swift has no argument parser), each error
/// naming the flag and what it wants.
enum RunCommand {
    static let usage = """
        usage: flexmoe-edge run --server URL --token TOKEN --data PATH|synthetic:client=N,seed=S
                                [--memory-budget SIZE] [--board NAME] [--storage int8|fp16|fp32]
                                [--kc N] [--rounds N] [--timeout SECONDS] [--seed S]

          --server URL          the flexmoe-server, http://HOST:PORT
          --token TOKEN         this device's token (flexmoe-server enroll NAME); or env FLEXMOE_TOKEN
          --data SOURCE         a shard file from `flexmoe-server partition`, or the embedded
                                synthetic data: synthetic:client=N,seed=S[,alpha=A,beta=B,max=M]
          --memory-budget SIZE  bytes the runtime may use, e.g. 48MiB (default: the board's)
          --board NAME          pi-zero-2w | pi-3b | pi-4b | pi-5 (default: pi-zero-2w's budget)
          --storage DTYPE       how cached experts are stored: int8 (default), int8-row, fp16, fp32
          --kc N                most experts to hold (default: the board's k_c; fewer if the
                                budget cannot hold them)
          --rounds N            stop after N trained rounds (default: until the server finishes)
          --timeout SECONDS     per-request timeout (default 30)
          --seed S              seed of the gate initialisation and stochastic rounding (default 1)

        One log line per round: round, experts held, cache hits/misses, bytes up/down, local loss
        and accuracy, fitness reported. SIGTERM/SIGINT stop it cleanly between steps.
        """

    static func run(_ args: [String]) -> Int32 {
        if args.contains("--help") || args.contains("-h") {
            Console.out(usage)
            return 0
        }
        do throws(EdgeError) {
            let options = try parse(args)
            let agent = try EdgeAgent(options: options) { Console.out($0) }
            try agent.run()
            return 0
        } catch {
            Console.error(error.message)
            if case .usage = error { Console.error("see `flexmoe-edge run --help`") }
            return 2
        }
    }

    static func parse(_ args: [String]) throws(EdgeError) -> AgentOptions {
        let values = try FlagValues(args, known: ["--server", "--token", "--data", "--memory-budget", "--board", "--storage",
                                                   "--rounds", "--timeout", "--seed", "--kc"])
        guard let serverText = values["--server"] else { throw .usage("--server URL is required") }
        let server = try ServerAddress.parse(serverText)
        var token = values["--token"] ?? ""
        if token.isEmpty, let env = csys_getenv("FLEXMOE_TOKEN") { token = String(cString: env) }
        if token.isEmpty { throw .usage("--token is required (or set FLEXMOE_TOKEN)") }
        guard let dataText = values["--data"] else { throw .usage("--data is required") }
        let data = try DataSource.parse(dataText)
        let boardName = values["--board"] ?? "pi-zero-2w"
        guard let board = BoardProfile.named(boardName) else {
            throw .usage("unknown board '\(boardName)' (pi-zero-2w, pi-3b, pi-4b, pi-5)")
        }
        var budget = board.defaultBudgetBytes
        if let text = values["--memory-budget"] {
            guard let b = Format.parseBytes(text), b > 0 else { throw .usage("--memory-budget: '\(text)' is not a size like 48MiB") }
            budget = b
        }
        let storageName = values["--storage"] ?? "int8"
        guard let storage = DType.named(storageName) else { throw .usage("--storage: '\(storageName)' (int8, int8-row, fp16, fp32)") }
        var rounds: Int?
        if let text = values["--rounds"] {
            guard let r = Int(text), r > 0 else { throw .usage("--rounds: '\(text)' is not a positive number") }
            rounds = r
        }
        var options = AgentOptions(server: server, token: token, data: data, memoryBudget: budget, board: board.name,
                                   storage: storage, rounds: rounds)
        options.maxKc = board.defaultKc
        if let text = values["--kc"] {
            guard let k = Int(text), k > 0 else { throw .usage("--kc: '\(text)' is not a positive number") }
            options.maxKc = k
        }
        if let text = values["--timeout"] {
            guard let t = Format.parseReal(text), t >= 1, t <= 600 else { throw .usage("--timeout: 1 to 600 seconds") }
            options.timeoutMilliseconds = Int32(t * 1000)
        }
        if let text = values["--seed"] {
            guard let s = UInt64(text) else { throw .usage("--seed: '\(text)' is not a number") }
            options.seed = s
        }
        return options
    }
}
