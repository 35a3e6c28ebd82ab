import CFlexSystem
import FlexTensor

/// Whole-file reads and atomic writes through CFlexSystem (the only place FlexData touches the OS).
enum Files {
    static func lastError() -> String { String(cString: csys_last_error()) }

    /// Reads a whole file into an owning byte tensor.
    static func read(_ path: String) throws(DataError) -> Tensor<UInt8> {
        let size = path.withCString { csys_file_size($0) }
        if size < 0 { throw .io(file: path, message: lastError()) }
        let bytes = Tensor<UInt8>(shape: Shape(vector: Int(size)), repeating: 0)
        let got = path.withCString { p in
            bytes.withUnsafeMutableBufferPointer { buf in csys_read_file(p, buf.baseAddress, buf.count) }
        }
        if got < 0 { throw .io(file: path, message: got == -2 ? "file grew while reading" : lastError()) }
        if Int(got) != Int(size) { throw .io(file: path, message: "short read") }
        return bytes
    }

    /// The names in a directory, or nil when `path` is not a directory.
    static func directoryEntries(_ path: String) -> [String]? {
        var capacity = 64 * 1024
        while capacity <= 64 << 20 {
            var buffer = [UInt8](repeating: 0, count: capacity)
            let n = path.withCString { p in buffer.withUnsafeMutableBytes { csys_list_directory(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), capacity) } }
            if n == -1 { return nil }
            if n >= 0 {
                return buffer[0..<Int(n)].split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            }
            capacity *= 4
        }
        return nil
    }

    static func write(_ path: String, _ bytes: UnsafeRawBufferPointer) throws(DataError) {
        let rc = path.withCString { csys_write_file_atomic($0, bytes.baseAddress, bytes.count) }
        if rc != 0 { throw .io(file: path, message: lastError()) }
    }
}

extension Tensor {
    /// The tensor's bytes; valid only while the tensor lives (callers keep it alive around the use).
    var rawBytes: UnsafeRawBufferPointer { withUnsafeBytes { $0 } }
}
