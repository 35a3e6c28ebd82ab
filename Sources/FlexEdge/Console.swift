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
