import Foundation

/// Golden fixtures (docs/FORMAT.md, "Golden fixtures") are hex text files: `#` comment lines saying
/// what the bytes are, then the bytes, 32 to a line. Tests read them from their target's resource
/// bundle; the generator (`FLEXMOE_WRITE_FIXTURES=1`) writes them into the source tree.
public enum HexFixture {
    /// Whether the fixture generators should run (and rewrite the checked-in files).
    public static var writeRequested: Bool { ProcessInfo.processInfo.environment["FLEXMOE_WRITE_FIXTURES"] == "1" }

    /// The file text for `bytes`, with one `# ` line per line of `comment`.
    public static func text(_ bytes: [UInt8], comment: String) -> String {
        var out = ""
        for line in comment.split(separator: "\n", omittingEmptySubsequences: false) { out += "# \(line)\n" }
        let digits = Array("0123456789abcdef".utf8)
        var line: [UInt8] = []
        for (i, b) in bytes.enumerated() {
            line.append(digits[Int(b >> 4)])
            line.append(digits[Int(b & 0xF)])
            if i % 32 == 31 || i == bytes.count - 1 {
                out += String(decoding: line, as: UTF8.self) + "\n"
                line.removeAll(keepingCapacity: true)
            }
        }
        return out
    }

    /// The bytes of a fixture's text: `#` lines and whitespace are ignored; anything else must be hex.
    public static func bytes(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var high: UInt8? = nil
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            for c in line.utf8 {
                let v: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): continue
                default: return nil
                }
                if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
            }
        }
        return high == nil ? out : nil
    }

    /// Reads fixture `name` (without `.hex`) from the `Fixtures` folder of a test bundle.
    public static func read(_ name: String, in bundle: Bundle) throws -> [UInt8] {
        guard let url = bundle.url(forResource: name, withExtension: "hex", subdirectory: "Fixtures") else {
            throw FixtureError("no fixture \(name).hex in \(bundle.bundlePath)/Fixtures")
        }
        guard let result = bytes(try String(contentsOf: url, encoding: .utf8)) else {
            throw FixtureError("\(name).hex is not hex text")
        }
        return result
    }

    /// Writes fixture `name` into the `Fixtures` folder beside `sourceFile` (pass `#filePath`).
    public static func write(_ bytes: [UInt8], name: String, comment: String, besides sourceFile: String) throws {
        let dir = URL(fileURLWithPath: sourceFile).deletingLastPathComponent().appendingPathComponent("Fixtures")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try text(bytes, comment: comment).write(to: dir.appendingPathComponent(name + ".hex"), atomically: true, encoding: .utf8)
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
