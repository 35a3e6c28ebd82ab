import ArgumentParser
import FlexAssign
import Foundation

/// `flexmoe-bench assign`: flex vs greedy vs random on synthetic FLEX-MoE rounds
/// (power-law |D_c|, k_c ∈ {1,2,4}, clustered fitness), default and tight slack.
/// One JSON line per (instance, slack, solver).
struct AssignBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assign",
        abstract: "Expert assignment: solve time, objective, load CV and optimality gap.")

    @Option(help: "Instance sizes as CxE, comma-separated.")
    var sizes = "100x8,1000x64,10000x256"

    @Option(help: "Slack values, comma-separated (default slack first, then tight).")
    var slacks = "\(LoadBounds.defaultSlack),0.01"

    @Option(help: "Timed runs per solver (the median is reported).")
    var runs = 5

    @Option(help: "Instance seed.")
    var seed: UInt64 = 1

    @Option(help: "Seconds the exact branch-and-bound may spend per instance (0 = skip).")
    var exactSeconds = 20.0

    @Option(help: "Largest clients × experts for which the exact solver is tried.")
    var exactMaxCells = 2000

    @Option(help: "Write each instance as JSON (the CLI format) into this directory, for Benchmarks/assign_milp.py.")
    var writeInstances: String?

    @Option(help: "JSON file of optima from Benchmarks/assign_milp.py ({\"name\": {\"optimum\": x, \"lp\": y}}).")
    var optima: String?

    @Option(help: "Flex: subgradient iterations at most (ablation).")
    var flexIterations: Int?

    @Option(help: "Flex: local-search passes (ablation).")
    var flexPasses: Int?

    @Option(help: "Flex: repair every N iterations (ablation).")
    var flexRepairEvery: Int?

    @Option(help: "Solvers to run, comma-separated.")
    var solvers = "flex,greedy,random"

    func run() throws {
        var reference: [String: [String: Double]] = [:]
        if let path = optima, let data = FileManager.default.contents(atPath: path),
           let obj = try JSONSerialization.jsonObject(with: data) as? [String: [String: Double]] {
            reference = obj
        }
        for size in sizes.split(separator: ",") {
            let parts = size.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("bad size \(size)") }
            for slackText in slacks.split(separator: ",") {
                guard let slack = Double(slackText) else { throw ValidationError("bad slack \(slackText)") }
                var gen = InstanceGenerator(clients: parts[0], experts: parts[1])
                gen.slack = slack
                let inst = gen.make(seed: seed)
                let name = "\(parts[0])x\(parts[1])-eps\(slack)-seed\(seed)"
                if let dir = writeInstances { try write(inst, to: "\(dir)/\(name).json") }
                var exactObj: Double? = reference[name]?["optimum"]
                let lpBound: Double? = reference[name]?["lp"]
                if exactObj == nil, exactSeconds > 0, parts[0] * parts[1] <= exactMaxCells {
                    var o = SolveOptions()
                    o.timeLimit = .seconds(exactSeconds)
                    o.allowRelaxation = false
                    if let r = try? Assigner.solve(inst, solver: .exact, options: o), r.proved {
                        exactObj = r.objective
                    }
                }
                for solver in solvers.split(separator: ",").compactMap({ SolverKind(rawValue: String($0)) }) {
                    var times: [Double] = []
                    var result: AssignmentResult? = nil
                    var opts = SolveOptions()
                    opts.seed = seed
                    if let v = flexIterations { opts.flex.maxIterations = v }
                    if let v = flexPasses { opts.flex.localSearchPasses = v }
                    if let v = flexRepairEvery { opts.flex.repairEvery = v }
                    for _ in 0..<max(1, runs) {
                        let clock = ContinuousClock()
                        let t0 = clock.now
                        let r = try Assigner.solve(inst, solver: solver, options: opts)
                        let dt = clock.now - t0
                        times.append(Double(dt.components.seconds) + Double(dt.components.attoseconds) * 1e-18)
                        result = r
                    }
                    let r = result!
                    times.sort()
                    var line: [String: Any] = [
                        "bench": "assign", "instance": "\(parts[0])x\(parts[1])", "slack": slack,
                        "solver": solver.rawValue, "seconds": times[times.count / 2],
                        "objective": r.objective, "cv": r.metrics.cv, "maxOverMean": r.metrics.maxOverMean,
                        "jain": r.metrics.jain, "feasible": r.feasible, "relaxed": r.relaxed,
                    ]
                    if solver == .flex {
                        let st = r.stats
                        line["stats"] = [
                            "iterations": st.iterations, "repairs": st.repairs, "repairMoves": st.repairMoves,
                            "repairSwaps": st.repairSwaps, "improvingMoves": st.improvingMoves,
                            "improvingSwaps": st.improvingSwaps, "secondsRelaxed": st.secondsRelaxed,
                            "secondsRepair": st.secondsRepair, "secondsLocalSearch": st.secondsLocalSearch,
                        ] as [String: Any]
                    }
                    if let x = exactObj {
                        line["optimum"] = x
                        line["gapToOptimum"] = (x - r.objective) / abs(x)
                    }
                    if let lp = lpBound { line["lpBound"] = lp; line["gapToLP"] = (lp - r.objective) / abs(lp) }
                    if let ub = r.upperBound { line["dualBound"] = ub; line["gapToDual"] = r.gapBound }
                    let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                }
            }
        }
    }

    func write(_ inst: AssignmentInstance, to path: String) throws {
        let E = inst.experts
        let obj: [String: Any] = [
            "clients": inst.clients, "experts": E,
            "fitness": (0..<inst.clients).map { c in (0..<E).map { Double(inst.fitness[c * E + $0]) } },
            "capacity": inst.capacity, "dataSize": inst.dataSize, "lower": inst.lower, "upper": inst.upper,
        ]
        let data = try JSONSerialization.data(withJSONObject: obj)
        FileManager.default.createFile(atPath: path, contents: data)
    }
}
