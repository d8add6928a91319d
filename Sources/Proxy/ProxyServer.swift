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
    /// The port the listeners are bound to (useful after binding port 0).
    public let port: Int
    let threads = Lock<[pthread_t]>([])
    /// The worker that adopts the next handed-over connection.
    let adoptNext = Lock(0)
    private let current: Lock<Snapshot>
    private let settings: ProxySettings

    /// Binds one listener per worker (all on the same address) and builds the workers.
    /// Throws when the address cannot be bound.
    public convenience init(listen address: SocketAddress, workers count: Int, settings: ProxySettings, snapshot: Snapshot, metrics: ProxyMetrics) throws(SyscallError) {
        var fds: [Int32] = []
        var bound = address
        for _ in 0..<max(1, count) {
            let fd = try Socket.listen(bound, reusePort: true)
            if fds.isEmpty {
                // Port 0: every further listener must share the port the first one got.
                bound = try Socket.localAddress(fd)
            }
            fds.append(fd)
        }
        try self.init(listeners: fds, settings: settings, snapshot: snapshot, metrics: metrics)
    }

    /// Builds one worker per listener already bound (a self-upgrade's successor inherits them).
    public init(listeners fds: [Int32], settings: ProxySettings, snapshot: Snapshot, metrics: ProxyMetrics) throws(SyscallError) {
        port = try Socket.localAddress(fds[0]).port
        self.metrics = metrics
        self.settings = settings
        current = Lock(snapshot)
        var made: [Worker] = []
        for (i, fd) in fds.enumerated() {
            let loop = try EventLoop(id: i)
            made.append(Worker(id: i, loop: loop, listenerFD: fd, settings: settings, metrics: metrics, snapshot: snapshot, workers: fds.count))
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
