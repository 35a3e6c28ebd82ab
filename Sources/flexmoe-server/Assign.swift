import ArgumentParser
import FlexAssign
import Foundation

/// `flexmoe-server assign INSTANCE.json`: one assignment round from a JSON instance
/// (format in docs/ALGORITHM.md §6). Prints one JSON object on stdout; a malformed instance gets a
/// message on stderr and exit code 2.
struct AssignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assign",
        abstract: "Assign experts to clients for one round (load-balanced, fitness-maximising).")

    @Argument(help: "Instance JSON: {clients, experts, fitness[C][E], capacity[C], dataSize[C], lower[E], upper[E]}.")
    var instance: String

    @Option(help: "flex | greedy | random | round-robin | exact")
    var solver = "flex"

    @Option(help: "Wall-clock limit in seconds (flex returns its best so far; exact gives up).")
    var timeLimit: Double?

    @Option(help: "Seed (random baseline, flex local-search order).")
    var seed: UInt64 = 0

    @Flag(help: "Fail (exit 1) instead of relaxing bounds that cannot be met.")
    var noRelax = false

    func run() throws {
        guard let kind = SolverKind(rawValue: solver) else {
            fail("unknown solver '\(solver)' (flex, greedy, random, round-robin, exact)")
        }
        if let t = timeLimit, !(t > 0 && t.isFinite) { fail("--time-limit must be a positive number of seconds") }
        guard let data = FileManager.default.contents(atPath: instance) else { fail("cannot read \(instance)") }
        let inst: AssignmentInstance
        do { inst = try InstanceJSON.parse(data) } catch { fail("\(instance): \(error)") }
        var opts = SolveOptions()
        opts.seed = seed
        opts.allowRelaxation = !noRelax
        if let t = timeLimit { opts.timeLimit = .nanoseconds(Int64(t * 1e9)) }
        let clock = ContinuousClock()
        let start = clock.now
        let r: AssignmentResult
        do {
            r = try Assigner.solve(inst, solver: kind, options: opts)
        } catch .invalidInstance(let why) {
            fail("\(instance): \(why)")
        } catch {
            FileHandle.standardError.write(Data("flexmoe-server assign: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let dt = clock.now - start
        let secs = Double(dt.components.seconds) + Double(dt.components.attoseconds) * 1e-18
        var out: [String: Any] = [
            "feasible": r.feasible, "objective": r.objective, "assignment": r.assignment.lists,
            "load": r.metrics.load.map { Double($0) }, "cv": r.metrics.cv, "relaxed": r.relaxed,
            "seconds": secs, "solver": kind.rawValue, "maxOverMean": r.metrics.maxOverMean,
            "jain": r.metrics.jain,
        ]
        if r.relaxed {
            out["relaxation"] = r.relaxation.map { s -> [String: Any] in
                ["reason": s.reason, "experts": s.experts, "lowerDecrease": s.lowerDecrease,
                 "upperIncrease": s.upperIncrease.isFinite ? s.upperIncrease as Any : NSNull()]
            }
            FileHandle.standardError.write(Data(("flexmoe-server assign: bounds relaxed: "
                + r.relaxation.map(\.description).joined(separator: "; ") + "\n").utf8))
        }
        if let u = r.upperBound, u.isFinite { out["upperBound"] = u }
        if let g = r.gapBound { out["gapBound"] = g }
        if kind == .exact { out["proved"] = r.proved }
        let json = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        FileHandle.standardOutput.write(json + Data("\n".utf8))
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("flexmoe-server assign: \(message)\n".utf8))
        Foundation.exit(2)
    }
}

/// Strict reader of the instance format: every field present, with the right type and length.
enum InstanceJSON {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ data: Data) throws -> AssignmentInstance {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data) } catch {
            throw Malformed(description: "not valid JSON (\(error.localizedDescription))")
        }
        guard let obj = any as? [String: Any] else { throw Malformed(description: "top level must be an object") }
        let C = try int(obj["clients"], "clients")
        let E = try int(obj["experts"], "experts")
        guard C >= 0 else { throw Malformed(description: "clients must be ≥ 0") }
        guard E >= 1 else { throw Malformed(description: "experts must be ≥ 1") }
        guard let rows = obj["fitness"] as? [Any] else { throw Malformed(description: "fitness must be an array of rows") }
        guard rows.count == C else { throw Malformed(description: "fitness has \(rows.count) rows, expected clients = \(C)") }
        var fitness: [Float] = []
        fitness.reserveCapacity(C * E)
        for (c, row) in rows.enumerated() {
            guard let r = row as? [Any] else { throw Malformed(description: "fitness[\(c)] must be an array") }
            guard r.count == E else { throw Malformed(description: "fitness[\(c)] has \(r.count) entries, expected experts = \(E)") }
            for (e, v) in r.enumerated() {
                let x = try number(v, "fitness[\(c)][\(e)]")
                guard Float(x).isFinite else { throw Malformed(description: "fitness[\(c)][\(e)] = \(x) is not a finite Float") }
                fitness.append(Float(x))
            }
        }
        let capacity = try ints(obj["capacity"], "capacity", C)
        let dataSize = try ints(obj["dataSize"], "dataSize", C)
        let lower = try numbers(obj["lower"], "lower", E)
        let upper = try numbers(obj["upper"], "upper", E)
        let inst = AssignmentInstance(clients: C, experts: E, fitness: fitness, capacity: capacity,
                                      dataSize: dataSize, lower: lower, upper: upper)
        do { try inst.validate() } catch { throw Malformed(description: "\(error)") }
        return inst
    }

    static func number(_ v: Any?, _ name: String) throws -> Double {
        guard let n = v as? NSNumber else {
            throw Malformed(description: "\(name) must be a number")
        }
        let x = n.doubleValue
        guard x.isFinite else { throw Malformed(description: "\(name) is not finite") }
        return x
    }

    static func int(_ v: Any?, _ name: String) throws -> Int {
        let x = try number(v, name)
        guard x == x.rounded(), abs(x) < 9e15 else { throw Malformed(description: "\(name) must be an integer, got \(x)") }
        return Int(x)
    }

    static func numbers(_ v: Any?, _ name: String, _ n: Int) throws -> [Double] {
        guard let a = v as? [Any] else { throw Malformed(description: "\(name) must be an array") }
        guard a.count == n else { throw Malformed(description: "\(name) has \(a.count) entries, expected \(n)") }
        return try a.enumerated().map { try number($0.element, "\(name)[\($0.offset)]") }
    }

    static func ints(_ v: Any?, _ name: String, _ n: Int) throws -> [Int] {
        guard let a = v as? [Any] else { throw Malformed(description: "\(name) must be an array") }
        guard a.count == n else { throw Malformed(description: "\(name) has \(a.count) entries, expected \(n)") }
        return try a.enumerated().map { try int($0.element, "\(name)[\($0.offset)]") }
    }
}
