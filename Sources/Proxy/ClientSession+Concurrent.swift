import Comparator
import HTTP1
import Observability
import Reactor
import Routing
import Syscalls

/// CONCURRENT mode: the previous version also gets the request; the latest version's head
/// decides which answer the client gets; the other one is drained for the comparison.
extension ClientSession {
    /// The previous version's answer can still replace the latest's.
    var canFallBack: Bool { shadow != nil && requestDone && !responseStarted }

    /// Once the served response is chosen and the request fully sent to both versions, the
    /// other response is drained on its own (it never holds up this client).
    func startShadowDrainIfDecided() {
        guard decided, requestDone, let link = shadow, let comparison else { return }
        shadow = nil
        shadowCluster = nil
        let drain = ShadowDrain(worker: worker, link: link, buffer: worker.pools.takeBuffer(), side: 1 - servedSide,
                                comparison: comparison, requestMethod: request.method, parsedHead: nil)
        worker.startDrain(drain)
    }

    /// The mirrored version stopped taking the request (or, with `mirroredFailed` false, the
    /// served one could not be reached): compare nothing, go on with the served version.
    func abandonShadow(reason: String, mirroredFailed: Bool = true) {
        guard let link = shadow else { return }
        if let comparison, !comparison.mirroredCounted, let mirrored = comparison.mirrored {
            comparison.mirroredCounted = true
            if mirroredFailed { worker.recordMirroredOutcome(cluster: mirrored, status: 502, latencyNanos: worker.loop.now &- exchangeStart) }
        }
        worker.discardConnection(link)
        shadow = nil
        shadowCluster = nil
        comparison?.finish(side: 1 - servedSide, complete: false, failure: reason, now: worker.loop.now, log: worker.settings.comparisons)
    }

    /// The latest version could not be connected to: nothing was sent anywhere yet, so the
    /// previous version simply becomes the one the request goes to.
    func promoteShadow(reason: String) {
        guard let link = shadow, let oldCluster = shadowCluster else { return }
        Log.info("concurrent_fallback", ["client": clientAddress, "reason": reason])
        if let newCluster = cluster { worker.recordMirroredOutcome(cluster: newCluster, status: 502, latencyNanos: worker.loop.now &- exchangeStart) }
        comparison?.mirroredCounted = true   // the old version is served now: its outcome counts as served
        comparison?.servedBy = "old"
        comparison?.finish(side: 1, complete: false, failure: reason, now: worker.loop.now, log: worker.settings.comparisons)
        if let b = backend { worker.discardConnection(b) }
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        shadow = nil
        shadowCluster = nil
        cluster = oldCluster
        servedSide = 0
        setCookies.removeAll(keepingCapacity: true)
        worker.sessionCookieLine(for: oldCluster, to: &setCookies)
        use(link)
    }

    /// The latest version answered 5xx or failed after the whole request reached both
    /// versions: serve the previous version's response instead. The latest's own response
    /// (when it has one) is drained for the comparison. Counts toward rollback.
    func fallBack(newHeadParsed: Bool, reason: String) {
        guard let comparison, let newLink = backend, let oldLink = shadow, let oldCluster = shadowCluster, let newCluster = cluster else { return }
        Log.info("concurrent_fallback", ["client": clientAddress, "reason": reason, "new": newCluster.spec.uuid, "old": oldCluster.spec.uuid])
        worker.recordOutcome(cluster: newCluster, status: newHeadParsed ? response.status : 502, latencyNanos: worker.loop.now &- exchangeStart)
        comparison.servedBy = "old"
        comparison.mirroredCounted = true   // the old version is served now: its outcome counts as served
        if newHeadParsed, let rbuf = backendBuffer {
            comparison.noteHead(side: 1, response, source: rbuf.readable, policy: worker.settings.headerPolicy)
            backendBuffer = nil
            backend = nil
            let drain = ShadowDrain(worker: worker, link: newLink, buffer: rbuf, side: 1, comparison: comparison,
                                    requestMethod: request.method, parsedHead: response)
            worker.startDrain(drain)
        } else {
            comparison.finish(side: 1, complete: false, failure: reason, now: worker.loop.now, log: worker.settings.comparisons)
            dropBackend(reusable: false)
        }
        backend = oldLink
        shadow = nil
        shadowCluster = nil
        cluster = oldCluster
        servedSide = 0
        responseParser.reset()
        response = ResponseHead()
        setCookies.removeAll(keepingCapacity: true)
        worker.sessionCookieLine(for: oldCluster, to: &setCookies)
        setDeadline(.response, after: worker.settings.backendResponseNanos)
    }

    /// Ends the comparison of an exchange that is over (or abandoned).
    func endComparison(servedComplete: Bool, reason: String?) {
        guard let comparison else { return }
        comparison.finish(side: servedSide, complete: servedComplete, failure: reason, now: worker.loop.now, log: worker.settings.comparisons)
        if shadow != nil { abandonShadow(reason: reason ?? "request not fully sent") }
        self.comparison = nil
        servedSide = 1
        decided = false
    }
}
