import Crypto
import Foundation

/// Device tokens: the token file holds one `NAME SHA256HEX` line per device; the token itself is
/// shown once by `flexmoe-server enroll NAME` and never stored.
public struct TokenFile: Sendable {
    public let path: String
    /// sha256 hex → device name
    public private(set) var names: [String: String] = [:]

    public init(path: String) {
        self.path = path
        reload()
    }

    public mutating func reload() {
        names = [:]
        for line in DurableFile.lines(path) {
            let p = line.split(separator: " ")
            if p.count == 2, p[1].count == 64 { names[String(p[1])] = String(p[0]) }
        }
    }

    /// The token's SHA-256 as 64 lowercase hex digits (what the token file stores).
    public static func hash(_ token: String) -> String { sha256Hex(Array(token.utf8)) }

    /// SHA-256 (swift-crypto) of `bytes` as 64 lowercase hex digits.
    static func sha256Hex(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

    /// Lowercase hex digits, two per byte.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var s: [UInt8] = []
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        return String(decoding: s, as: UTF8.self)
    }

    public static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F || c == 0x2E
        }
    }

    /// Issues a new random token for `name`, appends its hash and returns the token.
    public static func enroll(name: String, path: String) throws -> String {
        guard validName(name) else { throw ServerError.config("device names are 1–64 characters of [A-Za-z0-9._-]") }
        let existing = TokenFile(path: path)
        if existing.names.values.contains(name) { throw ServerError.config("'\(name)' is already enrolled in \(path)") }
        var rng = SystemRandomNumberGenerator()
        let token = "fxt_" + hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try DurableFile.append(Array("\(name) \(hash(token))\n".utf8), to: path)
        return token
    }
}
