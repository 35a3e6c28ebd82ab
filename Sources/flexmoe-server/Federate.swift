import ArgumentParser
import FlexAssign
import FlexModel
import FlexServer
import FlexServerTesting
import Foundation

/// `flexmoe-server federate`: the README's main job. A real federated training on the embedded
/// default data — one `flexmoe-server serve` process and one `flexmoe-edge run` process per device,
/// talking HTTP over loopback — with progress on the terminal and a summary table at the end.
struct FederateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federate",
        abstract: "Run FLEX-MoE end to end over loopback: a server process plus one flexmoe-edge process per device.")

    @Option(help: "Devices (flexmoe-edge processes), each Synthetic(1,1) device N of the seed.") var devices = 16
    @Option(help: "Rounds of training.") var rounds = 20
    @Option(help: "Experts E in the global model.") var experts = 8
    @Option(help: "Experts each device holds (k_c).") var kc = 2
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
        guard devices >= 1, devices <= 256, rounds >= 1, experts >= 1, kc >= 1, kc <= experts, seed >= 0 else {
            throw ValidationError("need 1 ≤ devices ≤ 256, rounds ≥ 1, 1 ≤ kc ≤ experts, seed ≥ 0")
        }
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

        print("FlexMoE federate: \(devices) flexmoe-edge processes + 1 server over loopback, \(rounds) rounds, E = \(experts), k_c = \(kc), solver \(solver.rawValue); logs in \(dir)")
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
            p.arguments = ["run", "--server", "http://127.0.0.1:\(server.port)", "--data", "synthetic:client=\(i),seed=\(seed)",
                           "--kc", String(kc), "--board", "pi-zero-2w", "--seed", String(seed &+ i)]
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
                  let s = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else {
                status.disconnect()
                if !server.process.isRunning { throw ValidationError("the server stopped; see \(dir)/server.log") }
                continue
            }
            let done = s["completed_round"] as? Int ?? 0
            finished = (s["state"] as? String) == "finished"
            if tty || done != lastPrinted {
                let last = s["last_round"] as? [String: Any] ?? [:]
                let acc = (last["mean_test_accuracy"] as? Double).map { String(format: "%.3f", $0) } ?? "-"
                let cv = (last["load_cv"] as? Double).map { String(format: "%.4f", $0) } ?? "-"
                let line = String(format: "round %d/%d  %@  reported %d/%d  clients %d  last: test acc %@  load CV %@  %.0f s",
                                  s["round"] as? Int ?? 0, rounds, s["state"] as? String ?? "?", s["reported"] as? Int ?? 0,
                                  s["assigned"] as? Int ?? 0, s["clients"] as? Int ?? 0, acc, cv, Date().timeIntervalSince(started))
                if tty { print("\r" + line + "   ", terminator: "") ; fflush(nil) } else if done != lastPrinted { print(line) }
                lastPrinted = done
            }
            if edges.allSatisfy({ !$0.isRunning }) && !finished {
                throw ValidationError("every flexmoe-edge process stopped before training finished; see \(dir)/edge-*.log")
            }
        }
        if tty { print("") }
        for p in edges { p.waitUntilExit() }
        try printSummary(state: state, started: started, dir: dir)
    }

    /// The per-round table and the final line, from the server's round log.
    func printSummary(state: String, started: Date, dir: String) throws {
        let text = try String(contentsOfFile: state + "/rounds.log", encoding: .utf8)
        let rows = text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        print("")
        print("round  devices  test acc  train loss  load CV  max/mean  bytes/client  round s")
        var bytesPerClient: [Double] = []
        var cvs: [Double] = []
        for row in rows {
            let n = max(row["participants"] as? Int ?? 0, 1)
            let bytes = Double((row["bytes_in"] as? Int ?? 0) + (row["bytes_out"] as? Int ?? 0)) / Double(n)
            bytesPerClient.append(bytes)
            let cv = row["load_cv"] as? Double ?? 0
            cvs.append(cv)
            print(String(format: "%5d  %7d  %8@  %10.4f  %7.4f  %8.3f  %12.0f  %7.2f", row["round"] as? Int ?? 0, n,
                         (row["mean_test_accuracy"] as? Double).map { String(format: "%.3f", $0) } ?? "-",
                         row["mean_loss"] as? Double ?? 0, cv, row["max_over_mean"] as? Double ?? 0, bytes,
                         row["duration_s"] as? Double ?? 0))
        }
        let last = rows.last ?? [:]
        let accuracy = (last["mean_test_accuracy"] as? Double).map { String(format: "%.3f", $0) } ?? "-"
        print("")
        print(String(format: "final: test accuracy %@ (mean over devices)  mean load CV %.4f  bytes per client per round %.0f (%.1f KiB)  %d rounds in %.1f s",
                     accuracy, cvs.reduce(0, +) / Double(max(cvs.count, 1)),
                     bytesPerClient.reduce(0, +) / Double(max(bytesPerClient.count, 1)),
                     bytesPerClient.reduce(0, +) / Double(max(bytesPerClient.count, 1)) / 1024,
                     rows.count, Date().timeIntervalSince(started)))
        print("state, server and device logs: \(dir)")
    }
}

extension SolverKind: ExpressibleByArgument {}
