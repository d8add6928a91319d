import HTTP1
import Observability
import Reactor
import Routing
import Synchronization
import Syscalls
import TLS

/// A small fast random source for per-request decisions (GRADUAL client ids):
/// SplitMix64, seeded once from the system generator. Not for secrets.
struct FastRandom: RandomNumberGenerator {
    private var state: UInt64
    init() { var system = SystemRandomNumberGenerator(); state = system.next() }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Where one request goes: the cluster and backend chosen, and in CONCURRENT mode the
/// previous version's cluster and backend that also receive it.
struct RouteChoice {
    var cluster: ClusterRuntime
    var backendID: Int
    var shadow: (cluster: ClusterRuntime, backendID: Int)?
    var shadowCookie: String?
    /// A dark launch (CONCURRENT serving old): `cluster` is the old version and answers the
    /// client whatever happens; the new version, the shadow, is only compared.
    var servesOld = false
    /// The service's latest cluster when it is GRADUAL without a plan: a successful exchange
    /// raises its threshold (`recordOutcome`).
    var gradualLatest: ClusterRuntime?
}

/// Everything one reactor thread owns: its listener, its sessions, its pools, its view of
/// the current snapshot, and its backends' passive health. Touched only from its loop's
/// thread once started; other threads talk to it through `loop.execute`.
public final class Worker: EventHandler, DeadlineHandler, @unchecked Sendable {
    /// The worker's index (also its metrics block).
    public let id: Int
    public let loop: EventLoop
    /// Replaced only by `adopt(settings:)` (SIGHUP), on this worker's thread.
    private(set) var settings: ProxySettings
    let metrics: ProxyMetrics
    let counters: CounterBlock
    let pools: ResourcePools
    public var sweepIndex = -1

    var listenerFD: Int32
    var listenerPaused = false
    private(set) var draining = false
    /// Open client connections (each a session, in the glossary's sense).
    var connections: [ObjectIdentifier: ClientConnection] = [:]
    /// Listeners besides the main one (`proxy.listeners`), and TLS connections in their
    /// handshake (see `TLSHandshake`).
    var extraListeners: [ExtraListener] = []
    var tlsHandshakes: [ObjectIdentifier: TLSHandshake] = [:]
    /// TLS connections still in their handshake (they count against `maxConnections`).
    var handshakes = 0
    /// During a self-upgrade: where idle client connections go, and what happened to the
    /// others (see `Worker+Handover.swift`).
    var handover: WorkerHandover?
    /// Sessions not serving a connection, kept for the next one that sends a request.
    private var spareSessions: [ClientSession] = []
    /// Most spare sessions kept: past a burst, the rest are freed.
    private static let maxSpareSessions = 256
    /// Responses being drained for comparison after their exchange moved on (CONCURRENT).
    private var drains: [ObjectIdentifier: ShadowDrain] = [:]
    private(set) var maxSessions: Int
    private let workerCount: Int
    private var onDrained: (@Sendable () -> Void)?
    /// This reactor's access log lines waiting to be handed to the sink; nil when the log is off.
    let accessLog: AccessLogBatch?

    // The adopted snapshot and this worker's view of it.
    private(set) var snapshot: Snapshot
    private var candidates: [RouteCandidate] = []
    /// For each cluster of the snapshot: whether a rollout plan's steps route it (its
    /// `ClusterState.plannedRoute` then decides its mode; until the plan has started, none).
    private var planned: [Bool] = []
    /// The mode of each cluster's definition (candidates' modes change while a plan governs).
    private var specModes: [UpgradeMode] = []
    /// For each cluster: its plan judges divergence, so exchanges its GRADUAL and INSTANT
    /// steps send to it are mirrored to the old version and compared too.
    private var mirrorsSteps: [Bool] = []
    private var clusterBackends: [[Int]] = []
    /// Per cluster, the configured server (health word bit) of each entry of `clusterBackends`.
    private var clusterBackendServers: [[Int]] = []
    private var roundRobin: [Int] = []
    /// Each cluster's routing word (`ClusterHealth.word`: readiness gate and excluded
    /// backends) as read by the current `route`, so choosing a backend reads it no more.
    private var healthWords: [UInt64] = []
    /// Each cluster's shared health (held here so routing reaches it in one step).
    private var clusterHealth: [ClusterHealth] = []
    /// What the sweep last looked at for pooled connections to excluded backends: the
    /// exclusion count and the snapshot generation.
    private var exclusionsSeen: (changes: Int, generation: UInt64, at: UInt64) = (-1, 0, 0)
    /// Scratch for the sweep: which backends some cluster still sends exchanges to.
    private var backendWanted: [Bool] = []
    /// Each service's routing cookie names (its own, suffixed, or its release group's).
    private var serviceCookies: [CookieNames] = []
    /// Whether the last `route` found no service for the request's host and path (404).
    private(set) var lastRouteUnmatched = false
    private var instantCookie: [String] = []
    /// `instantCookie` as bytes, for the cookie lines of the other modes.
    private var instantCookieBytes: [[UInt8]] = []
    /// SESSION cookies' `Expires` dates, formatted once a second.
    private var expiresDates = HTTPDateCache()
    private var rng = FastRandom()

    /// A random 64-bit number from the worker's generator (request ids).
    func nextRandom() -> UInt64 { rng.next() }

    // Backends known to this worker, by stable id.
    private(set) var backends: [BackendSlot] = []
    /// `host:port` of each backend, by id, as bytes (access log lines name the backend); apart
    /// from `backends` so that reading one does not copy a slot.
    private(set) var backendLabels: [[UInt8]] = []
    private var backendIDs: [SocketAddress: Int] = [:]
    /// For each descriptor number: the backend id of an idle pooled connection, or -1.
    private var idleOwner: [Int] = []
    /// TLS backends (see `BackendTLS.swift`): how each is reached, by backend id; their ids by
    /// identity; the TLS of every open connection to one, by descriptor (owned here: links and
    /// flows hold unowned references); the session each next connection offers to resume.
    var tlsTargets: [Int: BackendTLSTarget] = [:]
    private var tlsBackendIDs: [BackendTLSKey: Int] = [:]
    var backendTLS: [Int32: TLSConnection] = [:]
    var tlsSessions: [Int: TLSSession] = [:]

    /// Attempts per exchange (connects and retries) before answering 502.
    var maxAttempts: Int { max(3, backends.count + 1) }

    /// Creates a worker around an already bound listener.
    public init(id: Int, loop: EventLoop, listenerFD: Int32, settings: ProxySettings, metrics: ProxyMetrics, snapshot: Snapshot, workers: Int) {
        self.id = id
        self.loop = loop
        self.listenerFD = listenerFD
        self.settings = settings
        self.metrics = metrics
        self.counters = metrics.blocks[id]
        self.pools = ResourcePools(bufferSize: settings.bufferSize, pipeSize: settings.pipeSize, counters: metrics.blocks[id])
        self.snapshot = snapshot
        self.maxSessions = max(1, settings.maxConnections / max(1, workers))
        self.accessLog = settings.accessLog.map { AccessLogBatch(sink: $0) }
        self.workerCount = workers
        adopt(snapshot)
    }

    /// Adopts reloaded settings (SIGHUP) between events. Sessions read their deadlines and
    /// limits from here at each use, so they apply without dropping a connection; buffers and
    /// pipes keep the sizes they were made with (so the head limit never outgrows them).
    public func adopt(settings next: ProxySettings) {
        var s = next
        s.bufferSize = settings.bufferSize
        s.pipeSize = settings.pipeSize
        s.headLimits.maxHeadBytes = min(s.headLimits.maxHeadBytes, settings.bufferSize)
        settings = s
        maxSessions = max(1, s.maxConnections / max(1, workerCount))
        adopt(snapshot)  // the INSTANT Set-Cookie lines carry the cookie name
    }

    /// Adds a listener besides the main one (before `start`).
    public func addListener(fd: Int32, tls: TLSEndpoint?) {
        extraListeners.append(ExtraListener(worker: self, fd: fd, tls: tls))
    }

    /// Registers the listener and the idle-pool sweep; call on the loop's thread.
    public func start() throws(SyscallError) {
        if listenerFD >= 0 { try loop.registerListener(listenerFD, handler: self) }
        try startExtraListeners()
        loop.addToSweep(self)
    }

    // MARK: Snapshot

    /// Adopts a new snapshot: exchanges in flight keep the clusters they hold.
    public func adopt(_ next: Snapshot) {
        snapshot = next
        var serviceOf = [Int](repeating: 0, count: next.clusters.count)
        for (s, range) in next.serviceRanges.enumerated() { for i in range { serviceOf[i] = s } }
        serviceCookies = next.services.map { service in
            service.cookieNames(base: settings.cookieNames, domain: service.releaseGroup.flatMap { next.cookieDomains[$0] })
        }
        candidates = next.clusters.indices.map { i in
            let c = next.clusters[i]
            var candidate = RouteCandidate(c.spec, state: c.state)
            // In a release group, cookies name the release, which every service of the group has.
            if next.services[serviceOf[i]].releaseGroup != nil { candidate.uuid = c.spec.releaseName }
            return candidate
        }
        planned = next.clusters.map { !($0.spec.rollout?.steps.isEmpty ?? true) }
        specModes = next.clusters.map(\.spec.mode)
        mirrorsSteps = next.clusters.map { $0.spec.rollout?.analysis?.maxDivergenceRatio != nil }
        clusterBackends = next.clusters.map { cluster in
            cluster.tls == nil ? cluster.addresses.map { backendID(for: $0) } : zip(cluster.addresses, tlsTargets(of: cluster)).map { backendID(for: $0, tls: $1) }
        }
        clusterBackendServers = next.clusters.map(\.addressServers)
        roundRobin = next.clusters.map { Int.random(in: 0..<max(1, $0.addresses.count)) }
        healthWords = [UInt64](repeating: 0, count: next.clusters.count)
        clusterHealth = next.clusters.map(\.health)
        instantCookie = next.clusters.indices.map { i in
            let names = serviceCookies[serviceOf[i]]
            return names.session + "=" + candidates[i].uuid + names.attributes
        }
        instantCookieBytes = instantCookie.map { Array($0.utf8) }
    }

    private func backendID(for address: SocketAddress) -> Int {
        if let id = backendIDs[address] { return id }
        let id = backends.count
        backends.append(BackendSlot(address: address))
        backendLabels.append(Array(address.description.utf8))
        backendIDs[address] = id
        return id
    }

    /// The id of a TLS backend (another than the plain one at the same address).
    private func backendID(for address: SocketAddress, tls target: BackendTLSTarget) -> Int {
        let key = BackendTLSKey(address: address, tls: ObjectIdentifier(target.tls), serverName: target.serverName)
        if let id = tlsBackendIDs[key] { return id }
        let id = backends.count
        var slot = BackendSlot(address: address)
        slot.secure = true
        backends.append(slot)
        backendLabels.append(Array(address.description.utf8))
        tlsBackendIDs[key] = id
        tlsTargets[id] = target
        return id
    }

    // MARK: Routing

    /// Chooses the cluster and backend for a request and appends the Set-Cookie header lines
    /// to send with its response. Nil when no cluster can take it.
    func route(request: RequestHead, source: UnsafeRawBufferPointer, cookies: inout [UInt8]) -> RouteChoice? {
        let now = loop.now
        var latest = -1
        var previous = -1
        let service: Int
        if snapshot.table.isTrivial, snapshot.table.defaultService != nil {
            service = snapshot.table.defaultService!
        } else if let matched = matchService(request: request, source: source) {
            service = matched
        } else {
            lastRouteUnmatched = true
            return nil
        }
        lastRouteUnmatched = false
        let range = snapshot.serviceRanges[service]
        for i in range {
            let cluster = snapshot.clusters[i]
            // One atomic load: the readiness gate and every backend's probe/drain verdict.
            let word = clusterHealth[i].word
            healthWords[i] = word
            // A planned cluster takes no exchange before its plan has started either.
            let usable = !cluster.state.isFailed && !ClusterHealth.isPending(word) && hasLiveBackend(cluster: i, now: now)
                && !(planned[i] && cluster.state.plannedRoute == nil)
            candidates[i].usable = usable
            if usable {
                if latest < 0 { latest = i } else if previous < 0 { previous = i }
            }
        }
        guard latest >= 0 else { return nil }
        var chosen: Int
        var shadow: Int?
        var servesOld = false
        var threshold: Double?
        var mirrorNew = false
        if planned[latest], let step = snapshot.clusters[latest].state.plannedRoute {
            // A plan's last step (and its end) moves every client, each on its next page load:
            // GRADUAL at 100 %, so a page that started on the old version ends there.
            candidates[latest].mode = step == .instant || step == .completed ? .gradual : step.mode
            if step == .instant || step == .completed { threshold = 100 }
            servesOld = step == .concurrentServeOld
            mirrorNew = mirrorsSteps[latest] && (step == .gradual || step == .instant)
        } else {
            candidates[latest].mode = specModes[latest]
        }
        let mode = candidates[latest].mode
        if mode == .instant || (previous < 0 && mode != .session) {
            // Fast path: no cookie to read, the cookie to set is prebuilt.
            chosen = latest
            appendSetCookie(instantCookie[latest], to: &cookies)
        } else {
            let names = serviceCookies[service]
            if mode == .gradual { candidates[latest].gradualThreshold = threshold ?? snapshot.clusters[latest].state.gradualThreshold }
            var input = RouteInput(sessionCookie: request.cookie(named: names.session, source: source),
                                   transitionCookie: mode == .gradual ? request.cookie(named: names.transition, source: source) : nil,
                                   methodIsIdempotent: request.method.isIdempotent,
                                   nowUnix: Clock.unixSeconds())
            if mode == .gradual {
                switch request.fetchMetadata(source: source) {
                case .absent:
                    input.fetch = .absent
                    input.lastSeenMillis = parseLastSeen(request.cookie(named: names.lastSeen, source: source))
                case .navigation: input.fetch = .navigation
                case .subresource: input.fetch = .subresource
                }
                input.nowMillis = Clock.unixMillis()
                input.moveAfterIdleMillis = settings.moveAfterIdleMillis
            }
            guard let decision = Routing.route(input, candidates: candidates[range], names: names, random: &rng,
                                               renderCookies: false) else { return nil }
            chosen = decision.primary
            shadow = decision.shadow
            if servesOld && decision.effectiveMode == .concurrent && previous >= 0 {
                // Dark launch: the old version answers; the new one only gets the mirror.
                chosen = previous
                shadow = decision.shadow == nil ? nil : latest
            } else {
                servesOld = false
            }
            if mirrorNew && chosen == latest && decision.effectiveMode == .gradual && request.method.isIdempotent {
                // A plan that judges divergence compares what the new version serves with
                // the old version's answer (the client gets the new one unless it fails).
                shadow = previous >= 0 ? previous : nil
            }
            appendSetCookieLines(decision, sessionCookieLine: instantCookieBytes[chosen], names: names,
                                 dates: &expiresDates, to: &cookies)
        }
        guard let backend = pickBackend(cluster: chosen, now: now) else { return nil }
        var choice = RouteChoice(cluster: snapshot.clusters[chosen], backendID: backend, servesOld: servesOld)
        // Outside a plan, a GRADUAL latest's threshold rises with each exchange of its service.
        if specModes[latest] == .gradual && !planned[latest] { choice.gradualLatest = snapshot.clusters[latest] }
        if let shadow, let shadowBackend = pickBackend(cluster: shadow, now: now) {
            choice.shadow = (snapshot.clusters[shadow], shadowBackend)
            choice.shadowCookie = instantCookie[shadow]
        }
        return choice
    }

    /// The Set-Cookie line naming `cluster` (used when CONCURRENT falls back to the old version).
    func sessionCookieLine(for cluster: ClusterRuntime, to out: inout [UInt8]) {
        if let i = index(of: cluster) {
            appendSetCookie(instantCookie[i], to: &out)
        } else {
            appendSetCookie("\(settings.cookieNames.session)=\(cluster.spec.uuid)\(settings.cookieNames.attributes)", to: &out)
        }
    }

    /// The index of `cluster` in the current snapshot, if it is still there.
    private func index(of cluster: ClusterRuntime) -> Int? {
        snapshot.clusters.firstIndex { $0 === cluster }
    }

    /// The service of a request by its host (`Host`, or the authority of an absolute-form
    /// target) and path; nil when none serves it.
    private func matchService(request: RequestHead, source: UnsafeRawBufferPointer) -> Int? {
        var host: Range<Int>?
        var path = request.targetRange
        // Absolute form: scheme://authority/path — the authority wins over Host (RFC 9112 §3.2.2).
        if path.count > 0, source[path.lowerBound] != 0x2F, source[path.lowerBound] != 0x2A {
            var i = path.lowerBound
            while i + 2 < path.upperBound, !(source[i] == 0x3A && source[i + 1] == 0x2F && source[i + 2] == 0x2F) { i += 1 }
            if i + 2 < path.upperBound {
                let start = i + 3
                var end = start
                while end < path.upperBound, source[end] != 0x2F, source[end] != 0x3F { end += 1 }
                host = start..<end
                path = end..<path.upperBound
            }
        }
        if host == nil {
            for field in request.headers where field.kind == .host {
                host = field.valueRange
                break
            }
        }
        if path.isEmpty {
            // "http://host" alone: the path is "/".
            return snapshot.table.match(host: host.map { String(decoding: UnsafeRawBufferPointer(rebasing: source[$0]), as: UTF8.self) }, path: "/")
        }
        return snapshot.table.match(source: source, host: host, path: path)
    }

    private func appendSetCookie(_ value: String, to out: inout [UInt8]) {
        out.append(contentsOf: "Set-Cookie: ".utf8)
        out.append(contentsOf: value.utf8)
        out.append(13); out.append(10)
    }

    /// Whether some backend of the cluster is neither marked down by this worker (passive)
    /// nor excluded by `healthWords[cluster]` (probes say down, or drained).
    private func hasLiveBackend(cluster: Int, now: UInt64) -> Bool {
        let health = clusterHealth[cluster]
        let word = healthWords[cluster]
        if health.excludesNone(word) {
            for id in clusterBackends[cluster] where backends[id].downUntil <= now { return true }
            return false
        }
        for (k, id) in clusterBackends[cluster].enumerated()
            where backends[id].downUntil <= now && !health.isExcluded(clusterBackendServers[cluster][k], word: word) {
            return true
        }
        return false
    }

    /// The next backend of the cluster in round-robin order that `hasLiveBackend` would accept.
    private func pickBackend(cluster: Int, now: UInt64) -> Int? {
        let ids = clusterBackends[cluster]
        guard !ids.isEmpty else { return nil }
        let health = clusterHealth[cluster]
        let word = healthWords[cluster]
        let all = health.excludesNone(word)
        for _ in 0..<ids.count {
            roundRobin[cluster] = (roundRobin[cluster] + 1) % ids.count
            let id = ids[roundRobin[cluster]]
            if backends[id].downUntil <= now && (all || !health.isExcluded(clusterBackendServers[cluster][roundRobin[cluster]], word: word)) { return id }
        }
        return nil
    }

    /// Writes the response head for the client with the routing cookies.
    func appendResponseHead(_ head: ResponseHead, source: UnsafeRawBufferPointer, setCookies: [UInt8], close: Bool, clientVersionMinor: Int,
                            dechunked: HeadWriter.Dechunked? = nil, to out: inout [UInt8]) {
        HeadWriter.appendResponse(head, source: source, extraHeaders: [], close: close,
                                  clientVersionMinor: clientVersionMinor, dechunked: dechunked, to: &out)
        // Insert the Set-Cookie lines before the final CRLF.
        if !setCookies.isEmpty, out.count >= 2 {
            out.insert(contentsOf: setCookies, at: out.count - 2)
        }
        if let line = Self.servingProcessLine, out.count >= 2 { out.insert(contentsOf: line, at: out.count - 2) }
    }

    // MARK: Backend connections

    /// A pooled idle connection to the backend, or a new connect. Nil when the connect
    /// failed at once (the backend is then marked down).
    func acquireConnection(backendID: Int, for session: ClientSession) -> BackendLink? {
        while let idle = backends[backendID].idle.popLast() {
            idleOwner[Int(idle.fd)] = -1
            if loop.now &- idle.since > settings.backendIdleNanos {
                forgetTLS(idle.fd)
                loop.close(idle.fd)
                continue
            }
            loop.reassign(idle.fd, to: session)
            counters.add(ProxyCounter.pooledReuses)
            var link = BackendLink(fd: idle.fd, backendID: backendID, reused: true, connecting: false)
            link.ready.writable = true
            if backends[backendID].secure { link.secure = true }
            return link
        }
        return connectNew(backendID: backendID, for: session)
    }

    /// Starts a new connection to the backend.
    func connectNew(backendID: Int, for session: ClientSession) -> BackendLink? {
        let address = backends[backendID].address
        do {
            let (fd, connected) = try Socket.connect(address)
            do {
                try loop.register(fd, handler: session)
            } catch {
                Socket.close(fd)
                return nil
            }
            counters.add(ProxyCounter.backendConnectionsOpened)
            var link = BackendLink(fd: fd, backendID: backendID, reused: false, connecting: !connected)
            link.ready.writable = connected
            if backends[backendID].secure && !startTLS(&link) {
                loop.close(fd)
                return nil
            }
            return link
        } catch {
            Log.info("backend_connect_failed", ["backend": address.description, "error": error.description])
            return nil
        }
    }

    /// Puts a connection whose exchange ended cleanly back in the idle pool.
    func releaseConnection(_ link: BackendLink) {
        if draining || handover != nil || backends[link.backendID].idle.count >= settings.maxIdlePerBackend
            || (link.secure && !keepsTLS(link)) {
            discardConnection(link)
            return
        }
        let fd = Int(link.fd)
        if fd >= idleOwner.count { idleOwner.append(contentsOf: repeatElement(-1, count: fd + 1 - idleOwner.count + 64)) }
        idleOwner[fd] = link.backendID
        loop.reassign(link.fd, to: self)
        backends[link.backendID].idle.append((link.fd, loop.now))
    }

    /// Closes a backend connection that must not be reused.
    func discardConnection(_ link: BackendLink) {
        if link.secure { discardTLS(link) }
        loop.close(link.fd)
    }

    /// A connect to `backendID` failed (refused, reset or timed out): mark it down and,
    /// when the cluster has no live backend left, mark the cluster failed (rollback).
    func backendFailed(_ backendID: Int, cluster: ClusterRuntime) {
        let now = loop.now
        if backends[backendID].downUntil <= now {
            Log.warning("backend_down", ["backend": backends[backendID].address.description, "cluster": cluster.spec.uuid,
                                         "version": cluster.spec.version])
        }
        backends[backendID].downUntil = now &+ settings.backendDownNanos
        backends[backendID].failures += 1
        counters.add(ProxyCounter.backendConnectFailures)
        cluster.metrics.blocks[id].add(ClusterCounter.connectFailures)
        cluster.state.record(success: false, nowMillis: Clock.unixMillis())
        let slot = index(of: cluster)
        if let slot { healthWords[slot] = cluster.health.word }
        if let slot, !hasLiveBackend(cluster: slot, now: now) {
            markFailed(cluster, reason: "no healthy backend")
        } else {
            checkRollback(cluster)
        }
    }

    /// A connect to `backendID` succeeded: it is up again.
    func backendConnected(_ backendID: Int) {
        if backends[backendID].failures > 0 {
            backends[backendID].failures = 0
            Log.notice("backend_up", ["backend": backends[backendID].address.description])
        }
    }

    /// Accounting for a finished exchange: metrics, rollback window, GRADUAL progress of
    /// `gradualLatest` (the exchange's `RouteChoice.gradualLatest`).
    func recordOutcome(cluster: ClusterRuntime, status: Int, latencyNanos: UInt64, headNanos: UInt64? = nil,
                       gradualLatest: ClusterRuntime? = nil) {
        cluster.metrics.record(reactor: id, status: status, latencyNanos: latencyNanos, headNanos: headNanos)
        let success = status < 500
        if let latest = gradualLatest, success, !latest.state.isFailed {
            latest.state.advanceGradual(by: latest.spec.percentageTransitionPerRequest ?? 0)
        }
        cluster.state.record(success: success, nowMillis: Clock.unixMillis())
        if !success { checkRollback(cluster) }
    }

    /// Accounting for the answer of a mirrored (CONCURRENT) exchange's other version: its
    /// status (502/504 when it failed) and its time to the response head count in its
    /// cluster's metrics, which rollout gates read; never in the rollback window or GRADUAL.
    func recordMirroredOutcome(cluster: ClusterRuntime, status: Int, latencyNanos: UInt64) {
        cluster.metrics.record(reactor: id, status: status, latencyNanos: latencyNanos)
    }

    private func checkRollback(_ cluster: ClusterRuntime) {
        if settings.rollback.shouldFail(cluster.state, nowMillis: Clock.unixMillis()) {
            let (failures, total) = cluster.state.failureRatio(nowMillis: Clock.unixMillis())
            markFailed(cluster, reason: "failure ratio \(failures)/\(total) over \(settings.rollback.windowSeconds)s")
        }
    }

    /// Marks a cluster failed when an older usable cluster can take its traffic.
    private func markFailed(_ cluster: ClusterRuntime, reason: String) {
        guard !cluster.state.isFailed else { return }
        let others = snapshot.clusters.contains { $0 !== cluster && !$0.state.isFailed && !$0.health.isPending }
        guard others else { return }
        if cluster.state.markFailed(reason: reason, at: Clock.unixSeconds()) {
            metrics.rollbacks.add(1, ordering: .relaxed)
            Log.error("cluster_failed", ["uuid": cluster.spec.uuid, "version": cluster.spec.version, "reason": reason,
                                        "action": "traffic moved to the previous version"])
        }
    }

    // MARK: Events

    public func handleEvent(fd: Int32, events: EpollEvents) {
        if fd == listenerFD {
            acceptConnections()
            return
        }
        // An event on an idle pooled connection: the backend closed it (or sent bytes
        // nobody asked for). Either way it is no longer reusable.
        let index = Int(fd)
        guard index < idleOwner.count, idleOwner[index] >= 0 else { return }
        // Edge-triggered events queued while the connection was still in use can arrive
        // after it joined the pool: only a hang-up, an error or unread bytes retire it.
        if !events.contains(.readHangup) && !events.contains(.hangup) && !events.contains(.error) {
            if !events.contains(.readable) || Socket.bytesAvailable(fd) == 0 { return }
        }
        let backendID = idleOwner[index]
        idleOwner[index] = -1
        backends[backendID].idle.removeAll { $0.fd == fd }
        forgetTLS(fd)
        loop.close(fd)
    }

    private func acceptConnections() {
        for _ in 0..<64 {
            do {
                switch try Socket.accept(listenerFD) {
                case .wouldBlock:
                    return
                case .done(let (fd, address)):
                    if connections.count >= maxSessions || draining {
                        let refusal = HeadWriter.errorResponse(status: 503, message: "too many connections")
                        _ = try? Socket.write(fd, bytes: refusal[...])
                        Socket.close(fd)
                        metrics.reject(reactor: id, status: 503)
                        continue
                    }
                    Socket.setNoDelay(fd)
                    let connection = ClientConnection(worker: self, fd: fd, clientAddress: address.host)
                    do {
                        try loop.register(fd, handler: connection)
                    } catch {
                        Socket.close(fd)
                        continue
                    }
                    connections[ObjectIdentifier(connection)] = connection
                    loop.addToSweep(connection)
                    counters.add(ProxyCounter.clientConnections)
                    counters.add(ProxyCounter.activeSessions)
                }
            } catch {
                // EMFILE/ENFILE (or ENOBUFS): stop accepting for a moment and keep serving
                // the sessions we have; never spin on a listener we cannot drain.
                Log.warning("accept_paused", ["error": error.description])
                counters.add(ProxyCounter.acceptPauses)
                pauseListener(for: 100_000_000)
                return
            }
        }
    }

    private func pauseListener(for nanos: UInt64) {
        guard !listenerPaused else { return }
        listenerPaused = true
        loop.pauseListener(listenerFD)
        loop.schedule(after: nanos) { [self] in
            guard !draining else { return }
            listenerPaused = false
            try? loop.registerListener(listenerFD, handler: self)
        }
    }

    /// Hands a backend connection whose response is not served to a drain that reads it to
    /// the end for the comparison, so the client's session can move on at once.
    func startDrain(_ drain: ShadowDrain) {
        drains[ObjectIdentifier(drain)] = drain
        loop.reassign(drain.link.fd, to: drain)
        loop.addToSweep(drain)
        drain.drive()
    }

    /// Called by a drain when it is done.
    func drainFinished(_ drain: ShadowDrain) {
        loop.removeFromSweep(drain)
        drains[ObjectIdentifier(drain)] = nil
    }

    /// A session for a connection that starts sending a request.
    func takeSession() -> ClientSession {
        spareSessions.popLast() ?? ClientSession(worker: self)
    }

    /// Takes back a session that detached from its connection or closed it.
    func giveBack(_ session: ClientSession) {
        guard spareSessions.count < Self.maxSpareSessions else { return }
        spareSessions.append(session)
    }

    /// Called once a connection (and its session, if any) has released everything.
    func connectionClosed(_ connection: ClientConnection) {
        loop.close(connection.fd)
        loop.removeFromSweep(connection)
        connections[ObjectIdentifier(connection)] = nil
        counters.add(ProxyCounter.activeSessions, -1)
        if draining && connections.isEmpty { finishDrain() }
        if handover != nil { connectionClosedDuringHandover() }
    }

    /// Closes idle pooled connections that have been idle too long; hands the access log
    /// lines collected since the last sweep to the writer.
    public func checkDeadline(now: UInt64) {
        accessLog?.flush()
        // When some exclusion or the snapshot changed, and once a second for connections
        // pooled since (an exchange to a drained backend that finished): its cost grows with
        // the number of clusters.
        let changes = ClusterHealth.exclusionChanges.load(ordering: .acquiring)
        if changes != exclusionsSeen.changes || snapshot.generation != exclusionsSeen.generation
            || now &- exclusionsSeen.at >= 1_000_000_000 {
            exclusionsSeen = (changes, snapshot.generation, now)
            closeIdleToExcludedBackends()
        }
        for id in backends.indices where !backends[id].idle.isEmpty {
            while let first = backends[id].idle.first, now &- first.since > settings.backendIdleNanos {
                backends[id].idle.removeFirst()
                idleOwner[Int(first.fd)] = -1
                forgetTLS(first.fd)
                loop.close(first.fd)
            }
        }
    }

    /// Closes the pooled idle connections of backends that no cluster of the snapshot sends
    /// new exchanges to (drained, or down by their probes, everywhere they are listed):
    /// nobody would take them, and a drained backend should see its connections go.
    private func closeIdleToExcludedBackends() {
        guard backends.contains(where: { !$0.idle.isEmpty }) else { return }
        if backendWanted.count != backends.count { backendWanted = [Bool](repeating: false, count: backends.count) }
        for id in backendWanted.indices { backendWanted[id] = false }
        for (c, cluster) in snapshot.clusters.enumerated() {
            let word = cluster.health.word
            for (k, id) in clusterBackends[c].enumerated() where !cluster.health.isExcluded(cluster.addressServers[k], word: word) {
                backendWanted[id] = true
            }
        }
        for id in backends.indices where !backendWanted[id] && !backends[id].idle.isEmpty {
            for idle in backends[id].idle {
                idleOwner[Int(idle.fd)] = -1
                forgetTLS(idle.fd)
                loop.close(idle.fd)
            }
            backends[id].idle.removeAll()
        }
    }

    // MARK: Stopping

    /// Closes every pooled idle backend connection (a self-upgrade: the successor opens its own).
    func closeIdleBackendConnections() {
        for id in backends.indices {
            for idle in backends[id].idle {
                idleOwner[Int(idle.fd)] = -1
                forgetTLS(idle.fd)
                loop.close(idle.fd)
            }
            backends[id].idle.removeAll()
        }
    }

    /// Stops accepting, closes idle sessions, lets exchanges in flight finish (each closes
    /// its connection after its response), then calls `done`.
    public func beginDrain(deadlineNanos: UInt64, done: @escaping @Sendable () -> Void) {
        guard !draining else { return }
        draining = true
        onDrained = done
        if listenerFD >= 0 {
            if !listenerPaused { loop.pauseListener(listenerFD) }
            Socket.close(listenerFD)
        }
        stopExtraListeners()
        for connection in Array(connections.values) where connection.isIdle { connection.close() }
        for id in backends.indices {
            for idle in backends[id].idle {
                forgetTLS(idle.fd)
                loop.close(idle.fd)
            }
            backends[id].idle.removeAll()
        }
        if connections.isEmpty {
            finishDrain()
        } else {
            loop.schedule(after: deadlineNanos) { [self] in
                for connection in Array(connections.values) { connection.close() }
                finishDrain()
            }
        }
    }

    private func finishDrain() {
        guard let done = onDrained else { return }
        onDrained = nil
        pools.closeAll()
        accessLog?.flush()
        done()
    }

    /// Live session count (status, tests).
    public var sessionCount: Int { connections.count }
}
