import Admin
import Comparator
import Config
import HTTP1
import Observability
import Proxy
import Reactor
import Routing
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// Starts the process: parses the command line, loads the configuration, starts the data
/// plane and the control plane, and waits for SIGTERM/SIGINT to stop gracefully.
enum Launcher {
    static func main(_ arguments: [String]) -> Int32 {
        let options: Options
        do {
            options = try parseOptions(arguments)
        } catch {
            printError("switchyard: \(error.description)")
            return 2
        }
        if options.command == .help {
            print(usage)
            return 0
        }
        Log.setLevel(options.logLevel ?? (options.command == .demo ? .notice : .warning))

        let config: ProxyConfig
        var demo: DemoBackends?
        switch options.command {
        case .demo:
            do {
                demo = try DemoBackends.start()
            } catch {
                printError("switchyard: cannot start the demo backends: \(error) (is something using ports 8081-8084?)")
                return 1
            }
            config = DemoBackends.configuration(proxyPort: options.port ?? 8080, adminPort: options.adminPort ?? 9090)
        default:
            guard let path = options.configPath else { return 2 }
            do {
                config = try loadConfig(path)
            } catch {
                printError("switchyard: \(path): \(error)")
                return 2
            }
        }
        let status = serve(config, workers: options.workers ?? config.workers ?? Process.onlineCPUs(), demo: demo)
        demo?.stop()
        return status
    }

    /// Reads and validates the configuration file.
    static func loadConfig(_ path: String) throws(UsageError) -> ProxyConfig {
        guard let file = fopen(path, "rb") else {
            throw UsageError(description: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 16 << 20 { throw UsageError(description: "file larger than 16 MiB") }
        }
        do {
            return try ConfigFile.parse(bytes, resolve: { SocketAddress(host: $0, port: 1) != nil })
        } catch {
            throw UsageError(description: error.description)
        }
    }

    /// Maps the configuration onto the data plane's settings.
    static func settings(_ config: ProxyConfig) -> ProxySettings {
        var s = ProxySettings()
        func nanos(_ seconds: Double) -> UInt64 { UInt64(max(0.001, seconds) * 1e9) }
        s.clientHeadNanos = nanos(config.timeouts.clientHeadSeconds)
        s.clientIdleNanos = nanos(config.timeouts.clientIdleSeconds)
        s.backendConnectNanos = nanos(config.timeouts.backendConnectSeconds)
        s.backendResponseNanos = nanos(config.timeouts.backendResponseSeconds)
        s.bodyIdleNanos = nanos(config.timeouts.bodyIdleSeconds)
        s.headLimits.maxHeadBytes = config.limits.maxHeadBytes
        s.headLimits.maxTargetBytes = config.limits.maxTargetBytes
        s.headLimits.underscores = UnderscorePolicy(rawValue: config.requestRules.underscores.rawValue) ?? .refuse
        s.refuseBodiesOnGetAndHead = config.requestRules.bodylessMethods == .refuse
        s.bufferSize = max(16384, config.limits.maxHeadBytes)
        s.maxConnections = config.limits.maxConnections
        s.cookieNames = config.cookieNames
        s.rollback = config.rollback
        s.comparisons = ComparisonLog(capacity: config.comparisonsKept)
        if let ignored = config.comparisonIgnoredHeaders {
            // Framing headers always differ legitimately (chunked vs length): never compared here.
            s.headerPolicy = HeaderPolicy(ignored: ignored.union(["connection", "keep-alive", "transfer-encoding", "content-length"]))
        }
        return s
    }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    static func serve(_ config: ProxyConfig, workers: Int, demo: DemoBackends?) -> Int32 {
        Process.ignoreSIGPIPE()
        let fileLimit = Process.raiseFileLimit()
        // Block the stop signals before any thread starts, so that every thread inherits the
        // mask and only sigwait below receives them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGUSR1)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let metrics = ProxyMetrics(reactors: workers)
        let registry = ClusterRegistry(reactors: workers, policy: config.rollback)
        let snapshot: Snapshot
        do {
            snapshot = try registry.load(config.clusters)
        } catch {
            printError("switchyard: \(error)")
            return 2
        }
        guard let proxyAddress = SocketAddress(host: config.proxyHost, port: config.proxyPort) else {
            printError("switchyard: proxy.hostname: cannot resolve \"\(config.proxyHost)\"")
            return 2
        }
        guard let adminAddress = SocketAddress(host: config.adminHost, port: config.adminPort) else {
            printError("switchyard: configService.hostname: cannot resolve \"\(config.adminHost)\"")
            return 2
        }
        let proxy: ProxyServer
        var proxySettings = settings(config)
        if let log = config.accessLog {
            do {
                proxySettings.accessLog = try AccessLogSink(path: log.path, format: AccessLogFormat(rawValue: log.format.rawValue) ?? .logfmt,
                                                            sample: log.sample, metrics: metrics)
            } catch {
                printError("switchyard: accessLog.path: \(error.description)")
                return 2
            }
        }
        do {
            proxy = try ProxyServer(listen: proxyAddress, workers: workers, settings: proxySettings, snapshot: snapshot, metrics: metrics)
        } catch {
            printError("switchyard: cannot listen on \(proxyAddress): \(error)")
            return 1
        }
        registry.setPublisher { proxy.publish($0) }
        let api = AdminAPI(registry: registry, metrics: metrics, token: config.adminToken, workers: workers,
                           comparisons: proxySettings.comparisons)
        let control: ControlPlane
        do {
            control = try ControlPlane(listen: adminAddress, api: api, maxBodyBytes: config.limits.maxApiBodyBytes)
        } catch {
            printError("switchyard: cannot listen on \(adminAddress) for the API: \(error)")
            return 1
        }
        proxy.start()
        let controlThread = control.start()
        Log.notice("started", ["proxy": "\(config.proxyHost):\(proxy.port)", "api": "\(config.adminHost):\(control.port)",
                               "workers": String(workers), "clusters": String(snapshot.clusters.count),
                               "nofile": String(fileLimit)])
        if demo != nil { DemoBackends.printHelp(proxyPort: proxy.port, adminPort: control.port) }

        proxySettings.accessLog?.start()
        var received: Int32 = 0
        while true {
            sigwait(&signals, &received)
            guard received == SIGUSR1 else { break }
            // logrotate moved the access log: open the path anew.
            proxySettings.accessLog?.reopen()
            Log.notice("access_log_reopened", ["path": config.accessLog?.path ?? "-"])
        }
        Log.notice("stopping", ["signal": received == SIGTERM ? "SIGTERM" : "SIGINT"])
        proxy.stopAndWait()
        proxySettings.accessLog?.stop()
        control.stop()
        ReactorThread.join(controlThread)
        Log.notice("stopped")
        return 0
    }
}
