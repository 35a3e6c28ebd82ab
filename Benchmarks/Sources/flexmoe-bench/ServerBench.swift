import ArgumentParser
import FlexModel
import FlexServer
import FlexServerTesting
import FlexTensor
import FlexWire
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `flexmoe-bench server --clients N`: N concurrent lightweight clients over loopback (127.0.0.1)
/// take part in one round of a real server process: register, long-poll the round (all N
/// connections held at once), download the extractor and their two experts, upload a report with
/// real int8-block update containers (k_c = 2, default model), wait for the round to close.
/// The server is this binary re-executed (`server --serve CONFIG`, the same FlexServer code as
/// `flexmoe-server serve`) or `--server-binary PATH`. One JSON line: round time, requests/s,
/// server peak RSS (VmHWM).
struct ServerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "One round with N concurrent clients over loopback: round time, requests/s, server peak RSS.")

    @Option(help: "Clients taking part in the round.") var clients = 1000
    @Option(help: "Clients registering or uploading at the same time (long polls are always all N).") var concurrency = 64
    @Option(help: "Give up after this many seconds.") var timeout = 300.0
    @Option(help: "flexmoe-server binary to run instead of this binary's built-in server mode.") var serverBinary: String?
    @Option(help: "(internal) run the server with this config.") var serve: String?

    func run() throws {
        if let config = serve { try runServer(config); return }
        raiseFileLimit()
        let dir = NSTemporaryDirectory() + "flexmoe-bench-server-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // tokens: written directly (enroll's format), one per client
        var tokens: [String] = []
        var lines = ""
        for i in 0..<clients {
            let t = "fxt_bench_\(i)_\(UInt64.random(in: 0...UInt64.max))"
            tokens.append(t)
            lines += "bench\(i) \(TokenFile.hash(t))\n"
        }
        try lines.write(toFile: dir + "/state/tokens", atomically: true, encoding: .utf8)
        let config = dir + "/config.json"
        try #"{"state_dir": "\#(dir)/state", "port": 0, "min_clients": \#(clients), "rounds": 1, "round_deadline_s": \#(Int(timeout))}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let server: ServerProcess
        if let b = serverBinary {
            server = try ServerProcess(binary: b, config: config, stateDir: dir + "/state", logPath: dir + "/server.log")
        } else {
            server = try ServerProcess(executable: CommandLine.arguments[0], arguments: ["server", "--serve", config],
                                       stateDir: dir + "/state", logPath: dir + "/server.log")
        }
        defer { server.kill9() }
        let rssIdle = server.peakRSSKiB() ?? 0

        // real update containers, built once: the extractor delta and every expert's delta (version 0)
        let model = MoEConfig()
        var builder = ReportBuilder(config: model, dtype: .int8Block)
        let extractorDelta = builder.delta(kind: .extractorDelta, expert: nil, version: 0)
        let expertDeltas = (0..<model.experts).map { builder.delta(kind: .expertDelta, expert: $0, version: 0) }

        let tokenList = tokens
        let gate = DispatchSemaphore(value: max(1, concurrency))
        let group = DispatchGroup()
        let stats = Stats()
        let port = server.port
        let pid = server.pid
        let start = Date()
        for i in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let c = ProtocolClient(port: port, token: tokenList[i], timeout: 120)
                do {
                    let samples = 50 + (i * 7919) % 450
                    gate.wait()
                    let reg = try c.register(kc: 2, samples: samples)
                    gate.signal()
                    guard reg.status == 200, let id = reg.message?["client_id"].flatMap({ Int($0) }) else { stats.fail("register \(reg.status)"); return }
                    var m: SmallMessage? = nil
                    for _ in 0..<10 {
                        let r = try c.round(client: id, wait: 60, after: 0)
                        if let msg = r.message, msg["state"] == "open" { m = msg; break }
                    }
                    guard let round = m else { stats.fail("round never opened"); return }
                    if stats.opened() == 1 { stats.rssAtOpen = currentRSSKiB(pid) }
                    let experts = (try? round.intList("assigned")) ?? []
                    gate.wait()
                    _ = try c.request("GET", "/v1/extractor")
                    for e in experts { _ = try c.request("GET", "/v1/experts/\(e)") }
                    let body = ReportFrame.encode(fields: ReportBuilder.fields(client: id, samples: samples, experts: experts),
                                                  containers: [extractorDelta] + experts.map { expertDeltas[$0] })
                    let rep = try c.request("POST", "/v1/rounds/1/report", body: body)
                    gate.signal()
                    guard rep.status == 200 else { stats.fail("report \(rep.status) \(String(decoding: rep.body, as: UTF8.self))"); return }
                    // wait for the round to close
                    for _ in 0..<10 {
                        let r = try c.round(client: id, wait: 60, after: 1)
                        if r.message?["state"] != "open" { break }
                    }
                    stats.done(requests: c.requests)
                } catch {
                    stats.fail("\(error)")
                }
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
        let finished = group.wait(timeout: .now() + timeout) == .success
        let wall = Date().timeIntervalSince(start)
        let rss = server.peakRSSKiB() ?? 0
        let status = (try? ProtocolClient(port: port).request("GET", "/v1/status").body).flatMap {
            try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
        } ?? [:]
        let last = status["last_round"] as? [String: Any] ?? [:]
        let s = stats.snapshot()
        let out: [String: Any] = [
            "bench": "server", "clients": clients, "concurrency": concurrency, "finished": finished,
            "completed_clients": s.done, "failures": s.failures, "first_failure": s.firstFailure,
            "round_seconds": Bench.round(last["duration_s"] as? Double ?? -1), "participants": last["participants"] ?? 0,
            "wall_seconds": Bench.round(wall), "requests": s.requests,
            "requests_per_second": Bench.round(Double(s.requests) / wall, 1),
            "server_peak_rss_mib": Bench.round(Double(rss) / 1024, 1),
            "server_rss_at_open_mib": Bench.round(Double(stats.rssAtOpen) / 1024, 1), "server_idle_rss_mib": Bench.round(Double(rssIdle) / 1024, 1),
            "bytes_in": last["bytes_in"] ?? 0, "load_cv": last["load_cv"] ?? -1,
        ]
        Bench.emit(out)
    }

    func runServer(_ path: String) throws {
        let c = try ServerConfig.load(path: path)
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "flexmoe.server")
        logger.logLevel = .notice
        let coordinator = try Coordinator(config: c, logger: logger)
        let server = try FlexHTTPServer(coordinator: coordinator, host: c.listenHost, port: c.port,
                                        limits: c.resourceLimits(fileLimit: ResourceLimits.raiseFileLimit()))
        try StateStore(dir: c.stateDir, keep: c.keepCheckpoints).writePort(server.port)
        try server.wait()
    }

    func raiseFileLimit() {
        var l = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        l.rlim_cur = l.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
    }
}

/// VmRSS of a process, in KiB.
func currentRSSKiB(_ pid: Int32) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }
    return 0
}

final class Stats: @unchecked Sendable {
    let lock = NSLock()
    var done = 0, failures = 0, requests = 0, openedCount = 0
    var firstFailure = ""
    func fail(_ s: String) { lock.lock(); failures += 1; if firstFailure.isEmpty { firstFailure = s }; lock.unlock() }
    func done(requests r: Int) { lock.lock(); done += 1; requests += r; lock.unlock() }
    func opened() -> Int { lock.lock(); defer { lock.unlock() }; openedCount += 1; return openedCount }
    var rssAtOpen = 0
    func snapshot() -> (done: Int, failures: Int, requests: Int, firstFailure: String) {
        lock.lock(); defer { lock.unlock() }
        return (done, failures, requests, firstFailure)
    }
}
