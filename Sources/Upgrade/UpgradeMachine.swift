/// The running process's side of a self-upgrade, as data: events in, actions out; the driver
/// (`Upgrader` in the executable) performs the actions. No I/O, no clock of its own — tests
/// feed events with times and check the actions.
///
/// ```
/// serving ──request──▶ starting ──successor ready──▶ draining ──drained / drain time──▶ exited
///    ▲                    │
///    └── spawn failed, refused, successor exited, not ready in time (abandon) ──┘
/// ```
public struct UpgradeMachine: Sendable {
    /// One upgrade attempt.
    public struct Attempt: Equatable, Sendable {
        /// Numbers the attempt (the predecessor's serial + 1, then + 1 per attempt).
        public var serial: UInt64
        /// When it was asked for (monotonic nanoseconds).
        public var requestedAt: UInt64
        /// The successor's pid once started (0 before).
        public var successorPID: Int32 = 0
        /// When the successor said it was ready (0 before).
        public var readyAt: UInt64 = 0
    }

    /// What the process is doing.
    public enum State: Equatable, Sendable {
        /// Serving; no upgrade running.
        case serving
        /// The successor is starting; the state is frozen (no changes) until it is ready or
        /// the attempt is abandoned.
        case starting(Attempt)
        /// The successor serves; this process no longer accepts, hands over idle client
        /// connections and finishes busy ones until none is left or the drain time ends.
        case draining(Attempt)
        /// Everything is handed over or closed: the process exits 0.
        case exited
    }

    /// Something that happened.
    public enum Event: Equatable, Sendable {
        /// `switchyard upgrade`, `POST /upgrade` or `SIGUSR2`.
        case requested(now: UInt64)
        /// The successor's process was started.
        case spawned(pid: Int32)
        /// The successor could not be started at all (no such binary, spawn failed).
        case spawnFailed(reason: String)
        /// The successor says it serves on the inherited listeners.
        case successorReady(now: UInt64)
        /// The successor refused the hand-over (configuration, state, protocol version).
        case successorRefused(reason: String)
        /// The successor ended (or closed the hand-over socket) before it was ready.
        case successorExited(reason: String)
        /// Every client connection is handed over or finished.
        case drained(now: UInt64)
        /// Time passes (checked about every 100 ms).
        case tick(now: UInt64)
    }

    /// What the driver must do.
    public enum Action: Equatable, Sendable {
        /// Answer the request with 409: another upgrade is under way.
        case refuse(reason: String)
        /// Freeze the state, start the successor and send it the offer with `serial`.
        case startSuccessor(serial: UInt64)
        /// Give up on the successor (kill it if it runs), unfreeze, serve on; log one line
        /// and report the failure with `reason`.
        case abandon(serial: UInt64, reason: String)
        /// Stop accepting, tell the successor it owns the state, start handing over idle
        /// connections and close pooled backend connections.
        case commit(serial: UInt64)
        /// The drain time is over: close the connections still busy.
        case closeRemaining
        /// Log the upgrade's line (counts, durations) and exit 0.
        case exit(serial: UInt64, readyAfterNanos: UInt64, drainedAfterNanos: UInt64)
    }

    /// How long the successor has to say it is ready.
    public var readyTimeoutNanos: UInt64
    /// How long busy connections may take to finish after the commit.
    public var drainNanos: UInt64
    public private(set) var state = State.serving
    /// The serial the next attempt gets.
    public private(set) var nextSerial: UInt64

    /// A machine for a process whose own upgrade serial was `serial` (0 when started by hand).
    public init(serial: UInt64 = 0, readyTimeoutNanos: UInt64 = 10_000_000_000, drainNanos: UInt64 = 300_000_000_000) {
        self.nextSerial = serial + 1
        self.readyTimeoutNanos = readyTimeoutNanos
        self.drainNanos = drainNanos
    }

    /// True between a request and the end of the attempt (the state must not change).
    public var isBusy: Bool { state != .serving }

    /// Feeds one event; returns what to do, in order.
    public mutating func handle(_ event: Event) -> [Action] {
        switch (state, event) {
        case (.serving, .requested(let now)):
            let attempt = Attempt(serial: nextSerial, requestedAt: now)
            nextSerial += 1
            state = .starting(attempt)
            return [.startSuccessor(serial: attempt.serial)]
        case (.starting, .requested), (.draining, .requested):
            return [.refuse(reason: "an upgrade is already in progress")]
        case (.exited, .requested):
            return [.refuse(reason: "this process has handed over and is exiting")]

        case (.starting(var attempt), .spawned(let pid)):
            attempt.successorPID = pid
            state = .starting(attempt)
            return []
        case (.starting(let attempt), .spawnFailed(let reason)),
             (.starting(let attempt), .successorRefused(let reason)),
             (.starting(let attempt), .successorExited(let reason)):
            state = .serving
            return [.abandon(serial: attempt.serial, reason: reason)]
        case (.starting(var attempt), .successorReady(let now)):
            attempt.readyAt = now
            state = .draining(attempt)
            return [.commit(serial: attempt.serial)]
        case (.starting(let attempt), .tick(let now)):
            guard now &- attempt.requestedAt >= readyTimeoutNanos else { return [] }
            state = .serving
            return [.abandon(serial: attempt.serial,
                             reason: "the new process was not ready within \(readyTimeoutNanos / 1_000_000_000) s")]

        case (.draining(let attempt), .drained(let now)):
            state = .exited
            return [.exit(serial: attempt.serial, readyAfterNanos: attempt.readyAt &- attempt.requestedAt,
                          drainedAfterNanos: now &- attempt.readyAt)]
        case (.draining(let attempt), .tick(let now)):
            guard now &- attempt.readyAt >= drainNanos else { return [] }
            state = .exited
            return [.closeRemaining,
                    .exit(serial: attempt.serial, readyAfterNanos: attempt.readyAt &- attempt.requestedAt,
                          drainedAfterNanos: now &- attempt.readyAt)]

        default:
            // Late or stray events (a successor exiting after the commit, a tick while
            // serving) change nothing.
            return []
        }
    }
}
