import Observability
import Reactor
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// Where a worker sends the client connections it hands to a successor process. The sink
/// owns each descriptor it is given (it sends it on and closes it). Called on worker threads;
/// must not block.
public protocol ConnectionSink: Sendable {
    func handOver(fd: Int32, clientAddress: String)
}

/// What one worker did with its client connections during a self-upgrade.
public struct HandoverCounts: Sendable, Equatable {
    /// Idle connections given to the successor.
    public var handedOver = 0
    /// Connections that ended here (their client or an exchange closed them).
    public var finishedHere = 0
    /// Connections still busy when the drain time ran out, closed.
    public var closedAtDeadline = 0

    public init() {}

    static func + (a: HandoverCounts, b: HandoverCounts) -> HandoverCounts {
        var sum = HandoverCounts()
        sum.handedOver = a.handedOver + b.handedOver
        sum.finishedHere = a.finishedHere + b.finishedHere
        sum.closedAtDeadline = a.closedAtDeadline + b.closedAtDeadline
        return sum
    }
}

/// A worker's hand-over in progress.
final class WorkerHandover {
    let sink: ConnectionSink
    var counts = HandoverCounts()
    var done: (@Sendable (HandoverCounts) -> Void)?
    /// Closing at the deadline: closed connections count as such, not as finished.
    var closingAtDeadline = false

    init(sink: ConnectionSink, done: @escaping @Sendable (HandoverCounts) -> Void) {
        self.sink = sink
        self.done = done
    }
}

/// Test mode (`SWITCHYARD_TEST_SERVING_PID=1`): every proxied response names the process that
/// served it, so tests can tell which side of a self-upgrade answered.
private let servingProcessHeader: [UInt8]? = {
    guard let flag = getenv("SWITCHYARD_TEST_SERVING_PID"), String(cString: flag) == "1" else { return nil }
    return Array("X-Switchyard-Pid: \(getpid())\r\n".utf8)
}()

extension Worker {
    /// The test-mode header line naming this process, nil outside test mode.
    static var servingProcessLine: [UInt8]? { servingProcessHeader }

    /// The listener's descriptor (handed to a successor process).
    public var listenerDescriptor: Int32 { listenerFD }

    /// Stops accepting: the listener leaves this loop and this process's copy of it is
    /// closed (the successor holds its own, so the socket and its queue live on and no client
    /// is refused). Call on the loop's thread.
    public func stopAccepting() {
        guard listenerFD >= 0 else { return }
        if !listenerPaused { loop.pauseListener(listenerFD) }
        listenerPaused = true
        Socket.close(listenerFD)
        listenerFD = -1
    }

    /// Starts handing client connections to the successor: every idle one now, each busy
    /// one as soon as it goes idle between exchanges (a connection with request bytes already
    /// read, an exchange in flight or a tunnel stays until it is idle or closed). Pooled
    /// backend connections are closed (the successor opens its own). `done` runs on this
    /// thread with the counts once no connection is left. Call on the loop's thread.
    public func beginHandover(to sink: ConnectionSink, done: @escaping @Sendable (HandoverCounts) -> Void) {
        guard handover == nil else { return }
        stopAccepting()
        handover = WorkerHandover(sink: sink, done: done)
        closeIdleBackendConnections()
        for connection in Array(connections.values) where connection.session == nil {
            handOver(connection)
        }
        connectionFinishedDuringHandover()
    }

    /// The drain time is over: closes the connections still busy. Call on the loop's thread.
    public func closeRemaining() {
        guard let handover else { return }
        handover.closingAtDeadline = true
        for connection in Array(connections.values) { connection.close() }
        connectionFinishedDuringHandover()
    }

    /// Gives one idle connection (no session attached: nothing buffered, nothing in flight)
    /// to the sink; unread bytes in the kernel's queue travel with the socket.
    func handOver(_ connection: ClientConnection) {
        // A TLS connection's record state cannot travel: it finishes here (upgrades with TLS
        // listeners are refused anyway).
        guard let handover, connection.session == nil, connection.tls == nil,
              connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        // Unregister explicitly: the socket stays open in the successor, so closing this
        // descriptor alone would leave it in this epoll set.
        loop.unregister(connection.fd)
        loop.removeFromSweep(connection)
        counters.add(ProxyCounter.activeSessions, -1)
        handover.counts.handedOver += 1
        handover.sink.handOver(fd: connection.fd, clientAddress: connection.clientAddress)
        connectionFinishedDuringHandover()
    }

    /// Reports the counts once no connection is left.
    func connectionFinishedDuringHandover() {
        guard let handover else { return }
        if connections.isEmpty, let done = handover.done {
            handover.done = nil
            pools.closeAll()
            accessLog?.flush()
            done(handover.counts)
        }
    }

    /// Counts a connection that ended here while handing over, and reports when none is left.
    func connectionClosedDuringHandover() {
        guard let handover, handover.done != nil else { return }
        if handover.closingAtDeadline { handover.counts.closedAtDeadline += 1 } else { handover.counts.finishedHere += 1 }
        connectionFinishedDuringHandover()
    }

    /// Successor side: continues a client connection handed over by the predecessor as a
    /// fresh keep-alive connection (its idle deadline starts now). Bytes the client sent in
    /// the meantime wait in the socket; registering reports them at once. Call on the loop's thread.
    public func adoptConnection(fd: Int32, clientAddress: String) {
        let connection = ClientConnection(worker: self, fd: fd, clientAddress: clientAddress)
        connection.deadline = loop.now &+ settings.clientIdleNanos
        do {
            try loop.register(fd, handler: connection)
        } catch {
            Socket.close(fd)
            return
        }
        connections[ObjectIdentifier(connection)] = connection
        loop.addToSweep(connection)
        counters.add(ProxyCounter.activeSessions)
    }
}
