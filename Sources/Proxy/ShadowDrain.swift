import Comparator
import HTTP1
import Observability
import Reactor
import Syscalls

/// One CONCURRENT exchange's comparison while its two responses are still arriving: the
/// shared body comparator, what each side answered, and how many sides are still open.
/// Recorded in the comparison log when both sides are finished.
final class PendingComparison {
    let tap: BodyTap
    /// 0 = the previous version, 1 = the latest.
    var summaries = [ResponseSummary(), ResponseSummary()]
    let method: String
    let target: String
    let clusters: (old: String, new: String)
    var servedBy = "new"
    /// The version whose answer is only compared (the shadow), while its answer is drained
    /// on its own: its status and time to the response head count in its metrics then.
    var mirrored: ClusterRuntime?
    /// Whether the drained side's outcome was counted (once, at its head or its failure).
    var mirroredCounted = false
    /// Bodies are not compared for this path (the new cluster's `ignoreBodyFor`).
    var bodyIgnored = false
    /// When the mirrored version's answer first became readable (0: not yet seen).
    var mirroredAnswerAt: UInt64 = 0
    private var open = 2
    let start: UInt64
    let requestID: String
    /// The exchange's access log record, handed over once the comparison knows whether the
    /// answers diverged.
    var deferredAccess: (record: [UInt8], log: AccessLogBatch)?

    /// `pools` lends the comparison its pipe and read buffers.
    init(method: String, target: String, clusters: (old: String, new: String), start: UInt64, requestID: String = "",
         pools: ResourcePools) {
        tap = BodyTap(pools: pools)
        self.method = method
        self.target = target
        self.clusters = clusters
        self.start = start
        self.requestID = requestID
    }

    /// Records what a side's response head said (status, framing, compared headers).
    func noteHead(side: Int, _ head: ResponseHead, source: UnsafeRawBufferPointer, policy: HeaderPolicy) {
        var summary = summaries[side]
        summary.status = head.status
        switch head.framing {
        case .contentLength: summary.framing = "content-length"
        case .chunked: summary.framing = "chunked"
        case .untilClose: summary.framing = "close"
        case .none: summary.framing = "none"
        }
        summary.headers.removeAll()
        for field in head.headers where summary.headers.count < policy.maxHeaders {
            // Ignored headers (most of a typical response) are skipped without making Strings.
            guard policy.compares(name: UnsafeRawBufferPointer(rebasing: source[field.nameRange])) else { continue }
            let name = String(decoding: source[field.nameRange], as: UTF8.self).lowercased()
            summary.headers.append((name, String(decoding: source[field.valueRange], as: UTF8.self)))
        }
        summaries[side] = summary
    }

    /// A side is done (its body fully read, or it failed). The second call records the comparison.
    func finish(side: Int, complete: Bool, failure: String? = nil, now: UInt64, log: ComparisonLog) {
        guard open > 0 else { return }
        tap.finish(side: side)
        summaries[side].complete = complete
        summaries[side].failure = failure
        summaries[side].latencyMillis = Double(now &- start) / 1e6
        open -= 1
        if open == 0 {
            var record = ComparisonRecord(method: method, target: target, old: summaries[0], new: summaries[1], servedBy: servedBy,
                                          comparator: tap.comparator, unixTime: Clock.unixSeconds(), clusters: clusters)
            record.requestID = requestID
            record.bodyIgnored = bodyIgnored
            log.add(record)
            if let (pending, batch) = deferredAccess {
                var line = pending
                line[AccessRecord.divergedOffset] = record.divergent ? 2 : 1
                batch.append(line)
                deferredAccess = nil
            }
        }
    }
}

/// Reads the response that is not served to the client (CONCURRENT) to its end through a
/// fixed buffer, feeding the comparator, then returns the connection to the pool. It runs
/// on its own, so a slow version never holds up the client's next request.
final class ShadowDrain: EventHandler, DeadlineHandler, TapWaiter {
    unowned let worker: Worker
    private(set) var link: BackendLink
    private let buffer: ByteBuffer
    private var parser: HeadParser
    private var head = ResponseHead()
    private var flow: BodyFlow?
    private let comparison: PendingComparison
    private let side: Int
    private let requestMethod: HTTPMethod
    private var deadline: UInt64
    private var done = false
    var sweepIndex = -1

    /// `buffer` may already hold the start of the response; `parsedHead` is given when its
    /// head was parsed already (the latest version's 5xx that triggered a fallback).
    init(worker: Worker, link: BackendLink, buffer: ByteBuffer, side: Int, comparison: PendingComparison,
         requestMethod: HTTPMethod, parsedHead: ResponseHead?) {
        self.worker = worker
        self.link = link
        self.buffer = buffer
        self.side = side
        self.comparison = comparison
        self.requestMethod = requestMethod
        parser = HeadParser(limits: HeadLimits(maxHeadBytes: worker.settings.headLimits.maxHeadBytes, requireHost: false))
        deadline = worker.loop.now &+ worker.settings.shadowDrainNanos
        // Registered before its head arrives, so the served side asks it to catch up from
        // its very first bytes.
        comparison.tap.drained(side: side, by: self)
        if let parsedHead {
            head = parsedHead
            startBody()
        }
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        if events.contains(.readable) || events.contains(.readHangup) || events.contains(.hangup) || events.contains(.error) {
            link.ready.readable = true
        }
        if events.contains(.readHangup) || events.contains(.hangup) { link.ready.hungUp = true }
        drive()
    }

    func checkDeadline(now: UInt64) {
        if now >= deadline { finish(complete: false, failure: "timed out") }
    }

    private func startBody() {
        buffer.consume(head.headLength)
        var flow = BodyFlow(framing: head.framing)
        flow.tap(comparison.tap, side: side, pausing: self)
        self.flow = flow
    }

    /// The served response moved: read what the backend already sent, up to the room the
    /// comparator has, so both stay in lock-step.
    func catchUp() {
        guard !done, !driving else { return }
        link.ready.readable = true   // a read that finds nothing just returns EAGAIN
        drive()
    }

    private var driving = false

    /// Reads the head (if needed) and the body, discarding it after the comparator saw it.
    func drive() {
        guard !done, !driving else { return }
        driving = true
        defer { driving = false }
        while flow == nil {
            if buffer.readableCount > 0 {
                switch parser.parseResponse(buffer.readable, requestMethod: requestMethod, into: &head) {
                case .complete:
                    if head.status >= 100 && head.status < 200 {
                        buffer.consume(head.headLength)
                        parser.reset()
                        continue
                    }
                    comparison.noteHead(side: side, head, source: buffer.readable, policy: worker.settings.headerPolicy)
                    countMirroredOutcome(status: head.status)
                    startBody()
                    continue
                case .error(let error):
                    finish(complete: false, failure: "invalid response: \(error.message)")
                    return
                case .incomplete:
                    break
                }
            }
            guard link.ready.readable else { return }
            if buffer.writableCount == 0 { buffer.compact() }
            guard buffer.writableCount > 0 else { finish(complete: false, failure: "response head too large"); return }
            let space = buffer.writableCount
            do {
                switch try buffer.read(from: link.fd) {
                case .done(0): finish(complete: false, failure: "closed before a response"); return
                case .done(let n): link.ready.noteRead(n, of: space)
                case .wouldBlock: link.ready.readable = false; return
                }
            } catch {
                finish(complete: false, failure: "\(error)")
                return
            }
        }
        guard var flow else { return }
        var nothing = Readiness()
        let result = flow.pump(source: link.fd, sourceReady: &link.ready, buffer: buffer, destination: -1,
                               destinationReady: &nothing, pools: worker.pools)
        self.flow = flow
        switch result {
        case .finished:
            finish(complete: true, failure: nil)
        case .needsSource, .needsDestination:
            if flow.progressed { deadline = worker.loop.now &+ worker.settings.bodyIdleNanos }
        case .failed(let failure):
            finish(complete: false, failure: "\(failure)")
        }
    }

    /// Counts the drained version's answer in its cluster's metrics (rollout gates read them):
    /// its status and its own time to the response head, never the comparator's pace.
    private func countMirroredOutcome(status: Int) {
        guard !comparison.mirroredCounted, let cluster = comparison.mirrored else { return }
        comparison.mirroredCounted = true
        let answered = comparison.mirroredAnswerAt != 0 ? comparison.mirroredAnswerAt : worker.loop.now
        worker.recordMirroredOutcome(cluster: cluster, status: status, latencyNanos: answered &- comparison.start)
    }

    private func finish(complete: Bool, failure: String?) {
        guard !done else { return }
        done = true
        if !complete { countMirroredOutcome(status: failure == "timed out" ? 504 : 502) }
        comparison.finish(side: side, complete: complete, failure: failure, now: worker.loop.now, log: worker.settings.comparisons)
        flow?.release(to: worker.pools)
        let reusable = complete && head.keepAlive && buffer.readableCount == 0
            && { if case .untilClose = head.framing { return false }; return true }()
        if reusable { worker.releaseConnection(link) } else { worker.discardConnection(link) }
        worker.pools.giveBack(buffer)
        worker.drainFinished(self)
    }
}
