import Reactor
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// A timerfd armed at absolute CLOCK_MONOTONIC times, so a reactor wakes within microseconds of a
/// request's intended send time (epoll_wait's millisecond timeout would add up to 1 ms to every
/// latency measured from that time).
///
/// Swift's Glibc module does not import <sys/timerfd.h>, so the two calls are looked up in the C
/// library at run time; when they are missing the timer is nil and callers fall back to
/// millisecond timeouts.
final class PreciseTimer: EventHandler {
    private typealias Create = @convention(c) (Int32, Int32) -> Int32
    private typealias SetTime = @convention(c) (Int32, Int32, UnsafePointer<itimerspec>, UnsafeMutablePointer<itimerspec>?) -> Int32

    let fd: Int32
    private let setTime: SetTime
    /// The time it is armed for (monotonic ns), `.max` when disarmed or fired.
    private(set) var armedAt: UInt64 = .max

    /// Creates the timer and registers it with `loop`; nil when timerfd is unavailable.
    init?(loop: EventLoop) {
        guard let library = dlopen(nil, RTLD_NOW),
              let create = dlsym(library, "timerfd_create"),
              let set = dlsym(library, "timerfd_settime") else { return nil }
        let timerCreate = unsafeBitCast(create, to: Create.self)
        setTime = unsafeBitCast(set, to: SetTime.self)
        // TFD_NONBLOCK = O_NONBLOCK (0o4000), TFD_CLOEXEC = O_CLOEXEC (0o2000000).
        fd = timerCreate(Int32(CLOCK_MONOTONIC), 0o4000 | 0o2000000)
        guard fd >= 0 else { return nil }
        do {
            try loop.register(fd, handler: self)
        } catch {
            Socket.close(fd)
            return nil
        }
    }

    deinit { Socket.close(fd) }

    /// Arms the timer to expire at `deadline` (monotonic nanoseconds), replacing any earlier setting.
    @inline(__always)
    func arm(at deadline: UInt64) {
        guard deadline != armedAt else { return }
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(deadline / 1_000_000_000)
        spec.it_value.tv_nsec = Int(deadline % 1_000_000_000)
        if spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0 { spec.it_value.tv_nsec = 1 }  // 0 would disarm
        _ = setTime(fd, 1 /* TFD_TIMER_ABSTIME */, &spec, nil)
        armedAt = deadline
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        var expirations: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &expirations) { Glibc.read(fd, $0.baseAddress, 8) }
        armedAt = .max
    }
}
