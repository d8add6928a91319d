import Config
import Observability
import Proxy
import Reactor
import Store
import Syscalls
import Upgrade
#if canImport(Glibc)
import Glibc
#endif

/// The new process's side of a self-upgrade: started by the running process with
/// `SWITCHYARD_UPGRADE_FD` naming its end of the hand-over socket, it receives the offer,
/// validates it, serves on the inherited listeners, says ready, waits for the commit and
/// then adopts the client connections that arrive.
enum Successor {
    /// What the predecessor handed over, validated.
    struct Inheritance {
        var serial: UInt64
        var predecessorPID: Int32
        var proxyListeners: [Int32]
        var adminListener: Int32
        var stateLock: Int32?
        var state: StoredState
        /// CONCURRENT comparison totals (rollout gates read them).
        var comparisons: ComparisonCounts
    }

    /// The hand-over socket, -1 when this process was started by hand. Set once at start-up,
    /// before any other thread exists.
    nonisolated(unsafe) private(set) static var channel: Int32 = -1
    /// `ready` or `refused` was sent.
    nonisolated(unsafe) private static var answered = false

    /// True when this process was started by a self-upgrade.
    static var isSuccessor: Bool { channel >= 0 }

    /// Reads (and removes) the hand-over variable; call first thing in `main`.
    static func attachFromEnvironment() {
        guard let value = getenv(handoverVariable) else { return }
        let text = String(cString: value)
        unsetenv(handoverVariable)
        guard let fd = Int32(text), fd >= 0 else { return }
        try? DescriptorChannel.setCloseOnExec(fd, true)
        channel = fd
    }

    /// Tells the predecessor why this process will not take over (the line it also prints),
    /// once; nothing when started by hand or after `ready`.
    static func refuse(_ reason: String) {
        guard channel >= 0, !answered else { return }
        answered = true
        var text = reason
        if text.hasPrefix("switchyard: ") { text.removeFirst("switchyard: ".count) }
        try? DescriptorChannel.send(channel, bytes: HandoverMessage.refused(reason: text).encoded())
    }

    /// Receives and checks the offer: listeners that listen, on the addresses the
    /// configuration names (ports other than 0 must match: moving them needs a restart), a
    /// state that decodes, and a state lock exactly when a state directory is configured.
    static func receiveOffer(config: ProxyConfig, stateDir: String?) -> Result<Inheritance, UsageError> {
        func failure(_ reason: String) -> Result<Inheritance, UsageError> { .failure(UsageError(description: reason)) }
        guard DescriptorChannel.waitReadable(channel, timeoutMillis: 10_000) else {
            return failure("no hand-over offer from the running process within 10 s")
        }
        let message: ReceivedMessage
        do {
            guard let received = try DescriptorChannel.receive(channel) else { return failure("the running process closed the hand-over socket") }
            message = received
        } catch {
            return failure("hand-over socket: \(error)")
        }
        let fds = message.descriptors
        func refuse(_ reason: String) -> Result<Inheritance, UsageError> {
            for fd in fds { Socket.close(fd) }
            return failure(reason)
        }
        let offer: HandoverMessage.Offer
        do {
            guard case .offer(let o) = try HandoverMessage.decode(message.bytes, descriptors: fds.count) else {
                return refuse("the first hand-over message is not an offer")
            }
            offer = o
        } catch {
            return refuse(error.description)
        }
        let listeners = Array(fds[0..<offer.proxyListeners])
        guard offer.adminListener else { return refuse("the offer has no admin listener") }
        let admin = fds[offer.proxyListeners]
        let lock = offer.stateLock ? fds.last : nil
        for fd in listeners + [admin] where !DescriptorChannel.isListeningSocket(fd) {
            return refuse("a handed-over descriptor is not a listening socket")
        }
        if config.proxyPort != 0, let port = try? Socket.localAddress(listeners[0]).port, port != config.proxyPort {
            return refuse("proxy.port: the configuration says \(config.proxyPort), the running process listens on \(port); moving the proxy needs a restart")
        }
        if config.adminPort != 0, let port = try? Socket.localAddress(admin).port, port != config.adminPort {
            return refuse("configService.port: the configuration says \(config.adminPort), the running process listens on \(port); moving the API needs a restart")
        }
        if (lock != nil) != (stateDir != nil) {
            return refuse(stateDir == nil ? "state.dir: the running process keeps its state in a directory, this configuration has none"
                                          : "state.dir: the running process keeps its state in memory only; adding a state directory needs a restart")
        }
        let state: StoredState
        do {
            state = try Records.decodeSnapshot(offer.state)
        } catch {
            return refuse("handed-over state: \(error)")
        }
        let comparisons: ComparisonCounts
        do {
            comparisons = try ComparisonCounts(encoded: offer.comparisons)
        } catch {
            return refuse(error.description)
        }
        return .success(Inheritance(serial: offer.serial, predecessorPID: offer.predecessorPID, proxyListeners: listeners,
                                    adminListener: admin, stateLock: lock, state: state, comparisons: comparisons))
    }

    /// Tells the predecessor this process serves. False when it is gone.
    static func sayReady() -> Bool {
        answered = true
        do {
            try DescriptorChannel.send(channel, bytes: HandoverMessage.ready(pid: getpid()).encoded())
            return true
        } catch {
            return false
        }
    }

    /// Waits for the predecessor's commit. True when it committed; false when it went away
    /// or gave up (then it kills this process; a predecessor that vanished leaves it in charge).
    static func waitForCommit() -> Bool {
        guard DescriptorChannel.waitReadable(channel, timeoutMillis: 15_000),
              let message = try? DescriptorChannel.receive(channel) else { return false }
        for fd in message.descriptors { Socket.close(fd) }
        return (try? HandoverMessage.decode(message.bytes, descriptors: message.descriptors.count)) == .committed
    }

    /// Adopts the client connections the predecessor sends until it closes the socket, on a
    /// thread of its own; counts them.
    static func receiveConnections(proxy: ProxyServer, upgrader: Upgrader) {
        let channel = self.channel
        _ = ReactorThread.start {
            while true {
                let received: ReceivedMessage?
                do { received = try DescriptorChannel.receive(channel) } catch {
                    Log.error("upgrade_handover_receive_failed", ["error": "\(error)"])
                    break
                }
                guard let message = received else { break }
                let decoded: HandoverMessage
                do {
                    decoded = try HandoverMessage.decode(message.bytes, descriptors: message.descriptors.count)
                } catch {
                    for fd in message.descriptors { Socket.close(fd) }
                    Log.error("upgrade_handover_bad_message", ["error": "\(error)"])
                    continue
                }
                switch decoded {
                case .connections(let addresses):
                    for (fd, address) in zip(message.descriptors, addresses) { proxy.adoptConnection(fd: fd, clientAddress: address) }
                    upgrader.received.withLock { $0["connection", default: 0] += addresses.count }
                case .finished(let totals):
                    upgrader.received.withLock {
                        $0["finished_in_predecessor", default: 0] += totals.finishedHere
                        $0["closed_at_deadline", default: 0] += totals.closedAtDeadline
                    }
                    Log.notice("upgrade_predecessor_done", ["connectionsHandedOver": String(totals.handedOver),
                                                            "finishedThere": String(totals.finishedHere),
                                                            "closedAtDeadline": String(totals.closedAtDeadline)])
                default:
                    for fd in message.descriptors { Socket.close(fd) }
                }
            }
            Socket.close(channel)
        }
    }
}
