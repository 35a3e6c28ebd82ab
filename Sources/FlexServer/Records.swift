import FlexAssign
import Foundation

/// What the server persists and reports, as Codable records with one schema each (snake_case JSON).

/// One completed round: a line of `rounds.log`, `last_round` in `/v1/status`.
public struct RoundRecord: Codable, Sendable, Equatable {
    public var round: Int
    public var participants: Int
    public var assigned: Int
    public var dropped: [Int]
    /// Assigned load per expert (Σ |D_c| over its holders) and its balance.
    public var expertLoad: [Int]
    public var loadCV: Double
    public var maxOverMean: Double
    /// Load the devices reported (Σ u[c][e]).
    public var reportedLoad: [Int]
    public var reportedLoadCV: Double
    public var bytesIn: Int
    public var bytesOut: Int
    public var durationSeconds: Double
    public var relaxationSteps: Int
    public var meanLoss: Double
    public var meanAccuracy: Double
    /// Mean held-out accuracy over the reports that carried one (nil: none did).
    public var meanTestAccuracy: Double?
    /// Mean held-out accuracy of the downloaded model before local training (nil: no report had it).
    public var meanPreTestAccuracy: Double?
    public var expertsUpdated: [Int]
    public var extractorUpdated: Bool
    /// Deltas scaled down by a norm bound this round (robust aggregation; nil in records from before it).
    public var clippedUpdates: Int?

    enum CodingKeys: String, CodingKey {
        case round, participants, assigned, dropped
        case expertLoad = "expert_load", loadCV = "load_cv", maxOverMean = "max_over_mean"
        case reportedLoad = "reported_load", reportedLoadCV = "reported_load_cv"
        case bytesIn = "bytes_in", bytesOut = "bytes_out", durationSeconds = "duration_s"
        case relaxationSteps = "relaxation_steps", meanLoss = "mean_loss", meanAccuracy = "mean_accuracy"
        case meanTestAccuracy = "mean_test_accuracy", meanPreTestAccuracy = "mean_pre_test_accuracy"
        case expertsUpdated = "experts_updated"
        case extractorUpdated = "extractor_updated"
        case clippedUpdates = "clipped_updates"
    }
}

/// `state.json`: the last completed round, its checkpoint, Q (measured pairs) and the load history.
public struct PersistedState: Sendable, Equatable, Codable {
    public var completedRound: Int
    public var checkpoint: String
    /// client id → [(expert, Q value)] for measured pairs.
    public var fitness: [Int: [QEntry]]
    public var loadHistory: [[Int]]

    /// One measured Q value; stored as the pair `[expert, value]`.
    public struct QEntry: Sendable, Equatable, Codable {
        public var expert: Int
        public var value: Float
        public init(expert: Int, value: Float) { self.expert = expert; self.value = value }
        public init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            expert = Int(try c.decode(Double.self))
            value = Float(try c.decode(Double.self))
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(expert)
            try c.encode(Double(value))
        }
    }

    public init(completedRound: Int, checkpoint: String, fitness: [Int: [QEntry]], loadHistory: [[Int]]) {
        self.completedRound = completedRound; self.checkpoint = checkpoint; self.fitness = fitness
        self.loadHistory = loadHistory
    }

    enum CodingKeys: String, CodingKey {
        case completedRound = "completed_round", checkpoint, fitness, loadHistory = "load_history"
    }
}

/// The frozen feature normalization (docs/PROTOCOL.md, federated standardisation): `normalization.json`.
public struct Normalization: Codable, Sendable, Equatable {
    /// Devices whose statistics were pooled, and their samples.
    public var devices: Int
    public var samples: Int
    public var mean: [Float]
    public var std: [Float]
}

/// Feature statistics pooled from devices in fp64 (Chan et al.'s parallel update of n, mean, M2).
public struct FeatureStatsPool: Sendable, Equatable {
    public private(set) var count = 0.0
    public private(set) var mean: [Double]
    public private(set) var m2: [Double]
    public private(set) var devices = 0

    public init(features: Int) {
        mean = [Double](repeating: 0, count: features)
        m2 = [Double](repeating: 0, count: features)
    }

    /// Adds one device's n, per-feature mean and population standard deviation.
    public mutating func add(count n: Double, mean m: [Float], std s: [Float]) {
        let total = count + n
        for j in 0..<mean.count {
            let delta = Double(m[j]) - mean[j]
            let deviceM2 = n * Double(s[j]) * Double(s[j])
            mean[j] += delta * n / total
            m2[j] += deviceM2 + delta * delta * count * n / total
        }
        count = total
        devices += 1
    }

    /// The normalization: mean and population standard deviation; a σ below 1e-6 · max(1, |μ|) is
    /// taken as 1 (a constant feature becomes 0).
    public func normalization() -> Normalization {
        var std = [Float](repeating: 1, count: mean.count)
        for j in 0..<mean.count {
            let s = count > 0 ? (m2[j] / count).squareRoot() : 0
            if s >= 1e-6 * max(1, abs(mean[j])) { std[j] = Float(s) }
        }
        return Normalization(devices: devices, samples: Int(count), mean: mean.map { Float($0) }, std: std)
    }
}

/// `GET /v1/status`.
public struct ServerStatus: Codable, Sendable, Equatable {
    public var round: Int
    public var state: String
    public var totalRounds: Int
    public var completedRound: Int
    public var clients: Int
    public var active: Int
    public var assigned: Int
    public var reported: Int
    public var expertLoad: [Int]
    public var loadCV: Double
    public var extractorVersion: UInt64
    public var expertVersions: [UInt64]
    public var lastRound: RoundRecord?

    enum CodingKeys: String, CodingKey {
        case round, state, clients, active, assigned, reported
        case totalRounds = "total_rounds", completedRound = "completed_round", expertLoad = "expert_load"
        case loadCV = "load_cv", extractorVersion = "extractor_version", expertVersions = "expert_versions"
        case lastRound = "last_round"
    }
}

/// The one JSON encoder of the server's records: sorted keys, one line.
public enum RecordJSON {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        // Records hold finite numbers only (the machine makes them so); a failure is a bug.
        return [UInt8](try! e.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}

extension LoadMetrics {
    /// CV and max/mean with 0 where undefined (no load at all), so records stay finite.
    var finiteCV: Double { cv.isFinite ? cv : 0 }
    var finiteMaxOverMean: Double { maxOverMean.isFinite ? maxOverMean : 0 }
}
