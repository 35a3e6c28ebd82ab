/// Load statistics of an assignment (DESIGN.md §1 step 5).
///
/// The load of expert e is Σ |D_c| over the clients that hold it. CV uses the population standard
/// deviation (divide by E): CV = std/mean. Jain's index is (Σ x)² / (E·Σ x²), 1 for perfect balance
/// and 1/E when one expert carries everything.
public struct LoadMetrics: Sendable, Equatable {
    public var load: [Int]
    public var mean: Double
    public var std: Double
    /// Coefficient of variation std/mean (0 when the mean is 0).
    public var cv: Double
    /// max load / mean load (0 when the mean is 0).
    public var maxOverMean: Double
    /// Jain's fairness index (1 when every load is 0).
    public var jain: Double

    public init(load: [Int]) {
        self.load = load
        let n = Double(max(load.count, 1))
        var sum = 0.0, sumSq = 0.0, mx = 0
        for x in load {
            let d = Double(x)
            sum += d; sumSq += d * d; mx = max(mx, x)
        }
        mean = sum / n
        var v = 0.0
        for x in load { let d = Double(x) - mean; v += d * d }
        std = (v / n).squareRoot()
        cv = mean > 0 ? std / mean : 0
        maxOverMean = mean > 0 ? Double(mx) / mean : 0
        jain = sumSq > 0 ? sum * sum / (n * sumSq) : 1
    }

    /// Loads of `assignment` on `instance`.
    public static func loads(_ assignment: Assignment, _ instance: AssignmentInstance) -> [Int] {
        var load = [Int](repeating: 0, count: instance.experts)
        for c in 0..<assignment.clients {
            for e in assignment.experts(of: c) { load[Int(e)] += instance.dataSize[c] }
        }
        return load
    }

    public init(_ assignment: Assignment, _ instance: AssignmentInstance) {
        self.init(load: LoadMetrics.loads(assignment, instance))
    }
}

/// Checks on an assignment against an instance (used by the solvers' front door and the tests).
public enum AssignmentCheck {
    /// Σ Q[c][e] over the held pairs, accumulated in Double.
    public static func objective(_ a: Assignment, _ inst: AssignmentInstance) -> Double {
        var s = 0.0
        for c in 0..<a.clients {
            for e in a.experts(of: c) { s += Double(inst.q(c, Int(e))) }
        }
        return s
    }

    /// nil if every client holds exactly k_c distinct valid experts, else what is wrong.
    public static func structuralError(_ a: Assignment, _ inst: AssignmentInstance) -> String? {
        guard a.clients == inst.clients else { return "assignment has \(a.clients) clients, instance \(inst.clients)" }
        for c in 0..<inst.clients {
            let held = a.experts(of: c)
            if held.count != inst.capacity[c] {
                return "client \(c) holds \(held.count) experts, capacity \(inst.capacity[c])"
            }
            var prev: Int32 = -1
            for e in held {
                if e < 0 || Int(e) >= inst.experts { return "client \(c) holds expert \(e) out of range" }
                if e <= prev { return "client \(c) holds expert \(e) twice or unsorted" }
                prev = e
            }
        }
        return nil
    }

    /// Σ_e max(0, load − Γ) + max(0, L − load): 0 exactly when every bound is met.
    public static func violation(load: [Int], lower: [Double], upper: [Double]) -> Double {
        var v = 0.0
        for e in load.indices {
            let l = Double(load[e])
            if l > upper[e] { v += l - upper[e] } else if l < lower[e] { v += lower[e] - l }
        }
        return v
    }
}
