import HTTP1
import Observability
import Proxy
import Reactor
import Routing
import Syscalls
import TLS

/// Active health checks and the readiness gate, run from one place: the control plane's
/// event loop (never a reactor, never once per worker).
///
/// Every `intervalSeconds` each backend of a cluster with a `healthCheck` gets one probe:
/// a non-blocking connect, `GET path HTTP/1.1` with `Host` and `Connection: close` (written
/// by `HeadWriter`), and the response head read with `HeadParser`; its status must match
/// `expectStatus` within `timeoutSeconds`. Verdicts go into the cluster's `ClusterHealth`,
/// whose routing word every worker reads once per exchange. A cluster waiting for its
/// readiness gate is opened once `minHealthy` backends are up, or marked failed ("not
/// ready") after `readyTimeoutSeconds`; a ready cluster whose backends are all found down is
/// marked failed ("no healthy backend") when an older version can take its traffic.
public final class HealthChecker: EventHandler, DeadlineHandler, @unchecked Sendable {
    /// Position in the loop's sweep (managed by the loop).
    public var sweepIndex = -1

    private let loop: EventLoop
    private let registry: ClusterRegistry
    private let metrics: ProxyMetrics

    /// The most bytes of a response head a probe reads before it fails.
    static let maxHeadBytes = 16384

    /// One backend of one cluster definition, and its probe in flight, if any.
    final class Target {
        let cluster: ClusterRuntime
        let index: Int
        let check: HealthCheckSpec
        /// Monotonic time at which the next probe starts.
        var nextDue: UInt64
        var probe: Probe?

        init(cluster: ClusterRuntime, index: Int, check: HealthCheckSpec, nextDue: UInt64) {
            self.cluster = cluster
            self.index = index
            self.check = check
            self.nextDue = nextDue
        }

        /// The server's first address: a name standing for several addresses is probed at one
        /// of them, and the verdict covers the server (nil while a lazy name does not resolve).
        var address: SocketAddress? { cluster.firstAddress(ofServer: index) }
        var server: ServerAddress { cluster.spec.servers[index] }
    }

    /// A probe in flight: its connection, what is left to write, and the head read so far.
    struct Probe {
        let fd: Int32
        /// Monotonic time at which the probe fails with "timeout".
        let deadline: UInt64
        var connecting: Bool
        var request: [UInt8]
        var written = 0
        var received: [UInt8] = []
        var parser = HeadParser(limits: HeadLimits())
        var head = ResponseHead()
        /// For a cluster with `tls`: the probe's TLS, handshaking until `secured`.
        var tls: TLSConnection?
        var secured = false
    }

    /// Targets by cluster definition (a replaced cluster is a new definition).
    private var targets: [ObjectIdentifier: [Target]] = [:]
    /// Targets with a probe in flight, by descriptor.
    private var probing: [Int32: Target] = [:]
    /// The registry's clusters as of `generation` (re-read only when it changes).
    private var clusters: [ClusterRuntime] = []
    private var generation: UInt64?

    /// Creates the checker; `start` puts it on `loop`.
    public init(loop: EventLoop, registry: ClusterRegistry, metrics: ProxyMetrics) {
        self.loop = loop
        self.registry = registry
        self.metrics = metrics
    }

    /// Joins the loop's deadline sweep (about every 100 ms), which drives every probe and
    /// gate. Safe from any thread.
    public func start() {
        loop.execute { [self] in loop.addToSweep(self) }
    }

    // MARK: The sweep

    /// Starts due probes, fails probes past their deadline, follows new and removed cluster
    /// definitions, and decides the readiness gates.
    public func checkDeadline(now: UInt64) {
        let current = registry.generation
        if current != generation {
            generation = current
            clusters = registry.snapshot.clusters
            reconcile(clusters, now: now)
        }
        for list in targets.values {
            for target in list {
                if let probe = target.probe, now >= probe.deadline {
                    finish(target, .failed("timeout after \(format(target.check.timeoutSeconds))s"))
                }
                if target.probe == nil, now >= target.nextDue {
                    target.nextDue = now &+ nanos(target.check.intervalSeconds)
                    begin(target, now: now)
                }
            }
        }
        for cluster in clusters { decideGate(cluster, now: now) }
    }

    /// Adds targets for new definitions with a health check and drops those of definitions
    /// no longer in the registry (closing their probes).
    private func reconcile(_ clusters: [ClusterRuntime], now: UInt64) {
        var live = Set<ObjectIdentifier>()
        for cluster in clusters {
            guard let check = cluster.spec.healthCheck else { continue }
            let key = ObjectIdentifier(cluster)
            live.insert(key)
            if targets[key] == nil {
                targets[key] = cluster.spec.servers.indices.map { Target(cluster: cluster, index: $0, check: check, nextDue: now) }
            }
        }
        for (key, list) in targets where !live.contains(key) {
            for target in list {
                if let probe = target.probe {
                    probing[probe.fd] = nil
                    loop.close(probe.fd)
                }
            }
            targets[key] = nil
        }
    }

    /// The readiness gate of a pending cluster (see `readiness`).
    private func decideGate(_ cluster: ClusterRuntime, now: UInt64) {
        guard let check = cluster.spec.healthCheck, cluster.health.isPending, !cluster.state.isFailed else { return }
        // A lazy name that has not resolved keeps the gate closed (the ready timeout still runs).
        if cluster.unresolved, readiness(up: cluster.health.upCount, minHealthy: check.minHealthy,
                                         elapsedSeconds: Double(now &- cluster.health.pendingSince) / 1e9,
                                         readyTimeoutSeconds: check.readyTimeoutSeconds) == .ready { return }
        let up = cluster.health.upCount
        let elapsed = Double(now &- cluster.health.pendingSince) / 1e9
        switch readiness(up: up, minHealthy: check.minHealthy, elapsedSeconds: elapsed, readyTimeoutSeconds: check.readyTimeoutSeconds) {
        case .pending:
            break
        case .ready:
            if cluster.health.markReady() {
                Log.notice("cluster_ready", ["uuid": cluster.spec.uuid, "version": cluster.spec.version,
                                             "healthy": "\(up)/\(cluster.spec.servers.count)", "afterSeconds": format(elapsed)])
            }
        case .notReady:
            // A pending cluster has no traffic to move: it is marked failed even when it is
            // the only cluster, so that the API says why it never took any.
            fail(cluster, reason: "not ready", detail: "\(up) of \(check.minHealthy) needed backends up after \(format(check.readyTimeoutSeconds))s")
        }
    }

    /// Marks a cluster failed through the shared state (the registry's tick journals it).
    private func fail(_ cluster: ClusterRuntime, reason: String, detail: String) {
        guard cluster.state.markFailed(reason: reason, at: Clock.unixSeconds()) else { return }
        metrics.rollbacks.add(1, ordering: .relaxed)
        Log.error("cluster_failed", ["uuid": cluster.spec.uuid, "version": cluster.spec.version, "reason": reason,
                                    "detail": detail, "action": "traffic stays with (or moves to) the previous version"])
    }

    // MARK: One probe

    /// Starts a probe of `target`: connect, then write the request once connected.
    private func begin(_ target: Target, now: UInt64) {
        let fd: Int32
        let connected: Bool
        // An unresolved lazy name has nothing to probe yet; its cluster stays pending.
        guard let address = target.address else { return }
        do {
            (fd, connected) = try Socket.connect(address)
        } catch {
            record(target, .failed(error.description))
            return
        }
        do {
            try loop.register(fd, handler: self)
        } catch {
            Socket.close(fd)
            record(target, .failed(error.description))
            return
        }
        var request: [UInt8] = []
        HeadWriter.appendProbeRequest(target: target.check.path, host: target.server.description, to: &request)
        target.probe = Probe(fd: fd, deadline: now &+ nanos(target.check.timeoutSeconds), connecting: !connected, request: request)
        if let tls = target.cluster.tls {
            // Probed as the data plane reaches it: same context, name and certificate check.
            let name = tls.serverName(for: target.server.hostname)
            guard let context = tls.context,
                  let connection = TLSConnection(client: context, fd: fd, serverName: name, address: name == nil ? address.host : nil) else {
                loop.close(fd)
                record(target, .failed(tls.problem ?? "no TLS connection could be made"))
                return
            }
            target.probe?.tls = connection
        }
        probing[fd] = target
        if connected { advance(target) }
    }

    /// A probe's connection is ready: finish the connect, write, read and parse what it allows.
    public func handleEvent(fd: Int32, events: EpollEvents) {
        guard let target = probing[fd] else { return }
        if target.probe?.connecting == true {
            let error = Socket.pendingError(fd)
            if error != 0 {
                finish(target, .failed(SyscallError(call: "connect", errno: error).description))
                return
            }
            guard events.contains(.writable) || events.contains(.readable) else { return }
            target.probe?.connecting = false
        }
        advance(target)
    }

    /// Writes the rest of the request, then reads until the head is complete, the peer
    /// closes, or the socket has nothing more for now.
    private func advance(_ target: Target) {
        guard var probe = target.probe else { return }
        if probe.tls != nil {
            advanceTLS(target, &probe)
            return
        }
        do {
            while probe.written < probe.request.count {
                switch try Socket.write(probe.fd, bytes: probe.request[probe.written...]) {
                case .done(let n): probe.written += n
                case .wouldBlock:
                    target.probe = probe
                    return
                }
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let result = try chunk.withUnsafeMutableBytes { raw throws(SyscallError) in try Socket.read(probe.fd, into: raw) }
                switch result {
                case .wouldBlock:
                    target.probe = probe
                    return
                case .done(0):
                    finish(target, .failed("closed before a complete response head"))
                    return
                case .done(let n):
                    if received(chunk[0..<n], target, &probe) { return }
                }
            }
        } catch {
            finish(target, .failed("\(error)"))
        }
    }

    /// Adds `bytes` to the probe's response and parses the head so far: true when the probe
    /// ended (a complete head gives its status; a bad or oversized one fails it).
    private func received(_ bytes: some Collection<UInt8>, _ target: Target, _ probe: inout Probe) -> Bool {
        probe.received.append(contentsOf: bytes)
        let status = probe.received.withUnsafeBytes { probe.parser.parseResponse($0, requestMethod: .get, into: &probe.head) }
        switch status {
        case .complete:
            finish(target, .status(probe.head.status))
            return true
        case .error(let error):
            finish(target, .failed("bad response head: \(error.message)"))
            return true
        case .incomplete:
            guard probe.received.count >= Self.maxHeadBytes else { return false }
            finish(target, .failed("response head over \(Self.maxHeadBytes) bytes"))
            return true
        }
    }

    /// `advance` for a cluster with `tls`: the handshake (a failure fails the probe with
    /// OpenSSL's reason), then the request and the response head through `SSL_write`/`SSL_read`.
    private func advanceTLS(_ target: Target, _ probe: inout Probe) {
        guard let tls = probe.tls else { return }
        defer { if target.probe != nil { target.probe = probe } }
        if !probe.secured {
            switch tls.handshake() {
            case .wantRead, .wantWrite: return
            case .failed(let reason):
                finish(target, .failed("TLS handshake: \(reason)"))
                return
            case .done: probe.secured = true
            }
        }
        while probe.written < probe.request.count {
            let request = probe.request
            let written = probe.written
            switch request[written...].withUnsafeBytes({ tls.write($0) }) {
            case .done(let n): probe.written += n
            case .wantRead, .wantWrite: return
            case .closed, .failed: finish(target, .failed("closed before a complete response head")); return
            }
        }
        let chunk = ByteBuffer(capacity: 4096)
        while true {
            chunk.clear()
            switch tls.read(into: chunk) {
            case .wantRead, .wantWrite: return
            case .closed: finish(target, .failed("closed before a complete response head")); return
            case .failed(let reason): finish(target, .failed("TLS: \(reason)")); return
            case .done:
                if received(chunk.readableBytes(), target, &probe) { return }
            }
        }
    }

    /// Ends the probe in flight and records its outcome.
    private func finish(_ target: Target, _ outcome: ProbeOutcome) {
        if let probe = target.probe {
            probing[probe.fd] = nil
            loop.close(probe.fd)
            target.probe = nil
        }
        record(target, outcome)
    }

    /// Feeds one outcome to the backend's tracker; logs a change of verdict, and rolls a
    /// ready cluster back when its last serving backend went down.
    private func record(_ target: Target, _ outcome: ProbeOutcome) {
        let cluster = target.cluster
        guard let change = cluster.health.record(outcome, server: target.index) else { return }
        let fields: KeyValuePairs<String, String> = ["uuid": cluster.spec.uuid, "version": cluster.spec.version,
                                                     "backend": target.server.description, "probe": outcome.summary]
        switch change {
        case .up:
            Log.notice("backend_healthy", fields)
            decideGate(cluster, now: Clock.nanoseconds())
        case .down:
            Log.warning("backend_unhealthy", fields)
            guard !cluster.health.isPending, !cluster.state.isFailed, cluster.health.allDown else { return }
            // As for connect failures: only when an older version can take the traffic.
            let others = clusters.contains { $0 !== cluster && !$0.state.isFailed && !$0.health.isPending }
            if others { fail(cluster, reason: "no healthy backend", detail: "every backend failed its health check") }
        case .unknown:
            break
        }
    }

    // MARK: Helpers

    private func nanos(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }

    private func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String((seconds * 100).rounded() / 100)
    }
}
