import FlexData
import FlexEdge
import FlexServer
import FlexServerTesting
import FlexSimulation
import FlexTensor
import Foundation
import Testing

/// The simulator and a real `flexmoe-server serve` with `flexmoe-edge run` processes over loopback
/// run the same code: with the same data, seeds and settings they make the same assignments and
/// end with the same global model (up to the order in which the live server folds the reports).
@Suite struct LiveAgreementTests {
    /// Once with routed experts only, once with an always-on shared expert (`shared_expert`).
    @Test(arguments: [false, true]) func theSimulatorAndALiveRunAgree(sharedExpert: Bool) throws {
        let devices = 3, rounds = 3, dataSeed: UInt64 = 4, seed: UInt64 = 9
        var settings = SimulationSettings()
        settings.experts = 4
        settings.capacity = .fixed(2)
        settings.rounds = rounds
        settings.localEpochs = 1
        settings.strategies = [.flex]
        settings.seeds = [seed]
        settings.threads = 2
        settings.sharedExpert = sharedExpert
        // Each device's data as `flexmoe-edge run --data synthetic:client=i,seed=S` loads it.
        var simulatedDevices: [Simulation.Device] = []
        for i in 0..<devices {
            let s = try DataSource.synthetic(client: i, seed: dataSeed, alpha: 1, beta: 1).load()
            simulatedDevices.append(Simulation.Device(train: DatasetBox(s.train.subset(Array(0..<s.train.count))),
                                                      test: DatasetBox(s.test.subset(Array(0..<s.test.count))), kc: 2))
        }
        let simulation = try Simulation(settings: settings, devices: simulatedDevices)
        let simulated = try simulation.run()
        let simulatedModel = simulation.finalModels[0]

        // The live run, with the server configuration the simulator used.
        let dir = NSTemporaryDirectory() + "flexmoe-agreement-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let c = simulation.serverConfig(strategy: .flex, seed: seed)
        var live = c
        live.roundDeadline = 120
        live.stateDir = state
        live.port = 0
        try JSONEncoder().encode(live).write(to: URL(fileURLWithPath: dir + "/server.json"))
        let tokens = try (0..<devices).map { try TokenFile.enroll(name: "device-\($0)", path: state + "/tokens") }
        let server = try ServerProcess(executable: BuiltProducts.path("flexmoe-server"),
                                       arguments: ["serve", "--config", dir + "/server.json", "--exit-on-stdin-eof"],
                                       stateDir: state, logPath: dir + "/server.log")
        defer { server.stop() }
        let status = ProtocolClient(port: server.port, timeout: 10)
        func statusField(_ key: String) -> Any? {
            guard let r = try? status.request("GET", "/v1/status"),
                  let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else { return nil }
            return o[key]
        }
        // Devices start one after the other, so client ids follow the simulator's device order.
        var edges: [Process] = []
        defer { for p in edges where p.isRunning { p.terminate() } }
        for i in 0..<devices {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: BuiltProducts.path("flexmoe-edge"))
            p.arguments = ["run", "--server", "http://127.0.0.1:\(server.port)", "--data", "synthetic:client=\(i),seed=\(dataSeed)",
                           "--kc", "2", "--board", "pi-zero-2w", "--seed", String(seed)]
            var env = ProcessInfo.processInfo.environment
            env["FLEXMOE_TOKEN"] = tokens[i]
            p.environment = env
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            edges.append(p)
            let started = Date()
            while (statusField("clients") as? Int ?? 0) < i + 1 {
                #expect(Date().timeIntervalSince(started) < 60, "device \(i) did not register")
                if Date().timeIntervalSince(started) > 60 { return }
                usleep(20_000)
            }
        }
        let started = Date()
        while (statusField("state") as? String) != "finished" {
            if Date().timeIntervalSince(started) > 120 { Issue.record("the live run did not finish: \(server.log)"); return }
            usleep(50_000)
        }

        // Same assignments: the per-round expert loads of the round log equal the simulator's.
        let lines = DurableFile.lines(state + "/rounds.log")
        let records = try lines.map { try RecordJSON.decode(RoundRecord.self, from: Array($0.utf8)) }
        #expect(records.map(\.expertLoad) == simulated.map(\.load))
        #expect(records.map(\.participants) == [Int](repeating: devices, count: rounds))
        // Same model, within the rounding of a different summation order.
        let checkpoint = try #require(DurableFile.read(state + "/" + StateStore.checkpointName(rounds)))
        let (liveModel, round) = try GlobalModel.load(checkpoint: checkpoint, config: c.model)
        #expect(round == UInt64(rounds))
        #expect(liveModel.extractorVersion == simulatedModel.extractorVersion && liveModel.expertVersions == simulatedModel.expertVersions)
        var largest: Float = 0
        for (a, b) in zip(liveModel.extractor, simulatedModel.extractor) { largest = max(largest, abs(a - b)) }
        for (x, y) in zip(liveModel.experts, simulatedModel.experts) { for (a, b) in zip(x, y) { largest = max(largest, abs(a - b)) } }
        #expect(largest < 1e-5, "largest difference between the live and the simulated model: \(largest)")
    }
}
