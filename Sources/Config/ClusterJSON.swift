import Foundation
import Rollout
import Routing

/// The JSON form of a cluster, shared by the config file and the REST API
/// (`PUT`/`GET /configuration/cluster`), compatible with the 2014 bodies.
public enum ClusterJSON {
    /// Longest accepted uuid and version label.
    static let maxUUIDLength = 64
    static let maxVersionLength = 64
    /// Longest session lifetime: one year.
    static let maxSessionTimeout = 31_536_000

    /// Parses the body of `PUT /configuration/cluster`:
    /// `{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1036}],"version":"1.1",
    /// "upgradeTransition":{"mode":"SESSION","sessionTimeout":60},"uuid":"optional"}}`.
    /// `newUUID` is called only when the body has no uuid. Throws the first
    /// problem found, naming its field.
    public static func parseClusterBody(
        _ bytes: [UInt8], resolve: (String) -> Bool, newUUID: () -> String
    ) throws(ConfigError) -> ClusterSpec {
        guard let root = try JSONText.parse(bytes, keepingNumberText: true) as? [String: Any] else {
            throw ConfigError(field: "body", message: "must be a JSON object like {\"cluster\":{…}}")
        }
        var fields = Fields(root, path: "")
        guard let cluster = try fields.object("cluster") else {
            throw ConfigError(field: "cluster", message: "missing")
        }
        try fields.rejectUnknown()
        return try parseCluster(cluster.object, path: "cluster", resolve: resolve, newUUID: newUUID)
    }

    /// Parses one cluster object (the value of `cluster`); `path` prefixes
    /// field names in errors (`cluster`, `clusters[2]`).
    ///
    /// Rules: `servers` is a non-empty array of `{hostname, port}` without
    /// duplicates (hostname — or its 2014 synonym `ip` — defaults to 127.0.0.1 and
    /// must resolve; port is an integer 1–65535); `version` is a string or a number
    /// kept as written (`1.10` stays "1.10"; missing or empty → "0.0");
    /// `upgradeTransition` absent → INSTANT, present without `mode` or `steps` → SESSION
    /// (the 2014 rule); mode names are case-insensitive; SESSION needs
    /// `sessionTimeout`, GRADUAL needs `percentageTransitionPerRequest`, and
    /// each option is refused under the other modes; `mirrorUnsafeMethods`
    /// only with CONCURRENT. With `steps` (see `RolloutJSON`) the first step gives
    /// the mode (`mode` may be left out, or must name it), `retireOld` is allowed,
    /// `sessionTimeout` and `percentageTransitionPerRequest` are not, and
    /// `mirrorUnsafeMethods` needs a CONCURRENT step; `analysis` is allowed with or
    /// without steps. `ignoreBodyFor` lists path patterns (see `RolloutJSON`);
    /// `healthCheck` is optional (see `parseHealthCheck`).
    /// `uuid` is 1–64 characters of `[A-Za-z0-9._-]`,
    /// generated when absent. `state`, `failure`, `backends` and `rollout` (as GET writes
    /// them) are accepted and ignored, so a body read with GET can be PUT back; other
    /// unknown fields are errors.
    /// `tls` (see `parseBackendTLS`) is refused on a cluster whose transition mirrors exchanges
    /// (CONCURRENT, a CONCURRENT step, or divergence gates): mirrored bodies are spliced and
    /// duplicated with `tee(2)`, which a TLS connection cannot take. `checkFiles`: whether
    /// `tls.caFile` must be readable now (false when replaying the state store).
    public static func parseCluster(
        _ object: [String: Any], path: String, resolve: (String) -> Bool, newUUID: () -> String,
        checkFiles: Bool = true
    ) throws(ConfigError) -> ClusterSpec {
        var fields = Fields(object, path: path)

        // servers
        guard let rawServers = fields.raw("servers") else { throw fields.fail("servers", "missing") }
        guard let list = rawServers as? [Any] else {
            throw fields.fail("servers", "must be an array of {\"hostname\",\"port\"} objects")
        }
        guard !list.isEmpty else { throw fields.fail("servers", "must list at least one server") }
        var servers: [ServerAddress] = []
        var seen: [String: Int] = [:]
        for (i, element) in list.enumerated() {
            let serverPath = fields.pathOf("servers") + "[\(i)]"
            guard let o = element as? [String: Any] else {
                throw ConfigError(field: serverPath, message: "must be an object with hostname and port")
            }
            let server = try parseServer(o, path: serverPath, resolve: resolve)
            let key = server.hostname.lowercased() + " " + String(server.port)
            if let first = seen[key] {
                throw ConfigError(
                    field: serverPath,
                    message: "duplicates \(fields.pathOf("servers"))[\(first)] (\(server))")
            }
            seen[key] = i
            servers.append(server)
        }

        // version
        // The 2014 files also wrote the version as a number (`"version": 1.1`): kept as its text.
        var version: String
        switch fields.raw("version") {
        case nil: version = ""
        case is Bool: throw fields.fail("version", "must be a string (or a number, kept as written)")
        case let s as String: version = s
        case let n as JSONNumber: version = n.text
        case let i as Int: version = String(i)
        default: throw fields.fail("version", "must be a string (or a number, kept as written)")
        }
        if version.isEmpty { version = "0.0" }
        guard version.utf8.count <= maxVersionLength, version.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw fields.fail("version", "must be at most \(maxVersionLength) characters without control characters")
        }

        // upgradeTransition
        var spec = ClusterSpec(uuid: "", version: version, servers: servers)
        if var transition = try fields.object("upgradeTransition") {
            try parseTransition(&transition, into: &spec)
        }
        spec.ignoreBodyFor = try RolloutJSON.ignoreBodyFor(&fields)

        // healthCheck
        if var check = try fields.object("healthCheck") {
            spec.healthCheck = try parseHealthCheck(&check, servers: servers.count)
        }

        // tls
        if var tls = try fields.object("tls") {
            spec.tls = try parseBackendTLS(&tls, checkFiles: checkFiles)
            if spec.mode == .concurrent || (spec.rollout?.hasConcurrentStep ?? false) || spec.rollout?.analysis?.maxDivergenceRatio != nil {
                throw fields.fail("tls", "not allowed on a cluster that mirrors exchanges (CONCURRENT, or divergence gates): "
                                  + "mirrored bodies are spliced, which a TLS backend connection cannot take")
            }
        }

        // release
        if let release = try fields.string("release") {
            guard !release.isEmpty, release.utf8.count <= maxVersionLength,
                  release.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != ";" && $0 != "," && $0 != "\"" }) else {
                throw fields.fail("release", "must be 1 to \(maxVersionLength) printable characters without spaces, ; , or \"")
            }
            spec.release = release
        }

        // uuid
        if let uuid = try fields.string("uuid") {
            guard isValidUUID(uuid) else {
                throw fields.fail("uuid", "must be 1 to \(maxUUIDLength) characters from A-Z a-z 0-9 . _ -")
            }
            spec.uuid = uuid
        } else {
            spec.uuid = newUUID()
        }

        // Written by render; accepted so that a GET body can be PUT back.
        _ = fields.raw("state")
        _ = fields.raw("failure")
        _ = fields.raw("rollout")
        _ = fields.raw("backends")
        try fields.rejectUnknown()
        return spec
    }

    /// Parses one element of a `clusters` list: a cluster object, or `{"cluster": {…}}` (the
    /// API body's shape).
    static func parseListedCluster(_ element: Any, path: String, resolve: (String) -> Bool,
                                   newUUID: () -> String) throws(ConfigError) -> ClusterSpec {
        guard let o = element as? [String: Any] else { throw ConfigError(field: path, message: "must be a cluster object") }
        if o.count == 1, let inner = o["cluster"] {
            guard let io = inner as? [String: Any] else { throw ConfigError(field: path + ".cluster", message: "must be an object") }
            return try parseCluster(io, path: path + ".cluster", resolve: resolve, newUUID: newUUID)
        }
        return try parseCluster(o, path: path, resolve: resolve, newUUID: newUUID)
    }

    static func parseServer(_ object: [String: Any], path: String, resolve: (String) -> Bool) throws(ConfigError) -> ServerAddress {
        var fields = Fields(object, path: path)
        // `ip` is the 2014 spelling some files used (the thesis's Couchbase example).
        let named = try fields.string("hostname")
        let ip = try fields.string("ip")
        if named != nil && ip != nil { throw fields.fail("ip", "give either hostname or ip, not both") }
        let key = ip != nil ? "ip" : "hostname"
        let hostname = named ?? ip ?? "127.0.0.1"
        guard !hostname.isEmpty, hostname.utf8.count <= 253,
              hostname.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw fields.fail(key, "must be a host name or IP address (1 to 253 printable characters)")
        }
        let lazy: Bool
        switch try fields.string("resolve") {
        case nil, "load": lazy = false
        case "lazy": lazy = true
        default: throw fields.fail("resolve", "must be \"load\" (the default) or \"lazy\"")
        }
        guard lazy || resolve(hostname) else { throw fields.fail(key, "cannot resolve \"\(hostname)\"") }
        guard fields.raw("port") != nil else { throw fields.fail("port", "missing") }
        let port = try fields.int("port", in: 1...65535)!
        try fields.rejectUnknown()
        return ServerAddress(hostname: hostname, port: port, lazy: lazy)
    }

    static func parseTransition(_ fields: inout Fields, into spec: inout ClusterSpec) throws(ConfigError) {
        var named: UpgradeMode?
        if let name = try fields.string("mode") {
            guard let m = UpgradeMode(rawValue: name.uppercased()) else {
                let valid = UpgradeMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw fields.fail("mode", "unknown mode \"\(name)\" (valid: \(valid))")
            }
            named = m
        }
        let steps = try RolloutJSON.steps(&fields)
        let analysis = try RolloutJSON.analysis(&fields)
        let retireOld = try fields.bool("retireOld")
        let timeout = try fields.int("sessionTimeout", in: 1...maxSessionTimeout)
        let percentage = try fields.number("percentageTransitionPerRequest", above: 0, atMost: 100)
        let mirror = try fields.bool("mirrorUnsafeMethods")

        if let steps {
            // A plan: its steps give the modes; the 2014 options have no place in it.
            let first = steps[0].mode.upgradeMode
            if let named, named != first {
                throw fields.fail("mode", "must be \(first.rawValue) (the first step's mode) or absent: the steps give the modes")
            }
            spec.mode = first
            if timeout != nil { throw fields.fail("sessionTimeout", "not allowed with steps (a plan has no SESSION step)") }
            if percentage != nil {
                throw fields.fail("percentageTransitionPerRequest", "not allowed with steps (each GRADUAL step gives its percent)")
            }
            let plan = RolloutPlan(steps: steps, analysis: analysis, retireOld: retireOld ?? false)
            if mirror != nil, !plan.hasConcurrentStep {
                throw fields.fail("mirrorUnsafeMethods", "only allowed with a CONCURRENT step")
            }
            spec.mirrorUnsafeMethods = mirror ?? false
            spec.rollout = plan
            try fields.rejectUnknown()
            return
        }

        let mode = named ?? .session
        spec.mode = mode
        switch mode {
        case .session:
            guard let timeout else { throw fields.fail("sessionTimeout", "required with mode SESSION (seconds, a positive integer)") }
            spec.sessionTimeout = timeout
        case .gradual:
            guard let percentage else {
                throw fields.fail("percentageTransitionPerRequest", "required with mode GRADUAL (a number greater than 0 and at most 100)")
            }
            spec.percentageTransitionPerRequest = percentage
        case .concurrent:
            spec.mirrorUnsafeMethods = mirror ?? false
        case .instant:
            break
        }
        if timeout != nil, mode != .session {
            throw fields.fail("sessionTimeout", "only allowed with mode SESSION, not \(mode.rawValue)")
        }
        if percentage != nil, mode != .gradual {
            throw fields.fail("percentageTransitionPerRequest", "only allowed with mode GRADUAL, not \(mode.rawValue)")
        }
        if mirror != nil, mode != .concurrent {
            throw fields.fail("mirrorUnsafeMethods", "only allowed with mode CONCURRENT, not \(mode.rawValue)")
        }
        if retireOld != nil {
            throw fields.fail("retireOld", "only allowed with steps (without steps a plan never completes)")
        }
        if let analysis { spec.rollout = RolloutPlan(analysis: analysis) }
        try fields.rejectUnknown()
    }

    /// Parses a cluster's `tls` object: `serverName` (a DNS name, 1–253 characters of
    /// `[A-Za-z0-9.-]`), `caFile` (a readable PEM file holding at least one certificate, when
    /// `checkFiles`), `verify` (default true). Every field is optional; `{}` means TLS with the
    /// system's trust store and each server's host name.
    static func parseBackendTLS(_ fields: inout Fields, checkFiles: Bool) throws(ConfigError) -> BackendTLSSpec {
        var tls = BackendTLSSpec()
        if let name = try fields.string("serverName") {
            guard !name.isEmpty, name.utf8.count <= 253, name.first != ".", name.first != "-",
                  name.utf8.allSatisfy({ b in
                      (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                          || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
                  }) else {
                throw fields.fail("serverName", "must be a DNS name (1 to 253 characters of A-Z a-z 0-9 . -)")
            }
            tls.serverName = name
        }
        if let file = try fields.string("caFile") {
            guard !file.isEmpty else { throw fields.fail("caFile", "must be the path of a PEM file") }
            if checkFiles {
                guard let data = FileManager.default.contents(atPath: file) else {
                    let reason = FileManager.default.fileExists(atPath: file) ? "not readable" : "no such file"
                    throw fields.fail("caFile", "cannot read \(file): \(reason)")
                }
                guard data.range(of: Data("-----BEGIN CERTIFICATE-----".utf8)) != nil else {
                    throw fields.fail("caFile", "\(file) holds no PEM certificate")
                }
            }
            tls.caFile = file
        }
        if let verify = try fields.bool("verify") { tls.verify = verify }
        try fields.rejectUnknown()
        return tls
    }

    /// The API form of a cluster's `tls`: `verify` always, the others when given.
    public static func render(_ tls: BackendTLSSpec) -> [String: Any] {
        var out: [String: Any] = ["verify": tls.verify]
        if let name = tls.serverName { out["serverName"] = name }
        if let file = tls.caFile { out["caFile"] = file }
        return out
    }

    /// Longest health check path, and the bounds of its times in seconds.
    static let maxHealthPathLength = 1024
    static let healthSecondsRange = 0.1...86_400.0

    /// Parses a `healthCheck` object; every field is optional (defaults in `HealthCheckSpec`).
    /// `path` starts with `/` and has no spaces or control characters; `intervalSeconds`,
    /// `timeoutSeconds` and `readyTimeoutSeconds` are numbers from 0.1 to 86400 (fractions
    /// allowed); the thresholds are integers 1–100; `expectStatus` is `"2xx"`, `"204"`,
    /// `"200-399"` or an integer code; `minHealthy` is 1 to the number of servers.
    static func parseHealthCheck(_ fields: inout Fields, servers: Int) throws(ConfigError) -> HealthCheckSpec {
        var check = HealthCheckSpec()
        if let path = try fields.string("path") {
            guard path.first == "/", path.utf8.count <= maxHealthPathLength,
                  path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                throw fields.fail("path", "must start with / and be at most \(maxHealthPathLength) printable characters without spaces")
            }
            check.path = path
        }
        func seconds(_ key: String) throws(ConfigError) -> Double? {
            guard let v = fields.raw(key) else { return nil }
            guard let d = doubleValue(v), healthSecondsRange.contains(d) else {
                throw fields.fail(key, "must be a number of seconds from 0.1 to 86400")
            }
            return d
        }
        if let d = try seconds("intervalSeconds") { check.intervalSeconds = d }
        if let d = try seconds("timeoutSeconds") { check.timeoutSeconds = d }
        if let d = try seconds("readyTimeoutSeconds") { check.readyTimeoutSeconds = d }
        if let n = try fields.int("healthyThreshold", in: 1...100) { check.healthyThreshold = n }
        if let n = try fields.int("unhealthyThreshold", in: 1...100) { check.unhealthyThreshold = n }
        switch fields.raw("expectStatus") {
        case nil: break
        case let text as String:
            guard let e = StatusExpectation(parsing: text) else {
                throw fields.fail("expectStatus", "must be a status class like \"2xx\", a code like \"204\" or a range like \"200-399\" (codes 100-599)")
            }
            check.expectStatus = e
        case let v?:
            guard let code = intValue(v), (100...599).contains(code) else {
                throw fields.fail("expectStatus", "must be a status class like \"2xx\", a code like \"204\" or a range like \"200-399\" (codes 100-599)")
            }
            check.expectStatus = StatusExpectation(low: code, high: code)
        }
        if let n = try fields.int("minHealthy", in: 1...max(1, servers)) { check.minHealthy = n }
        try fields.rejectUnknown()
        return check
    }

    /// The API form of a health check: every field, defaults included.
    public static func render(_ check: HealthCheckSpec) -> [String: Any] {
        ["path": check.path, "intervalSeconds": check.intervalSeconds, "timeoutSeconds": check.timeoutSeconds,
         "healthyThreshold": check.healthyThreshold, "unhealthyThreshold": check.unhealthyThreshold,
         "expectStatus": check.expectStatus.description, "minHealthy": check.minHealthy,
         "readyTimeoutSeconds": check.readyTimeoutSeconds]
    }

    /// Whether a uuid given by a user is acceptable: 1–64 characters of `[A-Za-z0-9._-]`.
    public static func isValidUUID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= maxUUIDLength && s.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }

    /// What the API shows of a cluster besides its definition.
    public struct Live {
        /// Reason and unix time of the failure, nil unless marked failed.
        public var failure: (reason: String, time: Int64)?
        /// Waiting for its readiness gate (shown when not failed).
        public var pending: Bool
        /// Each backend's status; nil leaves `backends` out.
        public var backends: [BackendHealthView]?

        public init(failure: (reason: String, time: Int64)? = nil, pending: Bool = false, backends: [BackendHealthView]? = nil) {
            self.failure = failure
            self.pending = pending
            self.backends = backends
        }

        /// `failed`, `pending` or `active`.
        public var state: String { failure != nil ? "failed" : pending ? "pending" : "active" }
    }

    /// The API form of a cluster:
    /// `{"cluster":{"servers":[…],"upgradeTransition":{"mode":…, options},"healthCheck":{…},"uuid":…,"version":…,
    /// "state":"active"|"pending"|"failed","failure":{"reason":…,"time":"<ISO 8601>"},
    /// "backends":{"host:port":"up"|"down"|"drained"|"unknown"}}}`,
    /// `failure` only when failed, `healthCheck` and `tls` only when the cluster has them. Only the
    /// options of the cluster's mode are written; a plan is written as `steps` and
    /// `retireOld` (without `mode`, which its first step gives) with `mirrorUnsafeMethods`
    /// when a step is CONCURRENT; `analysis` and `ignoreBodyFor` when given.
    /// `JSONText.encode` writes keys sorted, so output is deterministic.
    public static func render(_ spec: ClusterSpec, failed: (reason: String, time: Int64)?) -> [String: Any] {
        render(spec, live: Live(failure: failed))
    }

    /// The API form of a cluster with its live state (see `render(_:failed:)`).
    public static func render(_ spec: ClusterSpec, live: Live) -> [String: Any] {
        var transition: [String: Any] = [:]
        if let plan = spec.rollout, !plan.steps.isEmpty {
            transition["steps"] = plan.steps.map { RolloutJSON.render($0) as Any }
            transition["retireOld"] = plan.retireOld
            if plan.hasConcurrentStep { transition["mirrorUnsafeMethods"] = spec.mirrorUnsafeMethods }
        } else {
            transition["mode"] = spec.mode.rawValue
            switch spec.mode {
            case .session: if let t = spec.sessionTimeout { transition["sessionTimeout"] = t }
            case .gradual: if let p = spec.percentageTransitionPerRequest { transition["percentageTransitionPerRequest"] = p }
            case .concurrent: transition["mirrorUnsafeMethods"] = spec.mirrorUnsafeMethods
            case .instant: break
            }
        }
        if let analysis = spec.rollout?.analysis { transition["analysis"] = RolloutJSON.render(analysis) }
        var cluster: [String: Any] = [
            "servers": spec.servers.map { s -> [String: Any] in
                s.lazy ? ["hostname": s.hostname, "port": s.port, "resolve": "lazy"] : ["hostname": s.hostname, "port": s.port]
            },
            "upgradeTransition": transition,
            "uuid": spec.uuid,
            "version": spec.version,
            "state": live.state,
        ]
        if !spec.ignoreBodyFor.isEmpty { cluster["ignoreBodyFor"] = spec.ignoreBodyFor }
        if let release = spec.release { cluster["release"] = release }
        if let check = spec.healthCheck { cluster["healthCheck"] = render(check) }
        if let tls = spec.tls { cluster["tls"] = render(tls) }
        if let failed = live.failure {
            cluster["failure"] = ["reason": failed.reason, "time": iso8601(unixSeconds: failed.time)] as [String: Any]
        }
        if let backends = live.backends {
            var statuses: [String: Any] = [:]
            for b in backends { statuses[b.server.description] = b.status }
            cluster["backends"] = statuses
        }
        return ["cluster": cluster]
    }

    /// One rendered cluster as JSON bytes (`GET /configuration/cluster/{id}`).
    public static func renderOne(_ spec: ClusterSpec, failed: (reason: String, time: Int64)?) -> [UInt8] {
        JSONText.encode(render(spec, failed: failed))
    }

    /// One rendered cluster with its live state as JSON bytes.
    public static func renderOne(_ spec: ClusterSpec, live: Live) -> [UInt8] {
        JSONText.encode(render(spec, live: live))
    }

    /// A JSON array of rendered clusters, in the order given (the API lists
    /// latest first; see `orderLatestFirst`).
    public static func renderList(_ clusters: [(spec: ClusterSpec, failed: (reason: String, time: Int64)?)]) -> [UInt8] {
        JSONText.encode(clusters.map { render($0.spec, failed: $0.failed) as Any })
    }

    /// A JSON array of rendered clusters with their live state, in the order given.
    public static func renderList(live clusters: [(spec: ClusterSpec, live: Live)]) -> [UInt8] {
        JSONText.encode(clusters.map { render($0.spec, live: $0.live) as Any })
    }
}

/// A random RFC 4122 version 4 uuid: 36 lowercase characters, from
/// `SystemRandomNumberGenerator` (the kernel's CSPRNG).
public func makeUUID() -> String {
    var rng = SystemRandomNumberGenerator()
    return makeUUID(using: &rng)
}

/// A version 4 uuid from the given random source (deterministic in tests).
public func makeUUID(using rng: inout some RandomNumberGenerator) -> String {
    var bytes = [UInt8](repeating: 0, count: 16)
    let a = rng.next()
    let b = rng.next()
    for i in 0..<8 {
        bytes[i] = UInt8(truncatingIfNeeded: a >> UInt64(56 - 8 * i))
        bytes[8 + i] = UInt8(truncatingIfNeeded: b >> UInt64(56 - 8 * i))
    }
    bytes[6] = bytes[6] & 0x0F | 0x40  // version 4
    bytes[8] = bytes[8] & 0x3F | 0x80  // variant 10xx
    let hex = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(36)
    for (i, byte) in bytes.enumerated() {
        if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}
