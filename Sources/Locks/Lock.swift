#if canImport(Glibc)
import Glibc
#endif

/// A value behind a POSIX mutex.
///
/// Used instead of `Synchronization.Mutex` for the few pieces of state shared between
/// threads off the hot path (mailboxes, the cluster registry, the comparison log): the
/// sanitizers intercept `pthread_mutex_*` and so see this lock, while the futex inside
/// `Mutex` is invisible to ThreadSanitizer and made it report races that were not there.
/// The mutex's memory is owned here and never exposed.
public final class Lock<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value and returns what it returns.
    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
