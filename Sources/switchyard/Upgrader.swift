import Admin
import Comparator
import Config
import Dispatch
import Locks
import Observability
import Proxy
import Reactor
import Store
import Synchronization
import Syscalls
import Upgrade
#if canImport(Glibc)
import Glibc
#endif

/// The environment variable that tells a successor process which descriptor is its
/// hand-over socket.
let handoverVariable = "SWITCHYARD_UPGRADE_FD"

/// The path of the running binary as installed (read at start-up: a package manager that
/// replaces the file leaves `/proc/self/exe` naming the old, deleted one, while this path
/// names the new file).
let installedBinaryPath: String = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return CommandLine.arguments.first ?? "switchyard" }
    var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // Replaced before this was first read: the kernel marks the old file; its path is the new one.
    if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
    return path
}()

/// Drives a self-upgrade of this process (see `UpgradeMachine` for the states): starts the
/// new binary with this process's arguments, offers it the listeners, the state and the state
/// directory's lock, and once it is ready stops accepting and hands over every client
/// connection as it goes idle. Also the control plane's guard while an upgrade runs: state
/// changes through the API are held back (503) from the offer until the attempt ends, and the
/// once-a-second state ticks pause, so what the successor got stays true.
///
/// In a successor, the same object starts frozen and thaws when the predecessor commits.
final class Upgrader: @unchecked Sendable {
    /// A finished attempt, for `GET /upgrade`.
    struct Outcome: Sendable {
        var serial: UInt64
        var succeeded: Bool
        var reason: String
    }

    private let machine: Lock<UpgradeMachine>
    /// This process's own serial: the upgrade that started it (0 when started by hand).
    let serial: UInt64
    private let arguments: [String]
    private let outcome = Lock<Outcome?>(nil)
    /// State changes held back (an upgrade is under way, or this successor is not yet committed).
    private let frozenFlag: Atomic<Bool>
    /// The hand-over is complete: the process stops without touching the state.
    private let exitingFlag = Atomic<Bool>(false)
    /// `switchyard_upgrade_handover_total{what}` in this process (what it received as a successor).
    let received = Lock<[String: Int]>([:])

    // Set by `attach` once the process's parts exist.
    private var proxy: ProxyServer!
    private var control: ControlPlane!
    private var registry: ClusterRegistry!
    private var store: JournalStore?
    private var comparisons: ComparisonLog?

    init(serial: UInt64, arguments: [String], drainSeconds: Double, frozen: Bool) {
        self.serial = serial
        self.arguments = arguments
        self.machine = Lock(UpgradeMachine(serial: serial, drainNanos: UInt64(max(0, drainSeconds) * 1e9)))
        self.frozenFlag = Atomic(frozen)
    }

    /// Connects the parts the upgrade hands over; call once, before serving.
    func attach(proxy: ProxyServer, control: ControlPlane, registry: ClusterRegistry, store: JournalStore?, comparisons: ComparisonLog) {
        self.proxy = proxy
        self.control = control
        self.registry = registry
        self.store = store
        self.comparisons = comparisons
    }

    /// The comparison counts as the offer carries them.
    static func counts(_ totals: ComparisonLog.Totals) -> ComparisonCounts {
        ComparisonCounts(total: totals.total, divergent: totals.divergent, fallbacks: totals.fallbacks,
                         pairs: totals.pairs.map { .init(old: $0.old, new: $0.new, compared: $0.compared, divergent: $0.divergent, fallbacks: $0.fallbacks) })
    }

    /// The comparator's totals from the offer's counts.
    static func totals(_ counts: ComparisonCounts) -> ComparisonLog.Totals {
        var totals = ComparisonLog.Totals()
        totals.total = counts.total
        totals.divergent = counts.divergent
        totals.fallbacks = counts.fallbacks
        totals.pairs = counts.pairs.map { .init(old: $0.old, new: $0.new, compared: $0.compared, divergent: $0.divergent, fallbacks: $0.fallbacks) }
        return totals
    }

    /// True while state changes are held back.
    var isFrozen: Bool { frozenFlag.load(ordering: .acquiring) }
    /// True once everything was handed over (the process must stop without writing state).
    var isExiting: Bool { exitingFlag.load(ordering: .acquiring) }

    /// Lets state changes through again (a successor whose predecessor committed).
    func thaw() { frozenFlag.store(false, ordering: .releasing) }

    // MARK: The API

    /// The control plane's handler around the API: `/upgrade`'s answers, state changes held
    /// back while frozen, the hand-over counters added to `/metrics`.
    func wrap(_ api: AdminAPI) -> @Sendable (AdminRequest) -> AdminResponse {
        { [self] request in
            if isFrozen, request.method != "GET", request.method != "HEAD", request.path.hasPrefix("/configuration") {
                return .json(503, Array("{\"error\":\"a self-upgrade is in progress; state changes are held back until it ends, retry\"}\n".utf8))
            }
            var response = api.handle(request)
            if request.path == "/metrics", request.method == "GET", response.status == 200 {
                response.body += Array(metricsText().utf8)
            }
            return response
        }
    }

    /// `/upgrade`: POST starts one (202 with its serial, 409 while one runs, 400 for a bad
    /// binary); GET tells this process's pid and serial, its state and the last outcome.
    func handle(_ request: AdminRequest) -> AdminResponse {
        switch request.method {
        case "POST":
            var binary: String?
            if !request.body.isEmpty {
                guard let object = (try? JSONText.parse(request.body)) as? [String: Any] else {
                    return .json(400, Array("{\"error\":\"body: must be a JSON object, e.g. {\\\"binary\\\": \\\"/usr/local/bin/switchyard\\\"}\"}\n".utf8))
                }
                if let value = object["binary"] {
                    guard let path = value as? String, !path.isEmpty else {
                        return .json(400, Array("{\"error\":\"binary: must be a path\"}\n".utf8))
                    }
                    binary = path
                }
                if let unknown = object.keys.first(where: { $0 != "binary" }) {
                    return .json(400, JSONText.encode(["error": "\(unknown): unknown field (expected: binary)"]) + [10])
                }
            }
            switch start(binary: binary) {
            case .success(let serial):
                return .json(202, JSONText.encode(["serial": Int(serial), "pid": Int(getpid()), "state": "starting"]) + [10])
            case .failure(let refusal):
                return .json(refusal.status, JSONText.encode(["error": refusal.reason]) + [10])
            }
        case "GET":
            return .json(200, JSONText.encode(status()) + [10])
        default:
            return AdminResponse(status: 405, body: Array("method not allowed; use GET, POST\n".utf8), extraHeaders: ["Allow: GET, POST"])
        }
    }

    /// What `GET /upgrade` shows.
    func status() -> [String: Any] {
        let state: String = machine.withLock {
            switch $0.state {
            case .serving: "serving"
            case .starting: "starting"
            case .draining: "draining"
            case .exited: "exited"
            }
        }
        // A successor not yet committed says so: `switchyard upgrade` waits for "serving".
        var out: [String: Any] = ["pid": Int(getpid()), "serial": Int(serial),
                                  "state": state == "serving" && isFrozen ? "taking over" : state]
        if let last = outcome.withLock({ $0 }) {
            out["last"] = ["serial": Int(last.serial), "outcome": last.succeeded ? "handed over" : "failed", "reason": last.reason]
        }
        return out
    }

    /// The hand-over counters in Prometheus text.
    func metricsText() -> String {
        var out = "# HELP switchyard_upgrade_handover_total What this process received from its predecessor at a self-upgrade.\n"
        out += "# TYPE switchyard_upgrade_handover_total counter\n"
        let counts = received.withLock { $0 }
        for what in ["listener", "admin_listener", "state", "state_lock", "connection", "finished_in_predecessor", "closed_at_deadline"] {
            out += "switchyard_upgrade_handover_total{what=\"\(what)\"} \(counts[what] ?? 0)\n"
        }
        return out
    }

    // MARK: Starting

    struct Refusal: Error {
        var status: Int
        var reason: String
    }

    /// Starts an upgrade (API or SIGUSR2): the serial, or why not. Returns at once; the
    /// attempt runs on a thread of its own.
    func start(binary: String?) -> Result<UInt64, Refusal> {
        let path = binary ?? installedBinaryPath
        guard access(path, X_OK) == 0 else {
            return .failure(Refusal(status: 400, reason: "binary: \(path) is not an executable file"))
        }
        let actions = machine.withLock { $0.handle(.requested(now: Clock.nanoseconds())) }
        for action in actions {
            switch action {
            case .refuse(let reason):
                return .failure(Refusal(status: 409, reason: reason))
            case .startSuccessor(let serial):
                Log.notice("upgrade_started", ["serial": String(serial), "binary": path])
                // Held back from now: a change the API answers after this call must not slip
                // in before the attempt's thread captures the state.
                frozenFlag.store(true, ordering: .releasing)
                _ = ReactorThread.start { [self] in run(serial: serial, binary: path) }
                return .success(serial)
            default:
                break
            }
        }
        return .failure(Refusal(status: 409, reason: "an upgrade is already in progress"))
    }

    /// Feeds the machine; returns the actions.
    private func feed(_ event: UpgradeMachine.Event) -> [UpgradeMachine.Action] {
        machine.withLock { $0.handle(event) }
    }

    /// One attempt, on its own thread: freeze and capture the state, start the successor,
    /// offer, wait for its answer, then commit and hand over, or give up.
    private func run(serial: UInt64, binary: String) {
        let stateBytes = freezeAndCapture()
        var channel: Int32 = -1
        var child: Int32 = 0
        var actions: [UpgradeMachine.Action]
        do {
            let (mine, theirs) = try DescriptorChannel.pair()
            channel = mine
            child = try spawn(binary, channel: theirs)
            actions = feed(.spawned(pid: child))
            let offer = HandoverMessage.Offer(serial: serial, predecessorPID: getpid(), proxyListeners: proxy.workers.count,
                                              adminListener: true, stateLock: store != nil, state: stateBytes,
                                              comparisons: comparisons.map { Self.counts($0.totalsForHandover()).encoded() } ?? [])
            var fds = proxy.listenerDescriptors + [control.listenerDescriptor]
            if let store { fds.append(store.lockDescriptor) }
            try DescriptorChannel.send(channel, bytes: HandoverMessage.offer(offer).encoded(), descriptors: fds)
            actions += waitForAnswer(channel, child: child)
        } catch {
            actions = feed(child == 0 ? .spawnFailed(reason: "cannot start \(binary): \(error)")
                                      : .successorExited(reason: Self.endOf(child, else: "hand-over socket: \(error)")))
        }
        perform(actions, channel: channel, child: child)
    }

    /// Holds state changes back and returns the state as it stands, encoded: on the control
    /// thread, after one last tick, so no change is half-way.
    private func freezeAndCapture() -> [UInt8] {
        let captured = Lock<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
        control.loop.execute { [self] in
            frozenFlag.store(true, ordering: .releasing)
            registry.tick()
            captured.withLock { $0 = Records.encodeSnapshot(registry.storedState) }
            done.signal()
        }
        done.wait()
        return captured.withLock { $0 }
    }

    /// Starts `binary` with this process's arguments and the hand-over variable.
    private func spawn(_ binary: String, channel: Int32) throws(SyscallError) -> Int32 {
        defer { Socket.close(channel) }
        var environment: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if !text.hasPrefix(handoverVariable + "=") { environment.append(text) }
            entry += 1
        }
        environment.append("\(handoverVariable)=\(ChildProcess.keptDescriptor)")
        return try ChildProcess.spawn(binary, arguments: [binary] + arguments, environment: environment, keep: channel)
    }

    /// Waits for `ready` or `refused` (or the successor's end, or the ready time) and
    /// returns the machine's actions.
    private func waitForAnswer(_ channel: Int32, child: Int32) -> [UpgradeMachine.Action] {
        while true {
            if DescriptorChannel.waitReadable(channel, timeoutMillis: 100) {
                let event: UpgradeMachine.Event
                do {
                    if let message = try DescriptorChannel.receive(channel) {
                        for fd in message.descriptors { Socket.close(fd) }
                        switch try HandoverMessage.decode(message.bytes, descriptors: message.descriptors.count) {
                        case .ready: event = .successorReady(now: Clock.nanoseconds())
                        case .refused(let reason): event = .successorRefused(reason: "the new process refused: \(reason)")
                        default: event = .successorRefused(reason: "the new process sent an unexpected message")
                        }
                    } else {
                        event = .successorExited(reason: Self.endOf(child, else: "the new process closed the hand-over socket"))
                    }
                } catch let error as SyscallError {
                    event = .successorExited(reason: Self.endOf(child, else: "hand-over socket: \(error)"))
                } catch {
                    event = .successorRefused(reason: "the new process's answer: \(error)")
                }
                let actions = feed(event)
                if !actions.isEmpty { return actions }
            } else {
                if let exit = ChildProcess.reap(child, wait: false) {
                    // It may have said why just before it exited: that reason beats the status.
                    if DescriptorChannel.waitReadable(channel, timeoutMillis: 0),
                       let message = try? DescriptorChannel.receive(channel) {
                        for fd in message.descriptors { Socket.close(fd) }
                        if case .refused(let reason)? = try? HandoverMessage.decode(message.bytes, descriptors: message.descriptors.count) {
                            return feed(.successorRefused(reason: "the new process refused: \(reason)"))
                        }
                    }
                    return feed(.successorExited(reason: "the new process \(exit) before it was ready"))
                }
                let actions = feed(.tick(now: Clock.nanoseconds()))
                if !actions.isEmpty { return actions }
            }
        }
    }

    /// Why the hand-over socket broke: how the child ended, when it ends within a second
    /// (it closed its end by exiting), else `fallback`.
    private static func endOf(_ child: Int32, else fallback: String) -> String {
        for _ in 0..<100 {
            if let exit = ChildProcess.reap(child, wait: false) { return "the new process \(exit) before it was ready" }
            usleep(10_000)
        }
        return fallback
    }

    /// Carries out the machine's actions until the attempt is over.
    private func perform(_ first: [UpgradeMachine.Action], channel: Int32, child: Int32) {
        var pending = first
        var sender: ConnectionSender?
        while !pending.isEmpty {
            let action = pending.removeFirst()
            switch action {
            case .refuse, .startSuccessor:
                break
            case .abandon(let serial, let reason):
                if child > 0, ChildProcess.reap(child, wait: false) == nil {
                    ChildProcess.signal(child, SIGKILL)
                    _ = ChildProcess.reap(child, wait: true)
                }
                if channel >= 0 { Socket.close(channel) }
                frozenFlag.store(false, ordering: .releasing)
                outcome.withLock { $0 = Outcome(serial: serial, succeeded: false, reason: reason) }
                Log.error("upgrade_failed", ["serial": String(serial), "reason": reason, "action": "still serving; nothing changed"])
                return
            case .commit(let serial):
                // Idle connections leave the workers' loops before the successor hears of
                // the commit (and says it serves), so none of them is served here after.
                let s = ConnectionSender(channel: channel)
                sender = s
                proxy.beginHandover(to: s) { counts in s.finish(counts) }
                control.stopAccepting()
                try? DescriptorChannel.send(channel, bytes: HandoverMessage.committed.encoded())
                outcome.withLock { $0 = Outcome(serial: serial, succeeded: true, reason: "the new process (pid \(child)) serves") }
                Log.notice("upgrade_committed", ["serial": String(serial), "successor": String(child)])
                pending += drain(s)
            case .closeRemaining:
                proxy.closeRemaining()
                // The workers close what remains and report; give them a moment.
                _ = sender?.waitFinished(timeoutMillis: 2000)
                sender?.flush()
            case .exit(let serial, let ready, let drained):
                let counts = sender?.counts ?? HandoverCounts()
                let failed = sender?.failedSends ?? 0
                let totals = HandoverMessage.Totals(handedOver: counts.handedOver - failed, finishedHere: counts.finishedHere,
                                                    closedAtDeadline: counts.closedAtDeadline + failed)
                try? DescriptorChannel.send(channel, bytes: HandoverMessage.finished(totals).encoded())
                Socket.close(channel)
                Log.notice("upgrade_handed_over", [
                    "serial": String(serial), "successor": String(child),
                    "readyMs": String(ready / 1_000_000), "drainMs": String(drained / 1_000_000),
                    "connectionsHandedOver": String(totals.handedOver), "finishedHere": String(totals.finishedHere),
                    "closedAtDeadline": String(totals.closedAtDeadline)])
                exitingFlag.store(true, ordering: .releasing)
                // Wake the main thread's sigwait: it stops what is left and exits 0.
                kill(getpid(), SIGTERM)
                return
            }
        }
    }

    /// Sends handed-over connections as they come until every worker is done or the drain
    /// time runs out; returns the machine's final actions.
    private func drain(_ sender: ConnectionSender) -> [UpgradeMachine.Action] {
        while true {
            let finished = sender.waitFinished(timeoutMillis: 100)
            sender.flush()
            let actions = feed(finished ? .drained(now: Clock.nanoseconds()) : .tick(now: Clock.nanoseconds()))
            if !actions.isEmpty { return actions }
        }
    }
}

/// The workers' connection sink during a hand-over: descriptors are queued by the workers
/// (never blocking them) and sent in batches by the upgrade thread.
final class ConnectionSender: ConnectionSink, @unchecked Sendable {
    private let channel: Int32
    private let queue = Mutex<[(Int32, String)]>([])
    private let finishedCounts = Mutex<HandoverCounts?>(nil)
    /// Signalled when connections are queued or the workers are done.
    private let wake = DispatchSemaphore(value: 0)
    /// Connections that could not be sent (the successor went away): closed.
    private(set) var failedSends = 0

    init(channel: Int32) { self.channel = channel }

    func handOver(fd: Int32, clientAddress: String) {
        queue.withLock { $0.append((fd, clientAddress)) }
        wake.signal()
    }

    /// Every worker is done: the summed counts.
    func finish(_ counts: HandoverCounts) {
        finishedCounts.withLock { $0 = counts }
        wake.signal()
    }

    var counts: HandoverCounts { finishedCounts.withLock { $0 } ?? HandoverCounts() }

    /// Waits up to `timeoutMillis` for the workers to finish, returning early when
    /// connections are queued; true once finished.
    func waitFinished(timeoutMillis: Int) -> Bool {
        if finishedCounts.withLock({ $0 != nil }) { return true }
        _ = wake.wait(timeout: .now() + .milliseconds(timeoutMillis))
        return finishedCounts.withLock { $0 != nil }
    }

    /// Sends what is queued, up to `maxConnectionsPerMessage` descriptors a message, and
    /// closes this process's copies.
    func flush() {
        let batch = queue.withLock { q -> [(Int32, String)] in
            let taken = q
            q.removeAll()
            return taken
        }
        var start = 0
        while start < batch.count {
            let part = batch[start..<min(batch.count, start + HandoverMessage.maxConnectionsPerMessage)]
            let message = HandoverMessage.connections(clientAddresses: part.map(\.1))
            do {
                try DescriptorChannel.send(channel, bytes: message.encoded(), descriptors: part.map(\.0))
            } catch {
                failedSends += part.count
                Log.error("upgrade_handover_send_failed", ["connections": String(part.count), "error": error.description])
            }
            for (fd, _) in part { Socket.close(fd) }
            start += part.count
        }
    }
}
