import Dispatch
import Locks
import Observability
import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// The data plane: N workers, each a reactor thread with its own `SO_REUSEPORT` listener.
public final class ProxyServer: Sendable {
    public let workers: [Worker]
    public let metrics: ProxyMetrics
    /// The port the main listener is bound to (useful after binding port 0); 0 without one.
    public let port: Int
    /// The listeners besides the main one, with the ports they are bound to, in order.
    public let listeners: [(port: Int, tls: TLSEndpoint?)]
    let threads = Lock<[pthread_t]>([])
    /// The worker that adopts the next handed-over connection.
    let adoptNext = Lock(0)
    private let current: Lock<Snapshot>
    private let settings: ProxySettings

    /// Binds one listener per worker (all on the same address) and builds the workers.
    /// `address` is the main (plain) listener, nil for none; each of `extra` gets one socket
    /// per worker too. Throws when an address cannot be bound.
    public convenience init(listen address: SocketAddress?, workers count: Int, settings: ProxySettings, snapshot: Snapshot,
                            metrics: ProxyMetrics, listeners extra: [ListenerSpec] = []) throws(SyscallError) {
        /// One socket per worker on `address`, all on the port the first one got (port 0).
        func bindAll(_ address: SocketAddress) throws(SyscallError) -> [Int32] {
            var fds: [Int32] = []
            var bound = address
            for _ in 0..<max(1, count) {
                let fd = try Socket.listen(bound, reusePort: true)
                if fds.isEmpty { bound = try Socket.localAddress(fd) }
                fds.append(fd)
            }
            return fds
        }
        let main = try address.map { (a) throws(SyscallError) in try bindAll(a) } ?? [Int32](repeating: -1, count: max(1, count))
        var others: [(fds: [Int32], tls: TLSEndpoint?)] = []
        for spec in extra { others.append((try bindAll(spec.address), spec.tls)) }
        try self.init(listeners: main, extra: others, settings: settings, snapshot: snapshot, metrics: metrics)
    }

    /// Builds one worker per main listener already bound (-1: no main listener), each also
    /// serving its socket of every `extra` listener. A self-upgrade's successor inherits them.
    public init(listeners fds: [Int32], extra: [(fds: [Int32], tls: TLSEndpoint?)] = [], settings: ProxySettings, snapshot: Snapshot,
                metrics: ProxyMetrics) throws(SyscallError) {
        port = fds.first.map { $0 >= 0 } == true ? try Socket.localAddress(fds[0]).port : 0
        var bound: [(port: Int, tls: TLSEndpoint?)] = []
        for listener in extra { bound.append((try Socket.localAddress(listener.fds[0]).port, listener.tls)) }
        listeners = bound
        self.metrics = metrics
        self.settings = settings
        current = Lock(snapshot)
        var made: [Worker] = []
        for (i, fd) in fds.enumerated() {
            let loop = try EventLoop(id: i)
            let worker = Worker(id: i, loop: loop, listenerFD: fd, settings: settings, metrics: metrics, snapshot: snapshot, workers: fds.count)
            for listener in extra { worker.addListener(fd: listener.fds[i], tls: listener.tls) }
            made.append(worker)
        }
        workers = made
    }

    /// Starts one thread per worker.
    public func start() {
        let started = workers.map { worker in
            ReactorThread.start {
                do {
                    try worker.start()
                } catch {
                    Log.critical("worker_start_failed", ["worker": String(worker.id), "error": "\(error)"])
                    return
                }
                worker.loop.run()
            }
        }
        threads.withLock { $0 = started }
    }

    /// The snapshot most recently published.
    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Publishes a new snapshot to every worker (each adopts it between events).
    public func publish(_ snapshot: Snapshot) {
        current.withLock { $0 = snapshot }
        for worker in workers {
            worker.loop.execute { worker.adopt(snapshot) }
        }
    }

    /// Hands reloaded settings to every worker; each adopts them between events. Returns once
    /// every worker has (so a reload that says it is done is in force for the next request).
    /// Called from the control thread, never from a worker.
    public func update(_ settings: ProxySettings) {
        let pending = Lock(workers.count)
        let done = DispatchSemaphore(value: 0)
        for worker in workers {
            worker.loop.execute {
                worker.adopt(settings: settings)
                if pending.withLock({ $0 -= 1; return $0 == 0 }) { done.signal() }
            }
        }
        // A worker whose loop has stopped never runs the task: do not wait forever.
        _ = done.wait(timeout: .now() + 5)
    }

    /// Graceful stop: every worker stops accepting, finishes exchanges in flight (bounded by
    /// the drain time), then its loop exits. Returns once all worker threads have ended.
    public func stopAndWait() {
        let drain = settings.drainNanos
        for worker in workers {
            worker.loop.execute {
                worker.beginDrain(deadlineNanos: drain) { worker.loop.stop() }
            }
        }
        let started = threads.withLock { $0 }
        for thread in started { ReactorThread.join(thread) }
    }
}
