import CZstd
import FlexTensor

/// The only place that calls libzstd. Contexts are created once and reused (zstd's own advice), and
/// are `~Copyable` so that each has one owner and is freed exactly once.
public struct ZstdCompressor: ~Copyable {
    private let context: OpaquePointer
    private let ownsContext: Bool
    public let level: Int32

    public init(level: Int32 = 3) {
        guard let context = ZSTD_createCCtx() else { fatalError("zstd: out of memory creating a context") }
        self.context = context
        self.ownsContext = true
        self.level = level
    }

    /// A compressor whose whole state lives in `arena` (zstd's static context), sized for inputs of
    /// at most `maxInput` bytes: on a board, zstd then allocates nothing of its own.
    public init(level: Int32, maxInput: Int, arena: Arena) throws(ArenaError) {
        let bytes = ZstdCompressor.workspaceBytes(level: level, maxInput: maxInput)
        let workspace = try arena.allocate(UInt8.self, count: bytes, component: "zstd")
        guard let context = ZSTD_initStaticCCtx(workspace, bytes) else {
            throw .exhausted(component: "zstd", needed: bytes, available: 0)
        }
        self.context = context
        self.ownsContext = false
        self.level = level
    }

    /// Workspace a static compressor needs for inputs up to `maxInput` bytes.
    public static func workspaceBytes(level: Int32, maxInput: Int) -> Int {
        ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(level, UInt64(max(maxInput, 1)), 0))
    }

    deinit { if ownsContext { ZSTD_freeCCtx(context) } }

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
    private let ownsContext: Bool
    /// Largest window a frame may ask for (2^24 bytes); larger ones are refused, not allocated.
    public static let windowLogMax: Int32 = 24

    public init() {
        guard let context = ZSTD_createDCtx() else { fatalError("zstd: out of memory creating a context") }
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, ZstdDecompressor.windowLogMax)
        self.context = context
        self.ownsContext = true
    }

    /// A decompressor whose state lives in `arena`. Frames are decoded in one pass straight into the
    /// caller's buffer, so no window buffer is ever needed.
    public init(arena: Arena) throws(ArenaError) {
        let bytes = ZstdDecompressor.workspaceBytes
        let workspace = try arena.allocate(UInt8.self, count: bytes, component: "zstd")
        guard let context = ZSTD_initStaticDCtx(workspace, bytes) else {
            throw .exhausted(component: "zstd", needed: bytes, available: 0)
        }
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, ZstdDecompressor.windowLogMax)
        self.context = context
        self.ownsContext = false
    }

    public static var workspaceBytes: Int { ZSTD_estimateDCtxSize() }

    deinit { if ownsContext { ZSTD_freeDCtx(context) } }

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
