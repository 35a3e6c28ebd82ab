/// The byte-shuffle filter of docs/FORMAT.md: within chunks of `chunkElements` elements of `width`
/// bytes, all first bytes, then all second bytes, ... Floats' sign/exponent bytes then sit together,
/// which zstd compresses far better than interleaved bytes. Chunking keeps the scratch fixed-size so
/// a decoder can unshuffle in place.
public enum ByteShuffle {
    public static let chunkElements = 4096
    /// Scratch bytes needed for in-place shuffling of elements up to 4 bytes wide.
    public static let scratchBytes = chunkElements * 4

    /// Shuffles `count` elements of `width` bytes from `source` into `destination` (no overlap).
    public static func shuffle(_ source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer,
                               count: Int, width: Int) {
        var start = 0
        while start < count {
            let n = min(chunkElements, count - start)
            let src = source + start * width, dst = destination + start * width
            for b in 0..<width {
                for i in 0..<n { dst.storeBytes(of: src.load(fromByteOffset: i * width + b, as: UInt8.self),
                                                toByteOffset: b * n + i, as: UInt8.self) }
            }
            start += n
        }
    }

    /// Undoes `shuffle` in place, one chunk at a time through a fixed scratch.
    public static func unshuffleInPlace(_ data: UnsafeMutableRawPointer, count: Int, width: Int) {
        if width == 1 { return }
        withUnsafeTemporaryAllocation(byteCount: scratchBytes, alignment: 16) { scratch in
            let tmp = scratch.baseAddress!
            var start = 0
            while start < count {
                let n = min(chunkElements, count - start)
                let chunk = data + start * width
                tmp.copyMemory(from: chunk, byteCount: n * width)
                for b in 0..<width {
                    for i in 0..<n { chunk.storeBytes(of: tmp.load(fromByteOffset: b * n + i, as: UInt8.self),
                                                      toByteOffset: i * width + b, as: UInt8.self) }
                }
                start += n
            }
        }
    }
}
