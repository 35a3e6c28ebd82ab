import FlexModel
import FlexTensor
import FlexWire
import Foundation

/// `flexmoe-server aggregate`: the live server's `ReportValidator` and `StreamingAggregator`
/// applied to files.
public enum OfflineAggregation {
    /// The model shapes a checkpoint holds (extractor W1 d×h; expert A1 h×f, A2 f×K; E = parts − 1).
    public static func config(ofCheckpoint bytes: [UInt8]) throws -> MoEConfig {
        // The extractor's and the first expert's headers hold every shape.
        let (count, headers) = try bytes.withUnsafeBytes { b in
            Result { () throws(ServerError) -> (Int, [ContainerHeader]) in
                let parts: [Range<Int>]
                do throws(WireError) { parts = try CheckpointFrame.parse(b).parts } catch {
                    throw .checkpoint(CheckpointFrame.describe(error))
                }
                guard parts.count >= 2 else { throw .checkpoint("no experts") }
                var headers: [ContainerHeader] = []
                for (i, range) in parts.prefix(2).enumerated() {
                    do throws(WireError) { headers.append(try Container.parseHeader(UnsafeRawBufferPointer(rebasing: b[range]))) } catch {
                        throw .checkpoint("part \(i): \(error.message)")
                    }
                }
                return (parts.count, headers)
            }
        }.get()
        guard headers[0].tensors.count == 2, headers[1].tensors.count == 4 else { throw ServerError.checkpoint("unexpected tensors") }
        let w1 = headers[0].tensors[0].shape, a1 = headers[1].tensors[0].shape, a2 = headers[1].tensors[2].shape
        return MoEConfig(inputDim: w1.rows, hidden: w1.cols, expertHidden: a1.cols, classes: a2.cols, experts: count - 1)
    }

    public static func run(base: String, updates: String, out: String, weightByUsage: Bool, clipNorm: Double,
                           round: UInt64?) throws -> String {
        guard let bytes = DurableFile.read(base) else { throw ServerError.checkpoint("cannot read \(base)") }
        let config = try self.config(ofCheckpoint: bytes)
        var (model, baseRound) = try GlobalModel.load(checkpoint: bytes, config: config)
        var agg = StreamingAggregator(config: config, clipNorm: clipNorm)
        let names = try FileManager.default.contentsOfDirectory(atPath: updates).sorted()
        let decompressor = ZstdDecompressor()
        var used = 0, skipped: [String] = []
        for name in names {
            let path = updates + "/" + name
            guard let b = DurableFile.read(path), b.count >= 4 else { continue }
            do throws(ProtocolError) {
                if b.starts(with: ReportFrame.magic) {
                    let r = try b.withUnsafeBytes { p in
                        Result { () throws(ProtocolError) -> ValidatedReport in
                            let (f, ranges) = try ReportValidator.fields(p)
                            return try ReportValidator.validate(p, fields: f, containers: ranges, model: config,
                                                                extractorVersion: model.extractorVersion,
                                                                expertVersions: model.expertVersions, assigned: nil,
                                                                limits: .offline, decompressor: decompressor)
                        }
                    }.get()
                    let s = Double(max(r.samples, 0))
                    agg.fold(r, extractorWeight: s, expertWeights: r.experts.indices.map { weightByUsage ? Double(r.usage[$0]) : s })
                } else {
                    // A bare delta container, weight 1.
                    let h = try b.withUnsafeBytes { p in
                        Result { () throws(ProtocolError) -> ContainerHeader in
                            do throws(WireError) { return try Container.parseHeader(p) } catch { throw .invalidUpdate(error.message) }
                        }
                    }.get()
                    let empty = [Float](repeating: 0, count: 0)
                    if h.kind == .extractorDelta {
                        if h.modelVersion != model.extractorVersion { throw .staleVersion("extractor delta against version \(h.modelVersion)") }
                        let v = try GlobalModel.decode(b, shapes: config.extractorShapes, kinds: [.extractorDelta], decompressor: decompressor).values
                        agg.fold(ValidatedReport(clientId: 0, samples: 1, loss: 0, accuracy: 0, experts: [], usage: [], fitness: [],
                                                 extractorDelta: v, expertDeltas: []), extractorWeight: 1, expertWeights: [])
                    } else if h.kind == .expertDelta, let e = h.expertId.map(Int.init), e < config.experts {
                        if h.modelVersion != model.expertVersions[e] { throw .staleVersion("expert \(e) delta against version \(h.modelVersion)") }
                        let v = try GlobalModel.decode(b, shapes: config.expertShapes, kinds: [.expertDelta], decompressor: decompressor).values
                        agg.fold(ValidatedReport(clientId: 0, samples: 1, loss: 0, accuracy: 0, experts: [e], usage: [1], fitness: [0],
                                                 extractorDelta: empty, expertDeltas: [v]), extractorWeight: 0, expertWeights: [1])
                    } else {
                        throw .invalidUpdate("not an update (kind \(h.kind))")
                    }
                }
                used += 1
            } catch {
                skipped.append("\(name): \(error.code): \(error.message)")
            }
        }
        let newRound = round ?? baseRound + 1
        let changed = agg.apply(to: &model, round: newRound)
        try DurableFile.writeAtomically(model.checkpoint(round: newRound), to: out)
        let skippedJSON = skipped.map { "\"" + $0.replacingOccurrences(of: "\"", with: "'") + "\"" }.joined(separator: ",")
        return "{\"round\": \(newRound), \"updates\": \(used), \"skipped\": [\(skippedJSON)], \"extractor_updated\": \(changed.extractor), \"experts_updated\": \(changed.experts), \"clipped\": \(agg.clipped)}"
    }
}
