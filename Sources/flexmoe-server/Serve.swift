import ArgumentParser
import FlexServer
import Foundation
import Logging

/// `flexmoe-server serve --config FILE`: runs the rounds for real devices (docs/PROTOCOL.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the FlexMoE round server (HTTP, docs/PROTOCOL.md).")

    @Option(help: "Server config (JSON; keys and defaults in docs/SERVER.md).")
    var config: String

    @Option(help: "Override the config's port (0: an ephemeral port, written to STATE_DIR/server.port).")
    var port: Int?

    @Option(help: "Override the config's state directory.")
    var stateDir: String?

    @Flag(help: "Exit when standard input reaches end of file (a supervising parent process died).")
    var exitOnStdinEof = false

    func run() throws {
        var c: ServerConfig
        do { c = try ServerConfig.load(path: config) } catch {
            FileHandle.standardError.write(Data("flexmoe-server serve: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let p = port { c.port = p }
        if let d = stateDir { c.stateDir = d }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "flexmoe.server")
        logger.logLevel = .info
        // A parent may have spawned us with signals blocked; SIGTERM/SIGINT must stop the server.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        let coordinator = try Coordinator(config: c, logger: logger)
        let limits = c.resourceLimits(fileLimit: ResourceLimits.raiseFileLimit())
        let server = try FlexHTTPServer(coordinator: coordinator, host: c.listenHost, port: c.port,
                                        operatorListener: c.operatorListener, limits: limits)
        let store = try StateStore(dir: c.stateDir, keep: c.keepCheckpoints)
        if c.operatorListener != nil { try store.writePort(server.operatorPort, name: "operator.port") }
        try store.writePort(server.port)
        logger.info("listening", metadata: ["host": "\(c.listenHost)", "port": "\(server.port)", "state_dir": "\(c.stateDir)",
                                            "operator": c.operatorListener.map { "\($0.host):\(server.operatorPort)" } ?? "on the device port",
                                            "max_connections": "\(limits.maxConnections)",
                                            "max_connections_per_address": "\(limits.maxConnectionsPerAddress)",
                                            "max_body_bytes": "\(limits.maxBodyBytes)"])
        // Graceful stop on SIGTERM, SIGINT or (with --exit-on-stdin-eof) the end of standard input:
        // stop accepting, answer what is pending, exit 0 once no state write is in progress.
        let stopLogger = logger
        let stop: @Sendable (String) -> Void = { why in
            stopLogger.info("stopping: \(why); no new connections; an open round is abandoned and reopens after a restart")
            server.closeListeners()
            coordinator.beginShutdown()
            usleep(300_000)  // responses already being written go out
            coordinator.exitWhenQuiet()
        }
        var sources: [DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop(name) }
            source.resume()
            sources.append(source)
        }
        if exitOnStdinEof {
            Thread.detachNewThread {
                while let _ = readLine(strippingNewline: false) {}
                stop("end of standard input")
            }
        }
        try server.wait()
        withExtendedLifetime(sources) {}
    }
}

/// `flexmoe-server enroll NAME`: issues a device token (printed once; only its SHA-256 is stored).
struct EnrollCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll", abstract: "Issue a device token; prints it once, stores only its SHA-256.")

    @Argument(help: "Device name ([A-Za-z0-9._-], at most 64 characters).")
    var name: String

    @Option(help: "Token file (default: flexmoe-state/tokens, the default config's).")
    var tokens: String = "flexmoe-state/tokens"

    func run() throws {
        do {
            print(try TokenFile.enroll(name: name, path: tokens))
        } catch {
            FileHandle.standardError.write(Data("flexmoe-server enroll: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// `flexmoe-server aggregate --base CHECKPOINT --updates DIR --out NEW`: the live server's
/// validation and streaming aggregation, offline.
struct AggregateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregate", abstract: "Aggregate update reports/containers into a new checkpoint (same code as the server).")

    @Option(help: "Base checkpoint (.fxck, as the server writes in its state directory).")
    var base: String
    @Option(help: "Directory of updates: report bodies (FXRP) and/or bare delta containers (FXMW, weight 1).")
    var updates: String
    @Option(help: "Output checkpoint.")
    var out: String
    @Option(help: "Expert weighting for reports: usage | samples.")
    var weighting = "usage"
    @Option(help: "Clip each delta to this L2 norm (0: off).")
    var clipNorm = 0.0
    @Option(help: "Version given to the updated parts (default: the base's round + 1).")
    var round: UInt64?

    func run() throws {
        do {
            let summary = try OfflineAggregation.run(base: base, updates: updates, out: out, weightByUsage: weighting != "samples",
                                                     clipNorm: clipNorm, round: round)
            print(summary)
        } catch {
            FileHandle.standardError.write(Data("flexmoe-server aggregate: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}
