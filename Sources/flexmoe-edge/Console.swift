import CFlexSystem

/// Output for the edge binary: stdout for results, stderr for errors (Embedded has no FileHandle).
enum Console {
    static func out(_ line: String) {
        var text = line
        text.append("\n")
        text.withUTF8 { csys_write_stdout(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
        csys_flush_stdout()  // a service's log must not sit in a buffer
    }

    static func error(_ line: String) {
        var text = "flexmoe-edge: " + line
        text.append("\n")
        text.withUTF8 { csys_write_stderr(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
    }

    /// The process arguments after the program name (Embedded Swift has no CommandLine).
    static func arguments() -> [String] {
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
