import CZstd

/// The only place that calls libzstd. Contexts are created once and reused (zstd's own advice), and
/// are `~Copyable` so that each has one owner and is freed exactly once.
public struct ZstdCompressor: ~Copyable {
    private let context: OpaquePointer
    public let level: Int32

    public init(level: Int32 = 3) {
        guard let context = ZSTD_createCCtx() else { fatalError("zstd: out of memory creating a context") }
        self.context = context
        self.level = level
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Worst-case compressed size of `count` bytes.
    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses `source` into `destination` as one frame that records its content size.
    /// Returns the number of bytes written.
    public func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(WireError) -> Int
    {
        let written = ZSTD_compressCCtx(context, destination.baseAddress, destination.count,
                                        source.baseAddress, source.count, level)
        if ZSTD_isError(written) != 0 { throw .compression(Zstd.errorName(written)) }
        return written
    }
}

public struct ZstdDecompressor: ~Copyable {
    private let context: OpaquePointer
    /// Largest window a frame may ask for (2^24 bytes); larger ones are refused, not allocated.
    public static let windowLogMax: Int32 = 24

    public init() {
        guard let context = ZSTD_createDCtx() else { fatalError("zstd: out of memory creating a context") }
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, ZstdDecompressor.windowLogMax)
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses exactly one frame that must expand to exactly `destination.count` bytes.
    /// The frame's declared size is checked before decoding, and zstd never writes past the
    /// destination, so a bomb-like frame is refused without any allocation.
    public func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(WireError)
    {
        let declared = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        if declared == ZSTD_CONTENTSIZE_ERROR { throw .decompression("not a zstd frame") }
        if declared == ZSTD_CONTENTSIZE_UNKNOWN { throw .decompression("frame does not declare its size") }
        if declared != UInt64(destination.count) {
            throw .decompression("frame declares \(declared) bytes, container \(destination.count)")
        }
        let frame = ZSTD_findFrameCompressedSize(source.baseAddress, source.count)
        if ZSTD_isError(frame) != 0 { throw .decompression(Zstd.errorName(frame)) }
        if frame != source.count { throw .decompression("bytes after the zstd frame") }
        let written = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count,
                                          source.baseAddress, source.count)
        if ZSTD_isError(written) != 0 { throw .decompression(Zstd.errorName(written)) }
        if written != destination.count { throw .decompression("frame decoded to \(written) bytes") }
    }
}

enum Zstd {
    static func errorName(_ code: Int) -> String {
        guard let name = ZSTD_getErrorName(code) else { return "zstd error" }
        return String(cString: name)
    }
}
