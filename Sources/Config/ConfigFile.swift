import Foundation
import Routing

/// The JSON configuration file, a superset of the 2014 file:
///
/// ```json
/// {"proxy": {"hostname": "0.0.0.0", "port": 1235,
///            "timeouts": {"clientHeadSeconds": 10, …}, "limits": {"maxHeadBytes": 16384, …},
///            "requestBodies": {"bodylessMethods": "refuse"}, "requestHeaders": {"underscores": "refuse"},
///            "listeners": [{"port": 443, "tls": {"certificates": [{"cert": "…", "key": "…"}]}}, {"port": 80}]},
///  "configService": {"hostname": "127.0.0.1", "port": 9090, "token": "secret", "tls": {"certificates": [{"cert": "…", "key": "…"}]}},
///  "cluster": {"servers": [{"hostname": "127.0.0.1", "port": 1034}], "version": "1.0"},
///  "workers": 2,
///  "cookies": {"session": "dynsoftup", "transition": "transition", "lastSeen": "dynsoftup_seen",
///              "moveAfterIdleSeconds": 2},
///  "rollback": {"windowSeconds": 10, "minRequests": 20, "maxFailureRatio": 0.5},
///  "comparisons": {"kept": 100, "ignoreHeaders": ["Date", "Server", …]},
///  "accessLog": {"path": "stderr", "format": "logfmt", "sample": 1.0},
///  "state": {"dir": "/var/lib/switchyard", "compactAfterRecords": 1000},
///     (or, for a fleet: {"store": "etcd", "endpoints": ["http://127.0.0.1:2379"], "prefix": "/switchyard/",
///      "instance": "edge-1", "leaseSeconds": 5})
///  "logLevel": "NOTICE"}
/// ```
///
/// `"clusters": [ … ]` may replace `"cluster"`; each element is either a
/// cluster object or `{"cluster": {…}}`. Every object rejects unknown fields.
/// A cluster without a uuid gets a new random one at each start; give one in
/// the file to keep clients' session cookies valid across restarts.
public enum ConfigFile {
    /// Parses and validates a whole configuration file. `resolve` tells whether
    /// a backend host name resolves; `newUUID` names clusters without a uuid.
    public static func parse(
        _ bytes: [UInt8], resolve: (String) -> Bool, newUUID: () -> String = { makeUUID() }
    ) throws(ConfigError) -> ProxyConfig {
        guard let root = try JSONText.parse(bytes, keepingNumberText: true) as? [String: Any] else {
            throw ConfigError(field: "json", message: "the configuration must be a JSON object")
        }
        var top = Fields(root, path: "")
        // The resolver before the clusters: names its hosts file pins resolve.
        let resolver = try resolverSettings(&top)
        let pinned = resolver.hostsFile.map { HostsFile(path: $0) } ?? HostsFile(text: "")
        let systemResolve = resolve
        let resolve: (String) -> Bool = { !pinned.addresses(of: $0).isEmpty || systemResolve($0) }

        // Clusters first: the file is useless without them, so say so first.
        let clusters: [ClusterSpec]
        let single = top.raw("cluster")
        let many = top.raw("clusters")
        let hasServices = top.object["services"] != nil
        switch (single, many) {
        case (nil, nil) where hasServices:
            clusters = []
        case (nil, nil):
            throw ConfigError(field: "cluster", message: "missing (give \"cluster\", \"clusters\" or \"services\")")
        case (.some, .some):
            throw ConfigError(field: "clusters", message: "give either \"cluster\" or \"clusters\", not both")
        case let (object?, nil):
            guard let o = object as? [String: Any] else { throw top.fail("cluster", "must be an object") }
            clusters = [try ClusterJSON.parseCluster(o, path: "cluster", resolve: resolve, newUUID: newUUID)]
        case let (nil, list?):
            guard let elements = list as? [Any] else { throw top.fail("clusters", "must be an array of clusters") }
            guard !elements.isEmpty else { throw top.fail("clusters", "must list at least one cluster") }
            var parsed: [ClusterSpec] = []
            for (i, element) in elements.enumerated() {
                parsed.append(try ClusterJSON.parseListedCluster(element, path: "clusters[\(i)]", resolve: resolve, newUUID: newUUID))
            }
            clusters = parsed
        }
        try validateAll(clusters)

        var config = ProxyConfig(clusters: clusters)

        if var groups = try top.object("releaseGroups") {
            config.releaseGroups = try ServiceJSON.parseGroups(&groups)
        }
        if let raw = top.raw("services") {
            guard let list = raw as? [Any] else { throw top.fail("services", "must be an array of services") }
            var services: [ServiceConfig] = []
            for (i, element) in list.enumerated() {
                guard let o = element as? [String: Any] else { throw ConfigError(field: "services[\(i)]", message: "must be a service object") }
                let service = try ServiceJSON.parseService(o, path: "services[\(i)]", allowClusters: true, resolve: resolve, newUUID: newUUID)
                if service.spec.name == defaultServiceName, !service.clusters.isEmpty, !clusters.isEmpty {
                    throw ConfigError(field: "services[\(i)].clusters", message: "the default service's clusters are given by \"cluster\"/\"clusters\" already")
                }
                services.append(service)
            }
            // The default service's clusters: from `cluster`/`clusters`, else from its entry.
            var all = services
            if let d = all.firstIndex(where: { $0.spec.name == defaultServiceName }) {
                if all[d].clusters.isEmpty { all[d].clusters = clusters }
            } else {
                all.append(ServiceConfig(spec: .catchAll, clusters: clusters))
            }
            try ServiceJSON.validate(all, groups: config.releaseGroups) { i in i < services.count ? "services[\(i)]" : "" }
            for (i, s) in services.enumerated() where s.spec.releaseGroup != nil {
                guard s.spec.name != defaultServiceName else {
                    throw ConfigError(field: "services[\(i)].releaseGroup", message: "the default service cannot be in a release group")
                }
            }
            config.clusters = all.first { $0.spec.name == defaultServiceName }?.clusters ?? []
            config.services = services.filter { $0.spec.name != defaultServiceName }
            config.defaultService = services.first { $0.spec.name == defaultServiceName }?.spec
        }

        if var proxy = try top.object("proxy") {
            config.proxyHost = try bindHost(&proxy) ?? config.proxyHost
            config.proxyPort = try proxy.int("port", in: 0...65535) ?? config.proxyPort
            config.listeners = try parseListeners(&proxy)
            if var t = try proxy.object("timeouts") { config.timeouts = try parseTimeouts(&t) }
            if var l = try proxy.object("limits") { config.limits = try parseLimits(&l) }
            if var bodies = try proxy.object("requestBodies") {
                config.requestRules.bodylessMethods = try bodies.choice("bodylessMethods", of: RequestRules.BodylessMethods.self)
                    ?? config.requestRules.bodylessMethods
                try bodies.rejectUnknown()
            }
            if var headers = try proxy.object("requestHeaders") {
                config.requestRules.underscores = try headers.choice("underscores", of: RequestRules.Underscores.self)
                    ?? config.requestRules.underscores
                try headers.rejectUnknown()
            }
            try proxy.rejectUnknown()
        }
        if var admin = try top.object("configService") {
            config.adminHost = try bindHost(&admin) ?? config.adminHost
            config.adminPort = try admin.int("port", in: 0...65535) ?? config.adminPort
            if let token = try admin.string("token") {
                guard !token.isEmpty, token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                    throw admin.fail("token", "must be a non-empty string of printable characters without spaces")
                }
                config.adminToken = token
            }
            if var tls = try admin.object("tls") {
                config.adminTLS = try parseTLS(&tls)
            }
            try admin.rejectUnknown()
        }
        config.workers = try top.int("workers", in: 1...1024)
        if var cookies = try top.object("cookies") {
            let session = try cookieName(&cookies, "session") ?? config.cookieNames.session
            let transition = try cookieName(&cookies, "transition") ?? config.cookieNames.transition
            let lastSeen = try cookieName(&cookies, "lastSeen") ?? config.cookieNames.lastSeen
            guard session != transition else { throw cookies.fail("transition", "must differ from cookies.session") }
            guard lastSeen != session && lastSeen != transition else {
                throw cookies.fail("lastSeen", "must differ from cookies.session and cookies.transition")
            }
            config.cookieNames = CookieNames(session: session, transition: transition, lastSeen: lastSeen)
            config.moveAfterIdleSeconds = try cookies.number("moveAfterIdleSeconds", in: 0...3600) ?? config.moveAfterIdleSeconds
            try cookies.rejectUnknown()
        }
        if var rollback = try top.object("rollback") {
            var policy = RollbackPolicy()
            policy.windowSeconds = try rollback.int("windowSeconds", in: 1...3600) ?? policy.windowSeconds
            policy.minRequests = try rollback.int("minRequests", in: 1...1_000_000) ?? policy.minRequests
            policy.maxFailureRatio = try rollback.number("maxFailureRatio", above: 0, atMost: 1) ?? policy.maxFailureRatio
            config.rollback = policy
            try rollback.rejectUnknown()
        }
        if var log = try top.object("accessLog") {
            guard let path = try log.string("path") else { throw log.fail("path", "missing (\"stderr\" or a file path)") }
            guard !path.isEmpty, !path.utf8.contains(0) else { throw log.fail("path", "must be \"stderr\" or a file path") }
            var settings = AccessLogSettings(path: path)
            settings.format = try log.choice("format", of: AccessLogSettings.Format.self) ?? settings.format
            settings.sample = try log.number("sample", above: 0, atMost: 1) ?? settings.sample
            try log.rejectUnknown()
            config.accessLog = settings
        }
        if var comparisons = try top.object("comparisons") {
            config.comparisonsKept = try comparisons.int("kept", in: 0...100_000) ?? config.comparisonsKept
            if let raw = comparisons.raw("ignoreHeaders") {
                guard let names = raw as? [Any], names.allSatisfy({ ($0 as? String).map { !$0.isEmpty } ?? false }) else {
                    throw comparisons.fail("ignoreHeaders", "must be an array of header names")
                }
                config.comparisonIgnoredHeaders = Set(names.compactMap { ($0 as? String)?.lowercased() })
            }
            try comparisons.rejectUnknown()
        }
        if var state = try top.object("state") {
            if let dir = try state.string("dir") {
                guard !dir.isEmpty, !dir.utf8.contains(0) else { throw state.fail("dir", "must be a directory path") }
                config.stateDir = dir
            }
            config.compactAfterRecords = try state.int("compactAfterRecords", in: 1...1_000_000) ?? config.compactAfterRecords
            config.etcd = try etcdState(&state)
            try state.rejectUnknown()
        }
        if config.etcd != nil && config.stateDir != nil {
            throw ConfigError(field: "state.dir", message: "is for the file store; an etcd store keeps no local state (remove one of them)")
        }
        if var upgrade = try top.object("upgrade") {
            config.upgradeDrainSeconds = try upgrade.number("drainSeconds", in: 0...86_400) ?? config.upgradeDrainSeconds
            try upgrade.rejectUnknown()
        }
        if let level = try top.string("logLevel") {
            let names = ["CRITICAL", "ERROR", "WARNING", "WARN", "NOTICE", "INFO", "DEBUG"]
            guard names.contains(level.uppercased()) else {
                throw top.fail("logLevel", "unknown level \"\(level)\" (use CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG)")
            }
            config.logLevel = level.uppercased()
        }
        config.resolver = resolver
        try top.rejectUnknown()
        return config
    }

    /// `"resolver": {"resolveSeconds": 30, "hostsFile": PATH}` (both optional; 0 seconds turns
    /// re-resolution off).
    static func resolverSettings(_ top: inout Fields) throws(ConfigError) -> ResolverSettings {
        var settings = ResolverSettings()
        guard var f = try top.object("resolver") else { return settings }
        settings.resolveSeconds = try f.number("resolveSeconds", in: 0...86_400) ?? settings.resolveSeconds
        if let path = try f.string("hostsFile") {
            guard !path.isEmpty, !path.utf8.contains(0) else { throw f.fail("hostsFile", "must be a file path") }
            guard FileManager.default.isReadableFile(atPath: path) else { throw f.fail("hostsFile", "cannot read \"\(path)\"") }
            settings.hostsFile = path
        }
        try f.rejectUnknown()
        return settings
    }

    /// Same as `parse(_:resolve:newUUID:)` for `Data`.
    public static func parse(
        _ data: Data, resolve: (String) -> Bool, newUUID: () -> String = { makeUUID() }
    ) throws(ConfigError) -> ProxyConfig {
        try parse([UInt8](data), resolve: resolve, newUUID: newUUID)
    }

    /// Checks rules that span clusters: no two clusters share a uuid.
    /// `paths` names the clusters in errors (default `clusters[i]`).
    public static func validateAll(_ clusters: [ClusterSpec], paths: [String]? = nil) throws(ConfigError) {
        var seen: [String: Int] = [:]
        for (i, c) in clusters.enumerated() {
            let name = { (j: Int) in paths.flatMap { j < $0.count ? $0[j] : nil } ?? "clusters[\(j)]" }
            if let first = seen[c.uuid] {
                throw ConfigError(field: name(i) + ".uuid", message: "\"\(c.uuid)\" is already used by \(name(first))")
            }
            seen[c.uuid] = i
        }
    }

    static func bindHost(_ fields: inout Fields) throws(ConfigError) -> String? {
        guard let host = try fields.string("hostname") else { return nil }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw fields.fail("hostname", "must be a host name or IP address")
        }
        return host
    }

    static func parseTimeouts(_ f: inout Fields) throws(ConfigError) -> Timeouts {
        var t = Timeouts()
        let day = 86_400.0
        t.clientHeadSeconds = try f.number("clientHeadSeconds", above: 0, atMost: day) ?? t.clientHeadSeconds
        t.clientIdleSeconds = try f.number("clientIdleSeconds", above: 0, atMost: day) ?? t.clientIdleSeconds
        t.backendConnectSeconds = try f.number("backendConnectSeconds", above: 0, atMost: day) ?? t.backendConnectSeconds
        t.backendResponseSeconds = try f.number("backendResponseSeconds", above: 0, atMost: day) ?? t.backendResponseSeconds
        t.bodyIdleSeconds = try f.number("bodyIdleSeconds", above: 0, atMost: day) ?? t.bodyIdleSeconds
        t.clientHandshakeSeconds = try f.number("clientHandshakeSeconds", above: 0, atMost: day) ?? t.clientHandshakeSeconds
        try f.rejectUnknown()
        return t
    }

    static func parseLimits(_ f: inout Fields) throws(ConfigError) -> Limits {
        var l = Limits()
        l.maxHeadBytes = try f.int("maxHeadBytes", in: 1024...Limits.maxHeadBytesCeiling) ?? l.maxHeadBytes
        l.maxTargetBytes = try f.int("maxTargetBytes", in: 16...Limits.maxHeadBytesCeiling) ?? l.maxTargetBytes
        l.maxConnections = try f.int("maxConnections", in: 1...1_000_000) ?? l.maxConnections
        l.maxApiBodyBytes = try f.int("maxApiBodyBytes", in: 1024...(64 << 20)) ?? l.maxApiBodyBytes
        guard l.maxTargetBytes <= l.maxHeadBytes else {
            throw f.fail("maxTargetBytes", "must not exceed maxHeadBytes (\(l.maxHeadBytes))")
        }
        try f.rejectUnknown()
        return l
    }

    /// A cookie name: an RFC 9110 token (no separators, spaces or controls).
    static func cookieName(_ f: inout Fields, _ key: String) throws(ConfigError) -> String? {
        guard let name = try f.string(key) else { return nil }
        let separators = Set("()<>@,;:\\\"/[]?={}".utf8)
        guard !name.isEmpty, name.utf8.count <= 64,
              name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !separators.contains($0) }) else {
            throw f.fail(key, "must be a cookie name: 1 to 64 characters, letters, digits and !#$%&'*+-.^_`|~")
        }
        return name
    }
}

/// Reads `state.store` and, for `"etcd"`, its endpoints, prefix, instance name and lease TTL.
func etcdState(_ state: inout Fields) throws(ConfigError) -> EtcdStateConfig? {
    let store = try state.string("store") ?? "file"
    guard store == "etcd" else {
        guard store == "file" else { throw state.fail("store", "must be \"file\" or \"etcd\", not \"\(store)\"") }
        for key in ["endpoints", "instance", "leaseSeconds", "prefix"] where state.raw(key) != nil {
            throw state.fail(key, "is for \"store\": \"etcd\"")
        }
        return nil
    }
    guard let raw = state.raw("endpoints") as? [Any], !raw.isEmpty else {
        throw state.fail("endpoints", "must be a non-empty array of etcd client URLs (\"http://127.0.0.1:2379\")")
    }
    var endpoints: [String] = []
    for (i, value) in raw.enumerated() {
        guard let url = value as? String, url.hasPrefix("http://"), let colon = url.dropFirst(7).lastIndex(of: ":"),
              let port = Int(url[url.index(after: colon)...].trimmingCharacters(in: ["/"])), (1...65535).contains(port) else {
            throw state.fail("endpoints[\(i)]", "must be http://host:port (TLS to etcd is not supported)")
        }
        endpoints.append(url)
    }
    let prefix = try state.string("prefix") ?? "/switchyard/"
    guard !prefix.isEmpty, prefix.hasSuffix("/") else { throw state.fail("prefix", "must be a key prefix ending in \"/\"") }
    guard let instance = try state.string("instance"), !instance.isEmpty,
          instance.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
        throw state.fail("instance", "must name this instance (printable, no spaces or \"/\"), unique in the fleet")
    }
    let lease = try state.int("leaseSeconds", in: 2...60) ?? 5
    return EtcdStateConfig(endpoints: endpoints, prefix: prefix, instance: instance, leaseSeconds: lease)
}
