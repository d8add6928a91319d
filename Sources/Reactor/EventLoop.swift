import Locks
import Syscalls
import Synchronization

/// Something registered with an event loop for readiness events on one descriptor.
public protocol EventHandler: AnyObject {
    /// Called on the loop's thread when `fd` is ready. Must not throw or block.
    func handleEvent(fd: Int32, events: EpollEvents)
}

/// Something with deadlines, checked by the loop's periodic sweep.
public protocol DeadlineHandler: AnyObject {
    /// Position in the loop's sweep list (managed by the loop; -1 when not listed).
    var sweepIndex: Int { get set }
    /// Called on the loop's thread about every `EventLoop.sweepInterval`; `now` is monotonic nanoseconds.
    func checkDeadline(now: UInt64)
}

/// One single-threaded epoll reactor. Everything it owns is touched only from its own
/// thread, except `execute(_:)` and `stop()`, which other threads use to hand it work.
///
/// Registrations carry a generation in the upper 32 bits of the epoll token, so a late
/// event for a descriptor number that was closed and reused is recognised and dropped.
public final class EventLoop: @unchecked Sendable {
    private struct Slot {
        var handler: EventHandler?
        var generation: UInt32 = 0
    }

    /// The loop's index (0-based), used in logs and metrics.
    public let id: Int
    /// How often deadlines are checked.
    public static let sweepInterval: UInt64 = 100_000_000

    private var epoll: Epoll
    private var slots: [Slot] = []
    private let wakeFD: Int32
    private let mailbox = Lock<[@Sendable () -> Void]>([])
    private let stopping = Atomic<Bool>(false)
    private var sweepList: [DeadlineHandler] = []
    private var lastSweep: UInt64 = 0
    private var timers: [(deadline: UInt64, action: () -> Void)] = []

    /// Monotonic time of the current loop turn, in nanoseconds.
    public private(set) var now: UInt64 = Clock.nanoseconds()

    /// Creates the epoll instance and the wake-up eventfd.
    public init(id: Int) throws(SyscallError) {
        self.id = id
        epoll = try Epoll()
        wakeFD = try EventFD.make()
        try epoll.add(wakeFD, interest: .readable, token: UInt64(UInt32(bitPattern: wakeFD)))
    }

    deinit { Socket.close(wakeFD) }

    // MARK: Registration

    /// Registers `fd` edge-triggered for reading, writing and hang-ups.
    public func register(_ fd: Int32, handler: EventHandler) throws(SyscallError) {
        try add(fd, handler: handler, interest: [.readable, .writable, .readHangup, .edgeTriggered])
    }

    /// Registers `fd` level-triggered for reading only (listeners).
    public func registerListener(_ fd: Int32, handler: EventHandler) throws(SyscallError) {
        try add(fd, handler: handler, interest: .readable)
    }

    /// Records the handler under a new generation and adds `fd` to epoll with that token.
    private func add(_ fd: Int32, handler: EventHandler, interest: EpollEvents) throws(SyscallError) {
        let index = Int(fd)
        if index >= slots.count { slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, slots.count))) }
        slots[index].generation &+= 1
        slots[index].handler = handler
        let token = UInt64(slots[index].generation) << 32 | UInt64(UInt32(bitPattern: fd))
        try epoll.add(fd, interest: interest, token: token)
    }

    /// Changes which handler receives `fd`'s events (a pooled backend connection changing owner).
    public func reassign(_ fd: Int32, to handler: EventHandler) {
        slots[Int(fd)].handler = handler
    }

    /// Stops events for `fd` and forgets its handler. Call before closing the descriptor.
    public func unregister(_ fd: Int32) {
        let index = Int(fd)
        guard index < slots.count else { return }
        slots[index].handler = nil
        epoll.remove(fd)
    }

    /// Forgets `fd`'s handler and closes the descriptor. No `epoll_ctl` is needed: closing the
    /// only descriptor of a socket removes it from the epoll set, an event already fetched for
    /// it finds no handler, and one for a later socket given the same number carries an older
    /// generation. One system call per closed connection instead of two.
    public func close(_ fd: Int32) {
        let index = Int(fd)
        if index < slots.count { slots[index].handler = nil }
        Socket.close(fd)
    }

    /// Stops listening for readability on a listener (used while out of descriptors, and on stop).
    public func pauseListener(_ fd: Int32) { epoll.remove(fd) }

    // MARK: Deadlines and timers

    /// Adds `handler` to the periodic deadline sweep.
    public func addToSweep(_ handler: DeadlineHandler) {
        guard handler.sweepIndex < 0 else { return }
        handler.sweepIndex = sweepList.count
        sweepList.append(handler)
    }

    /// Removes `handler` from the sweep (O(1): the last entry takes its place).
    public func removeFromSweep(_ handler: DeadlineHandler) {
        let index = handler.sweepIndex
        guard index >= 0, index < sweepList.count, sweepList[index] === handler else { return }
        let last = sweepList.removeLast()
        if index < sweepList.count {
            sweepList[index] = last
            last.sweepIndex = index
        }
        handler.sweepIndex = -1
    }

    /// Runs `action` on this loop after `nanoseconds` (coarse: at the next sweep after the deadline).
    public func schedule(after nanoseconds: UInt64, _ action: @escaping () -> Void) {
        timers.append((Clock.nanoseconds() &+ nanoseconds, action))
    }

    // MARK: Cross-thread

    /// Queues `task` to run on this loop's thread and wakes the loop. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        mailbox.withLock { $0.append(task) }
        EventFD.signal(wakeFD)
    }

    /// Asks the loop to return from `run()` after the current turn. Safe from any thread.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        EventFD.signal(wakeFD)
    }

    /// True once `stop()` was called.
    public var isStopping: Bool { stopping.load(ordering: .acquiring) }

    // MARK: Running

    /// Runs the loop on the calling thread until `stop()`.
    public func run() {
        while !stopping.load(ordering: .relaxed) {
            runOnce(timeoutMillis: 100)
        }
        drainMailbox()
        // Handlers refer back to the loop; forgetting them breaks those cycles so that
        // everything is released when the owners let go.
        slots.removeAll()
        sweepList.removeAll()
        timers.removeAll()
    }

    /// One turn: wait for events (at most `timeoutMillis`), dispatch them, run queued tasks, sweep deadlines.
    /// Tests drive a loop with this, one turn at a time.
    public func runOnce(timeoutMillis: Int32) {
        let count: Int
        do {
            count = try epoll.wait(timeoutMillis: timeoutMillis)
        } catch {
            count = 0 // epoll_wait fails only on a programming error; keep the loop alive.
        }
        now = Clock.nanoseconds()
        for i in 0..<count {
            let (token, events) = epoll.event(at: i)
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: token))
            if fd == wakeFD {
                EventFD.drain(wakeFD)
                continue
            }
            let generation = UInt32(truncatingIfNeeded: token >> 32)
            let index = Int(fd)
            guard index < slots.count, slots[index].generation == generation,
                  let handler = slots[index].handler else { continue }
            handler.handleEvent(fd: fd, events: events)
        }
        drainMailbox()
        now = Clock.nanoseconds()
        if now &- lastSweep >= Self.sweepInterval {
            lastSweep = now
            sweep()
        }
    }

    private func drainMailbox() {
        let tasks = mailbox.withLock { tasks -> [@Sendable () -> Void] in
            let taken = tasks
            tasks.removeAll(keepingCapacity: true)
            return taken
        }
        for task in tasks { task() }
    }

    private func sweep() {
        // Iterate backwards: a handler may remove itself (swap with last) during the call.
        var i = sweepList.count - 1
        while i >= 0 {
            if i < sweepList.count { sweepList[i].checkDeadline(now: now) }
            i -= 1
        }
        if !timers.isEmpty {
            let due = timers.filter { $0.deadline <= now }
            timers.removeAll { $0.deadline <= now }
            for timer in due { timer.action() }
        }
    }

    /// Number of handlers in the deadline sweep (tests, status).
    public var sweepCount: Int { sweepList.count }
}
