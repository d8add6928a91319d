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

    /// The previous version stopped taking the request: compare nothing, serve the latest.
    func abandonShadow(reason: String) {
        guard let link = shadow else { return }
        worker.discardConnection(link)
        shadow = nil
        shadowCluster = nil
        comparison?.finish(side: 0, complete: false, failure: reason, now: worker.loop.now, log: worker.settings.comparisons)
    }

    /// The latest version could not be connected to: nothing was sent anywhere yet, so the
    /// previous version simply becomes the one the request goes to.
    func promoteShadow(reason: String) {
        guard let link = shadow, let oldCluster = shadowCluster else { return }
        Log.info("concurrent_fallback", ["client": clientAddress, "reason": reason])
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

    /// A pooled connection may have been closed by the backend just before we used it;
    /// a bodiless request that got no response byte is sent again on a new connection.
    var mayRetryOnFreshConnection: Bool {
        guard let link = backend, link.reused, !responseStarted, attempts < worker.maxAttempts, shadow == nil,
              request.method.isIdempotent else { return false }
        if case .none = request.framing { return headHeldInBuffer > 0 }
        return false
    }

    func retryOnFreshConnection() -> Bool {
        guard let link = backend else { return false }
        dropBackend(reusable: false)
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseParser.reset()
        attempts += 1
        guard let fresh = worker.connectNew(backendID: link.backendID, for: self) else {
            retryElsewhere(failedBackend: link.backendID)
            return true
        }
        use(fresh)
        return true
    }

    /// Ends the exchange: accounting, connection reuse, next request or close.
    func finishExchange() {
        endComparison(servedComplete: true, reason: requestDone ? nil : "request not fully sent")
        let latency = worker.loop.now &- exchangeStart
        if let cluster {
            worker.recordOutcome(cluster: cluster, status: status, latencyNanos: latency)
        }
        let reusable = response.keepAlive && requestDone && (backendBuffer?.readableCount ?? 0) == 0
            && { if case .untilClose = response.framing { return false }; return true }()
        dropBackend(reusable: reusable)
        requestFlow?.release(to: worker.pools)
        responseFlow?.release(to: worker.pools)
        requestFlow = nil
        responseFlow = nil
        cluster = nil
        if closeAfterExchange || worker.draining {
            close()
            return
        }
        state = .readingHead
        parser.reset()
        responseParser.reset()
        setDeadline(.idle, after: worker.settings.clientIdleNanos)
        if (buffer?.readableCount ?? 0) == 0 { releaseClientBuffer() }
    }

    /// Gives the backend connection back to the pool (or closes it) and frees the response buffer.
    func dropBackend(reusable: Bool) {
        if let link = backend {
            if reusable && !link.connecting {
                worker.releaseConnection(link)
            } else {
                worker.discardConnection(link)
            }
            backend = nil
        }
        if let b = backendBuffer {
            worker.pools.giveBack(b)
            backendBuffer = nil
        }
    }

    /// The exchange failed before response bytes reached the client: answer with `status`
    /// and close; after response bytes were sent, just close.
    func failExchange(status: Int, message: String, backendFault: Bool) {
        if backendFault && servedSide == 1 && canFallBack {
            fallBack(newHeadParsed: false, reason: message)
            return
        }
        endComparison(servedComplete: false, reason: message)
        if backendFault, let cluster {
            cluster.metrics.blocks[worker.id].add(ClusterCounter.backendErrors)
            worker.recordOutcome(cluster: cluster, status: status, latencyNanos: worker.loop.now &- exchangeStart)
        }
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseFlow?.release(to: worker.pools)
        responseFlow = nil
        dropBackend(reusable: false)
        cluster = nil
        if responseStarted {
            close()
            return
        }
        worker.metrics.reject(reactor: worker.id, status: status)
        Log.info("exchange_failed", ["status": String(status), "client": clientAddress, "reason": message])
        startClosingWrite(HeadWriter.errorResponse(status: status, message: message))
    }

    /// Refuses a request the parser rejected (or that timed out): error response, then close.
    func reject(status: Int, message: String, offset: Int?) {
        endComparison(servedComplete: false, reason: message)
        worker.metrics.reject(reactor: worker.id, status: status)
        if Log.enabled(.info) {
            Log.info("request_rejected", ["status": String(status), "client": clientAddress, "reason": message,
                                          "offset": offset.map(String.init) ?? "-"])
        }
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseFlow?.release(to: worker.pools)
        responseFlow = nil
        dropBackend(reusable: false)
        startClosingWrite(HeadWriter.errorResponse(status: status, message: message))
    }

    func startClosingWrite(_ bytes: [UInt8]) {
        var flow = BodyFlow(framing: .none)
        flow.prefix = bytes
        responseFlow = flow
        state = .closingAfterWrite
        setDeadline(.drain, after: 5_000_000_000)
    }

    func stepClosing() {
        guard var flow = responseFlow else { close(); return }
        var dummy = Readiness()
        let result = flow.pump(source: fd, sourceReady: &dummy, buffer: nil, destination: fd,
                               destinationReady: &client, pools: worker.pools)
        responseFlow = flow
        switch result {
        case .needsDestination, .needsSource:
            return
        default:
            // Half-close and let the kernel deliver the response before the FIN; the
            // rest of whatever the client sends is discarded with the socket.
            Socket.shutdownWrite(fd)
            close()
        }
    }
}
