import FlexTensor

/// The protocol's small messages and report framing (docs/PROTOCOL.md), shared by the device and the
/// server so that both sides parse exactly the same way. Embedded-clean: no JSON, no Foundation.

/// A `key=value` message: ASCII lines, keys `[a-z0-9_]+`, a key at most once, unknown keys kept.
public struct SmallMessage: Equatable, Sendable {
    public private(set) var fields: [(key: String, value: String)] = []

    public init() {}

    public static func == (a: SmallMessage, b: SmallMessage) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// Largest message either side parses (PROTOCOL.md limits the biggest body, register, to 4 KiB).
    public static let maxBytes = 64 * 1024

    public mutating func set(_ key: String, _ value: String) {
        if let i = fields.firstIndex(where: { $0.key == key }) { fields[i].value = value } else { fields.append((key, value)) }
    }

    public mutating func set(_ key: String, _ value: Int) { set(key, String(value)) }

    public mutating func set(_ key: String, list: [Int]) {
        var text = ""
        for (i, v) in list.enumerated() { text += (i == 0 ? "" : ",") + String(v) }
        set(key, text)
    }

    public subscript(key: String) -> String? { fields.first { $0.key == key }?.value }

    /// The message as bytes, one `key=value\n` line per field.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in fields {
            out += Array(key.utf8)
            out.append(UInt8(ascii: "="))
            out += Array(value.utf8)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// Parses a message; every line must be `key=value` with a valid key, at most once.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(MessageError) -> SmallMessage {
        if bytes.count > maxBytes { throw .tooLarge(bytes.count) }
        var message = SmallMessage()
        var lineStart = 0
        var lineNumber = 1
        while lineStart < bytes.count {
            var end = lineStart
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var lineEnd = end
            if lineEnd > lineStart && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineEnd > lineStart {
                var eq = lineStart
                while eq < lineEnd && bytes[eq] != UInt8(ascii: "=") { eq += 1 }
                if eq == lineEnd || eq == lineStart { throw .malformedLine(lineNumber) }
                for i in lineStart..<eq {
                    let c = bytes[i]
                    let ok = (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                        || c == UInt8(ascii: "_")
                    if !ok { throw .malformedLine(lineNumber) }
                }
                for i in (eq + 1)..<lineEnd where bytes[i] < 0x20 || bytes[i] > 0x7E { throw .malformedLine(lineNumber) }
                let key = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[lineStart..<eq]), as: UTF8.self)
                let value = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(eq + 1)..<lineEnd]), as: UTF8.self)
                if message[key] != nil { throw .duplicateKey(key) }
                message.fields.append((key, value))
            }
            lineStart = end + 1
            lineNumber += 1
        }
        return message
    }

    public static func parse(_ bytes: [UInt8]) throws(MessageError) -> SmallMessage {
        try bytes.withUnsafeBytes { b in Result { () throws(MessageError) -> SmallMessage in try parse(b) } }.get()
    }

    // Typed accessors: a missing or malformed field is an error that names the key.

    public func string(_ key: String) throws(MessageError) -> String {
        guard let v = self[key] else { throw .missing(key) }
        return v
    }

    public func int(_ key: String, in range: ClosedRange<Int>) throws(MessageError) -> Int {
        let text = try string(key)
        guard let v = SmallMessage.parseInt(text), range.contains(v) else { throw .badValue(key, text) }
        return v
    }

    public func real(_ key: String) throws(MessageError) -> Double {
        let text = try string(key)
        guard let v = SmallMessage.parseReal(text), v.isFinite else { throw .badValue(key, text) }
        return v
    }

    public func intList(_ key: String) throws(MessageError) -> [Int] {
        let text = try string(key)
        if text.isEmpty { return [] }
        var out: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = SmallMessage.parseInt(String(part)) else { throw .badValue(key, text) }
            out.append(v)
        }
        return out
    }

    public func realList(_ key: String) throws(MessageError) -> [Double] {
        let text = try string(key)
        if text.isEmpty { return [] }
        var out: [Double] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = SmallMessage.parseReal(String(part)), v.isFinite else { throw .badValue(key, text) }
            out.append(v)
        }
        return out
    }

    /// The protocol's numbers are parsed by FlexTensor's `Format` (one parser for the project).
    public static func parseInt(_ text: String) -> Int? { Format.parseInt(text) }
    public static func parseReal(_ text: String) -> Double? { Format.parseReal(text) }
}

public enum MessageError: Error, Equatable {
    case tooLarge(Int)
    case malformedLine(Int)
    case duplicateKey(String)
    case missing(String)
    case badValue(String, String)
    case badReport(String)

    public var message: String {
        switch self {
        case .tooLarge(let n): return "message of \(n) bytes is too large"
        case .malformedLine(let n): return "line \(n) is not key=value"
        case .duplicateKey(let k): return "key '\(k)' given twice"
        case .missing(let k): return "missing field '\(k)'"
        case .badValue(let k, let v): return "bad value for '\(k)': '\(v)'"
        case .badReport(let what): return "malformed report: \(what)"
        }
    }
}

/// The body of `POST /v1/rounds/N/report`: "FXRP", version, the fields, and the update containers.
public enum ReportFrame {
    public static let magic: [UInt8] = [0x46, 0x58, 0x52, 0x50]  // "FXRP"
    public static let version: UInt16 = 1
    public static let maxContainers = 65

    /// Builds a report body from its fields and containers.
    public static func encode(fields: SmallMessage, containers: [[UInt8]]) -> [UInt8] {
        var out = magic
        appendLE(&out, UInt64(version), bytes: 2)
        appendLE(&out, 0, bytes: 2)
        let text = fields.encoded()
        appendLE(&out, UInt64(text.count), bytes: 4)
        out += text
        appendLE(&out, UInt64(containers.count), bytes: 4)
        for c in containers {
            appendLE(&out, UInt64(c.count), bytes: 4)
            out += c
        }
        return out
    }

    /// Splits a report body into its fields and the byte ranges of its containers, checking every
    /// length against the body (containers themselves are decoded and verified by the caller).
    public static func parse(_ body: UnsafeRawBufferPointer) throws(MessageError) -> (fields: SmallMessage, containers: [Range<Int>]) {
        var offset = 0
        func take(_ n: Int) throws(MessageError) -> Int {
            if n < 0 || body.count - offset < n { throw .badReport("truncated at byte \(offset)") }
            defer { offset += n }
            return offset
        }
        func readLE(_ n: Int) throws(MessageError) -> Int {
            let at = try take(n)
            var v = 0
            for i in 0..<n { v |= Int(body[at + i]) << (8 * i) }
            return v
        }
        let m = try take(4)
        for i in 0..<4 where body[m + i] != magic[i] { throw .badReport("bad magic") }
        let v = try readLE(2)
        if v != Int(version) { throw .badReport("unsupported report version \(v)") }
        if try readLE(2) != 0 { throw .badReport("reserved bits set") }
        let fieldsLength = try readLE(4)
        if fieldsLength > SmallMessage.maxBytes { throw .tooLarge(fieldsLength) }
        let fieldsAt = try take(fieldsLength)
        let fields = try SmallMessage.parse(UnsafeRawBufferPointer(rebasing: body[fieldsAt..<(fieldsAt + fieldsLength)]))
        let count = try readLE(4)
        if count < 1 || count > maxContainers { throw .badReport("\(count) containers") }
        var ranges: [Range<Int>] = []
        for _ in 0..<count {
            let length = try readLE(4)
            let at = try take(length)
            ranges.append(at..<(at + length))
        }
        if offset != body.count { throw .badReport("\(body.count - offset) bytes after the last container") }
        return (fields, ranges)
    }

    static func appendLE(_ out: inout [UInt8], _ value: UInt64, bytes: Int) {
        for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}
