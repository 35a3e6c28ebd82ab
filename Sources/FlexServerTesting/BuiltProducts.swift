import Foundation

/// Where the package's executables were built, for tests that run them as real processes: next to
/// the test bundle, or `.build/debug` of the package; `FLEXMOE_<NAME>_BIN` overrides (e.g.
/// FLEXMOE_SERVER_BIN for flexmoe-server).
public enum BuiltProducts {
    public static func path(_ name: String, packageFile: String = #filePath) -> String {
        let variable = "FLEXMOE_" + name.replacingOccurrences(of: "flexmoe-", with: "").uppercased() + "_BIN"
        if let e = ProcessInfo.processInfo.environment[variable] { return e }
        var candidates: [String] = []
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        candidates.append(exe.appendingPathComponent(name).path)
        candidates.append(exe.deletingLastPathComponent().appendingPathComponent(name).path)
        if let b = Bundle.main.executablePath {
            candidates.append(URL(fileURLWithPath: b).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        // packageFile is Sources/FlexServerTesting/BuiltProducts.swift: three levels below the package.
        let root = URL(fileURLWithPath: packageFile).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/" + name).path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
    }
}
