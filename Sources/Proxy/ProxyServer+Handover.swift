import Dispatch
import Locks
import Reactor
import Syscalls

extension ProxyServer {
    /// The workers' listeners, in worker order (handed to a successor process).
    /// Read before `stopAccepting`; call from the control side while the workers run.
    public var listenerDescriptors: [Int32] { workers.map(\.listenerDescriptor) }

    /// Runs `task` on every worker and returns once all have (at most `timeout` seconds).
    private func onEveryWorker(timeout: Double = 5, _ task: @escaping @Sendable (Worker) -> Void) {
        let pending = Lock(workers.count)
        let done = DispatchSemaphore(value: 0)
        for worker in workers {
            worker.loop.execute {
                task(worker)
                if pending.withLock({ $0 -= 1; return $0 == 0 }) { done.signal() }
            }
        }
        _ = done.wait(timeout: .now() + timeout)
    }

    /// Every worker stops accepting; returns once none does. The listening sockets live on in
    /// the successor, which accepts from the same queues.
    public func stopAccepting() {
        onEveryWorker { $0.stopAccepting() }
    }

    /// Hands every client connection to `sink` as it goes idle (see `Worker.beginHandover`).
    /// Returns once every worker has given the sink its idle connections. `done` runs once,
    /// with the summed counts, when no worker has a connection left; each worker's loop then stops.
    public func beginHandover(to sink: ConnectionSink, done: @escaping @Sendable (HandoverCounts) -> Void) {
        let remaining = Lock((workers.count, HandoverCounts()))
        onEveryWorker { worker in
                worker.beginHandover(to: sink) { counts in
                    worker.loop.stop()
                    let total: HandoverCounts? = remaining.withLock { state in
                        state.0 -= 1
                        state.1 = state.1 + counts
                        return state.0 == 0 ? state.1 : nil
                    }
                    if let total { done(total) }
                }
        }
    }

    /// The drain time is over: every worker closes the connections still busy.
    public func closeRemaining() {
        for worker in workers { worker.loop.execute { worker.closeRemaining() } }
    }

    /// Successor side: gives a handed-over client connection to the next worker in turn.
    public func adoptConnection(fd: Int32, clientAddress: String) {
        let index = adoptNext.withLock { n -> Int in
            n = (n + 1) % workers.count
            return n
        }
        let worker = workers[index]
        worker.loop.execute { worker.adoptConnection(fd: fd, clientAddress: clientAddress) }
    }

    /// Waits until every worker thread has ended (after a hand-over stopped their loops).
    public func join() {
        let started = threads.withLock { $0 }
        for thread in started { ReactorThread.join(thread) }
    }
}
