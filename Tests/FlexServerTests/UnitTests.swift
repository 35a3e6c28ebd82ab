import FlexModel
import FlexTensor
import FlexWire
import Foundation
import Testing
@testable import FlexServer
import FlexServerTesting

@Suite struct ServerUnitTests {
    @Test func sha256Vectors() {
        // FIPS 180-4 / NIST CAVP examples; swift-crypto computes, TokenFile formats the hex.
        #expect(TokenFile.sha256Hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(TokenFile.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(TokenFile.sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(TokenFile.sha256Hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(TokenFile.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func configDefaultsAndErrors() throws {
        let c = try ServerConfig.parse(Data("{}".utf8))
        #expect(c == ServerConfig())
        let d = try ServerConfig.parse(Data(#"{"experts": 4, "min_clients": 3, "expert_weighting": "samples"}"#.utf8))
        #expect(d.experts == 4 && d.minClients == 3 && !d.weightByUsage)
        #expect(throws: ServerError.self) { try ServerConfig.parse(Data(#"{"expert": 4}"#.utf8)) }
        #expect(throws: ServerError.self) { try ServerConfig.parse(Data(#"{"beta": 2}"#.utf8)) }
        #expect(throws: ServerError.self) { try ServerConfig.parse(Data(#"{"storage_dtype": "int4"}"#.utf8)) }
    }

    @Test func configDecodesEnumsAndNamesTheKeyAtFault() throws {
        let c = try ServerConfig.parse(Data(#"{"solver": "round-robin", "fitness": "loss", "storage_dtype": "fp16", "update_dtype": "int8-row", "batch": 16.0}"#.utf8))
        #expect(c.solver == .roundRobin && c.fitness == .loss && c.storage == .fp16 && c.update == .int8Row && c.batch == 16)
        func message(_ json: String) -> String {
            do { _ = try ServerConfig.parse(Data(json.utf8)); return "no error" } catch { return "\(error)" }
        }
        #expect(message(#"{"expert": 4}"#) == "config: unknown key 'expert'")
        #expect(message(#"[1, 2]"#) == "config: the config must be a JSON object")
        #expect(message(#"{"batch": 0}"#) == "config: 'batch' must be an integer ≥ 1")
        #expect(message(#"{"batch": 1.5}"#) == "config: 'batch' must be an integer ≥ 1")
        #expect(message(#"{"round_deadline_s": 0}"#) == "config: 'round_deadline_s' must be a number ≥ 0.1")
        #expect(message(#"{"momentum": 1}"#) == "config: 'momentum' must be in [0, 1)")
        #expect(message(#"{"port": 70000}"#) == "config: 'port' must be ≤ 65535")
        #expect(message(#"{"listen_host": 1}"#) == "config: 'listen_host' must be a string")
        #expect(message(#"{"solver": "best"}"#) == "config: 'solver' must be flex | greedy | random | round-robin | exact")
        #expect(message(#"{"fitness": "f1"}"#) == "config: 'fitness' must be accuracy | loss")
        #expect(message(#"{"expert_weighting": 1}"#) == "config: 'expert_weighting' must be usage | samples")
        #expect(message(#"{"update_dtype": "int8"}"#) == "config: 'update_dtype' must be fp32 | fp16 | int8-block | int8-row")
        #expect(message(#"{"shared_expert": "yes"}"#) == "config: 'shared_expert' must be true or false")
        #expect(try !ServerConfig.parse(Data(#"{"shared_expert": false}"#.utf8)).usesSharedExpert)
        #expect(try !ServerConfig.parse(Data(#"{"shared_expert": true, "experts": 1}"#.utf8)).usesSharedExpert, "one expert: nothing to share")
    }

    @Test func configRoundTripsThroughJSONWithTheDocumentedKeys() throws {
        var c = ServerConfig()
        c.solver = .exact; c.fitness = .loss; c.expertWeighting = .samples; c.storageDType = .fp32; c.seed = 7; c.port = 0
        let data = try JSONEncoder().encode(c)
        #expect(try ServerConfig.parse(data) == c)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["solver"] as? String == "exact" && object["storage_dtype"] as? String == "fp32")
        // Every key in docs/SERVER.md's table, and no other.
        let docs = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/FlexServerTests/UnitTests.swift", with: "docs/SERVER.md"),
                              encoding: .utf8)
        let documented = docs.split(separator: "\n").filter { $0.hasPrefix("| `") }
            .map { String($0.dropFirst(3).prefix { $0 != "`" }) }
        #expect(Set(documented) == Set(object.keys))
        #expect(Set(ServerConfig.CodingKeys.allCases.map(\.rawValue)) == Set(object.keys))
    }

    @Test func checkpointRoundTrip() throws {
        let cfg = MoEConfig(inputDim: 6, hidden: 4, expertHidden: 5, classes: 3, experts: 3)
        var m = GlobalModel.initial(config: cfg, seed: 3)
        m.expertVersions[1] = 7
        m.extractorVersion = 2
        let b = m.checkpoint(round: 9)
        let (back, round) = try GlobalModel.load(checkpoint: b, config: cfg)
        #expect(round == 9)
        #expect(back == m)
        #expect(try OfflineAggregation.config(ofCheckpoint: b) == cfg)
        var bad = b
        bad[bad.count / 2] ^= 0x40
        #expect(throws: (any Error).self) { try GlobalModel.load(checkpoint: bad, config: cfg) }
    }

    /// Weighted means of fp32 deltas, experts by usage, extractor by |D_c|; untouched experts stay.
    @Test func streamingAggregatorWeightedMean() throws {
        let cfg = MoEConfig(inputDim: 6, hidden: 4, expertHidden: 5, classes: 3, experts: 3)
        var model = GlobalModel.initial(config: cfg, seed: 1)
        let before = model
        var b = ReportBuilder(config: cfg, dtype: .fp32)
        func report(client: Int, value: Float, usage: Int) throws -> ValidatedReport {
            let body = ReportFrame.encode(
                fields: ReportBuilder.fields(client: client, samples: 10, experts: [0], usage: [usage]),
                containers: [b.delta(kind: .extractorDelta, expert: nil, version: 0, value: value),
                             b.delta(kind: .expertDelta, expert: 0, version: 0, value: value)])
            return try body.withUnsafeBytes { p in
                let (f, r) = try ReportValidator.fields(p)
                return try ReportValidator.validate(p, fields: f, containers: r, model: cfg, extractorVersion: 0,
                                                    expertVersions: [0, 0, 0], assigned: [0], limits: .offline, decompressor: ZstdDecompressor())
            }
        }
        var agg = StreamingAggregator(config: cfg)
        agg.fold(try report(client: 1, value: 1, usage: 3), extractorWeight: 10, expertWeights: [3])
        agg.fold(try report(client: 2, value: 2, usage: 1), extractorWeight: 30, expertWeights: [1])
        let changed = agg.apply(to: &model, round: 1)
        #expect(changed.experts == [0] && changed.extractor)
        #expect(abs(model.extractor[0] - before.extractor[0] - 1.75) < 1e-5)   // (10·1 + 30·2)/40
        #expect(abs(model.experts[0][0] - before.experts[0][0] - 1.25) < 1e-5) // (3·1 + 1·2)/4
        #expect(model.experts[1] == before.experts[1] && model.expertVersions == [1, 0, 0])

        // clipping: a delta of norm ‖1‖·√n is scaled to the clip norm
        var clip = StreamingAggregator(config: cfg, clipNorm: 0.5)
        var m2 = before
        clip.fold(try report(client: 1, value: 1, usage: 3), extractorWeight: 10, expertWeights: [3])
        clip.apply(to: &m2, round: 1)
        let n = Float(cfg.expertParameterCount)
        #expect(abs(m2.experts[0][0] - before.experts[0][0] - 0.5 / n.squareRoot()) < 1e-5)
        #expect(clip.clipped == 2)

        // Per-report norm bounds (robust aggregation), toy vectors with a known winner: three honest
        // deltas of 0.1 everywhere and one of 1000; with a bound of 3 × the honest norm the outlier
        // counts as 0.3 everywhere, so the mean is (3·0.1 + 0.3)/4 = 0.15, not 250.075.
        var bounded = StreamingAggregator(config: cfg)
        var m3 = before
        let honestNorm = Double(0.1) * Double(cfg.expertParameterCount).squareRoot()
        for (client, value) in [(1, Float(0.1)), (2, 0.1), (3, 0.1), (4, 1000)] {
            bounded.fold(try report(client: client, value: value, usage: 1), extractorWeight: 0, expertWeights: [1],
                         expertBound: 3 * honestNorm)
        }
        bounded.apply(to: &m3, round: 1)
        #expect(abs(m3.experts[0][0] - before.experts[0][0] - 0.15) < 1e-5)
        #expect(bounded.clipped == 1)
        #expect(bounded.expertNorms.count == 4 && abs(bounded.expertNorms[0] - honestNorm) < 1e-6 * honestNorm)
    }

    @Test func validatorRejects() throws {
        let cfg = MoEConfig(inputDim: 6, hidden: 4, expertHidden: 5, classes: 3, experts: 3)
        var b = ReportBuilder(config: cfg, dtype: .fp32)
        func check(_ body: [UInt8], assigned: [Int] = [0]) -> ProtocolError? {
            body.withUnsafeBytes { p -> ProtocolError? in
                do throws(ProtocolError) {
                    let (f, r) = try ReportValidator.fields(p)
                    _ = try ReportValidator.validate(p, fields: f, containers: r, model: cfg, extractorVersion: 0,
                                                     expertVersions: [0, 0, 0], assigned: assigned,
                                                     limits: ReportLimits(registeredSamples: 10, localEpochs: 2, maxSamples: 1000),
                                                     decompressor: ZstdDecompressor())
                    return nil
                } catch { return error }
            }
        }
        let f = ReportBuilder.fields(client: 1, samples: 10, experts: [0])
        let x = b.delta(kind: .extractorDelta, expert: nil, version: 0)
        let good = ReportFrame.encode(fields: f, containers: [x, b.delta(kind: .expertDelta, expert: 0, version: 0)])
        #expect(check(good) == nil)
        #expect(check(Array(good.dropLast(3)))?.status == 400)
        #expect(check(ReportFrame.encode(fields: f, containers: [x, b.delta(kind: .expertDelta, expert: 0, version: 0, value: .nan)]))?.code == "invalid_update")
        #expect(check(ReportFrame.encode(fields: f, containers: [x, b.delta(kind: .expertDelta, expert: 0, version: 5)]))?.code == "stale_version")
        #expect(check(ReportFrame.encode(fields: f, containers: [x, [UInt8](repeating: 7, count: 100)]))?.status == 422)
        #expect(check(ReportFrame.encode(fields: f, containers: [x, x]))?.status == 422)
        #expect(check(good, assigned: [1])?.code == "not_assigned")
        // Field ranges (10 samples registered, 2 local epochs): 422 invalid_field, naming the field.
        func withField(_ key: String, _ value: String) -> [UInt8] {
            var g = f
            g.set(key, value)
            return ReportFrame.encode(fields: g, containers: [x, b.delta(kind: .expertDelta, expert: 0, version: 0)])
        }
        #expect(check(withField("usage", "20")) == nil, "usage up to samples × local epochs")
        for (key, value) in [("loss", "1.7e308"), ("loss", "-1"), ("accuracy", "-1e300"), ("fitness", "3.4e38"),
                             ("usage", "21"), ("usage", "1000000000"), ("samples", "1000000000"), ("test_accuracy", "1.01"),
                             ("pre_test_accuracy", "-0.5")] {
            let e = check(withField(key, value))
            #expect(e?.code == "invalid_field" && e?.status == 422 && e!.message.hasPrefix(key), "\(key)=\(value): \(String(describing: e))")
        }
        // Probes of unassigned experts: in the model, not assigned, fitness in [0, 1].
        func probing(_ experts: String, _ fitness: String) -> [UInt8] {
            var g = f
            g.set("probed", experts); g.set("probed_fitness", fitness)
            return ReportFrame.encode(fields: g, containers: [x, b.delta(kind: .expertDelta, expert: 0, version: 0)])
        }
        #expect(check(probing("1,2", "0.5,0")) == nil)
        #expect(check(probing("3", "0.5"))?.status == 400, "expert 3 is not in a 3-expert model")
        #expect(check(probing("1", "1.5"))?.code == "invalid_field")
        #expect(check(probing("1", "-0.1"))?.code == "invalid_field")
        #expect(check(probing("0", "0.5"))?.status == 400, "expert 0 was trained, not probed")
        #expect(check(probing("1,2", "0.5"))?.status == 400, "one fitness per probe")
        let wrongShape: ReportBuilder = ReportBuilder(config: MoEConfig(inputDim: 6, hidden: 4, expertHidden: 6, classes: 3, experts: 3), dtype: .fp32)
        var ws = wrongShape
        #expect(check(ReportFrame.encode(fields: f, containers: [x, ws.delta(kind: .expertDelta, expert: 0, version: 0)]))?.status == 422)
    }
}
