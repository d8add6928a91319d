import Routing

/// Deadlines of every wait, in seconds (DESIGN.md "Data path").
public struct Timeouts: Sendable, Equatable {
    /// Time a client has to send a complete head (slowloris guard); 408 after.
    public var clientHeadSeconds: Double = 10
    /// Time a keep-alive client session may stay idle between exchanges.
    public var clientIdleSeconds: Double = 60
    /// Time to establish a backend connection; the backend is marked down after.
    public var backendConnectSeconds: Double = 5
    /// Time a backend has to send its response head; 504 after.
    public var backendResponseSeconds: Double = 60
    /// Longest pause in a body transfer, either direction.
    public var bodyIdleSeconds: Double = 60
    /// Time a client on a TLS listener has to complete its handshake (`clientHandshakeSeconds`).
    public var clientHandshakeSeconds: Double = 10

    /// Creates timeouts; every default is the documented one.
    public init(
        clientHeadSeconds: Double = 10, clientIdleSeconds: Double = 60, backendConnectSeconds: Double = 5,
        backendResponseSeconds: Double = 60, bodyIdleSeconds: Double = 60
    ) {
        self.clientHeadSeconds = clientHeadSeconds
        self.clientIdleSeconds = clientIdleSeconds
        self.backendConnectSeconds = backendConnectSeconds
        self.backendResponseSeconds = backendResponseSeconds
        self.bodyIdleSeconds = bodyIdleSeconds
    }
}

/// Size and count limits.
public struct Limits: Sendable, Equatable {
    /// Largest request or response head in bytes (431 beyond); at most 65536.
    public var maxHeadBytes: Int = 16384
    /// Longest request target in bytes (414 beyond); at most `maxHeadBytes`.
    public var maxTargetBytes: Int = 8192
    /// Most client sessions open at once, over all reactors.
    public var maxConnections: Int = 10000
    /// Largest REST API request body in bytes (413 beyond).
    public var maxApiBodyBytes: Int = 1 << 20

    /// Hard ceiling of `maxHeadBytes`.
    public static let maxHeadBytesCeiling = 65536

    /// Creates limits; every default is the documented one.
    public init(maxHeadBytes: Int = 16384, maxTargetBytes: Int = 8192, maxConnections: Int = 10000, maxApiBodyBytes: Int = 1 << 20) {
        self.maxHeadBytes = maxHeadBytes
        self.maxTargetBytes = maxTargetBytes
        self.maxConnections = maxConnections
        self.maxApiBodyBytes = maxApiBodyBytes
    }
}

/// Requests the proxy could forward but that backends are known to read differently
/// (`proxy.requestBodies`, `proxy.requestHeaders`).
public struct RequestRules: Sendable, Equatable {
    /// What a GET or HEAD request with a body gets (`requestBodies.bodylessMethods`).
    public enum BodylessMethods: String, Sendable, CaseIterable { case refuse, forward }
    /// What a request field whose name contains `_` gets (`requestHeaders.underscores`).
    public enum Underscores: String, Sendable, CaseIterable { case refuse, drop, allow }

    /// Default: refuse with 400 (many backends ignore such a body and read it as the next request).
    public var bodylessMethods = BodylessMethods.refuse
    /// Default: refuse with 400 (many backends map `_` to `-`, so `Content_Length` frames for them).
    public var underscores = Underscores.refuse

    /// Creates the rules; every default is the documented one.
    public init(bodylessMethods: BodylessMethods = .refuse, underscores: Underscores = .refuse) {
        self.bodylessMethods = bodylessMethods
        self.underscores = underscores
    }
}

/// The access log (`accessLog`): one line per exchange.
public struct AccessLogSettings: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable { case logfmt, json }
    /// `"stderr"` or a file path (opened for appending, created when missing).
    public var path: String
    public var format: Format
    /// Fraction of exchanges logged, in (0, 1].
    public var sample: Double

    public init(path: String, format: Format = .logfmt, sample: Double = 1) {
        self.path = path
        self.format = format
        self.sample = sample
    }
}

/// The whole validated configuration file.
public struct ProxyConfig: Sendable, Equatable {
    /// Address the proxy listens on for clients (`proxy.hostname`).
    public var proxyHost = "0.0.0.0"
    /// Port the proxy listens on (`proxy.port`); 0 picks a free port.
    public var proxyPort = 1235
    /// The client listeners (`proxy.listeners`); nil: one plain listener on `proxyPort`.
    public var listeners: [ListenerConfig]?
    /// Address of the REST API (`configService.hostname`), loopback by default.
    public var adminHost = "127.0.0.1"
    /// Port of the REST API (`configService.port`); 0 picks a free port.
    public var adminPort = 9090
    /// Bearer token the REST API requires when set (`configService.token`).
    public var adminToken: String?
    /// TLS on the REST API's listener (`configService.tls`, the same object as a listener's
    /// `tls`); nil: plain HTTP.
    public var adminTLS: TLSListenerConfig?
    /// The default service's clusters in file order (`cluster`/`clusters`); at least one
    /// unless `services` are given.
    public var clusters: [ClusterSpec]
    /// The other services with their clusters (`services`), in file order.
    public var services: [ServiceConfig] = []
    /// The default service's own settings (cookies) when `services` names it.
    public var defaultService: ServiceSpec?
    /// Release groups' settings (`releaseGroups`).
    public var releaseGroups: [String: ReleaseGroupSpec] = [:]
    /// Reactor thread count; nil means one per online CPU.
    public var workers: Int?
    /// Deadlines (`proxy.timeouts`).
    public var timeouts = Timeouts()
    /// Limits (`proxy.limits`).
    public var limits = Limits()
    /// Refusals beyond the HTTP grammar (`proxy.requestBodies`, `proxy.requestHeaders`).
    public var requestRules = RequestRules()
    /// The access log; nil (the default) when off.
    public var accessLog: AccessLogSettings?
    /// Routing cookie names (`cookies`).
    public var cookieNames = CookieNames()
    /// GRADUAL: how long a client without fetch metadata must be quiet before it moves to
    /// the latest version (`cookies.moveAfterIdleSeconds`; 0 moves it at once, as in 2014).
    public var moveAfterIdleSeconds = 2.0
    /// When a cluster is marked failed (`rollback`).
    public var rollback = RollbackPolicy()
    /// How many recent CONCURRENT divergences the API keeps (`comparisons.kept`).
    public var comparisonsKept = 100
    /// Response headers (lower-cased) that CONCURRENT comparisons ignore (`comparisons.ignoreHeaders`);
    /// nil keeps the default list (Date, Server, Set-Cookie, Age, Expires, Last-Modified, ETag, X-Request-Id).
    public var comparisonIgnoredHeaders: Set<String>?
    /// Self-upgrade: how long the old process may take to finish busy connections after its
    /// successor took over (`upgrade.drainSeconds`); then it closes what remains and exits.
    public var upgradeDrainSeconds = 300.0
    /// Directory of the durable control-plane state (`state.dir`); nil: changes live in memory.
    public var stateDir: String?
    /// Journal records after which the state is compacted into a snapshot (`state.compactAfterRecords`).
    public var compactAfterRecords = 1000
    /// The fleet's shared store (`"state": {"store": "etcd", …}`); nil: the file store.
    public var etcd: EtcdStateConfig?
    /// Log level name, upper case (`logLevel`); the command-line flag wins when given.
    public var logLevel: String?
    /// Re-resolution of backend names and the hosts file (`resolver`).
    public var resolver = ResolverSettings()

    /// Creates a configuration with defaults around the given clusters.
    public init(clusters: [ClusterSpec]) {
        self.clusters = clusters
    }
}

/// `"state": {"store": "etcd", "endpoints": [...], "prefix": "/switchyard/", "instance": "name"}`:
/// several instances share their control-plane state through etcd.
public struct EtcdStateConfig: Equatable, Sendable {
    /// Client URLs of the etcd members, `http://host:port`.
    public var endpoints: [String]
    /// Key prefix of this fleet.
    public var prefix: String
    /// This instance's name, unique in the fleet.
    public var instance: String
    /// TTL of each instance's lease in seconds (`leaseSeconds`, 2...60): a dead leader is
    /// replaced within it.
    public var leaseSeconds: Int

    public init(endpoints: [String], prefix: String = "/switchyard/", instance: String, leaseSeconds: Int = 5) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.instance = instance
        self.leaseSeconds = leaseSeconds
    }
}
