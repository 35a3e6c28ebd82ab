import FlexWire
import Testing

@Suite("protocol messages")
struct MessageTests {
    @Test("small messages round-trip and parse typed fields")
    func roundTrip() throws {
        var m = SmallMessage()
        m.set("client_id", 7)
        m.set("assigned", list: [1, 5])
        m.set("fitness", "0.71,5e-1")
        m.set("board", "pi-zero-2w")
        let parsed = try SmallMessage.parse(m.encoded())
        #expect(parsed == m)
        #expect(try parsed.int("client_id", in: 0...100) == 7)
        #expect(try parsed.intList("assigned") == [1, 5])
        #expect(try parsed.realList("fitness") == [0.71, 0.5])
        #expect(try parsed.string("board") == "pi-zero-2w")
    }

    @Test("the register reply round-trips; optional fields take their defaults when absent")
    func registerReply() throws {
        let reply = RegisterReply(clientId: 3, round: 2, inputDim: 60, hidden: 64, expertHidden: 128, classes: 10, experts: 8,
                                  topK: 2, localEpochs: 2, batch: 32, learningRate: 0.2, momentum: 0.5, gradientClip: 2,
                                  fitness: .accuracy, alphaLoss: 1, updateDType: .int8Block, normalizationReady: true,
                                  fitnessBeforeTraining: true, gateZeroInit: true, sharedExpert: true)
        let m = reply.message()
        #expect(m["shared_expert"] == "1")
        #expect(try RegisterReply(SmallMessage.parse(m.encoded())) == reply)
        var old = SmallMessage()
        for key in ["client_id", "round", "input_dim", "hidden", "expert_hidden", "classes", "experts", "topk", "local_epochs",
                    "batch", "learning_rate", "fitness", "update_dtype", "normalization"] { old.set(key, m[key]!) }
        let parsed = try RegisterReply(old)
        #expect(!parsed.sharedExpert && !parsed.gateZeroInit && !parsed.fitnessBeforeTraining)
        #expect(parsed.momentum == 0.5 && parsed.gradientClip == 2)
        old.set("shared_expert", "2")
        #expect(throws: MessageError.badValue("shared_expert", "2")) { try RegisterReply(old) }
    }

    @Test("report fields carry probes only when there are some, and round-trip")
    func reportProbes() throws {
        var f = ReportFields(clientId: 1, samples: 10, loss: 0.5, accuracy: 0.8, testAccuracy: nil, experts: [0, 2],
                             usage: [6, 4], fitness: [0.7, 0.6])
        #expect(f.message()["probed"] == nil)
        f.probed = [3, 1]; f.probedFitness = [0.25, 0.5]
        #expect(try ReportFields(SmallMessage.parse(f.message().encoded())) == f)
        var bad = f.message()
        bad.set("probed", "2")
        bad.set("probed_fitness", "0.5")
        #expect(throws: MessageError.badReport("a probed expert is listed twice or was also trained")) { try ReportFields(bad) }
    }

    @Test("malformed small messages are rejected with the line or key")
    func malformed() {
        #expect(throws: MessageError.malformedLine(2)) { try SmallMessage.parse(Array("a=1\nno equals\n".utf8)) }
        #expect(throws: MessageError.malformedLine(1)) { try SmallMessage.parse(Array("Key=1\n".utf8)) }
        #expect(throws: MessageError.malformedLine(1)) { try SmallMessage.parse(Array("=1\n".utf8)) }
        #expect(throws: MessageError.duplicateKey("a")) { try SmallMessage.parse(Array("a=1\na=2\n".utf8)) }
        #expect(throws: MessageError.malformedLine(1)) { try SmallMessage.parse([0x61, 0x3D, 0x00]) }
        let m = try? SmallMessage.parse(Array("n=12x\nr=nan\nl=1,,2\nbig=99999999999999999999\n".utf8))
        #expect(throws: MessageError.badValue("n", "12x")) { try m!.int("n", in: 0...100) }
        #expect(throws: MessageError.badValue("r", "nan")) { try m!.real("r") }
        #expect(throws: MessageError.badValue("l", "1,,2")) { try m!.intList("l") }
        #expect(throws: MessageError.badValue("big", "99999999999999999999")) { try m!.int("big", in: 0...Int.max) }
        #expect(throws: MessageError.missing("zzz")) { try m!.string("zzz") }
        #expect(throws: MessageError.badValue("n", "12x")) { try m!.real("n") }
    }

    @Test("numbers parse like the protocol says", arguments: [
        ("0", 0.0), ("-1.5", -1.5), ("1e3", 1000.0), ("2.5E-2", 0.025), ("+4", 4.0), (".5", 0.5),
    ])
    func reals(text: String, value: Double) {
        #expect(abs((SmallMessage.parseReal(text) ?? .nan) - value) < 1e-12)
    }

    @Test("report frames round-trip; every truncation and a trailing byte are rejected")
    func reportFrame() throws {
        var fields = SmallMessage()
        fields.set("client_id", 3)
        let containers: [[UInt8]] = [[1, 2, 3], Array(repeating: 9, count: 40)]
        let body = ReportFrame.encode(fields: fields, containers: containers)
        let (parsed, ranges) = try body.withUnsafeBytes { try ReportFrame.parse($0) }
        #expect(parsed == fields)
        #expect(ranges.map { Array(body[$0]) } == containers)
        for length in 0..<body.count {
            let cut = Array(body[0..<length])
            #expect(throws: MessageError.self) { _ = try cut.withUnsafeBytes { try ReportFrame.parse($0) } }
        }
        let longer = body + [0]
        #expect(throws: MessageError.self) { _ = try longer.withUnsafeBytes { try ReportFrame.parse($0) } }
        var badMagic = body
        badMagic[0] = 0
        #expect(throws: MessageError.badReport("bad magic")) { _ = try badMagic.withUnsafeBytes { try ReportFrame.parse($0) } }
    }
}
