// libFuzzer entry point for the HTTP1 module. Built together with Sources/HTTP1 by Fuzz/run.sh.
//
// Each input is parsed as a request head, a response head and a chunked body, once whole and once
// split in two at a point chosen by the first byte; the two feeds must agree exactly (the parsers
// promise results independent of how bytes arrive). Complete heads are also written back out and
// re-parsed. Any disagreement or out-of-bounds offset traps, which libFuzzer reports as a crash.

/// Copies `bytes[0..<n]` into its own allocation so AddressSanitizer catches any read past `n`.
func withPrefix<R>(_ bytes: UnsafeBufferPointer<UInt8>, _ n: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(n, 1), alignment: 1)
    defer { copy.deallocate() }
    if n > 0 { copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[0..<n])) }
    return body(UnsafeRawBufferPointer(start: copy.baseAddress, count: n))
}

/// Limits for re-parsing what the writer produced, which may be a little longer than its input.
let unlimited = HeadLimits(maxHeadBytes: Int(Int32.max), maxTargetBytes: Int.max, maxHeaders: Int.max, requireHost: false,
                           underscores: .allow)

func fieldsEqual(_ a: [HeaderField], _ b: [HeaderField]) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        if x.nameStart != y.nameStart || x.nameLength != y.nameLength || x.valueStart != y.valueStart
            || x.valueLength != y.valueLength || x.kind != y.kind || x.hopByHop != y.hopByHop { return false }
    }
    return true
}

func checkFields(_ fields: [HeaderField], _ headLength: Int) {
    for f in fields {
        precondition(f.nameLength > 0 && f.valueLength >= 0)
        precondition(f.nameRange.upperBound < f.valueRange.lowerBound || f.valueLength == 0)
        precondition(f.valueRange.upperBound <= headLength)
    }
}

func parseRequest(_ bytes: UnsafeBufferPointer<UInt8>, split: Int, limits: HeadLimits) -> (ParseStatus, RequestHead) {
    var parser = HeadParser(limits: limits)
    var head = RequestHead()
    var status = ParseStatus.incomplete
    if split < bytes.count {
        status = withPrefix(bytes, split) { parser.parseRequest($0, into: &head) }
    }
    if status == .incomplete {
        status = withPrefix(bytes, bytes.count) { parser.parseRequest($0, into: &head) }
    }
    return (status, head)
}

func fuzzRequest(_ bytes: UnsafeBufferPointer<UInt8>, split: Int, limits: HeadLimits) {
    let (whole, a) = parseRequest(bytes, split: bytes.count, limits: limits)
    let (parts, b) = parseRequest(bytes, split: split, limits: limits)
    precondition(whole == parts, "request: whole \(whole) vs split at \(split) \(parts)")
    guard case .complete(let n) = whole else {
        if case .error(let e) = whole { precondition(e.offset >= 0 && e.offset <= max(bytes.count, limits.maxHeadBytes)) }
        return
    }
    precondition(n <= bytes.count && n <= limits.maxHeadBytes && a.headLength == n)
    precondition(a.method == b.method && a.methodRange == b.methodRange && a.targetRange == b.targetRange)
    precondition(a.framing == b.framing && a.keepAlive == b.keepAlive && a.upgrade == b.upgrade)
    precondition(a.expectContinue == b.expectContinue && a.versionMinor == b.versionMinor)
    precondition(fieldsEqual(a.headers, b.headers))
    precondition(a.headers.count <= limits.maxHeaders && a.targetRange.count <= limits.maxTargetBytes)
    precondition(!a.targetRange.isEmpty && a.targetRange.upperBound < n && a.framing != .untilClose)
    checkFields(a.headers, n)

    // What the proxy writes must parse again, to the same method, target and framing.
    withPrefix(bytes, n) { src in
        _ = a.cookie(named: "dynsoftup", source: src)
        _ = a.headerValue(.host, source: src)
        for tunnel in [false, true] {
            var out: [UInt8] = []
            HeadWriter.appendRequest(a, source: src, clientAddress: "192.0.2.1", tunnel: tunnel, to: &out)
            var again = HeadParser(limits: unlimited)
            var head = RequestHead()
            let status = out.withUnsafeBytes { again.parseRequest($0, into: &head) }
            precondition(status == .complete(headLength: out.count), "rewritten request: \(status)")
            precondition(head.method == a.method && head.targetRange.count == a.targetRange.count)
            precondition(head.framing == a.framing)
        }
    }
}

func parseResponse(_ bytes: UnsafeBufferPointer<UInt8>, split: Int, method: HTTPMethod) -> (ParseStatus, ResponseHead) {
    var parser = HeadParser()
    var head = ResponseHead()
    var status = ParseStatus.incomplete
    if split < bytes.count {
        status = withPrefix(bytes, split) { parser.parseResponse($0, requestMethod: method, into: &head) }
    }
    if status == .incomplete {
        status = withPrefix(bytes, bytes.count) { parser.parseResponse($0, requestMethod: method, into: &head) }
    }
    return (status, head)
}

func fuzzResponse(_ bytes: UnsafeBufferPointer<UInt8>, split: Int, method: HTTPMethod) {
    let (whole, a) = parseResponse(bytes, split: bytes.count, method: method)
    let (parts, b) = parseResponse(bytes, split: split, method: method)
    precondition(whole == parts, "response: whole \(whole) vs split at \(split) \(parts)")
    guard case .complete(let n) = whole else { return }
    precondition(a.status == b.status && a.status >= 100 && a.status <= 999 && a.reasonRange == b.reasonRange)
    precondition(a.framing == b.framing && a.keepAlive == b.keepAlive && fieldsEqual(a.headers, b.headers))
    checkFields(a.headers, n)
    withPrefix(bytes, n) { src in
        var out: [UInt8] = []
        HeadWriter.appendResponse(a, source: src, extraHeaders: ["Set-Cookie: a=b"], close: false, clientVersionMinor: 0, to: &out)
        var again = HeadParser(limits: unlimited)
        var head = ResponseHead()
        let status = out.withUnsafeBytes { again.parseResponse($0, requestMethod: method, into: &head) }
        precondition(status == .complete(headLength: out.count), "rewritten response: \(status)")
        precondition(head.status == a.status)
    }
}

/// Decodes a chunked body delivered in two parts; returns the final event, the data and the body bytes used.
func decodeChunked(_ bytes: UnsafeBufferPointer<UInt8>, split: Int) -> (ChunkedDecoder.Event, [UInt8], Int) {
    var decoder = ChunkedDecoder(maxTrailerBytes: 64)
    var data: [UInt8] = []
    var pos = 0
    var dataLeft = 0
    for limit in [split, bytes.count] {
        while pos < limit {
            if dataLeft > 0 {
                let take = min(dataLeft, limit - pos)
                data += bytes[pos..<pos + take]
                pos += take
                dataLeft -= take
                continue
            }
            let (consumed, event) = withPrefix(UnsafeBufferPointer(rebasing: bytes[pos..<limit]), limit - pos) { decoder.decode($0) }
            precondition(consumed >= 0 && consumed <= limit - pos)
            pos += consumed
            switch event {
            case .needMore:
                precondition(pos == limit)
            case .chunkData(let n):
                precondition(n > 0)
                dataLeft = n > UInt64(Int.max / 2) ? Int.max / 2 : Int(n)
            case .end, .error:
                return (event, data, pos)
            }
        }
    }
    return (.needMore, data, pos)
}

func fuzzChunked(_ bytes: UnsafeBufferPointer<UInt8>, split: Int) {
    let whole = decodeChunked(bytes, split: bytes.count)
    let parts = decodeChunked(bytes, split: split)
    precondition(whole.0 == parts.0 && whole.1 == parts.1 && whole.2 == parts.2, "chunked: \(whole.0) vs \(parts.0)")
    if case .error(let e) = whole.0 { precondition(e.offset == whole.2) }

    // The scan that refuses a body before its head is forwarded agrees with the streaming decoder
    // (trailers aside: the scan allows the default trailer limit, the decoder above 64 bytes).
    let scan = withPrefix(bytes, bytes.count) { ChunkedDecoder.scan($0) }
    if case .error(let e) = whole.0, e.code == .trailersTooLarge { return }
    switch (scan, whole.0) {
    case (.complete(let n, let used), .end):
        precondition(n == UInt64(whole.1.count) && used == whole.2, "scan: \(scan) vs \(whole.2)")
    case (.invalid(let a), .error(let b)):
        precondition(a == b, "scan: \(a) vs \(b)")
    case (.incomplete, .needMore):
        break
    default:
        preconditionFailure("scan \(scan) vs decoder \(whole.0)")
    }

    // The normal form the proxy forwards decodes to the same data, and is its own normal form.
    guard case .end = whole.0 else { return }
    let normal = normalForm(bytes)
    let again = normal.withUnsafeBufferPointer { decodeChunked($0, split: $0.count) }
    guard case .end = again.0 else { preconditionFailure("normal form did not decode: \(again.0)") }
    precondition(again.1 == whole.1 && again.2 == normal.count)
    precondition(normal.withUnsafeBufferPointer { normalForm($0) } == normal)
}

/// The body written the way the proxy forwards it: decoder events turned into `ChunkedFraming`.
func normalForm(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
    var decoder = ChunkedDecoder()
    var out: [UInt8] = []
    var pos = 0
    while true {
        let (consumed, event) = withPrefix(UnsafeBufferPointer(rebasing: bytes[pos...]), bytes.count - pos) { decoder.decode($0) }
        pos += consumed
        switch event {
        case .chunkData(let n):
            ChunkedFraming.appendSizeLine(n, to: &out)
            out += bytes[pos..<pos + Int(n)]
            pos += Int(n)
            ChunkedFraming.appendDataEnd(to: &out)
        case .end:
            ChunkedFraming.appendLastChunk(to: &out)
            return out
        case .needMore, .error:
            preconditionFailure("normalForm is only called on complete bodies")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = Int(bytes[0]) % (size + 1)
    fuzzRequest(bytes, split: split, limits: HeadLimits())
    fuzzRequest(bytes, split: split, limits: HeadLimits(maxHeadBytes: 96, maxTargetBytes: 16, maxHeaders: 3, requireHost: false))
    fuzzRequest(bytes, split: split, limits: HeadLimits(underscores: .drop))
    fuzzRequest(bytes, split: split, limits: HeadLimits(underscores: .allow))
    let methods: [HTTPMethod] = [.get, .head, .connect, .post]
    fuzzResponse(bytes, split: split, method: methods[Int(bytes[size - 1]) & 3])
    fuzzChunked(bytes, split: split)
    return 0
}
