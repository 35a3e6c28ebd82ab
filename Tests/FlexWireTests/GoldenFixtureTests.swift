import FlexTensor
import FlexTestSupport
import FlexWire
import Foundation
import Testing

func fixture(_ name: String) throws -> [UInt8] { try HexFixture.read(name, in: Bundle.module) }

func le64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}

/// The checked-in fixtures decode to the values they were made from, and today's encoders make the
/// same bytes again (docs/FORMAT.md, "Golden fixtures").
@Suite("golden fixtures")
final class GoldenFixtureTests {
    let decompressor = ZstdDecompressor()

    /// The fp32 values of a decoded payload.
    func values(_ header: ContainerHeader, _ payload: [UInt8]) -> [Float] {
        var out: [Float] = []
        var offset = 0
        payload.withUnsafeBytes { p in
            for t in header.tensors {
                let m = QuantizedMatrix(dtype: t.dtype, shape: t.shape,
                                        bytes: UnsafeRawBufferPointer(rebasing: p[offset..<(offset + t.payloadBytes)]))
                for r in 0..<t.shape.rows { for c in 0..<t.shape.cols { out.append(m.value(r, c)) } }
                offset += t.payloadBytes
            }
        }
        return out
    }

    @Test("every container fixture decodes to its header fields and values", arguments: Golden.containers)
    func containerDecodes(_ c: Golden.ContainerCase) throws {
        let bytes = try fixture(c.name)
        let (header, payload) = try Container.decode(bytes, maxPayload: 1 << 10, decompressor: decompressor)
        #expect(Array(bytes[0..<4]) == Array("FXMW".utf8) && bytes[4] == 1 && bytes[5] == 0)
        #expect(header.kind == c.kind && header.codec == c.codec && header.expertId == c.expertId)
        #expect(header.modelVersion == c.modelVersion && header.tensors == c.entries)
        #expect(header.payloadSize == c.dtype.payloadBytes(Golden.shapes[0]) + c.dtype.payloadBytes(Golden.shapes[1]))
        #expect(header.containerSize == bytes.count)
        if c.codec == .stored { #expect(header.storedSize == header.payloadSize) }
        #expect(payload == Golden.payload(c.dtype))
        let decoded = values(header, payload)
        let expected = Golden.w + Golden.b
        if c.dtype == .fp32 || c.dtype == .fp16 {
            #expect(decoded == expected)
        } else {
            for (x, y) in zip(decoded, expected) { #expect(abs(x - y) <= 0.005) }
        }
    }

    @Test("specific bytes and values of the int8-block gate fixture")
    func int8BlockLiterals() throws {
        let bytes = try fixture("container-int8-block-gateWeights-stored")
        #expect(bytes.count == 64 + 2 * 16 + 15)
        #expect(bytes[6] == 3 && bytes[7] == 0 && bytes[8] == 2)          // kind gate, stored, 2 tensors
        #expect(Array(bytes[12..<16]) == [0xFF, 0xFF, 0xFF, 0xFF])          // no expert
        #expect(le64(bytes, at: 16) == 103 && le64(bytes, at: 24) == 15)    // modelVersion, payloadSize
        #expect(le64(bytes, at: 40) == 0x2944_0c17_643a_064d)               // xxHash64 of the payload
        #expect(Array(bytes[64..<68]) == [2, 0, 32, 0])                     // int8-block, no filter, block 32
        let (header, payload) = try Container.decode(bytes, maxPayload: 1 << 10, decompressor: decompressor)
        let v = values(header, payload)
        #expect(v[0] == -0.75 && v[1] == -0.375 && v[2] == 0)               // −128 and −64 × 0.005859375
        #expect(v[5] == 127 * Half.float(fromBits: 0x2088))
    }

    @Test("stored containers re-encode byte for byte", arguments: Golden.containers.filter { $0.codec == .stored })
    func storedReencodes(_ c: Golden.ContainerCase) throws {
        #expect(try Golden.encode(c) == fixture(c.name))
    }

    /// zstd's output depends on the libzstd version, so a zstd container is not compared whole:
    /// re-encoding with this libzstd must give the same header except storedSize (bytes 32..<40)
    /// and headerHash (56..<64), the same directory and the same payload; and the fixture's payload
    /// hash is the stored fixture's.
    @Test("zstd containers re-encode to the same header, directory and payload", arguments: Golden.containers.filter { $0.codec == .zstd })
    func zstdReencodes(_ c: Golden.ContainerCase) throws {
        let golden = try fixture(c.name)
        let again = try Golden.encode(c)
        #expect(Array(golden[0..<32]) == Array(again[0..<32]))
        #expect(Array(golden[40..<56]) == Array(again[40..<56]))
        #expect(Array(golden[64..<96]) == Array(again[64..<96]))
        let a = try Container.decode(golden, maxPayload: 1 << 10, decompressor: decompressor)
        let b = try Container.decode(again, maxPayload: 1 << 10, decompressor: decompressor)
        #expect(a.payload == b.payload)
        let stored = try fixture(Golden.container(c.kind, .stored).name)
        #expect(le64(golden, at: 40) == le64(stored, at: 40))
    }

    @Test("the report fixture decodes to its fields and containers")
    func reportDecodes() throws {
        let bytes = try fixture("report")
        let (fields, ranges) = try bytes.withUnsafeBytes { try ReportFrame.parse($0) }
        #expect(fields == Golden.reportFields)
        #expect(try fields.int("client_id", in: 0...100) == 3 && fields["samples"] == "12")
        #expect(ranges.count == 2)
        for (range, c) in zip(ranges, Golden.reportContainers) {
            #expect(Array(bytes[range]) == (try fixture(c.name)))
        }
        #expect(Array(bytes[0..<8]) == [0x46, 0x58, 0x52, 0x50, 1, 0, 0, 0])
    }

    @Test("the report fixture re-encodes byte for byte, from arrays and in place")
    func reportReencodes() throws {
        let golden = try fixture("report")
        let containers = try Golden.reportContainers.map { try Golden.encode($0) }
        #expect(ReportFrame.encode(fields: Golden.reportFields, containers: containers) == golden)

        // In place, as a board writes it: each container encoded straight into the frame's buffer.
        let compressor = ZstdCompressor(level: 3)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { payload.deallocate(); scratch.deallocate() }
        var out = [UInt8](repeating: 0xAA, count: 4096)
        let size = try out.withUnsafeMutableBytes { raw in
            try ReportFrame.write(fields: Golden.reportFields, containerCount: 2, into: raw) { i, space throws(WireError) in
                let c = Golden.reportContainers[i]
                let bytes = Golden.payload(c.dtype)
                payload.copyBytes(from: bytes)
                return try Container.encode(kind: c.kind, expertId: c.expertId, modelVersion: c.modelVersion, tensors: c.entries,
                                            payload: UnsafeRawBufferPointer(rebasing: payload[0..<bytes.count]), codec: .stored,
                                            compressor: compressor, scratch: scratch, into: space)
            }
        }
        #expect(Array(out[0..<size]) == golden)
    }

    @Test("the report writer throws, never crashes, in every buffer too small")
    func reportWriterTooSmall() throws {
        let golden = try fixture("report")
        let containers = try Golden.reportContainers.map { try Golden.encode($0) }
        for capacity in 0..<golden.count {
            var out = [UInt8](repeating: 0, count: capacity)
            let result = out.withUnsafeMutableBytes { raw in
                Result { () throws(WireError) -> Int in
                    try ReportFrame.write(fields: Golden.reportFields, containerCount: 2, into: raw) { i, space throws(WireError) in
                        var w = ByteWriter(space)
                        try w.bytes(containers[i])
                        return w.offset
                    }
                }
            }
            #expect(throws: WireError.self) { try result.get() }
        }
    }

    @Test("the checkpoint fixture decodes to its round, parts and values")
    func checkpointDecodes() throws {
        let bytes = try fixture("checkpoint")
        let (round, parts) = try bytes.withUnsafeBytes { try CheckpointFrame.parse($0) }
        #expect(round == 7 && parts.count == 2)
        #expect(Array(bytes[0..<8]) == [0x46, 0x58, 0x43, 0x4B, 1, 0, 0, 0])
        let x = try Container.decode(Array(bytes[parts[0]]), maxPayload: 1 << 10, decompressor: decompressor)
        let e = try Container.decode(Array(bytes[parts[1]]), maxPayload: 1 << 10, decompressor: decompressor)
        #expect(x.header.kind == .extractorWeights && x.header.modelVersion == 5)
        #expect(x.header.tensors.map(\.shape) == Golden.checkpointExtractorShapes)
        #expect(e.header.kind == .expertWeights && e.header.expertId == 0 && e.header.modelVersion == 6)
        #expect(e.header.tensors.map(\.shape) == Golden.checkpointExpertShapes)
        let xv = values(x.header, x.payload), ev = values(e.header, e.payload)
        #expect(xv.count == 9 && xv[0] == 0.125 && xv[8] == 1.125)
        #expect(ev.count == 14 && ev[0] == -0.0625 && ev[13] == -0.875)
    }

    @Test("the checkpoint fixture re-encodes byte for byte")
    func checkpointReencodes() throws {
        #expect(CheckpointFrame.encode(round: Golden.checkpointRound, parts: try Golden.checkpointParts()) == (try fixture("checkpoint")))
    }

    @Test("checkpoint frames: every truncation, a trailing byte, a bad magic and version are rejected")
    func checkpointErrors() throws {
        let bytes = try fixture("checkpoint")
        for length in 0..<bytes.count {
            let cut = Array(bytes[0..<length])
            #expect(throws: WireError.self) { _ = try cut.withUnsafeBytes { try CheckpointFrame.parse($0) } }
        }
        let longer = bytes + [0]
        #expect(throws: WireError.trailingBytes(1)) { _ = try longer.withUnsafeBytes { try CheckpointFrame.parse($0) } }
        var bad = bytes
        bad[0] = 0
        #expect(throws: WireError.badMagic) { _ = try bad.withUnsafeBytes { try CheckpointFrame.parse($0) } }
        bad = bytes
        bad[4] = 2
        #expect(throws: WireError.unsupportedVersion(2)) { _ = try bad.withUnsafeBytes { try CheckpointFrame.parse($0) } }
        bad = bytes
        bad[16] = 0xFF; bad[17] = 0xFF; bad[18] = 0xFF; bad[19] = 0x7F   // a count the bytes cannot hold
        #expect(throws: WireError.self) { _ = try bad.withUnsafeBytes { try CheckpointFrame.parse($0) } }
        #expect(CheckpointFrame.describe(.badMagic) == "not a checkpoint (bad magic)")
    }
}
