import Comparator
import HTTP1
import Routing

/// Everything a worker needs to know that does not change per snapshot.
public struct ProxySettings: Sendable {
    /// A client that has not sent a complete head within this time gets 408 and is closed.
    public var clientHeadNanos: UInt64 = 10_000_000_000
    /// A client on a TLS listener that has not completed its handshake within this time is closed.
    public var clientHandshakeNanos: UInt64 = 10_000_000_000
    /// An idle keep-alive client connection is closed after this time.
    public var clientIdleNanos: UInt64 = 60_000_000_000
    /// A backend connect that has not completed within this time counts as a failure.
    public var backendConnectNanos: UInt64 = 5_000_000_000
    /// A backend that has not sent a response head within this time: 504.
    public var backendResponseNanos: UInt64 = 60_000_000_000
    /// A body transfer (either direction) that makes no progress for this time is aborted.
    public var bodyIdleNanos: UInt64 = 60_000_000_000
    /// How long a backend that refused or timed out a connect is skipped.
    public var backendDownNanos: UInt64 = 2_000_000_000
    /// Idle pooled backend connections older than this are closed.
    public var backendIdleNanos: UInt64 = 30_000_000_000
    /// Per-worker cap on idle connections kept per backend.
    public var maxIdlePerBackend = 512
    /// Limits for the head parser (for requests: also what a field name with `_` gets).
    public var headLimits = HeadLimits()
    /// GET and HEAD requests with a body (Content-Length above 0, or chunked) get 400.
    public var refuseBodiesOnGetAndHead = true
    /// Size of each session buffer (the head must fit in it).
    public var bufferSize = 16384
    /// Requested pipe size for spliced bodies.
    public var pipeSize = 1 << 20
    /// Maximum concurrent client connections per process (split evenly across workers).
    public var maxConnections = 10000
    /// Cookie names (2014 defaults).
    public var cookieNames = CookieNames()
    /// GRADUAL: quiet time after which a client without fetch metadata moves (ms).
    public var moveAfterIdleMillis: Int64 = 2000
    /// When the latest cluster is marked failed.
    public var rollback = RollbackPolicy()
    /// CONCURRENT mode: where compared exchanges are recorded.
    public var comparisons = ComparisonLog(capacity: 100)
    /// CONCURRENT mode: which response headers are compared.
    public var headerPolicy = HeaderPolicy()
    /// CONCURRENT mode: how long the response that is not served may take to drain.
    public var shadowDrainNanos: UInt64 = 30_000_000_000

    /// Where access log lines go; nil when the access log is off.
    public var accessLog: AccessLogSink?

    /// How long in-flight exchanges may take to finish on a graceful stop.
    public var drainNanos: UInt64 = 10_000_000_000

    public init() {}
}
