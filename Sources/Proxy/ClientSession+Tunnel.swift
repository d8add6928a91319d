import Comparator
import HTTP1
import Observability
import Reactor
import Routing
import Syscalls

/// After `101 Switching Protocols`: bytes flow both ways until each side has closed.
extension ClientSession {
    /// Replaces the exchange's flows with one flow each way.
    func startTunnel() {
        if headHeldInBuffer > 0, let buffer { buffer.consume(headHeldInBuffer); headHeldInBuffer = 0 }
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseFlow?.release(to: worker.pools)
        responseFlow = nil
        closeAccessRecord(status: 101)
        upstream = BodyFlow(framing: .untilClose)
        downstream = BodyFlow(framing: .untilClose)
        if let tls {
            // Both directions go through buffers (see `BodyFlow`): the client's side needs one.
            upstream!.tlsSource = tls
            downstream!.tlsDestination = tls
            if buffer == nil { _ = takeBuffer() }
            if backendBuffer == nil { backendBuffer = worker.pools.takeBuffer() }
        }
        if let link = backend, link.secure {
            upstream!.tlsDestination = worker.backendTLS[link.fd]
            downstream!.tlsSource = worker.backendTLS[link.fd]
            if buffer == nil { _ = takeBuffer() }
            if backendBuffer == nil { backendBuffer = worker.pools.takeBuffer() }
        }
        upstreamDone = false
        downstreamDone = false
        state = .tunnel
        setDeadline(.body, after: worker.settings.clientIdleNanos)
    }

    /// Moves bytes both ways; half-closes each direction when its source ends.
    func stepTunnel() -> Bool {
        guard let link = backend else { close(); return false }
        var progressed = false
        if !upstreamDone, var flow = upstream {
            flow.progressed = false
            let result = flow.pump(source: fd, sourceReady: &client, buffer: buffer, destination: link.fd,
                                   destinationReady: &backend!.ready, pools: worker.pools)
            upstream = flow
            progressed = progressed || flow.progressed
            switch result {
            case .finished:
                upstreamDone = true
                if link.secure { worker.backendTLS[link.fd]?.shutdown() }
                Socket.shutdownWrite(link.fd)
            case .failed:
                close(); return false
            default: break
            }
        }
        if !downstreamDone, var flow = downstream {
            flow.progressed = false
            var ready = backend!.ready
            let result = flow.pump(source: link.fd, sourceReady: &ready, buffer: backendBuffer, destination: fd,
                                   destinationReady: &client, pools: worker.pools)
            backend?.ready = ready
            downstream = flow
            progressed = progressed || flow.progressed
            switch result {
            case .finished:
                downstreamDone = true
                tls?.shutdown()
                Socket.shutdownWrite(fd)
            case .failed:
                close(); return false
            default: break
            }
        }
        if progressed { setDeadline(.body, after: worker.settings.clientIdleNanos) }
        if upstreamDone && downstreamDone {
            if let cluster { worker.recordOutcome(cluster: cluster, status: 101, latencyNanos: worker.loop.now &- exchangeStart, gradualLatest: gradualLatest) }
            cluster = nil
            close()
        }
        return false
    }
}
