import Observability
import Reactor
import Syscalls

/// One backend known to a worker: its address, its passive health, and its idle
/// keep-alive connections. Identified by a small integer that never changes for the
/// worker's lifetime, so the hot path indexes arrays instead of hashing addresses.
struct BackendSlot {
    let address: SocketAddress
    init(address: SocketAddress) {
        self.address = address
    }
    /// Monotonic time until which the backend is skipped (refused or timed-out connect).
    var downUntil: UInt64 = 0
    /// Idle connections, most recently used last (reused first: their buffers are warm).
    var idle: [(fd: Int32, since: UInt64)] = []
    /// Consecutive connect failures (for the log line on recovery).
    var failures = 0
    /// Reached over TLS (see `Worker.tlsTargets`).
    var secure = false
}

/// A connection to a backend while an exchange uses it.
struct BackendLink {
    let fd: Int32
    let backendID: Int
    /// Taken from the idle pool (a failure before any response byte may be retried).
    let reused: Bool
    /// Non-blocking connect still in progress (to a TLS backend: until its handshake is done).
    var connecting: Bool
    var ready = Readiness()
    /// A connection to a TLS backend (its TLS is the worker's `backendTLS[fd]`); the plain
    /// path tests only this flag.
    var secure = false
}
