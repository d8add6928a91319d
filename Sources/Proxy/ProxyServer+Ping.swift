import Dispatch
import Locks

extension ProxyServer {
    /// Asks every worker to answer a ping through its mailbox and waits at most `timeoutNanos`
    /// for the answers. Returns, per worker (by id), whether it answered in time: a worker whose
    /// loop is stuck in a long event, or whose thread has died, answers false. Called from the
    /// control thread, never from a worker (a worker pinging itself would wait for itself).
    public func ping(timeoutNanos: UInt64) -> [Bool] {
        let answered = Lock([Bool](repeating: false, count: workers.count))
        let pending = Lock(workers.count)
        let done = DispatchSemaphore(value: 0)
        for (index, worker) in workers.enumerated() {
            worker.loop.execute {
                answered.withLock { $0[index] = true }
                if pending.withLock({ $0 -= 1; return $0 == 0 }) { done.signal() }
            }
        }
        _ = done.wait(timeout: .now() + .nanoseconds(Int(min(timeoutNanos, UInt64(Int.max)))))
        return answered.withLock { $0 }
    }
}
