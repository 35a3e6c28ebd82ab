import Foundation

/// Shared helpers for the benchmark subcommands: timing by medians, JSON output, subprocesses.
enum Bench {
    /// Seconds taken by `body`, as the median of `runs` timed runs after one warm-up.
    static func median(runs: Int, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        times.sort()
        return times[times.count / 2]
    }

    /// Prints one JSON object on one line (keys sorted, so lines diff cleanly).
    static func emit(_ object: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    static func round(_ x: Double, _ digits: Int = 3) -> Double {
        let f = pow(10.0, Double(digits))
        return (x * f).rounded() / f
    }

    /// Runs a program and returns its standard output and error, or nil if it cannot be started.
    static func run(_ program: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }
}
