// Routing: the pure core that picks a cluster for each exchange.
//
// Glossary (see DESIGN.md): *client* sent the request; *backend* is one
// server we forward to; *cluster* is one version of the service (a set of
// backends, a version label, an upgrade mode); *latest* is the usable cluster
// with the highest version. This module has no sockets, clocks or globals:
// callers pass the time and a random number generator in.

import Rollout

/// How clients move from the previous cluster to the latest one.
public enum UpgradeMode: String, Sendable, CaseIterable {
    /// Every exchange goes to the latest cluster at once.
    case instant = "INSTANT"
    /// A client stays on the cluster named by its session cookie until the
    /// cookie expires (`sessionTimeout` seconds after its last exchange).
    case session = "SESSION"
    /// A rising share of clients (by a stable hash of their transition id)
    /// moves to the latest cluster; the share grows with every exchange served.
    case gradual = "GRADUAL"
    /// Exchanges go to the latest cluster and are mirrored to the previous
    /// one so that the two responses can be compared.
    case concurrent = "CONCURRENT"
}

/// One backend: a host name (or IP literal) and a TCP port.
public struct ServerAddress: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP address literal.
    public var hostname: String
    /// TCP port, 1...65535.
    public var port: Int
    /// `"resolve": "lazy"`: a name that does not resolve yet is accepted; its cluster waits
    /// (pending) until it does. Not part of the server's identity (`==` compares host and port).
    public var lazy: Bool

    /// Creates a backend address.
    public init(hostname: String, port: Int, lazy: Bool = false) {
        self.hostname = hostname
        self.port = port
        self.lazy = lazy
    }

    /// Same host name and port (the `lazy` flag aside).
    public static func == (a: ServerAddress, b: ServerAddress) -> Bool {
        a.hostname == b.hostname && a.port == b.port
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(hostname)
        hasher.combine(port)
    }

    /// `host:port`, with IPv6 literals in brackets.
    public var description: String {
        hostname.contains(":") ? "[\(hostname)]:\(port)" : "\(hostname):\(port)"
    }
}

/// The validated description of one cluster, as given by the config file or
/// `PUT /configuration/cluster`. Runtime state lives in `ClusterState`.
public struct ClusterSpec: Sendable, Equatable {
    /// Stable identifier; also the value of the session cookie.
    public var uuid: String
    /// Version label; ordered by `Version`.
    public var version: String
    /// Backends of this cluster, in the order given.
    public var servers: [ServerAddress]
    /// Upgrade mode applied while this cluster is the latest.
    public var mode: UpgradeMode
    /// Session cookie lifetime in seconds (SESSION only).
    public var sessionTimeout: Int?
    /// Percentage points the GRADUAL threshold rises per exchange served (GRADUAL only).
    public var percentageTransitionPerRequest: Double?
    /// Whether non-idempotent requests are mirrored too (CONCURRENT only).
    public var mirrorUnsafeMethods: Bool
    /// The staged plan and/or analysis gates (`upgradeTransition.steps`, `.analysis`,
    /// `.retireOld`); nil for a 2014 transition without gates. With steps, `mode` is the
    /// first step's mode.
    public var rollout: RolloutPlan?
    /// Path patterns whose response bodies are not compared in CONCURRENT (`/time`,
    /// `/random*`: a `*` only at the end, matching any rest).
    public var ignoreBodyFor: [String]
    /// Active health checks and the readiness gate; nil: no probes, ready at once.
    public var healthCheck: HealthCheckSpec?
    /// The release this cluster belongs to (services of a release group move together between
    /// releases); nil: its version names it.
    public var release: String?
    /// TLS to the cluster's backends (`"tls": {…}`); nil: plain TCP.
    public var tls: BackendTLSSpec?

    /// The release that routes a client in a release group: `release`, or the version.
    public var releaseName: String { release ?? version }

    /// Creates a cluster description; no validation happens here (see the Config module).
    public init(
        uuid: String,
        version: String,
        servers: [ServerAddress],
        mode: UpgradeMode = .instant,
        sessionTimeout: Int? = nil,
        percentageTransitionPerRequest: Double? = nil,
        mirrorUnsafeMethods: Bool = false,
        rollout: RolloutPlan? = nil,
        ignoreBodyFor: [String] = [],
        healthCheck: HealthCheckSpec? = nil
    ) {
        self.uuid = uuid
        self.version = version
        self.servers = servers
        self.mode = mode
        self.sessionTimeout = sessionTimeout
        self.percentageTransitionPerRequest = percentageTransitionPerRequest
        self.mirrorUnsafeMethods = mirrorUnsafeMethods
        self.rollout = rollout
        self.ignoreBodyFor = ignoreBodyFor
        self.healthCheck = healthCheck
    }

    /// Whether the bodies of answers to `path` (the request target without its query) are
    /// left out of CONCURRENT comparisons: `path` equals a pattern, or starts with a
    /// pattern's text before its final `*`.
    public func ignoresBody(path: Substring) -> Bool {
        ignoreBodyFor.contains { pattern in
            pattern.last == "*" ? path.hasPrefix(pattern.dropLast()) : path == pattern
        }
    }
}

/// How a cluster's backends are reached over TLS (`"tls": {"serverName", "caFile", "verify"}`).
public struct BackendTLSSpec: Sendable, Equatable {
    /// The name sent as SNI and checked against the backend's certificate; nil: each server's
    /// host name when it is a name (an IP literal sends no SNI and is checked as an address).
    public var serverName: String?
    /// PEM bundle of the certificate authorities trusted; nil: the system's store.
    public var caFile: String?
    /// Whether the backend's certificate is checked (chain and name). False accepts any.
    public var verify: Bool

    public init(serverName: String? = nil, caFile: String? = nil, verify: Bool = true) {
        self.serverName = serverName
        self.caFile = caFile
        self.verify = verify
    }
}

extension StepMode {
    /// The upgrade mode that routes like this step (a CONCURRENT step serving the old
    /// version is still CONCURRENT; the step's `serve` tells the rest).
    public var upgradeMode: UpgradeMode {
        switch self {
        case .concurrent: .concurrent
        case .gradual: .gradual
        case .instant: .instant
        }
    }
}
