/// Everything that can be wrong with a container or a zstd frame. Each case says what, so a device
/// log or a server's 4xx body can tell the sender what to fix.
public enum WireError: Error, Equatable {
    case truncated(needed: Int, have: Int)
    case trailingBytes(Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case badField(String)
    case headerChecksum
    case payloadChecksum
    case tooLarge(declared: Int, limit: Int)
    case sizeMismatch(String)
    case compression(String)
    case decompression(String)

    public var message: String {
        switch self {
        case .truncated(let needed, let have): return "truncated container: needs \(needed) bytes, has \(have)"
        case .trailingBytes(let n): return "\(n) unexpected bytes after the container"
        case .badMagic: return "not a FlexWire container (bad magic)"
        case .unsupportedVersion(let v): return "unsupported container version \(v) (this build reads 1)"
        case .badField(let what): return "invalid header field: \(what)"
        case .headerChecksum: return "header checksum mismatch (corrupt header or directory)"
        case .payloadChecksum: return "payload checksum mismatch (corrupt payload)"
        case .tooLarge(let declared, let limit): return "payload of \(declared) bytes exceeds the limit of \(limit)"
        case .sizeMismatch(let what): return "size mismatch: \(what)"
        case .compression(let what): return "zstd compression failed: \(what)"
        case .decompression(let what): return "zstd decompression failed: \(what)"
        }
    }
}
