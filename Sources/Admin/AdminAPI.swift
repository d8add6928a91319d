import Locks
import Comparator
import Foundation
import Config
import Observability
import Proxy
import Rollout
import Routing
import Syscalls

/// The REST API: routes, authentication and the JSON bodies of the control plane.
public final class AdminAPI: Sendable {
    let registry: ClusterRegistry
    let metrics: ProxyMetrics
    /// The bearer token; replaced when SIGHUP reloads the configuration.
    private let tokenBox: Lock<String?>
    let workers: Int
    let started = Clock.unixSeconds()
    /// Extra routes added by later layers (e.g. `/comparisons`), checked before the 404.
    let extraRoutes: [String: @Sendable (AdminRequest) -> AdminResponse]
    /// Compared CONCURRENT exchanges.
    let comparisons: ComparisonLog
    /// Carries out rollout plans; nil in tools and tests that run none.
    let rollouts: RolloutDriver?
    /// Events and series of the live dashboard; nil in tools and tests that keep none.
    let dashboard: Dashboard?
    /// Worker ping and start-up state for `/healthz` and `/readyz` (see AdminAPI+Health).
    let healthState = Lock(HealthState())
    /// The TLS listeners (`/status`, metrics, `POST /tls/reload`); nil without any.
    let tls: TLSListenerSet?
    /// The fleet this instance belongs to (etcd store), if any.
    private let fleetBox = Lock<FleetLink?>(nil)

    public init(registry: ClusterRegistry, metrics: ProxyMetrics, token: String?, workers: Int,
                comparisons: ComparisonLog = ComparisonLog(), rollouts: RolloutDriver? = nil,
                dashboard: Dashboard? = nil,
                extraRoutes: [String: @Sendable (AdminRequest) -> AdminResponse] = [:], tls: TLSListenerSet? = nil) {
        self.tls = tls
        self.registry = registry
        self.metrics = metrics
        self.tokenBox = Lock(token)
        self.workers = workers
        self.comparisons = comparisons
        self.rollouts = rollouts
        self.dashboard = dashboard
        self.extraRoutes = extraRoutes.merging(dashboard?.routes ?? [:]) { mine, _ in mine }
    }

    /// Replaces the bearer token (nil: no authentication); takes effect with the next request.
    public func setToken(_ token: String?) {
        tokenBox.withLock { $0 = token }
    }

    /// Joins the API to a fleet: `/status` and `/metrics` show its store.
    public func setFleet(_ fleet: FleetLink) {
        fleetBox.withLock { $0 = fleet }
    }

    /// The answer to a change the registry refused for its store: 409 when another
    /// instance of the fleet changed the state first, 503 when the fleet's store cannot be
    /// reached, 500 when a local store failed.
    static func storeFailure(_ error: RegistryError) -> AdminResponse {
        switch error {
        case .store(.conflict(let message)): .text(409, message)
        case .store(.unavailable(let message)): .text(503, message)
        default: .text(500, error.description)
        }
    }

    static let clusterPrefix = "/configuration/cluster"

    /// Answers one request.
    public func handle(_ request: AdminRequest) -> AdminResponse {
        if let health = healthAnswer(request) { return health }
        // The dashboard page holds no data: it loads without the token and asks for it.
        if request.path == "/", request.method == "GET" {
            return DashboardPage.response
        }
        if let token = tokenBox.withLock({ $0 }), !authorized(request, token: token) {
            return AdminResponse(status: 401, body: Array("missing or wrong bearer token\n".utf8),
                                 extraHeaders: ["WWW-Authenticate: Bearer realm=\"switchyard\""])
        }
        let path = request.path
        if path == "/services" || path.hasPrefix("/services/") { return handleServices(request) }
        if path == "/changes" || path == "/changes/" {
            guard request.method == "POST" else { return methodNotAllowed("POST") }
            return postChanges(request.body)
        }
        return handleClusters(request, prefix: Self.clusterPrefix, service: defaultServiceName) ?? handleOther(request)
    }

    /// The cluster API of one service under `prefix` (`/configuration/cluster` for the default
    /// service, `/services/{name}/clusters` for the others); nil when the path is not under it.
    func handleClusters(_ request: AdminRequest, prefix: String, service: String) -> AdminResponse? {
        let path = request.path
        if path == prefix || path == prefix + "/" {
            switch request.method {
            case "GET": return listClusters(service: service)
            case "PUT", "POST": return putCluster(request.body, service: service)
            default: return methodNotAllowed("GET, PUT, POST")
            }
        }
        if path.hasPrefix(prefix + "/") {
            var id = String(path.dropFirst(prefix.count + 1))
            if id.hasSuffix("/") { id.removeLast() }
            let parts = id.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count >= 2, !parts[0].isEmpty, !clusterExists(String(parts[0]), service: service) {
                return .text(404, "no cluster with uuid \(parts[0])")
            }
            if parts.count == 2, let command = RolloutCommand(rawValue: String(parts[1])), !parts[0].isEmpty {
                guard request.method == "POST" else { return methodNotAllowed("POST") }
                return rolloutCommand(command, uuid: String(parts[0]))
            }
            if parts.count == 4, parts[1] == "servers", parts[3] == "drain" || parts[3] == "enable", !parts[0].isEmpty {
                guard request.method == "POST" else { return methodNotAllowed("POST") }
                return drainServer(String(parts[0]), server: String(parts[2]), drain: parts[3] == "drain")
            }
            guard !id.isEmpty, !id.contains("/") else { return .text(404, "no such path: \(path)") }
            switch request.method {
            case "GET": return getCluster(id, service: service)
            case "DELETE":
                return deleteCluster(id, force: request.queryFlag("force"), service: service)
            default: return methodNotAllowed("GET, DELETE")
            }
        }
        return nil
    }

    /// Whether cluster `uuid` is one of `service`'s.
    private func clusterExists(_ uuid: String, service: String) -> Bool {
        registry.snapshot.clusters.contains { $0.spec.uuid == uuid && $0.service == service }
    }

    private func handleOther(_ request: AdminRequest) -> AdminResponse {
        let path = request.path
        switch path {
        case "/metrics":
            guard request.method == "GET" else { return methodNotAllowed("GET") }
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4", body: Array(renderMetrics().utf8))
        case "/status":
            guard request.method == "GET" else { return methodNotAllowed("GET") }
            return .json(200, renderStatus())
        case "/tls/reload" where tls != nil:
            return tls!.handleReload(request)
        case "/comparisons", "/comparisons/":
            guard request.method == "GET" else { return methodNotAllowed("GET") }
            return .json(200, renderComparisons())
        default:
            if let route = extraRoutes[path] { return route(request) }
            return .text(404, "no such path: \(path)")
        }
    }

    func methodNotAllowed(_ allow: String) -> AdminResponse {
        AdminResponse(status: 405, body: Array("method not allowed; use \(allow)\n".utf8), extraHeaders: ["Allow: \(allow)"])
    }

    /// Bearer token check in constant time (independent of where the first difference is).
    private func authorized(_ request: AdminRequest, token: String) -> Bool {
        guard let value = request.header("Authorization") else { return false }
        let prefix = "Bearer "
        guard value.count > prefix.count, value.lowercased().hasPrefix("bearer ") else { return false }
        let given = Array(value.utf8.dropFirst(prefix.utf8.count))
        let expected = Array(token.utf8)
        var diff = UInt8(given.count == expected.count ? 0 : 1)
        for i in 0..<expected.count {
            diff |= expected[i] ^ (i < given.count ? given[i] : 0)
        }
        return diff == 0
    }

    private func putCluster(_ body: [UInt8], service: String) -> AdminResponse {
        let spec: ClusterSpec
        do {
            spec = try ClusterJSON.parseClusterBody(body, resolve: { [registry] in registry.resolver.resolves($0) }, newUUID: makeUUID)
        } catch {
            Log.info("api_rejected", ["reason": error.description])
            return .text(400, error.description)
        }
        do {
            try registry.apply([.put(service: service, spec)], paths: ["cluster"])
            rollouts?.clustersChanged()
            dashboard?.noticeChanges(cause: "API")
            return .text(202, spec.uuid).withoutNewline()
        } catch {
            return Self.response(error)
        }
    }

    /// The answer to a refused change.
    static func response(_ error: ChangeSetError) -> AdminResponse {
        switch error {
        case .invalid:
            Log.info("api_rejected", ["reason": error.description])
            return .text(400, error.description)
        case .notFound(let m): return .text(404, m)
        case .conflict(let m): return .text(409, m)
        case .lastActive: return .text(409, error.description)
        case .store(let e): return Self.storeFailure(.store(e))
        }
    }

    /// `DELETE /configuration/cluster/{id}[?force=true]`: 202, 404, 409 for the last active
    /// cluster (clients would get 503s) unless forced, 500 when the change cannot be made durable.
    private func deleteCluster(_ id: String, force: Bool, service: String) -> AdminResponse {
        do {
            try registry.apply([.delete(service: service, uuid: id)], force: force)
            rollouts?.clustersChanged()
            dashboard?.noticeChanges(cause: "API")
            return .text(202, id)
        } catch {
            switch error {
            case .notFound: return .text(404, "no cluster with uuid \(id)")
            case .lastActive:
                return .text(409, "cluster \(id) is the last active cluster; deleting it leaves clients without a backend (add ?force=true to delete it anyway)")
            default: return Self.response(error)
            }
        }
    }

    /// `POST /configuration/cluster/{id}/servers/{host}:{port}/drain` (or `/enable`): 202,
    /// 404 for an unknown cluster or server, 400 for a malformed server, 500 when the
    /// change cannot be made durable. IPv6 hosts come in brackets (`[::1]:8080`), raw or
    /// percent-encoded.
    private func drainServer(_ id: String, server text: String, drain: Bool) -> AdminResponse {
        guard let server = Self.parseServer(text) else {
            return .text(400, "server: must be host:port (IPv6 in brackets: [::1]:8080), not \"\(text)\"")
        }
        do {
            switch try registry.setDrained(uuid: id, server: server, drained: drain) {
            case .done:
                dashboard?.noticeChanges(cause: "API")
                return .text(202, "\(server) \(drain ? "drained" : "enabled")")
            case .noCluster: return .text(404, "no cluster with uuid \(id)")
            case .noServer: return .text(404, "cluster \(id) has no server \(server)")
            }
        } catch {
            return Self.storeFailure(error)
        }
    }

    /// `host:port` or `[v6]:port`, percent-escapes decoded; nil when malformed.
    static func parseServer(_ raw: String) -> ServerAddress? {
        guard let text = raw.removingPercentEncoding, let colon = text.lastIndex(of: ":"),
              let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard host.contains(":") else { return nil }
        } else if host.contains(":") {
            return nil
        }
        guard !host.isEmpty else { return nil }
        return ServerAddress(hostname: host, port: port)
    }

    /// What the API shows of a cluster besides its definition.
    private func live(_ cluster: ClusterRuntime) -> ClusterJSON.Live {
        ClusterJSON.Live(failure: cluster.state.failure, pending: cluster.health.isPending, backends: cluster.health.backends)
    }

    func listClusters(service: String) -> AdminResponse {
        let snapshot = registry.snapshot
        let statuses = rollouts?.statuses() ?? [:]
        let list: [Any] = snapshot.clusters(of: service).map { render(cluster: $0, rollout: statuses[$0.spec.uuid]) }
        return .json(200, JSONText.encode(list))
    }

    /// `{"cluster": {…}}` as GET shows it, with the rollout when the cluster has one.
    private func render(cluster: ClusterRuntime, rollout: RolloutStatus?) -> [String: Any] {
        var entry = ClusterJSON.render(cluster.spec, live: live(cluster))
        if let rollout, var inner = entry["cluster"] as? [String: Any] {
            inner["rollout"] = Self.render(rollout)
            entry["cluster"] = inner
        }
        return entry
    }

    /// `POST /configuration/cluster/{id}/pause|resume|promote|rollback`: 202, 404 (no such
    /// cluster, or no plan), 409 when the rollout's state does not allow it.
    private func rolloutCommand(_ command: RolloutCommand, uuid: String) -> AdminResponse {
        guard let rollouts else { return .text(404, "rollouts are not run here") }
        switch rollouts.command(command, uuid: uuid) {
        case .accepted:
            Log.notice("rollout_command", ["cluster": uuid, "command": command.rawValue])
            dashboard?.noticeChanges(cause: "by operator")
            return .text(202, uuid).withoutNewline()
        case .notFound(let why): return .text(404, why)
        case .refused(let why): return .text(409, why)
        }
    }

    /// A rollout as the API shows it: `{"state", "step", "steps", "percent", "stepStarted",
    /// "gates": {name: {"value", "limit"}}, "requests": {"new", "old"}, "reason"}`.
    static func render(_ status: RolloutStatus) -> [String: Any] {
        var out: [String: Any] = ["state": status.state.rawValue, "steps": status.steps]
        if let step = status.step { out["step"] = step }
        if let percent = status.percent { out["percent"] = percent }
        if let started = status.stepStarted { out["stepStarted"] = iso8601(unixSeconds: started / 1000) }
        var gates: [String: Any] = [:]
        for reading in status.gates {
            gates[reading.gate.rawValue] = ["value": reading.value.map { $0 as Any } ?? NSNull(), "limit": reading.limit]
        }
        out["gates"] = gates
        if let requests = status.requests { out["requests"] = ["new": requests.new, "old": requests.old] }
        if let reason = status.reason { out["reason"] = reason }
        return out
    }

    private func getCluster(_ id: String, service: String) -> AdminResponse {
        guard let cluster = registry.snapshot.clusters.first(where: { $0.spec.uuid == id && $0.service == service }) else {
            return .text(404, "no cluster with uuid \(id)")
        }
        return .json(200, JSONText.encode(render(cluster: cluster, rollout: rollouts?.status(id))))
    }

    // MARK: Status and metrics

    private func renderStatus() -> [UInt8] {
        let snapshot = registry.snapshot
        let clusters: [Any] = snapshot.clusters.map { cluster -> Any in
            var entry: [String: Any] = [
                "uuid": cluster.spec.uuid,
                "service": cluster.service,
                "version": cluster.spec.version,
                "mode": cluster.spec.mode.rawValue,
                "state": live(cluster).state,
                "servers": cluster.spec.servers.map(\.description),
                "addresses": cluster.addresses.map(\.description),
                "requests": cluster.metrics.sum(ClusterCounter.requests),
                "responses": [
                    "1xx": cluster.metrics.sum(ClusterCounter.responses + 0),
                    "2xx": cluster.metrics.sum(ClusterCounter.responses + 1),
                    "3xx": cluster.metrics.sum(ClusterCounter.responses + 2),
                    "4xx": cluster.metrics.sum(ClusterCounter.responses + 3),
                    "5xx": cluster.metrics.sum(ClusterCounter.responses + 4),
                ],
                "backendConnectFailures": cluster.metrics.sum(ClusterCounter.connectFailures),
            ]
            if cluster.spec.mode == .gradual { entry["gradualThreshold"] = cluster.state.gradualThreshold }
            if let tls = cluster.tls {
                var shown = ClusterJSON.render(tls.spec)
                if let problem = tls.problem { shown["problem"] = problem }
                entry["tls"] = shown
            }
            if let status = rollouts?.status(cluster.spec.uuid) { entry["rollout"] = Self.render(status) }
            var backends: [String: Any] = [:]
            for b in cluster.health.backends {
                var detail: [String: Any] = ["status": b.status, "drained": b.drained]
                if cluster.spec.healthCheck != nil {
                    detail["probe"] = b.probe.name
                    detail["probesPassed"] = b.passed
                    detail["probesFailed"] = b.failed
                }
                backends[b.server.description] = detail
            }
            entry["backends"] = backends
            if let failure = cluster.state.failure {
                entry["failure"] = ["reason": failure.reason, "time": iso8601(unixSeconds: failure.time)]
            }
            return entry
        }
        let status: [String: Any] = [
            "generation": Int(snapshot.generation),
            "workers": workers,
            // Whether API changes survive a restart (a state directory is in use).
            "durableState": registry.isDurable,
            "clusters": clusters,
            "rollbacks": metrics.rollbacks.load(ordering: .relaxed),
            "activeSessions": metrics.sum(ProxyCounter.activeSessions),
            "clientConnections": metrics.sum(ProxyCounter.clientConnections),
            "backendConnectionsOpened": metrics.sum(ProxyCounter.backendConnectionsOpened),
            "backendConnectionsReused": metrics.sum(ProxyCounter.pooledReuses),
            "uptimeSeconds": Int(Clock.unixSeconds() - started),
        ]
        var result = status
        if let fleet = fleetBox.withLock({ $0 }) { result["store"] = fleet.statusJSON() }
        if let latest = snapshot.clusters(of: defaultServiceName).first(where: { !$0.state.isFailed && !$0.health.isPending }) {
            result["latest"] = latest.spec.uuid
        }
        result["services"] = snapshot.services.indices.map { renderService(snapshot, $0) as Any }
        if let tls { result["tls"] = tls.status() }
        return JSONText.encode(result)
    }

    /// `{"total", "divergent", "fallbacks", "pairs": {...}, "recent": [newest first]}`.
    private func renderComparisons() -> [UInt8] {
        let s = comparisons.snapshot()
        func summary(_ r: ResponseSummary) -> [String: Any] {
            var out: [String: Any] = ["status": r.status, "framing": r.framing, "complete": r.complete,
                                      "latencyMs": (r.latencyMillis * 1000).rounded() / 1000]
            if let failure = r.failure { out["failure"] = failure }
            return out
        }
        let recent: [Any] = s.recent.map { r -> Any in
            var entry: [String: Any] = [
                "method": r.method,
                "target": r.target,
                "requestId": r.requestID,
                "status": [r.old.status, r.new.status],
                "framing": [r.old.framing, r.new.framing],
                "bodyLength": [Int(r.bodyLengths.old), Int(r.bodyLengths.new)],
                "bodyDigestEqual": r.bodyDigestEqual,
                "bodyIgnored": r.bodyIgnored,
                "headerDifferences": r.headerDifferences,
                "latencyMs": [(r.old.latencyMillis * 1000).rounded() / 1000, (r.new.latencyMillis * 1000).rounded() / 1000],
                "servedBy": r.servedBy,
                "divergent": r.divergent,
                "time": iso8601(unixSeconds: r.unixTime),
                "clusters": ["old": r.clusters.old, "new": r.clusters.new],
                "old": summary(r.old),
                "new": summary(r.new),
            ]
            entry["firstDifferenceOffset"] = r.firstDifferenceOffset.map { Int($0) as Any } ?? NSNull()
            if let reason = r.bodyNotCompared { entry["bodyNotCompared"] = reason }
            return entry
        }
        var pairs: [String: Any] = [:]
        for (key, value) in s.pairs {
            pairs[key] = ["compared": value.compared, "divergent": value.divergent, "fallbacks": value.fallbacks]
        }
        return JSONText.encode(["total": s.total, "divergent": s.divergent, "fallbacks": s.fallbacks,
                                "pairs": pairs, "recent": recent] as [String: Any])
    }

    /// Prometheus text exposition format, version 0.0.4.
    func renderMetrics() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func escape(_ s: String) -> String {
            s.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"").replacingAll("\n", "\\n")
        }
        let snapshot = registry.snapshot
        let labels = snapshot.clusters.map {
            "service=\"\(escape($0.service))\",cluster=\"\(escape($0.spec.uuid))\",version=\"\(escape($0.spec.version))\""
        }

        family("switchyard_requests_total", "counter", "Requests routed to a cluster.")
        for (c, l) in zip(snapshot.clusters, labels) { out += "switchyard_requests_total{\(l)} \(c.metrics.sum(ClusterCounter.requests))\n" }
        family("switchyard_responses_total", "counter", "Responses by cluster and status class.")
        for (c, l) in zip(snapshot.clusters, labels) {
            for k in 0..<5 { out += "switchyard_responses_total{\(l),class=\"\(k + 1)xx\"} \(c.metrics.sum(ClusterCounter.responses + k))\n" }
        }
        family("switchyard_backend_connect_failures_total", "counter", "Refused or timed-out backend connects.")
        for (c, l) in zip(snapshot.clusters, labels) { out += "switchyard_backend_connect_failures_total{\(l)} \(c.metrics.sum(ClusterCounter.connectFailures))\n" }
        family("switchyard_backend_errors_total", "counter", "Backends that failed after a request was sent.")
        for (c, l) in zip(snapshot.clusters, labels) { out += "switchyard_backend_errors_total{\(l)} \(c.metrics.sum(ClusterCounter.backendErrors))\n" }
        family("switchyard_cluster_failed", "gauge", "1 when the cluster was marked failed (rolled back).")
        for (c, l) in zip(snapshot.clusters, labels) { out += "switchyard_cluster_failed{\(l)} \(c.state.isFailed ? 1 : 0)\n" }
        family("switchyard_cluster_pending", "gauge", "1 while the cluster waits for its readiness gate (no traffic yet).")
        for (c, l) in zip(snapshot.clusters, labels) { out += "switchyard_cluster_pending{\(l)} \(c.health.isPending && !c.state.isFailed ? 1 : 0)\n" }
        let backendRows = zip(snapshot.clusters, labels).flatMap { c, l in
            c.health.backends.map { (cluster: c, labels: "\(l),backend=\"\(escape($0.server.description))\"", view: $0) }
        }
        family("switchyard_backend_up", "gauge", "1 when the backend's health check passes (healthyThreshold in a row), 0 when it fails or has no verdict yet; clusters with a health check only.")
        for row in backendRows where row.cluster.spec.healthCheck != nil {
            out += "switchyard_backend_up{\(row.labels)} \(row.view.probe == .up ? 1 : 0)\n"
        }
        family("switchyard_backend_drained", "gauge", "1 while the backend is drained (no new exchanges).")
        for row in backendRows { out += "switchyard_backend_drained{\(row.labels)} \(row.view.drained ? 1 : 0)\n" }
        family("switchyard_health_probes_total", "counter", "Health check probes by result.")
        for row in backendRows where row.cluster.spec.healthCheck != nil {
            out += "switchyard_health_probes_total{\(row.labels),result=\"pass\"} \(row.view.passed)\n"
            out += "switchyard_health_probes_total{\(row.labels),result=\"fail\"} \(row.view.failed)\n"
        }
        family("switchyard_gradual_threshold_percent", "gauge", "GRADUAL threshold: share of client buckets sent to the latest version.")
        for (c, l) in zip(snapshot.clusters, labels) where c.spec.mode == .gradual {
            out += "switchyard_gradual_threshold_percent{\(l)} \(c.state.gradualThreshold)\n"
        }
        family("switchyard_request_duration_seconds", "histogram", "Time from a complete request head to the end of the response.")
        for (c, l) in zip(snapshot.clusters, labels) {
            var cumulative = 0
            for (i, bound) in latencyBucketBounds.enumerated() {
                cumulative += c.metrics.sum(ClusterCounter.latencyBuckets + i)
                out += "switchyard_request_duration_seconds_bucket{\(l),le=\"\(bound)\"} \(cumulative)\n"
            }
            cumulative += c.metrics.sum(ClusterCounter.latencyBuckets + latencyBucketBounds.count)
            out += "switchyard_request_duration_seconds_bucket{\(l),le=\"+Inf\"} \(cumulative)\n"
            out += "switchyard_request_duration_seconds_sum{\(l)} \(Double(c.metrics.sum(ClusterCounter.latencySumMicros)) / 1e6)\n"
            out += "switchyard_request_duration_seconds_count{\(l)} \(cumulative)\n"
        }
        let processWide: [(name: String, type: String, help: String, value: Int)] = [
            ("switchyard_rollbacks_total", "counter", "Clusters marked failed, sending traffic back to the previous version.",
             metrics.rollbacks.load(ordering: .relaxed)),
            ("switchyard_active_sessions", "gauge", "Open client connections.", metrics.sum(ProxyCounter.activeSessions)),
            ("switchyard_client_connections_total", "counter", "Client connections accepted.", metrics.sum(ProxyCounter.clientConnections)),
            ("switchyard_backend_connections_opened_total", "counter", "Backend connections opened.",
             metrics.sum(ProxyCounter.backendConnectionsOpened)),
            ("switchyard_backend_connections_reused_total", "counter", "Exchanges that reused a pooled backend connection.",
             metrics.sum(ProxyCounter.pooledReuses)),
            ("switchyard_pipes_in_use", "gauge", "Kernel pipes held by bodies in flight.", metrics.sum(ProxyCounter.pipesInUse)),
            ("switchyard_accept_pauses_total", "counter", "Times accepting paused because descriptors ran out.",
             metrics.sum(ProxyCounter.acceptPauses)),
            ("switchyard_access_log_lines_total", "counter", "Access log lines written.", metrics.accessLogLines.load(ordering: .relaxed)),
            ("switchyard_access_log_dropped_lines_total", "counter", "Access log lines dropped because the writer fell behind.",
             metrics.accessLogDropped.load(ordering: .relaxed)),
        ]
        for metric in processWide {
            family(metric.name, metric.type, metric.help)
            out += "\(metric.name) \(metric.value)\n"
        }
        if let tls { out += tls.metrics() }
        family("switchyard_rejected_requests_total", "counter", "Requests answered with an error by the proxy itself, by status.")
        for (i, status) in ProxyCounter.rejectedStatuses.enumerated() {
            out += "switchyard_rejected_requests_total{status=\"\(status)\"} \(metrics.sum(ProxyCounter.rejected + i))\n"
        }
        let compared = comparisons.snapshot().pairs.sorted { $0.key < $1.key }
        let pairFamilies: [(name: String, help: String, value: ((compared: Int, divergent: Int, fallbacks: Int)) -> Int)] = [
            ("switchyard_concurrent_compared_total", "CONCURRENT exchanges compared, by cluster pair (old->new).", { $0.compared }),
            ("switchyard_concurrent_divergent_total", "CONCURRENT exchanges whose two responses differed.", { $0.divergent }),
            ("switchyard_concurrent_fallbacks_total", "CONCURRENT exchanges served by the previous version.", { $0.fallbacks }),
        ]
        for metric in pairFamilies {
            family(metric.name, "counter", metric.help)
            for (pair, v) in compared { out += "\(metric.name){pair=\"\(escape(pair))\"} \(metric.value(v))\n" }
        }
        let rolloutStatuses = (rollouts?.statuses() ?? [:]).sorted { $0.key < $1.key }
        if !rolloutStatuses.isEmpty {
            family("switchyard_rollout_step", "gauge", "Current step of each rollout plan (1-based; 0 while pending or gates only).")
            for (uuid, s) in rolloutStatuses { out += "switchyard_rollout_step{cluster=\"\(escape(uuid))\"} \(s.step ?? 0)\n" }
            family("switchyard_rollout_percent", "gauge", "Share of clients the rollout sends to the new version, in percent.")
            for (uuid, s) in rolloutStatuses where s.percent != nil {
                out += "switchyard_rollout_percent{cluster=\"\(escape(uuid))\"} \(s.percent!)\n"
            }
            family("switchyard_rollout_state", "gauge", "1 for the rollout's current state, 0 for the others.")
            for (uuid, s) in rolloutStatuses {
                for phase in Phase.allCases {
                    out += "switchyard_rollout_state{cluster=\"\(escape(uuid))\",state=\"\(phase.rawValue)\"} \(phase == s.state ? 1 : 0)\n"
                }
            }
            let gateFamilies: [(name: String, help: String, value: (GateReading) -> Double?)] = [
                ("switchyard_rollout_gate_value", "Each gate's value on the rollout's last window.", { $0.value }),
                ("switchyard_rollout_gate_limit", "Each gate's limit.", { $0.limit }),
            ]
            for metric in gateFamilies {
                family(metric.name, "gauge", metric.help)
                for (uuid, s) in rolloutStatuses {
                    for reading in s.gates {
                        guard let value = metric.value(reading) else { continue }
                        out += "\(metric.name){cluster=\"\(escape(uuid))\",gate=\"\(reading.gate.rawValue)\"} \(value)\n"
                    }
                }
            }
        }
        family("switchyard_snapshot_generation", "gauge", "Generation of the published cluster snapshot.")
        out += "switchyard_snapshot_generation \(snapshot.generation)\n"
        out += renderHealthMetrics()
        if let fleet = fleetBox.withLock({ $0 }) { out += fleet.metricsText() }
        return out
    }
}

extension AdminResponse {
    /// The same response without the trailing newline (the 2014 API returns the bare uuid).
    func withoutNewline() -> AdminResponse {
        var copy = self
        if copy.body.last == 10 { copy.body.removeLast() }
        return copy
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        guard contains(target) else { return self }
        return split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
