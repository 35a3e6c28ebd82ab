import FlexModel
import FlexTensor
import FlexWire

/// A report checked against the model and the round: fields parsed, containers decoded to fp32,
/// shapes, kinds, versions and finiteness verified. Produced by `ReportValidator`, consumed by
/// `StreamingAggregator.fold`; it lives only while one report is being folded.
public struct ValidatedReport: Sendable {
    public var fields: ReportFields
    public var extractorDelta: [Float]
    public var expertDeltas: [[Float]]

    public var clientId: Int { fields.clientId }
    public var samples: Int { fields.samples }
    public var loss: Double { fields.loss }
    public var accuracy: Double { fields.accuracy }
    public var testAccuracy: Double? { fields.testAccuracy }
    public var experts: [Int] { fields.experts }
    public var usage: [Int] { fields.usage }
    public var fitness: [Double] { fields.fitness }

    public init(fields: ReportFields, extractorDelta: [Float], expertDeltas: [[Float]]) {
        self.fields = fields; self.extractorDelta = extractorDelta; self.expertDeltas = expertDeltas
    }

    public init(clientId: Int, samples: Int, loss: Double, accuracy: Double, testAccuracy: Double? = nil, experts: [Int],
                usage: [Int], fitness: [Double], extractorDelta: [Float], expertDeltas: [[Float]]) {
        self.init(fields: ReportFields(clientId: clientId, samples: samples, loss: loss, accuracy: accuracy,
                                       testAccuracy: testAccuracy, experts: experts, usage: usage, fitness: fitness),
                  extractorDelta: extractorDelta, expertDeltas: expertDeltas)
    }
}

/// The ranges a report's fields must lie in (docs/PROTOCOL.md "Field ranges"), so that no accepted
/// report can make a round's aggregates non-finite or give one device more than its share.
public struct ReportLimits: Sendable, Equatable {
    /// Largest mean training loss a report may carry: a diverging device's cross-entropy stays far
    /// below it, and a thousand such reports still sum to a finite mean.
    public static let maxLoss = 1e4
    /// |D_c| the device registered: each `usage` (samples routed to an expert, summed over the local
    /// epochs) is at most `registeredSamples × localEpochs`. Nil when unknown (offline `aggregate`).
    public var registeredSamples: Int?
    public var localEpochs: Int
    /// The server's `max_samples`: the largest |D_c| a device may register or report.
    public var maxSamples: Int

    public init(registeredSamples: Int?, localEpochs: Int, maxSamples: Int) {
        self.registeredSamples = registeredSamples; self.localEpochs = localEpochs; self.maxSamples = maxSamples
    }

    /// For reports aggregated offline (`flexmoe-server aggregate`), whose device and settings are
    /// unknown: the unit ranges and the loss cap still hold; samples and usage are only kept finite.
    public static let offline = ReportLimits(registeredSamples: nil, localEpochs: 1000, maxSamples: 1_000_000_000)

    /// Checks every field (422 `invalid_field` with the field and its range).
    public func check(_ f: ReportFields) throws(ProtocolError) {
        func unit(_ name: String, _ v: Double) throws(ProtocolError) {
            guard v >= 0 && v <= 1 else { throw .invalidField("\(name) = \(v) is outside [0, 1]") }
        }
        guard f.samples <= maxSamples else { throw .invalidField("samples = \(f.samples) exceeds max_samples \(maxSamples)") }
        guard f.loss.isFinite && f.loss >= 0 && f.loss <= Self.maxLoss else {
            throw .invalidField("loss = \(f.loss) is outside [0, \(Int(Self.maxLoss))]")
        }
        try unit("accuracy", f.accuracy)
        if let t = f.testAccuracy { try unit("test_accuracy", t) }
        if let t = f.preTestAccuracy { try unit("pre_test_accuracy", t) }
        for s in f.fitness { try unit("fitness", s) }
        for s in f.probedFitness { try unit("probed_fitness", s) }
        let most = (registeredSamples ?? maxSamples) * max(localEpochs, 1)
        for u in f.usage where u < 0 || u > most {
            throw .invalidField("usage = \(u) is outside [0, \(most)] (\(registeredSamples.map { "the \($0) samples registered" } ?? "max_samples") × \(localEpochs) local epochs)")
        }
    }
}

/// Parses and checks a report body (docs/PROTOCOL.md `POST /v1/rounds/N/report`).
public enum ReportValidator {
    /// Splits the body and parses the fields (framing and fields: 400; an oversized message: 413).
    public static func fields(_ body: UnsafeRawBufferPointer) throws(ProtocolError) -> (fields: SmallMessage, containers: [Range<Int>]) {
        do { return try ReportFrame.parse(body) } catch { throw ProtocolError(error) }
    }

    /// Checks the fields and decodes the containers. `versions` gives the version each part must be
    /// against (nil: any version is accepted, as the offline `aggregate` command does);
    /// `assigned` the experts the client may report (nil: any).
    public static func validate(
        _ body: UnsafeRawBufferPointer, fields f: SmallMessage, containers: [Range<Int>], model: MoEConfig,
        extractorVersion: UInt64?, expertVersions: [UInt64]?, assigned: [Int]?, limits: ReportLimits,
        decompressor: borrowing ZstdDecompressor
    ) throws(ProtocolError) -> ValidatedReport {
        let fields: ReportFields
        do throws(MessageError) { fields = try ReportFields(f) } catch {
            if case .badReport(let why) = error { throw .badRequest(why) }
            throw ProtocolError(error)
        }
        let clientId = fields.clientId, experts = fields.experts
        try limits.check(fields)
        for e in experts where e < 0 || e >= model.experts { throw .notFound("expert \(e) out of range") }
        if let a = assigned {
            for e in experts where !a.contains(e) { throw .notAssigned("expert \(e) is not assigned to client \(clientId)") }
        }
        // Probes: experts of the model the device was not assigned, fitness in [0, 1].
        for e in fields.probed where e < 0 || e >= model.experts || assigned?.contains(e) == true {
            throw .badRequest("probed expert \(e) is out of range or assigned")
        }
        if fields.probed.count > model.experts { throw .badRequest("more probes than experts") }
        if containers.count != 1 + experts.count {
            throw .badRequest("\(containers.count) containers, expected 1 + \(experts.count)")
        }
        // Containers: the extractor delta, then one delta per listed expert (any order).
        var extractorDelta: [Float]? = nil
        var expertDeltas = [[Float]?](repeating: nil, count: experts.count)
        for r in containers {
            let bytes = UnsafeRawBufferPointer(rebasing: body[r])
            let header: ContainerHeader
            do { header = try Container.parseHeader(bytes) } catch { throw .invalidUpdate(error.message) }
            switch header.kind {
            case .extractorDelta:
                if extractorDelta != nil { throw .invalidUpdate("two extractor deltas") }
                if let v = extractorVersion, header.modelVersion != v {
                    throw .staleVersion("the extractor is at version \(v), the update is against version \(header.modelVersion)")
                }
                extractorDelta = try GlobalModel.decode(bytes, shapes: model.extractorShapes,
                                                        kinds: [.extractorDelta], decompressor: decompressor).values
            case .expertDelta:
                let e = Int(header.expertId ?? 0)
                guard let slot = experts.firstIndex(of: e) else { throw .invalidUpdate("a delta for expert \(e), which the fields do not list") }
                if expertDeltas[slot] != nil { throw .invalidUpdate("two deltas for expert \(e)") }
                if let vs = expertVersions, header.modelVersion != vs[e] {
                    throw .staleVersion("expert \(e) is at version \(vs[e]), the update is against version \(header.modelVersion)")
                }
                expertDeltas[slot] = try GlobalModel.decode(bytes, shapes: model.expertShapes, kinds: [.expertDelta],
                                                            decompressor: decompressor).values
            default:
                throw .invalidUpdate("container kind \(header.kind) in a report (deltas only)")
            }
        }
        guard let x = extractorDelta else { throw .invalidUpdate("no extractor delta") }
        return ValidatedReport(fields: fields, extractorDelta: x, expertDeltas: expertDeltas.map { $0! })
    }
}

/// Running weighted sums of the deltas of one round, per expert and for the extractor: memory is
/// O(model size) whatever the number of clients (DESIGN.md §6). The live server and the
/// `aggregate` command both use it.
public struct StreamingAggregator: Sendable {
    public let config: MoEConfig
    /// Clip each delta (extractor, each expert) to this L2 norm; 0 = off.
    public var clipNorm: Double
    private var extractorSum: [Double]
    private var extractorWeight = 0.0
    private var expertSum: [[Double]]
    public private(set) var expertWeight: [Double]
    public private(set) var reports = 0
    /// Deltas scaled down by a norm bound (`clipNorm` or the bounds given to `fold`).
    public private(set) var clipped = 0
    /// L2 norms of the folded deltas before any clipping: the extractor's, and every expert's.
    public private(set) var extractorNorms: [Double] = []
    public private(set) var expertNorms: [Double] = []

    public init(config: MoEConfig, clipNorm: Double = 0) {
        self.config = config
        self.clipNorm = clipNorm
        extractorSum = [Double](repeating: 0, count: config.inputDim * config.hidden + config.hidden)
        expertSum = [[Double]](repeating: [], count: config.experts)  // allocated on first use
        expertWeight = [Double](repeating: 0, count: config.experts)
    }

    /// The L2 norm of a delta.
    public static func norm(_ delta: [Float]) -> Double {
        var s = 0.0
        for x in delta { s += Double(x) * Double(x) }
        return s.squareRoot()
    }

    /// The factor that brings a delta of norm `n` within `bound` and `clipNorm` (1 when it is).
    private mutating func scale(norm n: Double, bound: Double) -> Double {
        let limit = clipNorm > 0 ? min(bound, clipNorm) : bound
        if n > limit { clipped += 1; return limit / n }
        return 1
    }

    /// Adds one validated report: the extractor with `extractorWeight` (|D_c|), expert slot i with
    /// `expertWeights[i]` (u[c][e] or |D_c|); each delta is first scaled down to its norm bound
    /// (`extractorBound`, `expertBound`, and `clipNorm`), so that one report moves the model by at
    /// most its weight's share of that bound.
    public mutating func fold(_ r: ValidatedReport, extractorWeight wx: Double, expertWeights: [Double],
                              extractorBound: Double = .infinity, expertBound: Double = .infinity) {
        reports += 1
        if wx > 0 {
            let n = Self.norm(r.extractorDelta)
            extractorNorms.append(n)
            let k = wx * scale(norm: n, bound: extractorBound)
            for i in 0..<extractorSum.count { extractorSum[i] += k * Double(r.extractorDelta[i]) }
            extractorWeight += wx
        }
        for (slot, e) in r.experts.enumerated() where expertWeights[slot] > 0 {
            let w = expertWeights[slot]
            let n = Self.norm(r.expertDeltas[slot])
            expertNorms.append(n)
            let k = w * scale(norm: n, bound: expertBound)
            if expertSum[e].isEmpty { expertSum[e] = [Double](repeating: 0, count: config.expertParameterCount) }
            let d = r.expertDeltas[slot]
            expertSum[e].withUnsafeMutableBufferPointer { s in
                for i in 0..<s.count { s[i] += k * Double(d[i]) }
            }
            expertWeight[e] += w
        }
    }

    /// Applies the weighted means to `model`; parts that changed get version `round`. An expert
    /// nobody trained stays as it was. Returns the experts that changed.
    @discardableResult
    public func apply(to model: inout GlobalModel, round: UInt64) -> (extractor: Bool, experts: [Int]) {
        var changed: [Int] = []
        if extractorWeight > 0 {
            for i in 0..<model.extractor.count {
                let v = model.extractor[i] + Float(extractorSum[i] / extractorWeight)
                if v.isFinite && abs(v) <= GlobalModel.maxMagnitude { model.extractor[i] = v }
            }
            model.extractorVersion = round
        }
        for e in 0..<config.experts where expertWeight[e] > 0 {
            let w = expertWeight[e]
            for i in 0..<model.experts[e].count {
                let v = model.experts[e][i] + Float(expertSum[e][i] / w)
                if v.isFinite && abs(v) <= GlobalModel.maxMagnitude { model.experts[e][i] = v }
            }
            model.expertVersions[e] = round
            changed.append(e)
        }
        return (extractorWeight > 0, changed)
    }
}
