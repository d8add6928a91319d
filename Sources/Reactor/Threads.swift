#if canImport(Glibc)
import Glibc
#endif

/// Starts OS threads for reactors. Kept free of actor isolation on purpose: a closure
/// that captured main-actor state would trap when run on another thread.
public enum ReactorThread {
    private final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }

    /// Starts a detached-joinable thread running `body`; returns its handle for `join`.
    public static func start(_ body: @escaping @Sendable () -> Void) -> pthread_t {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        return thread
    }

    /// Waits for a thread started with `start` to finish.
    public static func join(_ thread: pthread_t) {
        _ = pthread_join(thread, nil)
    }
}
