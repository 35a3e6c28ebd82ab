import ArgumentParser
import FlexAssign
import FlexData
import FlexEdge
import FlexModel
import FlexServer
import FlexServerTesting
import FlexSimulation
import Foundation

/// `flexmoe-server federate`: the README's main job. A real federated training on the embedded
/// default data — one `flexmoe-server serve` process and one `flexmoe-edge run` process per device,
/// talking HTTP over loopback — with progress on the terminal and a summary table at the end.
struct FederateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federate",
        abstract: "Run FLEX-MoE end to end over loopback: a server process plus one flexmoe-edge process per device.")

    @Option(help: "Devices (flexmoe-edge processes), each Synthetic(1,1) device N of the seed.") var devices = 32
    @Option(help: "LEAF Synthetic(α, β) heterogeneity: α spreads the devices' label models, β their feature distributions.")
    var alpha = 1.0
    @Option(help: "See --alpha.") var beta = 1.0
    @Option(help: "Samples per device at most (the generator's sizes are lognormal; one huge device would carry its experts' load alone).")
    var maxSamples = 300
    @Option(help: "Rounds of training.") var rounds = 20
    @Option(help: "Experts E in the global model.") var experts = 8
    @Option(help: "Boards of the devices: mixed (device i is board i mod 4: Pi Zero 2 W, 3B, 4B, 5, so k_c differs) or one board name.")
    var boards = "mixed"
    @Option(help: "Most experts a device holds (default: its board's k_c, capped at E).") var kc: Int?
    @Flag(help: "Skip the closing comparison with greedy assignment (simulated in process on the same devices).")
    var noGreedyComparison = false
    @Option(help: "Local epochs per round.") var localEpochs = TrainingOptions.federated.epochs
    @Option(help: "Assignment strategy of the server.") var solver = SolverKind.flex
    @Option(help: "Seed of the data and the model.") var seed = 1
    @Option(help: "Where to keep the state, logs and results (default: a new temporary directory).") var out: String?
    @Option(help: "The flexmoe-edge binary (default: next to this program).") var edge: String?

    func run() throws {
        let started = Date()
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let edgeBinary = edge ?? me.deletingLastPathComponent().appendingPathComponent("flexmoe-edge").path
        guard FileManager.default.isExecutableFile(atPath: edgeBinary) else {
            throw ValidationError("no flexmoe-edge at \(edgeBinary); build it (swift build) or pass --edge PATH")
        }
        guard devices >= 1, devices <= 256, rounds >= 1, experts >= 1, (kc ?? 1) >= 1, seed >= 0, maxSamples >= 10 else {
            throw ValidationError("need 1 ≤ devices ≤ 256, rounds ≥ 1, experts ≥ 1, kc ≥ 1, seed ≥ 0, max-samples ≥ 10")
        }
        let fleet: [BoardProfile]
        if boards == "mixed" { fleet = BoardProfile.all } else if let b = BoardProfile.named(boards) { fleet = [b] } else {
            throw ValidationError("--boards mixed or one of \(BoardProfile.all.map(\.name).joined(separator: ", "))")
        }
        let board = { (i: Int) in fleet[i % fleet.count] }
        let deviceKc = { (i: Int) in min(kc ?? board(i).defaultKc, board(i).defaultKc, experts) }
        let dir = out ?? NSTemporaryDirectory() + "flexmoe-federate-\(getpid())"
        let state = dir + "/state"
        if FileManager.default.fileExists(atPath: state + "/tokens") {
            // A previous federate run in the same directory: its state would collide (tokens, rounds).
            print("replacing the previous run's state in \(state)")
            try FileManager.default.removeItem(atPath: state)
        }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)

        // Server config and device tokens.
        var config = ServerConfig()
        config.rounds = rounds; config.minClients = devices; config.experts = experts; config.roundDeadline = 60
        config.localEpochs = localEpochs; config.solver = solver; config.seed = UInt64(seed); config.stateDir = state; config.port = 0
        let configPath = dir + "/server.json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(config).write(to: URL(fileURLWithPath: configPath))
        var tokens: [String] = []
        for i in 0..<devices { tokens.append(try TokenFile.enroll(name: "device-\(i)", path: state + "/tokens")) }

        let kcs = (0..<devices).map(deviceKc)
        print("FlexMoE federate: \(devices) flexmoe-edge processes + 1 server over loopback, \(rounds) rounds, E = \(experts), "
              + "boards \(boards) (k_c \(Set(kcs).sorted().map(String.init).joined(separator: "/"))), solver \(solver.rawValue); logs in \(dir)")
        let server = try ServerProcess(executable: me.path, arguments: ["serve", "--config", configPath, "--exit-on-stdin-eof"],
                                       stateDir: state, logPath: dir + "/server.log")
        var edges: [Process] = []
        defer {
            for p in edges where p.isRunning { p.terminate() }
            server.stop()
        }
        for i in 0..<devices {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: edgeBinary)
            p.arguments = ["run", "--server", "http://127.0.0.1:\(server.port)", "--data", dataSpec(i),
                           "--kc", String(kcs[i]), "--board", board(i).name, "--seed", String(seed)]
            var env = ProcessInfo.processInfo.environment
            env["FLEXMOE_TOKEN"] = tokens[i]
            p.environment = env
            FileManager.default.createFile(atPath: dir + "/edge-\(i).log", contents: nil)
            let log = FileHandle(forWritingAtPath: dir + "/edge-\(i).log")!
            p.standardOutput = log
            p.standardError = log
            try p.run()
            edges.append(p)
        }

        // Progress from the server's /v1/status until training finishes or every device has stopped.
        let status = ProtocolClient(port: server.port, timeout: 10)
        let tty = isatty(STDOUT_FILENO) != 0
        var lastPrinted = -1
        var finished = false
        while !finished {
            Thread.sleep(forTimeInterval: 0.25)
            guard let r = try? status.request("GET", "/v1/status"),
                  let s = try? RecordJSON.decode(ServerStatus.self, from: r.body) else {
                status.disconnect()
                if !server.process.isRunning { throw ValidationError("the server stopped; see \(dir)/server.log") }
                continue
            }
            finished = s.state == "finished"
            if tty || s.completedRound != lastPrinted {
                let acc = s.lastRound?.meanPreTestAccuracy.map { String(format: "%.3f", $0) } ?? "-"
                let cv = s.lastRound.map { String(format: "%.4f", $0.loadCV) } ?? "-"
                let line = String(format: "round %d/%d  %@  reported %d/%d  clients %d  last: model acc %@  load CV %@  %.0f s",
                                  s.round, rounds, s.state, s.reported, s.assigned, s.clients, acc, cv,
                                  Date().timeIntervalSince(started))
                if tty { print("\r" + line + "   ", terminator: "") ; fflush(nil) } else if s.completedRound != lastPrinted { print(line) }
                lastPrinted = s.completedRound
            }
            if edges.allSatisfy({ !$0.isRunning }) && !finished {
                throw ValidationError("every flexmoe-edge process stopped before training finished; see \(dir)/edge-*.log")
            }
        }
        if tty { print("") }
        for p in edges { p.waitUntilExit() }
        try printSummary(state: state, started: started, dir: dir)
        if !noGreedyComparison && solver != .greedy { try compareWithGreedy(config: config, kcs: kcs) }
    }

    /// Device i's data: Synthetic(α, β) device i of the seed, capped at `maxSamples`.
    func dataSpec(_ i: Int) -> String { "synthetic:client=\(i),seed=\(seed),alpha=\(alpha),beta=\(beta),max=\(maxSamples)" }

    /// One closing line: greedy assignment on the same devices and settings, run by the in-process
    /// simulator (the same device and server code; `LiveAgreementTests` holds the two together).
    func compareWithGreedy(config: ServerConfig, kcs: [Int]) throws {
        var settings = SimulationSettings()
        settings.experts = config.experts
        settings.rounds = config.rounds
        settings.localEpochs = config.localEpochs
        settings.strategies = [.greedy]
        settings.seeds = [UInt64(seed)]
        var simulated: [Simulation.Device] = []
        for i in 0..<devices {
            let shard: ClientShard
            do { shard = try DataSource.parse(dataSpec(i)).load() } catch { throw ValidationError("device \(i): \(error.message)") }
            simulated.append(Simulation.Device(train: DatasetBox(shard.train.subset(Array(0..<shard.train.count))),
                                               test: DatasetBox(shard.test.subset(Array(0..<shard.test.count))), kc: kcs[i]))
        }
        let rows = try Simulation(settings: settings, devices: simulated).run()
        let cv = rows.map(\.cv).reduce(0, +) / Double(max(rows.count, 1))
        print(String(format: "greedy on the same devices and settings (in-process simulator, same code): model accuracy %.3f  local accuracy %.3f  mean load CV %.4f",
                     rows.last?.preTestAccuracy ?? 0, rows.last?.testAccuracy ?? 0, cv))
    }

    /// The per-round table and the final line, from the server's round log.
    func printSummary(state: String, started: Date, dir: String) throws {
        let rows = try DurableFile.lines(state + "/rounds.log").map { try RecordJSON.decode(RoundRecord.self, from: Array($0.utf8)) }
        print("")
        print("round  devices  model acc  local acc  train loss  load CV  max/mean  bytes/client  round s")
        var bytesPerClient: [Double] = []
        for row in rows {
            let n = max(row.participants, 1)
            let bytes = Double(row.bytesIn + row.bytesOut) / Double(n)
            bytesPerClient.append(bytes)
            /// An accuracy right-aligned in the 9 columns of its header.
            func cell(_ x: Double?) -> String {
                let text = x.map { String(format: "%.3f", $0) } ?? "-"
                return String(repeating: " ", count: max(0, 9 - text.count)) + text
            }
            print(String(format: "%5d  %7d  %@  %@  %10.4f  %7.4f  %8.3f  %12.0f  %7.2f", row.round, n,
                         cell(row.meanPreTestAccuracy), cell(row.meanTestAccuracy),
                         row.meanLoss, row.loadCV, row.maxOverMean, bytes, row.durationSeconds))
        }
        let accuracy = rows.last?.meanTestAccuracy.map { String(format: "%.3f", $0) } ?? "-"
        let modelAccuracy = rows.last?.meanPreTestAccuracy.map { String(format: "%.3f", $0) } ?? "-"
        let meanBytes = bytesPerClient.reduce(0, +) / Double(max(bytesPerClient.count, 1))
        print("")
        print("model acc: held-out accuracy of the downloaded model with the device's gate, before local training;"
              + " local acc: after it (mean over devices)")
        print(String(format: "final: model accuracy %@  local accuracy %@  mean load CV %.4f  bytes per client per round %.0f (%.1f KiB)  %d rounds in %.1f s",
                     modelAccuracy, accuracy, rows.map(\.loadCV).reduce(0, +) / Double(max(rows.count, 1)), meanBytes, meanBytes / 1024,
                     rows.count, Date().timeIntervalSince(started)))
        print("state, server and device logs: \(dir)")
    }
}

extension SolverKind: ExpressibleByArgument {}
