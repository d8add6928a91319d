import Foundation

/// A value behind a pthread mutex (NSLock). The test harness uses this rather than
/// `Synchronization.Mutex`, whose futex-based lock ThreadSanitizer cannot see, so that the
/// suite runs clean under `--sanitize=thread`.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    /// Runs `body` with exclusive access to the value.
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
