import Admin
import Comparator
import Config
import Fleet
import HTTP1
import Observability
import Proxy
import Reactor
import Routing
import Store
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// Starts the process: parses the command line, loads the configuration and the durable
/// state, starts the data plane and the control plane, re-reads the configuration on SIGHUP,
/// and waits for SIGTERM/SIGINT to stop gracefully.
enum Launcher {
    /// The signals `serve` waits for, blocked in the calling thread: called before any other
    /// thread starts (the demo backends included), every thread inherits the mask, so a signal
    /// that arrives early waits for sigwait instead of killing the process.
    static func handledSignals() -> sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGUSR1)
        sigaddset(&signals, SIGHUP)
        sigaddset(&signals, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        return signals
    }

    static func main(_ arguments: [String]) -> Int32 {
        // `ctl` and `upgrade` are clients: they keep the default signal handling (Ctrl-C ends them).
        if arguments.first == "ctl" { return Ctl.main(Array(arguments.dropFirst())) }
        if arguments.first == "upgrade" { return UpgradeCommand.main(Array(arguments.dropFirst())) }
        _ = handledSignals()
        Successor.attachFromEnvironment()
        _ = installedBinaryPath  // read now, before anyone replaces the file
        let options: Options
        do {
            options = try parseOptions(arguments, defaultConfig: access("config.json", R_OK) == 0 ? "config.json" : nil)
        } catch {
            printError("switchyard: \(error.description)")
            return 2
        }
        if options.command == .help {
            print(usage)
            return 0
        }
        if options.command == .checkConfig, let path = options.checkConfigPath {
            return checkConfig(path, resolve: !options.noResolve)
        }
        Log.setLevel(options.logLevel ?? (options.command == .demo ? .notice : .warning))

        var config: ProxyConfig
        var demo: DemoBackends?
        var stateDir = options.stateDir
        var temporaryState = false
        switch options.command {
        case .demo:
            do {
                demo = try DemoBackends.start()
            } catch {
                printError("switchyard: cannot start the demo backends: \(error) (is something using ports 8081-8084?)")
                return 1
            }
            config = DemoBackends.configuration(proxyPort: options.port ?? 8080, adminPort: options.adminPort ?? 9090)
            if stateDir == nil {
                var template = Array("/tmp/switchyard-demo-XXXXXX".utf8CString)
                if let made = mkdtemp(&template) {
                    stateDir = String(cString: made)
                    temporaryState = true
                }
            }
        default:
            guard let path = options.configPath else { return 2 }
            do {
                config = try loadConfig(path)
            } catch {
                printError("switchyard: \(path): \(error)")
                return 2
            }
            if options.logLevel == nil, let name = config.logLevel, let level = LogLevel(name: name) { Log.setLevel(level) }
            if options.configFromDefault {
                Log.notice("config_default", ["file": "./config.json", "detail": "no --config given; reading ./config.json (the 2014 default)"])
            }
            stateDir = stateDir ?? config.stateDir
        }
        let status = serve(config, options: options, stateDir: stateDir, workers: options.workers ?? config.workers ?? Process.onlineCPUs(), demo: demo)
        demo?.stop()
        if temporaryState, let stateDir { removeStateDirectory(stateDir) }
        return status
    }

    /// Reads and validates the configuration file.
    static func loadConfig(_ path: String, resolve: Bool = true) throws(UsageError) -> ProxyConfig {
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
            return try ConfigFile.parse(bytes, resolve: { resolve ? SocketAddress(host: $0, port: 1) != nil : true })
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
        s.clientHandshakeNanos = nanos(config.timeouts.clientHandshakeSeconds)
        s.headLimits.maxHeadBytes = config.limits.maxHeadBytes
        s.headLimits.maxTargetBytes = config.limits.maxTargetBytes
        s.headLimits.underscores = UnderscorePolicy(rawValue: config.requestRules.underscores.rawValue) ?? .refuse
        s.refuseBodiesOnGetAndHead = config.requestRules.bodylessMethods == .refuse
        s.bufferSize = max(16384, config.limits.maxHeadBytes)
        s.maxConnections = config.limits.maxConnections
        s.cookieNames = config.cookieNames
        s.moveAfterIdleMillis = Int64((config.moveAfterIdleSeconds * 1000).rounded())
        s.rollback = config.rollback
        s.comparisons = ComparisonLog(capacity: config.comparisonsKept)
        if let ignored = config.comparisonIgnoredHeaders {
            // Framing headers always differ legitimately (chunked vs length): never compared here.
            s.headerPolicy = HeaderPolicy(ignored: ignored.union(["connection", "keep-alive", "transfer-encoding", "content-length"]))
        }
        return s
    }

    /// Opens the state store and loads the start-up state into the registry. Returns nil
    /// (after printing one line) when the process must not start, with the exit status.
    static func openState(_ stateDir: String?, options: Options, config: ProxyConfig, fleet: FleetStore? = nil,
                          registry make: (StateStore?) -> ClusterRegistry) -> Result<(ClusterRegistry, StartReport), ExitStatus> {
        var store: JournalStore?
        if fleet != nil, let stateDir {
            printError("switchyard: --state-dir \(stateDir): this instance keeps its state in etcd (\"state\": {\"store\": \"etcd\"}); give one or the other")
            return .failure(ExitStatus(code: 2))
        }
        if let stateDir {
            do {
                store = try JournalStore(directory: stateDir)
                store?.compactAfterRecords = config.compactAfterRecords
            } catch {
                if case .locked = error {
                    printError("switchyard: state directory \(stateDir) is in use by another switchyard process (it holds the lock); stop it or give another --state-dir")
                } else {
                    printError("switchyard: cannot use state directory: \(error)")
                }
                return .failure(ExitStatus(code: 2))
            }
            if options.resetState, let store {
                do {
                    let moved = try store.moveAside(now: Clock.unixSeconds())
                    Log.warning("state_reset", ["dir": stateDir, "movedAside": moved.isEmpty ? "nothing" : moved.joined(separator: ","),
                                                "detail": "starting from the configuration file"])
                } catch {
                    printError("switchyard: --reset-state: \(error)")
                    return .failure(ExitStatus(code: 1))
                }
            }
        }
        let registry = make(fleet ?? store)
        let report: StartReport
        do {
            report = try registry.start(seed: config.clusters, services: config.services, defaultService: config.defaultService)
        } catch {
            switch error {
            case .store(.corrupt(let path, let offset, let reason)):
                printError("switchyard: \(path): damaged at byte \(offset) (\(reason)); refusing to start. Start with --reset-state to start from the configuration file (the damaged files are kept aside)")
            case .store(let e):
                printError("switchyard: state: \(e)")
            case .invalid(let e):
                printError("switchyard: \(e)")
            }
            return .failure(ExitStatus(code: 2))
        }
        for warning in report.warnings { Log.warning("state_torn_record", ["detail": warning]) }
        if let fleet {
            logFleetStart(fleet, report: report)
        } else if let stateDir {
            Log.notice("state_loaded", ["source": report.source == "state" ? "state directory" : "configuration file (state directory was empty)",
                                        "dir": stateDir, "clusters": String(report.snapshot.clusters.count)])
        } else {
            Log.warning("state_not_durable", ["detail": "no --state-dir: changes made through the API will not survive a restart",
                                              "source": "configuration file", "clusters": String(report.snapshot.clusters.count)])
        }
        for cluster in report.snapshot.clusters {
            var fields: KeyValuePairs<String, String> = [:]
            fields = ["version": cluster.spec.version, "uuid": cluster.spec.uuid, "mode": cluster.spec.mode.rawValue,
                      "servers": cluster.spec.servers.map(\.description).joined(separator: ","),
                      "state": cluster.state.failure.map { "failed (\($0.reason))" } ?? (cluster.health.isPending ? "pending" : "active"),
                      "gradualThreshold": cluster.spec.mode == .gradual ? String(cluster.state.gradualThreshold) : "-"]
            Log.notice("serving_cluster", fields)
        }
        return .success((registry, report))
    }

    /// An exit status carried through `Result`.
    struct ExitStatus: Error { var code: Int32 }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    static func serve(_ config: ProxyConfig, options: Options, stateDir: String?, workers configuredWorkers: Int, demo: DemoBackends?) -> Int32 {
        Process.ignoreSIGPIPE()
        let fileLimit = Process.raiseFileLimit()
        var signals = handledSignals()
        // Started by a self-upgrade: the running process's listeners, state and state lock.
        var inherited: Successor.Inheritance?
        if Successor.isSuccessor {
            switch Successor.receiveOffer(config: config, stateDir: stateDir) {
            case .success(let offer): inherited = offer
            case .failure(let error):
                printError("switchyard: upgrade refused: \(error.description)")
                return 2
            }
        }
        // A successor runs one worker per inherited listener, whatever the count it was given.
        let workers = inherited?.proxyListeners.count ?? configuredWorkers

        let metrics = ProxyMetrics(reactors: workers)
        // The access log opens first: a path that cannot be opened stops the start before
        // anything else is done or logged.
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
        let registry: ClusterRegistry
        let snapshot: Snapshot
        let fleetStore = config.etcd.map(makeFleetStore)
        var journal: JournalStore?
        if let inherited {
            // The directory's lock came with its descriptor; the state with the offer.
            if let stateDir, let lock = inherited.stateLock { journal = JournalStore(directory: stateDir, lockedDescriptor: lock) }
            proxySettings.comparisons.restore(Upgrader.totals(inherited.comparisons))
            registry = ClusterRegistry(reactors: workers, policy: config.rollback, store: fleetStore ?? journal, releaseGroups: config.releaseGroups,
                                       resolver: NameResolver(hostsFile: config.resolver.hostsFile))
            do {
                snapshot = try registry.start(seed: config.clusters, services: config.services, defaultService: config.defaultService,
                                              adopting: inherited.state).snapshot
            } catch {
                printError("switchyard: upgrade refused: state: \(error)")
                return 2
            }
            Log.notice("state_handed_over", ["from": String(inherited.predecessorPID), "clusters": String(snapshot.clusters.count),
                                             "sequence": String(inherited.state.sequence)])
        } else {
            switch openState(stateDir, options: options, config: config, fleet: fleetStore, registry: { store in
                journal = store as? JournalStore
                return ClusterRegistry(reactors: workers, policy: config.rollback, store: store, releaseGroups: config.releaseGroups,
                                       resolver: NameResolver(hostsFile: config.resolver.hostsFile))
            }) {
            case .success(let (r, report)):
                registry = r
                snapshot = report.snapshot
            case .failure(let status):
                return status.code
            }
        }
        guard let proxyAddress = SocketAddress(host: config.proxyHost, port: config.proxyPort) else {
            printError("switchyard: proxy.hostname: cannot resolve \"\(config.proxyHost)\"")
            return 2
        }
        guard let adminAddress = SocketAddress(host: config.adminHost, port: config.adminPort) else {
            printError("switchyard: configService.hostname: cannot resolve \"\(config.adminHost)\"")
            return 2
        }
        let plan: ListenerPlan
        do {
            plan = try listenerPlan(config)
        } catch {
            printError("switchyard: \(error.description)")
            return 2
        }
        let adminTLS: TLSEndpoint?
        do {
            adminTLS = try adminEndpoint(config)
        } catch {
            printError("switchyard: \(error.description)")
            return 2
        }
        if inherited != nil && !plan.extra.isEmpty {
            printError("switchyard: upgrade refused: proxy.listeners: only the main listener is handed over in an upgrade; "
                       + "with TLS or several listeners, restart instead")
            return 2
        }
        // With TLS listeners, every service host needs a certificate that covers it.
        let tlsNames = plan.extra.compactMap(\.tls).flatMap { $0.certificates.flatMap(\.names) }
        if plan.extra.contains(where: { $0.tls != nil }) {
            let check: @Sendable (String) -> String? = { host in
                certificateNames(tlsNames, cover: host) ? nil
                    : "no certificate of the TLS listeners covers \"\(host)\" (their names: \(tlsNames.joined(separator: ", ")))"
            }
            for service in registry.services {
                for (k, host) in service.hosts.enumerated() {
                    if let why = check(host) {
                        printError("switchyard: services.\(service.name).hosts[\(k)]: \(why)")
                        return 2
                    }
                }
            }
            registry.setHostCoverage(check)
        }
        let proxy: ProxyServer
        do {
            if let inherited {
                proxy = try ProxyServer(listeners: inherited.proxyListeners, settings: proxySettings, snapshot: snapshot, metrics: metrics)
            } else {
                proxy = try ProxyServer(listen: plan.main, workers: workers, settings: proxySettings, snapshot: snapshot, metrics: metrics,
                                        listeners: plan.extra)
            }
        } catch {
            printError("switchyard: cannot listen on \(proxyAddress): \(error)")
            return 1
        }
        registry.setPublisher { proxy.publish($0) }
        let adminFD: Int32
        do {
            adminFD = try inherited?.adminListener ?? Socket.listen(adminAddress, reusePort: false, backlog: 128)
        } catch {
            printError("switchyard: cannot listen on \(adminAddress) for the API: \(error)")
            return 1
        }
        let tlsListeners = tlsListenerSet(proxy, admin: adminTLS, adminFD: adminFD)
        let rollouts = RolloutDriver(registry: registry, comparisons: proxySettings.comparisons)
        let dashboard = Dashboard(registry: registry, rollouts: rollouts)
        let upgrader = Upgrader(serial: inherited?.serial ?? 0, arguments: Array(CommandLine.arguments.dropFirst()),
                                drainSeconds: config.upgradeDrainSeconds, frozen: inherited != nil)
        let api = AdminAPI(registry: registry, metrics: metrics, token: config.adminToken, workers: workers,
                           comparisons: proxySettings.comparisons, rollouts: rollouts, dashboard: dashboard,
                           extraRoutes: ["/upgrade": { upgrader.handle($0) }], tls: tlsListeners)
        let control: ControlPlane
        do {
            control = try ControlPlane(listenerFD: adminFD, maxBodyBytes: config.limits.maxApiBodyBytes, tls: adminTLS,
                                       handshakeNanos: UInt64(config.timeouts.clientHandshakeSeconds * 1e9), handler: upgrader.wrap(api))
        } catch {
            printError("switchyard: cannot listen on \(adminAddress) for the API: \(error)")
            return 1
        }
        proxy.start()
        api.setWorkerPing { proxy.ping(timeoutNanos: 1_000_000_000) }
        api.markServing()
        let controlThread = control.start()
        upgrader.attach(proxy: proxy, control: control, registry: registry, store: journal, comparisons: proxySettings.comparisons)
        if let inherited {
            upgrader.received.withLock {
                $0["listener"] = inherited.proxyListeners.count
                $0["admin_listener"] = 1
                $0["state"] = 1
                $0["state_lock"] = inherited.stateLock == nil ? 0 : 1
            }
            // Serving on the inherited listeners: say so, and own the state once the
            // running process has stopped accepting.
            if Successor.sayReady(), Successor.waitForCommit() {
                Successor.receiveConnections(proxy: proxy, upgrader: upgrader)
            } else {
                Log.warning("upgrade_not_committed", ["detail": "the previous process went away before committing; serving alone"])
            }
            upgrader.thaw()
            ChildProcess.notifyServiceManager("MAINPID=\(getpid())\nREADY=1")
        } else {
            ChildProcess.notifyServiceManager("READY=1")
        }
        // Failed marks and GRADUAL progress come from the reactors through shared atomics;
        // the control plane records them once a second (never a store write on a reactor).
        // Rollout plans are carried out from the same thread: windows sampled, steps taken.
        // Both pause while a self-upgrade holds the state for the new process.
        control.every(1_000_000_000) {
            guard !upgrader.isFrozen else { return }
            registry.tick()
            rollouts.tick()
            dashboard.tick()
        }
        control.loop.execute { rollouts.clustersChanged() }   // plans restored from the state directory
        control.loop.execute { dashboard.noticeChanges() }   // the clusters loaded at start are the first events
        if let fleetStore {
            let fleet = FleetLink(store: fleetStore, registry: registry, rollouts: rollouts, loop: control.loop,
                                  comparisons: proxySettings.comparisons)
            api.setFleet(fleet)
            fleet.start()
        }
        // Backend names are re-resolved on a thread of their own; the control plane swaps in
        // what changed (a new snapshot; exchanges in flight finish on the old one).
        if config.resolver.resolveSeconds > 0 {
            AddressRefresher.start(every: config.resolver.resolveSeconds, registry: registry) { refresh in
                control.loop.execute {
                    guard registry.applyResolution(refresh) != nil else { return }
                    rollouts.clustersChanged()
                    dashboard.noticeChanges(cause: "names resolved")
                }
            }
        }
        // Health checks and readiness gates run on the control-plane thread too.
        HealthChecker(loop: control.loop, registry: registry, metrics: metrics).start()
        Log.notice("started", ["proxy": "\(config.proxyHost):\(proxy.port)", "api": "\(config.adminHost):\(control.port)", "apiTLS": adminTLS == nil ? "no" : "yes",
                               "workers": String(workers), "clusters": String(snapshot.clusters.count),
                               "nofile": String(fileLimit), "stateDir": stateDir ?? "none"])
        logListeners(proxy)
        scheduleTicketRotation(config, proxy, control)
        scheduleAdminTicketRotation(config, adminTLS, control)
        if demo != nil { DemoBackends.printHelp(proxyPort: proxy.port, adminPort: control.port) }

        proxySettings.accessLog?.start()
        var current = config
        var received: Int32 = 0
        while true {
            sigwait(&signals, &received)
            if received == SIGUSR1 {
                // logrotate moved the access log: open the path anew.
                proxySettings.accessLog?.reopen()
                Log.notice("access_log_reopened", ["path": config.accessLog?.path ?? "-"])
                continue
            }
            if received == SIGUSR2 {
                // systemd's ExecReload or an operator: upgrade to the binary at our own path.
                if case .failure(let refusal) = upgrader.start(binary: nil) {
                    Log.warning("upgrade_refused", ["reason": refusal.reason])
                }
                continue
            }
            guard received == SIGHUP else { break }
            if let path = options.configPath, demo == nil {
                current = reload(path, current: current, options: options, workers: workers, proxy: proxy, api: api,
                                 baseline: proxySettings)
                reloadTLS(current, tlsListeners)
            } else {
                Log.warning("reload_ignored", ["reason": "no configuration file to re-read"])
            }
        }
        if upgrader.isExiting {
            // Everything went to the new process, which owns the state now: write nothing.
            proxy.join()
            proxySettings.accessLog?.stop()
            control.stop()
            ReactorThread.join(controlThread)
            Log.notice("stopped", ["reason": "handed over to the new process"])
            return 0
        }
        Log.notice("stopping", ["signal": received == SIGTERM ? "SIGTERM" : "SIGINT"])
        // Leaving the fleet first: the lease is revoked, so another instance leads at once.
        fleetStore?.stop()
        proxy.stopAndWait()
        proxySettings.accessLog?.stop()
        // The data plane has stopped: record its last failed marks and GRADUAL progress
        // (serialized with the control-plane thread by the registry's lock) — unless a
        // self-upgrade holds the state for a new process.
        if !upgrader.isFrozen { registry.tick() }
        control.stop()
        ReactorThread.join(controlThread)
        Log.notice("stopped")
        return 0
    }

    /// SIGHUP: re-reads the configuration file and applies what can change without dropping
    /// a connection (log level, timeouts, limits, API token, cookie names, comparison and
    /// rollback settings). Settings that need a restart are logged and ignored; an invalid
    /// file changes nothing. Returns the configuration now in effect.
    static func reload(_ path: String, current: ProxyConfig, options: Options, workers: Int, proxy: ProxyServer,
                       api: AdminAPI, baseline: ProxySettings) -> ProxyConfig {
        let next: ProxyConfig
        do {
            next = try loadConfig(path)
        } catch {
            Log.error("reload_failed", ["file": path, "error": error.description, "action": "nothing changed"])
            return current
        }
        var ignored: [String] = []
        if next.proxyHost != current.proxyHost || next.proxyPort != current.proxyPort { ignored.append("proxy address") }
        if next.listeners?.map(\.port) != current.listeners?.map(\.port)
            || next.listeners?.map({ $0.tls == nil }) != current.listeners?.map({ $0.tls == nil }) {
            ignored.append("proxy.listeners")
        }
        if next.adminHost != current.adminHost || next.adminPort != current.adminPort { ignored.append("configService address") }
        if (next.adminTLS == nil) != (current.adminTLS == nil) { ignored.append("configService.tls on or off") }
        if options.workers == nil && (next.workers ?? workers) != workers { ignored.append("workers") }
        if options.stateDir == nil && next.stateDir != current.stateDir { ignored.append("state.dir") }
        if next.comparisonsKept != current.comparisonsKept { ignored.append("comparisons.kept") }
        if next.accessLog != current.accessLog { ignored.append("accessLog") }
        if max(16384, next.limits.maxHeadBytes) > baseline.bufferSize { ignored.append("limits.maxHeadBytes above \(baseline.bufferSize)") }
        if !ignored.isEmpty {
            Log.warning("reload_needs_restart", ["ignored": ignored.joined(separator: "; ")])
        }
        if options.logLevel == nil {
            Log.setLevel(next.logLevel.flatMap { LogLevel(name: $0) } ?? .warning)
        }
        api.setToken(next.adminToken)
        var s = settings(next)
        s.comparisons = baseline.comparisons
        s.accessLog = baseline.accessLog
        proxy.update(s)
        Log.notice("reloaded", ["file": path, "logLevel": options.logLevel.map { "\($0.name) (command line)" } ?? (next.logLevel ?? "WARNING"),
                                "token": next.adminToken == nil ? "none" : "set",
                                "clusters": "unchanged (the file only seeds an empty state; use the API)"])
        var applied = next
        applied.proxyHost = current.proxyHost
        applied.proxyPort = current.proxyPort
        applied.adminHost = current.adminHost
        applied.adminPort = current.adminPort
        applied.stateDir = current.stateDir
        applied.comparisonsKept = current.comparisonsKept
        applied.accessLog = current.accessLog
        if (next.adminTLS == nil) != (current.adminTLS == nil) { applied.adminTLS = current.adminTLS }
        applied.clusters = current.clusters
        return applied
    }

    /// Removes the temporary state directory of `switchyard demo`.
    static func removeStateDirectory(_ dir: String) {
        for name in ["journal", "snapshot", "journal.tmp", "snapshot.tmp"] { unlink(dir + "/" + name) }
        rmdir(dir)
    }
}
