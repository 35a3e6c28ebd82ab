import CFlexSystem

/// Output for the edge binary: stdout for results, stderr for errors (Embedded has no FileHandle).
public enum Console {
    public static func out(_ line: String) {
        var text = line
        text.append("\n")
        text.withUTF8 { csys_write_stdout(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
        csys_flush_stdout()  // a service's log must not sit in a buffer
    }

    public static func error(_ line: String, program: String = "flexmoe-edge") {
        var text = program + ": " + line
        text.append("\n")
        text.withUTF8 { csys_write_stderr(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
    }

    /// The process arguments after the program name (Embedded Swift has no CommandLine).
    public static func arguments() -> [String] {
        var args: [String] = []
        let count = Int(csys_argc())
        if count > 1 {
            for i in 1..<count {
                if let p = csys_arg(Int32(i)) { args.append(String(cString: p)) }
            }
        }
        return args
    }
}

extension Console {
    /// Writes `text` to `path` atomically (temp file, fsync, rename); nil on success, else the reason.
    public static func writeFile(_ path: String, _ text: String) -> String? {
        var copy = text
        let ok = copy.withUTF8 { csys_write_file_atomic(path, $0.baseAddress, $0.count) == 0 }
        return ok ? nil : String(cString: csys_last_error())
    }
}

/// `--flag value` pairs of a hand-parsed command line (Embedded Swift has no argument parser): each
/// flag known, given once, with a value. A list, not a Dictionary: a `[String: String]` here made the
/// Embedded aarch64 build of `flexmoe-edge run` crash (SIGSEGV at address 0x18 under qemu, right
/// after the hasher's getrandom calls) while the x86-64 Embedded and host builds ran fine.
public struct FlagValues {
    private var pairs: [(flag: String, value: String)] = []

    /// `switches` are flags without a value (e.g. `--json`); they are returned in `set`.
    public private(set) var set: [String] = []

    public init(_ args: [String], known: [String], switches: [String] = []) throws(EdgeError) {
        var i = 0
        while i < args.count {
            let flag = args[i]
            if switches.contains(flag) {
                set.append(flag)
                i += 1
                continue
            }
            guard known.contains(flag) else { throw .usage("unknown option '\(flag)'") }
            guard i + 1 < args.count else { throw .usage("\(flag) needs a value") }
            if self[flag] != nil { throw .usage("\(flag) given twice") }
            pairs.append((flag, args[i + 1]))
            i += 2
        }
    }

    public subscript(flag: String) -> String? {
        for p in pairs where p.flag == flag { return p.value }
        return nil
    }
}
