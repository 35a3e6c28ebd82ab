#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import Foundation

/// Durable files in the state directory (docs/ARCHITECTURE.md "Server persistence"):
///
/// - `ckpt-NNNNNNNN.fxck`  the global model after round N (the last `keep_checkpoints` are kept);
/// - `state.json`          the last completed round, its checkpoint, Q and the load history;
/// - `clients.log`         the client registry, one appended line per registration (last wins);
/// - `rounds.log`          one JSON line per completed round.
///
/// Whole files are replaced atomically (write a temporary file, fsync, rename, fsync the
/// directory); logs are appended and fsynced before the request that caused them is answered.
/// A crash leaves either the old or the new file, and at most a torn last log line, which the
/// reader skips.
public enum DurableFile {
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServerError.storage("cannot create \(tmp): errno \(errno)") }
        do {
            try writeAll(fd, bytes, path: tmp)
            guard fsync(fd) == 0 else { throw ServerError.storage("fsync \(tmp): errno \(errno)") }
        } catch { close(fd); throw error }
        close(fd)
        guard rename(tmp, path) == 0 else { throw ServerError.storage("rename \(tmp): errno \(errno)") }
        syncDirectory(dir.isEmpty ? "." : dir)
    }

    public static func append(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServerError.storage("cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
        guard fsync(fd) == 0 else { throw ServerError.storage("fsync \(path): errno \(errno)") }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw ServerError.storage("write \(path): errno \(errno)") }
            done += n
        }
    }

    public static func syncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    public static func read(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) }
    }

    /// Complete lines of a log file (a torn last line, without its `\n`, is dropped).
    public static func lines(_ path: String) -> [String] {
        guard let b = read(path) else { return [] }
        var out: [String] = []
        var start = 0
        for i in 0..<b.count where b[i] == 0x0A {
            out.append(String(decoding: b[start..<i], as: UTF8.self))
            start = i + 1
        }
        return out
    }
}

/// One registered device.
public struct ClientRecord: Sendable, Equatable {
    public var id: Int
    public var tokenHash: String
    public var name: String
    public var kc: Int
    public var samples: Int
    public var storage: String
    public var memoryBudget: Int
    public var board: String
    public var maxBatch: Int

    var line: String {
        "\(id)\t\(tokenHash)\t\(name)\t\(kc)\t\(samples)\t\(storage)\t\(memoryBudget)\t\(board)\t\(maxBatch)\n"
    }

    init?(line: String) {
        let p = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard p.count == 9, let id = Int(p[0]), let kc = Int(p[3]), let s = Int(p[4]), let m = Int(p[6]),
              let b = Int(p[8]) else { return nil }
        self.init(id: id, tokenHash: p[1], name: p[2], kc: kc, samples: s, storage: p[5], memoryBudget: m,
                  board: p[7], maxBatch: b)
    }

    public init(id: Int, tokenHash: String, name: String, kc: Int, samples: Int, storage: String,
                memoryBudget: Int, board: String, maxBatch: Int) {
        self.id = id; self.tokenHash = tokenHash; self.name = name; self.kc = kc; self.samples = samples
        self.storage = storage; self.memoryBudget = memoryBudget; self.board = board; self.maxBatch = maxBatch
    }
}

/// Where the round state machine keeps what must survive a restart. `StateStore` writes files in
/// the state directory; the simulator keeps nothing (`TransientStore`).
public protocol RoundStore: Sendable {
    /// The last completed round's state and model, or nil when there is none.
    func load(config: ServerConfig) throws -> (PersistedState, GlobalModel)?
    func loadClients() -> [ClientRecord]
    func appendClient(_ c: ClientRecord) throws
    /// Saves a completed round (model, state, record) before the round counts as completed.
    func saveRound(model: GlobalModel, state: PersistedState, record: RoundRecord) throws
    /// The frozen feature normalization, saved once before the first round opens.
    func loadNormalization() throws -> Normalization?
    func saveNormalization(_ n: Normalization) throws
}

/// A store that keeps nothing: for in-process simulations, which restart from scratch.
public struct TransientStore: RoundStore {
    public init() {}
    public func load(config: ServerConfig) throws -> (PersistedState, GlobalModel)? { nil }
    public func loadClients() -> [ClientRecord] { [] }
    public func appendClient(_ c: ClientRecord) throws {}
    public func saveRound(model: GlobalModel, state: PersistedState, record: RoundRecord) throws {}
    public func loadNormalization() throws -> Normalization? { nil }
    public func saveNormalization(_ n: Normalization) throws {}
}

/// The state directory.
public struct StateStore: RoundStore {
    public let dir: String
    public let keep: Int

    public init(dir: String, keep: Int) throws {
        self.dir = dir
        self.keep = keep
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    var statePath: String { dir + "/state.json" }
    var clientsPath: String { dir + "/clients.log" }
    public var roundsPath: String { dir + "/rounds.log" }
    public static func checkpointName(_ round: Int) -> String {
        let s = String(round)
        return "ckpt-" + String(repeating: "0", count: max(0, 8 - s.count)) + s + ".fxck"
    }

    /// Saves a completed round: checkpoint first, then state.json that names it, then the round
    /// log line; older checkpoints beyond `keep` are removed last.
    public func saveRound(model: GlobalModel, state: PersistedState, record: RoundRecord) throws {
        try DurableFile.writeAtomically(model.checkpoint(round: UInt64(state.completedRound)), to: dir + "/" + state.checkpoint)
        try DurableFile.writeAtomically(RecordJSON.encode(state), to: statePath)
        try DurableFile.append(RecordJSON.encode(record) + Array("\n".utf8), to: roundsPath)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let ckpts = names.filter { $0.hasPrefix("ckpt-") && $0.hasSuffix(".fxck") }.sorted()
        if ckpts.count > keep { for n in ckpts.prefix(ckpts.count - keep) { try? FileManager.default.removeItem(atPath: dir + "/" + n) } }
    }

    /// The last completed round's state and model, or nil on a fresh directory.
    public func load(config: ServerConfig) throws -> (PersistedState, GlobalModel)? {
        guard let b = DurableFile.read(statePath) else { return nil }
        let s: PersistedState
        do { s = try RecordJSON.decode(PersistedState.self, from: b) } catch { throw ServerError.storage("state.json is malformed: \(error)") }
        guard let ck = DurableFile.read(dir + "/" + s.checkpoint) else { throw ServerError.storage("missing \(s.checkpoint)") }
        let (model, round) = try GlobalModel.load(checkpoint: ck, config: config.model)
        guard round == UInt64(s.completedRound) else { throw ServerError.storage("\(s.checkpoint) is round \(round), state.json says \(s.completedRound)") }
        return (s, model)
    }

    public func loadNormalization() throws -> Normalization? {
        guard let b = DurableFile.read(dir + "/normalization.json") else { return nil }
        do { return try RecordJSON.decode(Normalization.self, from: b) } catch {
            throw ServerError.storage("normalization.json is malformed: \(error)")
        }
    }

    public func saveNormalization(_ n: Normalization) throws {
        try DurableFile.writeAtomically(RecordJSON.encode(n), to: dir + "/normalization.json")
    }

    public func appendClient(_ c: ClientRecord) throws { try DurableFile.append(Array(c.line.utf8), to: clientsPath) }

    public func loadClients() -> [ClientRecord] {
        var byId: [Int: ClientRecord] = [:]
        for l in DurableFile.lines(clientsPath) { if let c = ClientRecord(line: l) { byId[c.id] = c } }
        return byId.keys.sorted().map { byId[$0]! }
    }

    /// Writes a bound port (`server.port`, or `operator.port`) for scripts and tests to read.
    public func writePort(_ port: Int, name: String = "server.port") throws {
        try DurableFile.writeAtomically(Array("\(port)\n".utf8), to: dir + "/" + name)
    }
}
