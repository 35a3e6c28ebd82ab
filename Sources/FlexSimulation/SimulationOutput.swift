import Foundation

/// What `flexmoe-server simulate` writes into `--out`: rounds.csv, summary.json and SVG plots
/// (drawn by hand, no plotting library).
public enum SimulationOutput {
    public static let csvColumns = [
        "strategy", "seed", "round", "test_accuracy", "pre_test_accuracy", "train_loss", "train_accuracy", "load_cv", "max_over_mean",
        "relaxation_steps", "missed_reports", "probed_pairs", "clipped_updates", "bytes_up_per_client", "bytes_down_per_client", "bytes_per_client", "seconds", "expert_load",
    ]

    /// One row per strategy × seed × round; `expert_load` is the per-expert load joined with ';'.
    public static func csv(_ rows: [SimulationRound]) -> String {
        var s = csvColumns.joined(separator: ",") + "\n"
        for r in rows {
            let fields: [String] = [
                r.strategy.rawValue, String(r.seed), String(r.round), f6(r.testAccuracy), f6(r.preTestAccuracy), f6(r.trainLoss), f6(r.trainAccuracy),
                f6(r.cv), f6(r.maxOverMean), String(r.relaxationSteps), String(r.missedReports), String(r.probedPairs), String(r.clippedUpdates), String(Int(r.bytesUp.rounded())),
                String(Int(r.bytesDown.rounded())), String(Int(r.bytesPerClient.rounded())), String(format: "%.4f", r.seconds),
                r.load.map(String.init).joined(separator: ";"),
            ]
            s += fields.joined(separator: ",") + "\n"
        }
        return s
    }

    // MARK: summary

    public struct Stat: Sendable {
        public var mean: Double
        public var std: Double
        public var values: [Double]
        /// Mean and sample standard deviation (n − 1; 0 for one value).
        public init(_ v: [Double]) {
            values = v
            mean = v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count)
            if v.count > 1 {
                let m = mean
                std = (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)).squareRoot()
            } else { std = 0 }
        }
        var json: [String: Any] { ["mean": num(mean), "std": num(std), "values": values.map(num)] }
    }

    public struct StrategySummary: Sendable {
        public var strategy: SimulationStrategy
        /// Test accuracy of the last round, per seed.
        public var finalAccuracy: Stat
        /// First round whose test accuracy reaches the target, over the seeds that reached it.
        public var roundsToTarget: Stat
        public var reachedTarget: Int
        public var seeds: Int
        /// Load CV averaged over the rounds, per seed.
        public var meanCV: Stat
        public var finalCV: Stat
        public var meanMaxOverMean: Stat
        /// Bytes per client per round (up + down), averaged over the rounds, per seed.
        /// Final held-out accuracy of the downloaded model, before local training.
        public var finalPreAccuracy: Stat
        public var bytesPerRound: Stat
        public var bytesUp: Stat
        public var bytesDown: Stat
        public var secondsPerRound: Stat
    }

    public static func target(_ rows: [SimulationRound], settings: SimulationSettings) -> Double {
        if let t = settings.targetAccuracy { return t }
        let best = settings.strategies.map { s in
            Stat(finalRows(rows, s).map(\.testAccuracy)).mean
        }.filter { $0.isFinite }.max() ?? 0
        return (0.9 * best * 100).rounded(.down) / 100
    }

    static func finalRows(_ rows: [SimulationRound], _ s: SimulationStrategy) -> [SimulationRound] {
        let mine = rows.filter { $0.strategy == s }
        let last = mine.map(\.round).max() ?? 0
        return mine.filter { $0.round == last }
    }

    public static func summarise(_ rows: [SimulationRound], settings: SimulationSettings, target: Double) -> [StrategySummary] {
        settings.strategies.map { s in
            let mine = rows.filter { $0.strategy == s }
            let seeds = settings.seeds.filter { seed in mine.contains { $0.seed == seed } }
            func perSeed(_ f: ([SimulationRound]) -> Double?) -> [Double] {
                seeds.compactMap { seed in f(mine.filter { $0.seed == seed }.sorted { $0.round < $1.round }) }
            }
            func avg(_ rs: [SimulationRound], _ k: (SimulationRound) -> Double) -> Double {
                rs.map(k).reduce(0, +) / Double(max(rs.count, 1))
            }
            let reached = perSeed { rs in rs.first { $0.testAccuracy >= target }.map { Double($0.round) } }
            return StrategySummary(
                strategy: s,
                finalAccuracy: Stat(perSeed { $0.last?.testAccuracy }),
                roundsToTarget: Stat(reached), reachedTarget: reached.count, seeds: seeds.count,
                meanCV: Stat(perSeed { avg($0, \.cv) }),
                finalCV: Stat(perSeed { $0.last?.cv }),
                meanMaxOverMean: Stat(perSeed { avg($0, \.maxOverMean) }),
                finalPreAccuracy: Stat(perSeed { $0.last?.preTestAccuracy }),
                bytesPerRound: Stat(perSeed { avg($0, \.bytesPerClient) }),
                bytesUp: Stat(perSeed { avg($0, \.bytesUp) }),
                bytesDown: Stat(perSeed { avg($0, \.bytesDown) }),
                secondsPerRound: Stat(perSeed { avg($0, \.seconds) }))
        }
    }

    /// `denseMatched`: the dense model of `fedavg-dense-matched` per seed (written when the strategy ran).
    public static func summaryJSON(_ rows: [SimulationRound], settings s: SimulationSettings, samples: Int, features: Int,
                                   classes: Int, command: String? = nil, denseMatched: [Simulation.DenseMatch] = []) -> String {
        let t = target(rows, settings: s)
        var strategies: [String: Any] = [:]
        for x in summarise(rows, settings: s, target: t) {
            strategies[x.strategy.rawValue] = [
                "final_accuracy": x.finalAccuracy.json,
                "final_pre_training_accuracy": x.finalPreAccuracy.json,
                "rounds_to_target": x.roundsToTarget.json,
                "reached_target": x.reachedTarget,
                "seeds": x.seeds,
                "mean_cv": x.meanCV.json,
                "final_cv": x.finalCV.json,
                "mean_max_over_mean": x.meanMaxOverMean.json,
                "bytes_per_round": x.bytesPerRound.json,
                "bytes_up_per_round": x.bytesUp.json,
                "bytes_down_per_round": x.bytesDown.json,
                "seconds_per_round": x.secondsPerRound.json,
            ]
        }
        var o: [String: Any] = [
            "dataset": s.dataset.name, "split": s.split.name, "clients": s.clients, "experts": s.experts,
            "capacity": s.capacity.name, "rounds": s.rounds, "local_epochs": s.localEpochs,
            "fitness": { if case .loss = s.fitness { return "loss" } else { return "accuracy" } }(),
            "seeds": s.seeds.map { Int($0) }, "strategies_run": s.strategies.map(\.rawValue),
            "target_accuracy": t, "target_accuracy_given": s.targetAccuracy != nil,
            "samples": samples, "features": features, "classes": classes,
            "test_fraction": s.testFraction, "batch": s.batch, "learning_rate": Double(s.learningRate), "momentum": Double(s.momentum), "gradient_clip": Double(s.gradientClip),
            "epsilon": s.epsilon, "beta": s.beta, "storage_dtype": s.storage.name, "update_dtype": s.update.name,
            "standardize_inputs": s.standardizeInputs, "shared_expert": s.sharedExpert, "gate_init": s.gateInit.rawValue,
            "fitness_timing": s.fitnessTiming.rawValue, "exploration_bonus": s.explorationBonus,
            "warm_slots": s.warmSlots, "probe_warm": s.probeWarm, "weight_cap": s.weightCap, "norm_bound": s.normBound,
            "metrics": [
                "final_accuracy": "mean over devices of the local test accuracy after the last round's local training",
                "rounds_to_target": "first round whose accuracy >= target_accuracy, over the seeds that reached it",
                "mean_cv": "expert-load CV (std/mean of the assigned loads; the routed experts' with a shared expert) averaged over the rounds",
                "bytes_per_round": "bytes per client per round: report body up + containers down (HTTP heads excluded)",
                "std": "sample standard deviation over seeds",
            ],
            "strategies": strategies,
        ]
        if let c = command { o["command"] = c }
        if s.strategies.contains(.fedavgDenseMatched), !denseMatched.isEmpty {
            // Per seed, in the order of "seeds" (k is the smallest k_c among the seed's devices).
            o["dense_matched_kc"] = denseMatched.map(\.kc)
            o["dense_matched_expert_hidden"] = denseMatched.map(\.expertHidden)
            o["dense_matched_expert_parameters"] = denseMatched.map(\.parameters)
            o["dense_matched_budget_parameters"] = denseMatched.map(\.budgetParameters)
        }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Writes rounds.csv, summary.json and the plots; returns the paths written.
    @discardableResult
    public static func write(_ rows: [SimulationRound], settings: SimulationSettings, samples: Int, features: Int, classes: Int,
                             to dir: String, command: String? = nil, denseMatched: [Simulation.DenseMatch] = []) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files: [(String, String)] = [
            ("rounds.csv", csv(rows)),
            ("summary.json", summaryJSON(rows, settings: settings, samples: samples, features: features, classes: classes,
                                         command: command, denseMatched: denseMatched)),
        ]
        let title = "\(settings.dataset.name), \(settings.split.name), \(settings.clients) clients, E=\(settings.experts), k_c \(settings.capacity.name)"
        files.append(("accuracy.svg", SVGPlot.accuracy(rows, strategies: settings.strategies, title: title,
                                                        target: target(rows, settings: settings))))
        let balanced = settings.strategies.filter { !$0.isDense }
        if !balanced.isEmpty {
            files.append(("load_cv.svg", SVGPlot.loadCV(rows, strategies: balanced, title: title)))
        }
        for s in balanced {
            let seed = settings.seeds[0]
            let mine = rows.filter { $0.strategy == s && $0.seed == seed }.sorted { $0.round < $1.round }
            if !mine.isEmpty {
                files.append(("heatmap_\(s.rawValue).svg", SVGPlot.heatmap(mine, title: "Expert load / fair share W/E — \(s.rawValue), seed \(seed)",
                                                                             subtitle: title)))
            }
        }
        var paths: [String] = []
        for (name, text) in files {
            let p = (dir as NSString).appendingPathComponent(name)
            try text.write(toFile: p, atomically: true, encoding: .utf8)
            paths.append(p)
        }
        return paths
    }

    static func f6(_ x: Double) -> String { x.isFinite ? String(format: "%.6f", x) : "nan" }
    static func num(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
}
