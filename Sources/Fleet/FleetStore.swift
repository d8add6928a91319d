import Foundation
import Locks
import Observability
import Store
import Syscalls

/// How a fleet reaches etcd (`"state": {"store": "etcd", …}`).
public struct FleetSettings: Equatable, Sendable {
    public var endpoints: [EtcdEndpoint]
    /// Every key lives under this prefix (`/switchyard/`): several fleets can share one etcd.
    public var prefix: String
    /// This instance's name, unique in the fleet (leader key, published windows).
    public var instance: String
    /// TTL of the instance's lease: a dead leader is replaced within it.
    public var leaseSeconds: Int

    public init(endpoints: [EtcdEndpoint], prefix: String, instance: String, leaseSeconds: Int = 5) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.instance = instance
        self.leaseSeconds = leaseSeconds
    }

    /// The key holding the whole control-plane state (a snapshot record).
    public var stateKey: String { prefix + "state" }
    /// The key the leader creates with its lease.
    public var leaderKey: String { prefix + "leader" }
    /// The prefix of the instances' published windows.
    public var windowsPrefix: String { prefix + "windows/" }
}

/// What the fleet's link to etcd looks like (`/status`, metrics).
public struct FleetStatus: Sendable {
    /// "connected" or "unreachable" ("connecting" before the first answer).
    public var link: String
    /// The etcd revision of the state this instance serves: the same on every instance
    /// once a change has reached them all.
    public var revision: Int64
    public var instance: String
    /// The leader's name, if known.
    public var leader: String?
    public var leading: Bool
    /// Times the link was lost and found again.
    public var reconnects: Int
    /// The last failure talking to etcd.
    public var lastError: String?
}

/// The control plane's state kept in etcd for a fleet of instances, as a `StateStore`:
///
/// - `<prefix>state` holds the whole state (a snapshot record). A change is written in one
///   transaction guarded by the mod revision of the state it was checked against, so a
///   concurrent change on another instance makes one of them fail with `.conflict` (409),
///   never a lost update. The writer keeps the state it wrote at the revision etcd gave it;
///   every other instance adopts the same state at the same revision from its watch.
/// - `<prefix>leader` is created (create revision 0) by the instance that leads, with its lease.
/// - `<prefix>windows/<instance>` holds each instance's exchange totals, with its lease.
///
/// Three threads of its own, each with its own connection: the watcher (reads the state,
/// then follows every change under the prefix; reconnects with back-off), the session
/// (lease, keep-alive, leader election, windows published every second) and, for writes, the
/// caller's (the control-plane thread, with a short deadline). Reactors never wait on etcd.
public final class FleetStore: StateStore, @unchecked Sendable {
    public let settings: FleetSettings

    private struct Shared {
        /// The state at `revision`, as this instance serves it.
        var model: StoredState?
        var revision: Int64 = 0
        var link = "connecting"
        var lastError: String?
        var reconnects = 0
        var election: Election
        var leader: String?
        /// Each instance's last published windows (kept after its key expires, so the sums
        /// the leader's windows are made of never go down).
        var windows: [String: [UInt8]] = [:]
        var stopped = false
    }

    private let shared: Lock<Shared>
    private let writer: Lock<EtcdClient>
    /// Hands a state written by another instance (and its revision) to the owner; called on
    /// the watcher thread.
    private let onState: Lock<(@Sendable (StoredState, Int64) -> Void)?> = Lock(nil)
    /// Tells the owner when this instance starts (true) or stops (false) leading; called on
    /// the session thread.
    private let onRole: Lock<(@Sendable (Bool) -> Void)?> = Lock(nil)
    /// This instance's windows to publish; called on the session thread once a second.
    private let totals: Lock<(@Sendable () -> [UInt8])?> = Lock(nil)

    public init(settings: FleetSettings) {
        self.settings = settings
        shared = Lock(Shared(election: Election(instance: settings.instance)))
        writer = Lock(EtcdClient(endpoints: settings.endpoints, timeoutMillis: 1000))
    }

    /// Connects the store to its owner (before `start`).
    public func connect(onState: @escaping @Sendable (StoredState, Int64) -> Void, onRole: @escaping @Sendable (Bool) -> Void,
                        totals: @escaping @Sendable () -> [UInt8]) {
        self.onState.withLock { $0 = onState }
        self.onRole.withLock { $0 = onRole }
        self.totals.withLock { $0 = totals }
    }

    // MARK: StateStore

    /// Reads the state from etcd, trying for up to ten seconds (a fleet cannot start without
    /// knowing what the others serve). nil when no instance has written any yet.
    public func load() throws(StoreError) -> (state: StoredState?, warnings: [String]) {
        let client = EtcdClient(endpoints: settings.endpoints, timeoutMillis: 1000)
        let until = Clock.nanoseconds() + 10_000_000_000
        while true {
            do {
                let (revision, kvs) = try client.range(settings.stateKey)
                guard let kv = kvs.first else {
                    shared.withLock { $0.revision = revision; $0.link = "connected" }
                    return (nil, [])
                }
                let state: StoredState
                do { state = try Records.decodeSnapshot(kv.value) } catch {
                    throw StoreError.corrupt(path: "etcd \(settings.stateKey)", offset: 0, reason: error.description)
                }
                shared.withLock { $0.model = state; $0.revision = kv.modRevision; $0.link = "connected" }
                return (state, [])
            } catch let error as StoreError {
                throw error
            } catch {
                if Clock.nanoseconds() > until {
                    throw StoreError.unavailable("etcd at \(settings.endpoints.map(\.description).joined(separator: ", ")) cannot be reached: \(error)")
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// Writes the state with `change` applied, guarded by the revision of the state it was
    /// checked against. Throws `.conflict` when another instance wrote first and
    /// `.unavailable` when etcd cannot be reached (then nothing is written).
    public func append(_ change: StateChange, sequence: UInt64) throws(StoreError) {
        try write([change])
    }

    /// Writes `changes` as one transaction (one new state, one revision): a change set.
    public func write(_ changes: [StateChange]) throws(StoreError) {
        let (base, revision, link) = shared.withLock { ($0.model ?? StoredState(), $0.revision, $0.link) }
        guard link == "connected" else {
            throw .unavailable("the fleet's store (etcd) cannot be reached; changes are refused until it is back (this instance keeps serving its last state)")
        }
        var next = base
        for change in changes { next.apply(change) }
        let txn = EtcdTxn(compares: [EtcdCompare(key: settings.stateKey, target: .mod, equals: revision)],
                          success: [.put(key: settings.stateKey, value: Records.encodeSnapshot(next), lease: 0)])
        let result: (succeeded: Bool, revision: Int64)
        do {
            result = try writerTxn(txn)
        } catch {
            lost(error)
            throw .unavailable("the fleet's store (etcd) cannot be reached: \(error.description)")
        }
        guard result.succeeded else {
            throw .conflict("the state changed on another instance since this one read it (etcd revision \(revision)); nothing was written: read it again and retry")
        }
        shared.withLock {
            // The watch brings this revision back; it is then already applied.
            if result.revision > $0.revision { $0.model = next; $0.revision = result.revision }
        }
    }

    /// Seeds an empty store with the configuration's state (only when no instance has yet:
    /// create revision 0); otherwise the watcher brings the state another instance wrote.
    public func compact(_ state: StoredState) throws(StoreError) {
        let txn = EtcdTxn(compares: [EtcdCompare(key: settings.stateKey, target: .create, equals: 0)],
                          success: [.put(key: settings.stateKey, value: Records.encodeSnapshot(state), lease: 0)])
        do {
            let result = try writerTxn(txn)
            if result.succeeded { shared.withLock { $0.model = state; $0.revision = result.revision } }
        } catch {
            throw .unavailable("etcd: \(error.description)")
        }
    }

    /// One transaction on the writer's connection (serialised: one caller at a time).
    private func writerTxn(_ txn: EtcdTxn) throws(EtcdError) -> (succeeded: Bool, revision: Int64) {
        try writer.withLock { client -> Result<(succeeded: Bool, revision: Int64), EtcdError> in
            do throws(EtcdError) { return .success(try client.txn(txn)) } catch { return .failure(error) }
        }.get()
    }

    /// etcd keeps one record per key: nothing to compact.
    public var wantsCompaction: Bool { false }

    // MARK: State from the watch

    /// Takes `state` at `revision` as this instance's when it is newer than what it holds
    /// (call on the thread that changes the registry). Returns whether it was taken.
    public func accept(_ state: StoredState, revision: Int64) -> Bool {
        shared.withLock { s in
            guard revision > s.revision else { return false }
            s.model = state
            s.revision = revision
            return true
        }
    }

    public var status: FleetStatus {
        shared.withLock {
            FleetStatus(link: $0.link, revision: $0.revision, instance: settings.instance, leader: $0.leader,
                        leading: $0.election.role == .leader, reconnects: $0.reconnects, lastError: $0.lastError)
        }
    }

    /// Every instance's last published windows, by instance.
    public func publishedWindows() -> [String: [UInt8]] { shared.withLock { $0.windows } }

    private func lost(_ error: EtcdError) {
        shared.withLock { s in
            if s.link == "connected" {
                Log.warning("fleet_store_unreachable", ["error": error.description])
                s.reconnects += 1
            }
            s.link = "unreachable"
            s.lastError = error.description
        }
    }

    private func found() {
        shared.withLock { s in
            if s.link != "connected" { Log.notice("fleet_store_connected", ["endpoints": settings.endpoints.map(\.description).joined(separator: ",")]) }
            s.link = "connected"
        }
    }

    // MARK: Threads

    /// Starts the watcher and the session threads.
    public func start() {
        Thread.detachNewThread { [self] in watchLoop() }
        Thread.detachNewThread { [self] in sessionLoop() }
    }

    /// Stops both threads and revokes the lease (the leader key and the windows go at once,
    /// so another instance leads without waiting for the TTL).
    public func stop() {
        let lease = shared.withLock { s -> Int64? in
            s.stopped = true
            return s.election.lease
        }
        if let lease { try? EtcdClient(endpoints: settings.endpoints, timeoutMillis: 500).revoke(lease) }
    }

    private var stopped: Bool { shared.withLock { $0.stopped } }

    /// Reads everything under the prefix, then follows it; on any failure waits (100 ms,
    /// doubling up to 2 s) and starts again.
    private func watchLoop() {
        let client = EtcdClient(endpoints: settings.endpoints, timeoutMillis: 2000)
        var backoff = 0.1
        while !stopped {
            do {
                let (revision, kvs) = try client.range(settings.prefix, prefix: true)
                found()
                backoff = 0.1
                for kv in kvs { take(kv, deleted: false) }
                if !kvs.contains(where: { $0.key == settings.leaderKey }) { shared.withLock { $0.leader = nil } }
                try client.stream("/v3/watch", EtcdWire.watch(prefix: settings.prefix, startRevision: revision + 1),
                                   keepGoing: { [self] in shared.withLock { !$0.stopped && $0.link == "connected" } }) { message throws(EtcdError) -> Bool in
                    let m = try EtcdWire.decodeWatch(message)
                    if m.canceled { throw EtcdError("etcd cancelled the watch (compacted at \(m.compactRevision))") }
                    for e in m.events { take(e.kv, deleted: e.deleted) }
                    return !stopped
                }
            } catch {
                if stopped { return }
                if error.description != "stopped" { lost(error) }
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 2)
            }
        }
    }

    /// One key read or watched.
    private func take(_ kv: EtcdKeyValue, deleted: Bool) {
        if kv.key == settings.stateKey {
            guard !deleted, let state = try? Records.decodeSnapshot(kv.value) else { return }
            let newer = shared.withLock { kv.modRevision > $0.revision }
            if newer, let deliver = onState.withLock({ $0 }) { deliver(state, kv.modRevision) }
        } else if kv.key == settings.leaderKey {
            shared.withLock { $0.leader = deleted ? nil : String(decoding: kv.value, as: UTF8.self) }
        } else if kv.key.hasPrefix(settings.windowsPrefix), !deleted {
            let instance = String(kv.key.dropFirst(settings.windowsPrefix.count))
            shared.withLock { $0.windows[instance] = kv.value }
        }
    }

    /// Twice a second: keeps the lease alive (a third of its TTL), takes part in the
    /// election and publishes this instance's windows once a second.
    private func sessionLoop() {
        let client = EtcdClient(endpoints: settings.endpoints, timeoutMillis: 2000)
        var lastKeepAlive: UInt64 = 0
        var lastPublish: UInt64 = 0
        let keepAliveEvery = UInt64(settings.leaseSeconds) * 1_000_000_000 / 3
        while !stopped {
            Thread.sleep(forTimeInterval: 0.25)
            if stopped { return }
            let connected = shared.withLock { $0.link == "connected" }
            guard connected else {
                perform(shared.withLock { $0.election.disconnected() }, client)
                continue
            }
            do throws(EtcdError) {
                perform(shared.withLock { $0.election.connected() }, client)
                let now = Clock.nanoseconds()
                if let lease = shared.withLock({ $0.election.lease }), now - lastKeepAlive >= keepAliveEvery {
                    lastKeepAlive = now
                    if try client.keepAlive(lease) == 0 {
                        Log.warning("fleet_lease_expired", ["lease": String(lease)])
                        perform(shared.withLock { $0.election.leaseLost() }, client)
                    }
                }
                let (_, kvs) = try client.range(settings.leaderKey)
                let holder = kvs.first.map { String(decoding: $0.value, as: UTF8.self) }
                perform(shared.withLock { $0.leader = holder; return $0.election.observed(leader: holder) }, client)
                if let lease = shared.withLock({ $0.election.lease }), now - lastPublish >= 1_000_000_000, let totals = totals.withLock({ $0 }) {
                    lastPublish = now
                    try client.put(settings.windowsPrefix + settings.instance, totals(), lease: lease)
                }
            } catch {
                // A lease that is no longer known comes back as an error on the put.
                if error.description.contains("lease not found") {
                    perform(shared.withLock { $0.election.leaseLost() }, client)
                } else {
                    // Whether etcd is reachable is the watcher's to say (a slow answer here,
                    // e.g. while a restarted etcd elects its own leader, must not make the API
                    // refuse writes); this thread only stops leading until it is heard again.
                    shared.withLock { $0.lastError = error.description }
                    perform(shared.withLock { $0.election.disconnected() }, client)
                }
            }
        }
    }

    /// Carries out the election's actions (on the session thread).
    private func perform(_ actions: [Election.Action], _ client: EtcdClient) {
        for action in actions {
            switch action {
            case .grantLease:
                do {
                    let id = try client.grant(ttlSeconds: settings.leaseSeconds)
                    perform(shared.withLock { $0.election.leaseGranted(id) }, client)
                } catch {
                    shared.withLock { $0.lastError = error.description }
                }
            case .campaign(let lease):
                let txn = EtcdTxn(compares: [EtcdCompare(key: settings.leaderKey, target: .create, equals: 0)],
                                  success: [.put(key: settings.leaderKey, value: Array(settings.instance.utf8), lease: lease)])
                do {
                    let won = try client.txn(txn).succeeded
                    let holder = won ? settings.instance : (try client.range(settings.leaderKey)).kvs.first.map { String(decoding: $0.value, as: UTF8.self) }
                    perform(shared.withLock { $0.leader = holder; return $0.election.campaigned(won: won, holder: holder) }, client)
                } catch {
                    shared.withLock { $0.lastError = error.description }
                }
            case .lead:
                Log.notice("fleet_leading", ["instance": settings.instance])
                onRole.withLock { $0 }?(true)
            case .stepDown:
                Log.notice("fleet_stepped_down", ["instance": settings.instance])
                onRole.withLock { $0 }?(false)
            }
        }
    }
}
