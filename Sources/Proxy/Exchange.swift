import Comparator
import HTTP1
import Routing
import Syscalls

/// What a session holds only while it reads or serves a request: the parsers and heads, the
/// backend connection, the body flows, the CONCURRENT comparison and the tunnel. Taken from
/// the worker's pool with the session's buffer and given back with it, so an idle keep-alive
/// connection holds none of it (memory follows active exchanges, not open connections).
final class Exchange {
    var parser: HeadParser
    var request = RequestHead()

    var cluster: ClusterRuntime?
    var backend: BackendLink?
    var backendBuffer: ByteBuffer?
    var responseParser: HeadParser
    var response = ResponseHead()
    var requestFlow: BodyFlow?
    var responseFlow: BodyFlow?
    var requestDone = false
    var responseDone = false
    var responseStarted = false
    var interimResponse = false
    var upgradeAccepted = false
    var closeAfterExchange = false
    /// A `100 Continue` reached the client during this exchange.
    var continueRelayed = false
    /// The final response came before the client sent any of the body it announced with
    /// `Expect: 100-continue`: the client will not send it, so the session goes on without it
    /// (the backend connection, which still expects it, is not reused).
    var requestBodyWithdrawn = false
    /// Head bytes left in the buffer until the response begins (bodiless requests), so a
    /// request that met a dead pooled connection can be sent again.
    var headHeldInBuffer = 0
    /// An absolute-form target (`http://host/path`) is forwarded in origin form with the
    /// authority as Host (RFC 9112 3.2.2).
    var absoluteTarget: (authority: String, path: String)?
    var setCookies: [UInt8] = []
    /// Storage for the forwarded heads, kept (empty, with its capacity) across exchanges so a
    /// keep-alive session writes its heads without allocating.
    var spareRequestHead: [UInt8] = []
    var spareResponseHead: [UInt8] = []
    var exchangeStart: UInt64 = 0
    /// The exchange's request id: the client's valid X-Request-Id, or one made here.
    var requestID: [UInt8] = []
    /// The id was made here, so the forwarded head carries it.
    var requestIDMade = false
    /// The access record of the exchange being logged (kept across exchanges; nil while the
    /// access log is off or nothing was sampled yet).
    var access: AccessEntry?
    var attempts = 0
    var status = 0

    // CONCURRENT: the previous version's connection and the comparison of both answers.
    var shadow: BackendLink?
    var shadowCluster: ClusterRuntime?
    var comparison: PendingComparison?
    /// Which version's response is served: 1 = the latest, 0 = the previous (after a fallback).
    var servedSide = 1
    /// The served response was chosen (its head arrived).
    var decided = false

    // After `101 Switching Protocols`: one flow each way.
    var upstream: BodyFlow?
    var downstream: BodyFlow?
    var upstreamDone = false
    var downstreamDone = false

    init(settings: ProxySettings) {
        parser = HeadParser(limits: settings.headLimits)
        responseParser = HeadParser(limits: HeadLimits(maxHeadBytes: settings.headLimits.maxHeadBytes,
                                                       maxTargetBytes: settings.headLimits.maxTargetBytes,
                                                       maxHeaders: settings.headLimits.maxHeaders,
                                                       requireHost: false))
    }

    /// Ready for its next session: parsers reset, nothing held. Storage (field arrays, spare
    /// heads, the access line) keeps its capacity.
    func recycle() {
        parser.reset()
        responseParser.reset()
        cluster = nil
        backend = nil
        backendBuffer = nil
        requestFlow = nil
        responseFlow = nil
        upstream = nil
        downstream = nil
        shadow = nil
        shadowCluster = nil
        comparison = nil
        absoluteTarget = nil
    }
}
