/// Incremental parser for HTTP/1.1 request and response heads (RFC 9112 2–6).
///
/// The parser is a byte-level state machine that validates every byte when it first sees it and
/// remembers where it stopped, so a head that arrives in pieces is scanned once, and the outcome
/// (including the error and its offset) is the same however the bytes were split.
/// Results are offsets into the caller's buffer; parsing allocates nothing once the field array
/// has grown to its working size.
///
/// Strictness, all deliberate:
/// - Line endings must be CRLF. A bare LF anywhere in the head is rejected (`.bareLF`, 400),
///   never treated as a line ending: accepting it is a classic request-smuggling vector.
/// - Up to 4 empty lines before a start line are skipped (RFC 9112 2.2); a fifth is an error.
/// - `PRI * HTTP/2.0` (the HTTP/2 preface) fails with `.http2Preface` (505); `HTTP/0.x` in a request
///   line with `.http09Request` (400: HTTP/0.9 has no version); any other version than HTTP/1.0 or
///   HTTP/1.1 with `.badVersion` (505); a malformed version with 400.
/// - obs-fold, whitespace before the colon, non-token name bytes, and control characters other
///   than HT in values are rejected (400).
/// - A request's Content-Length must be one field holding one run of digits: a list (`5, 5`), a
///   repeat (even of the same value) or anything else is 400. In a response, identical repeats
///   (also as a list) collapse and different ones are rejected. Content-Length with
///   Transfer-Encoding is rejected, for requests (400) and responses alike (the proxy answers 502).
/// - Request field names: one that reads as Content-Length or Transfer-Encoding once `-` and `_`
///   are ignored is 400; one containing `_` is refused (400), dropped or allowed as
///   `HeadLimits.underscores` says.
/// - A request's Transfer-Encoding must be exactly `chunked` (possibly split across fields):
///   a non-chunked final coding is 400, another coding before `chunked` is 501; Transfer-Encoding
///   in an HTTP/1.0 request is 400 (RFC 9112 6.1). In a response a non-chunked final coding means
///   the body runs until the backend closes.
/// - A request with more than one Host is rejected; an HTTP/1.1 request without Host too, unless
///   `HeadLimits.requireHost` is false.
///
/// Usage: call `parseRequest` (or `parseResponse`) each time the buffer grows, passing the whole
/// buffer from the start of the message; call `reset()` before the next message.
public struct HeadParser: Sendable {
    /// The limits in force; change them only between messages.
    public var limits: HeadLimits

    /// Parser position: which part of the head the next byte belongs to.
    @usableFromInline enum State: UInt8, Sendable {
        /// Before the start line; empty lines are skipped here.
        case start
        /// Saw CR of an empty line before the start line; LF must follow.
        case startLF
        /// Inside the method.
        case method
        /// After the SP that ends the method; the target's first byte comes next.
        case targetStart
        /// Inside the request-target.
        case target
        /// Inside `HTTP/x.y`; `versionIndex` says which byte is next.
        case version
        /// After the request line's version: CR must follow.
        case requestLineCR
        /// After the start line's CR: LF must follow.
        case startLineLF
        /// After a status line's version: SP must follow.
        case statusSP
        /// Inside the 3-digit status code.
        case statusCode
        /// After the status code: SP (then reason) or CR.
        case afterStatus
        /// Inside the reason phrase.
        case reason
        /// At the first byte of a field line, or of the final empty line.
        case lineStart
        /// Inside a field name.
        case name
        /// After the colon, skipping OWS before the value.
        case valueStart
        /// Inside a field value.
        case value
        /// After a field line's CR: LF must follow.
        case valueLF
        /// After the final empty line's CR: LF must follow.
        case finalLF
        /// The head is complete; `headLength` is set.
        case done
        /// The head was rejected; `failure` is set.
        case failed
    }

    /// Everything known about the message being parsed; plain values, so `reset()` is one store.
    struct Message: Sendable {
        var state: State = .start
        /// Next byte to examine, from the buffer start.
        var pos: Int = 0
        var emptyLines: Int = 0
        var failure: HTTPParseError? = nil
        var headLength: Int = 0

        // Start line.
        var methodStart = 0, methodEnd = 0, targetStart = 0, targetEnd = 0
        var versionIndex = 0, versionMinor = 1
        var status = 0, statusDigits = 0, reasonStart = 0, reasonEnd = 0

        // Current field line.
        var nameStart = 0, nameEnd = 0, valueStart = 0, valueEnd = 0
        var kind: HeaderKind = .other

        // Framing and connection facts gathered field by field.
        var contentLength: UInt64? = nil
        var contentLengthName = 0
        var transferEncodingName = -1
        var codings = 0, chunkedCodings = 0, otherCodings = 0
        var lastCodingChunked = false, lastCodingOffset = 0, firstOtherCodingOffset = 0, secondChunkedOffset = 0
        var connectionClose = false, connectionKeepAlive = false, connectionUpgrade = false
        var connectionNamesOthers = false
        var hasUpgradeField = false, expectContinue = false, hostCount = 0
    }

    /// Progress through the current message.
    var m = Message()

    // Fields collected so far; swapped into the head when it is complete, so both arrays keep
    // their capacity and a caller that passes a fresh head each call loses nothing.
    var fields: [HeaderField] = []

    /// Leading empty lines skipped before a start line (RFC 9112 2.2 allows "at least one").
    static let maxEmptyLines = 4

    /// Creates a parser ready for the first message.
    public init(limits: HeadLimits = HeadLimits()) {
        self.limits = limits
    }

    /// Forgets the current message so the next call parses a new one; keeps the field array's capacity.
    public mutating func reset() {
        m = Message()
        if !fields.isEmpty { fields.removeAll(keepingCapacity: true) }
    }

    /// Parses a request head from the start of `bytes`.
    ///
    /// Returns `.incomplete` when more bytes are needed (call again with the same, grown buffer),
    /// `.complete(headLength:)` once the head is complete and `head` is filled (bytes after
    /// `headLength` — body or a pipelined request — are not looked at), or `.error` (repeated on
    /// every later call until `reset()`). `.error(.headTooLarge)` comes as soon as the buffer holds
    /// more than `maxHeadBytes` bytes without a complete head. After `.complete`, further calls
    /// return it again without touching `head`.
    public mutating func parseRequest(_ bytes: UnsafeRawBufferPointer, into head: inout RequestHead) -> ParseStatus {
        switch m.state {
        case .done: return .complete(headLength: m.headLength)
        case .failed: return .error(m.failure!)
        default: break
        }
        guard let p = bytes.bytePointer else { return .incomplete }
        do {
            guard try advance(p, bytes.count, response: false) else { return .incomplete }
            try finishRequest(p)
        } catch {
            m.state = .failed
            m.failure = error
            return .error(error)
        }
        m.state = .done
        head.method = HTTPMethod.classify(p + m.methodStart, count: m.methodEnd - m.methodStart)
        head.methodRange = m.methodStart..<m.methodEnd
        head.targetRange = m.targetStart..<m.targetEnd
        head.versionMinor = m.versionMinor
        swap(&head.headers, &fields)
        head.framing =
            m.transferEncodingName >= 0 ? .chunked : m.contentLength.map { .contentLength($0) } ?? BodyFraming.none
        head.keepAlive = !m.connectionClose && (m.versionMinor == 1 || m.connectionKeepAlive)
        head.upgrade = m.connectionUpgrade && m.hasUpgradeField
        head.expectContinue = m.expectContinue
        head.headLength = m.headLength
        return .complete(headLength: m.headLength)
    }

    /// Parses a response head from the start of `bytes`; `requestMethod` is the method of the
    /// request it answers (a response to HEAD has no body).
    ///
    /// Returns `.incomplete`, `.complete(headLength:)` with `head` filled, or `.error`, exactly as
    /// `parseRequest` does. A 1xx response is a head of its own: after it, `reset()` and parse the
    /// next head from the bytes after `headLength`.
    public mutating func parseResponse(_ bytes: UnsafeRawBufferPointer, requestMethod: HTTPMethod, into head: inout ResponseHead) -> ParseStatus {
        switch m.state {
        case .done: return .complete(headLength: m.headLength)
        case .failed: return .error(m.failure!)
        default: break
        }
        guard let p = bytes.bytePointer else { return .incomplete }
        let framing: BodyFraming
        do {
            guard try advance(p, bytes.count, response: true) else { return .incomplete }
            framing = try responseFraming(p, requestMethod)
        } catch {
            m.state = .failed
            m.failure = error
            return .error(error)
        }
        m.state = .done
        head.versionMinor = m.versionMinor
        head.status = m.status
        head.reasonRange = m.reasonStart..<m.reasonEnd
        swap(&head.headers, &fields)
        head.framing = framing
        head.keepAlive = !m.connectionClose && (m.versionMinor == 1 || m.connectionKeepAlive) && framing != .untilClose
        head.headLength = m.headLength
        return .complete(headLength: m.headLength)
    }

    // MARK: - The state machine

    /// Runs the state machine over `p[pos..<count]`. Returns true when the head is complete
    /// (`headLength` set, field facts gathered), false when more bytes are needed.
    @inline(__always)
    mutating func advance(_ p: UnsafePointer<UInt8>, _ count: Int, response: Bool) throws(HTTPParseError) -> Bool {
        var i = m.pos
        defer { m.pos = i }
        let maxHead = max(limits.maxHeadBytes, 0)
        let end = min(count, maxHead)
        scan: while i < end {
            // The request line runs from .start to .startLineLF with `fallthrough`, as field lines do
            // below: one dispatch for the whole line when it is all there.
            switch m.state {
            case .startLF:
                guard p[i] == LF else { throw HTTPParseError(.badLineEnding, at: i) }
                m.emptyLines += 1
                guard m.emptyLines <= HeadParser.maxEmptyLines else {
                    throw HTTPParseError(response ? .badStatusLine : .badRequestLine, at: i)
                }
                i += 1
                m.state = .start

            case .start:
                let b = p[i]
                if b == CR {
                    m.state = .startLF
                    i += 1
                } else if b == LF {
                    throw HTTPParseError(.bareLF, at: i)
                } else if response {
                    m.state = .version
                    m.versionIndex = 0
                } else if isToken(b) {
                    m.methodStart = i
                    m.state = .method
                    i += 1
                    fallthrough
                } else {
                    throw HTTPParseError(b == SP ? .badRequestLine : .badMethod, at: i)
                }

            case .method:
                while i < end && isToken(p[i]) { i += 1 }
                guard i < end else { break scan }
                let b = p[i]
                guard b == SP else { throw HTTPParseError(b == CR || b == LF || b == HT ? .badRequestLine : .badMethod, at: i) }
                m.methodEnd = i
                i += 1
                m.state = .targetStart
                fallthrough

            case .targetStart:
                guard i < end else { break scan }
                let b = p[i]
                if b == SP || b == CR || b == LF || b == HT { throw HTTPParseError(.badRequestLine, at: i) }
                if b < SP || b == DEL { throw HTTPParseError(.badTarget, at: i) }
                m.targetStart = i
                m.state = .target
                fallthrough

            case .target:
                // Saturating: limits are public vars and may hold anything, Int.max included.
                let room = limits.maxTargetBytes
                let limit = room >= end - m.targetStart ? Int.max : m.targetStart + max(room, 0)
                let stop = min(end, limit)
                while i &+ 8 <= stop && !hasNonTargetByte(loadWord(p, i)) { i &+= 8 }
                while i < stop {
                    let b = p[i]
                    guard b > SP && b != DEL else { break }
                    i += 1
                }
                guard i < end else { break scan }
                let b = p[i]
                if b > SP && b != DEL { throw HTTPParseError(.targetTooLong, at: i) }  // i == limit
                guard b == SP else { throw HTTPParseError(b == CR || b == LF || b == HT ? .badRequestLine : .badTarget, at: i) }
                m.targetEnd = i
                i += 1
                m.state = .version
                m.versionIndex = 0
                fallthrough

            case .version:
                // Fast path: the whole of "HTTP/1.1" or "HTTP/1.0" in one comparison.
                if m.versionIndex == 0 && i &+ 8 <= end {
                    let w = UInt64(littleEndian: loadWord(p, i))
                    if w == http11Word || w == http10Word {
                        m.versionMinor = w == http11Word ? 1 : 0
                        m.versionIndex = 8
                        i &+= 8
                        if response {
                            m.state = .statusSP
                            continue scan
                        }
                        m.state = .requestLineCR
                        fallthrough
                    }
                }
                guard i < end else { break scan }
                let b = p[i]
                let malformed: HTTPParseError.Code = response ? .badStatusLine : .badRequestLine
                switch m.versionIndex {
                case 0...4:
                    guard b == ("HTTP/" as StaticString).utf8Start[m.versionIndex] else { throw HTTPParseError(malformed, at: i) }
                case 5:
                    guard b >= 0x30 && b <= 0x39 else { throw HTTPParseError(malformed, at: i) }
                    if b == 0x30 && !response { throw HTTPParseError(.http09Request, at: i) }
                    if b != 0x31 {
                        if !response && b == 0x32 && m.methodEnd - m.methodStart == 3 && bytesEqual(p + m.methodStart, "PRI")
                            && m.targetEnd - m.targetStart == 1 && p[m.targetStart] == 0x2A {
                            throw HTTPParseError(.http2Preface, at: m.methodStart)
                        }
                        throw HTTPParseError(.badVersion, at: i)
                    }
                case 6:
                    guard b == 0x2E else { throw HTTPParseError(malformed, at: i) }
                default:
                    guard b >= 0x30 && b <= 0x39 else { throw HTTPParseError(malformed, at: i) }
                    guard b <= 0x31 else { throw HTTPParseError(.badVersion, at: i) }
                    m.versionMinor = Int(b &- 0x30)
                    m.state = response ? .statusSP : .requestLineCR
                }
                m.versionIndex += 1
                i += 1

            case .requestLineCR:
                guard i < end else { break scan }
                let b = p[i]
                guard b == CR else { throw HTTPParseError(b == LF ? .bareLF : .badRequestLine, at: i) }
                i += 1
                m.state = .startLineLF
                fallthrough

            case .startLineLF:
                guard i < end else { break scan }
                guard p[i] == LF else { throw HTTPParseError(.badLineEnding, at: i) }
                i += 1
                m.state = .lineStart

            case .statusSP:
                guard p[i] == SP else { throw HTTPParseError(.badStatusLine, at: i) }
                i += 1
                m.status = 0
                m.statusDigits = 0
                m.state = .statusCode

            case .statusCode:
                let b = p[i]
                guard b >= 0x30 && b <= 0x39, m.statusDigits > 0 || b != 0x30 else {
                    throw HTTPParseError(.badStatusLine, at: i)
                }
                m.status = m.status * 10 + Int(b &- 0x30)
                m.statusDigits += 1
                i += 1
                if m.statusDigits == 3 { m.state = .afterStatus }

            case .afterStatus:
                let b = p[i]
                if b == SP {
                    i += 1
                    m.reasonStart = i
                    m.state = .reason
                } else if b == CR {
                    // "HTTP/1.1 200\r\n": the SP before an empty reason is missing; accepted.
                    m.reasonStart = i
                    m.reasonEnd = i
                    i += 1
                    m.state = .startLineLF
                } else {
                    throw HTTPParseError(b == LF ? .bareLF : .badStatusLine, at: i)
                }

            case .reason:
                while i < end {
                    let b = p[i]
                    guard (b >= SP && b != DEL) || b == HT else { break }
                    i += 1
                }
                guard i < end else { break scan }
                let b = p[i]
                guard b == CR else { throw HTTPParseError(b == LF ? .bareLF : .badStatusLine, at: i) }
                m.reasonEnd = i
                i += 1
                m.state = .startLineLF

            // A field line runs through the next five cases with `fallthrough`, so the common case
            // costs one dispatch per line; a case re-entered after more bytes arrive resumes mid-line.
            case .lineStart:
                let b = p[i]
                guard isToken(b) else {
                    if b == CR {
                        i += 1
                        m.state = .finalLF
                        continue scan  // .finalLF ends the head
                    }
                    if b == SP || b == HT { throw HTTPParseError(.obsFold, at: i) }
                    if b == COLON { throw HTTPParseError(.emptyHeaderName, at: i) }
                    if b == LF { throw HTTPParseError(.bareLF, at: i) }
                    throw HTTPParseError(.badHeaderName, at: i)
                }
                guard fields.count < limits.maxHeaders else { throw HTTPParseError(.tooManyHeaders, at: i) }
                m.nameStart = i
                i += 1
                m.state = .name
                fallthrough

            case .name:
                while i < end && isToken(p[i]) { i += 1 }
                guard i < end else { break scan }
                let b = p[i]
                guard b == COLON else {
                    if b == SP || b == HT { throw HTTPParseError(.spaceBeforeColon, at: i) }
                    if b == CR || b == LF { throw HTTPParseError(.missingColon, at: i) }
                    throw HTTPParseError(.badHeaderName, at: i)
                }
                m.nameEnd = i
                m.kind = HeaderKind.classify(p + m.nameStart, count: m.nameEnd - m.nameStart)
                i += 1
                m.state = .valueStart
                fallthrough

            case .valueStart:
                while i < end && (p[i] == SP || p[i] == HT) { i += 1 }
                guard i < end else { break scan }
                m.valueStart = i
                m.state = .value
                fallthrough

            case .value:
                // Eight bytes at a time until a word holds a control byte (CR ends the value; HT is
                // allowed and merely slows that word down), then byte by byte through that word.
                var stopped = false
                while !stopped {
                    while i &+ 8 <= end && !hasControlOrDEL(loadWord(p, i)) { i &+= 8 }
                    let stop = min(i &+ 8, end)
                    while i < stop {
                        let b = p[i]
                        guard (b >= SP && b != DEL) || b == HT else {
                            stopped = true
                            break
                        }
                        i += 1
                    }
                    if i == end { break }
                }
                guard i < end else { break scan }
                let b = p[i]
                guard b == CR else { throw HTTPParseError(b == LF ? .bareLF : .controlCharInValue, at: i) }
                var e = i
                while e > m.valueStart && (p[e - 1] == SP || p[e - 1] == HT) { e -= 1 }
                m.valueEnd = e
                i += 1
                m.state = .valueLF
                fallthrough

            case .valueLF:
                guard i < end else { break scan }
                guard p[i] == LF else { throw HTTPParseError(.badLineEnding, at: i) }
                try finishField(p, response: response)
                i += 1
                m.state = .lineStart

            case .finalLF:
                guard p[i] == LF else { throw HTTPParseError(.badLineEnding, at: i) }
                i += 1
                m.headLength = i
                return true

            case .done, .failed:
                preconditionFailure("HeadParser.advance called after the head ended")
            }
        }
        if count > maxHead {
            throw HTTPParseError(.headTooLarge, at: maxHead)
        }
        return false
    }

    /// Records the field line that just ended and applies the per-field rules.
    mutating func finishField(_ p: UnsafePointer<UInt8>, response: Bool) throws(HTTPParseError) {
        switch m.kind {
        case .contentLength:
            if m.transferEncodingName >= 0 { throw HTTPParseError(.contentLengthAndTransferEncoding, at: m.nameStart) }
            if !response {
                // Requests: one field holding one run of digits, nothing else (no list, no repeat, even
                // of the same value). RFC 9110 8.6 lets a recipient merge "5, 5"; refusing costs nothing
                // and leaves no room for a backend to read the field differently.
                if m.contentLength != nil { throw HTTPParseError(.duplicateContentLength, at: m.nameStart) }
                m.contentLength = try digitsValue(p, m.valueStart, m.valueEnd)
                m.contentLengthName = m.nameStart
                break
            }
            var value: UInt64? = m.contentLength
            try forEachListElement(p, m.valueStart, m.valueEnd) { (s, e) throws(HTTPParseError) in
                let n = try digitsValue(p, s, e)
                if let v = value, v != n { throw HTTPParseError(.duplicateContentLength, at: s) }
                value = n
            }
            // Also rejects a value made only of commas and whitespace.
            guard let v = value else { throw HTTPParseError(.badContentLength, at: m.valueStart) }
            if m.contentLength == nil { m.contentLengthName = m.nameStart }
            m.contentLength = v

        case .transferEncoding:
            if m.contentLength != nil { throw HTTPParseError(.contentLengthAndTransferEncoding, at: m.nameStart) }
            if m.transferEncodingName < 0 { m.transferEncodingName = m.nameStart }
            forEachListElement(p, m.valueStart, m.valueEnd) { (s, e) in
                m.codings += 1
                m.lastCodingOffset = s
                if equalsFolded(p + s, e - s, "chunked") {
                    m.chunkedCodings += 1
                    if m.chunkedCodings == 2 { m.secondChunkedOffset = s }
                    m.lastCodingChunked = true
                } else {
                    m.otherCodings += 1
                    if m.otherCodings == 1 { m.firstOtherCodingOffset = s }
                    m.lastCodingChunked = false
                }
            }

        case .connection:
            forEachListElement(p, m.valueStart, m.valueEnd) { (s, e) in
                if equalsFolded(p + s, e - s, "close") {
                    m.connectionClose = true
                } else if equalsFolded(p + s, e - s, "keep-alive") {
                    m.connectionKeepAlive = true
                } else if equalsFolded(p + s, e - s, "upgrade") {
                    m.connectionUpgrade = true
                } else {
                    m.connectionNamesOthers = true
                }
            }

        case .upgrade:
            m.hasUpgradeField = true

        case .expect:
            if equalsFolded(p + m.valueStart, m.valueEnd - m.valueStart, "100-continue") { m.expectContinue = true }

        case .host:
            m.hostCount += 1
            if !response && m.hostCount > 1 { throw HTTPParseError(.duplicateHost, at: m.nameStart) }

        case .other:
            if !response, try checkUnusualName(p) { return }
        default:
            break
        }
        fields.append(HeaderField(
            nameStart: Int32(truncatingIfNeeded: m.nameStart), nameLength: Int32(truncatingIfNeeded: m.nameEnd - m.nameStart),
            valueStart: Int32(truncatingIfNeeded: m.valueStart), valueLength: Int32(truncatingIfNeeded: m.valueEnd - m.valueStart),
            kind: m.kind, hopByHop: m.kind.isHopByHop))
    }

    /// Parses `p[start..<end]` as one run of decimal digits (a request's Content-Length).
    func digitsValue(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) throws(HTTPParseError) -> UInt64 {
        guard start < end else { throw HTTPParseError(.badContentLength, at: start) }
        var n: UInt64 = 0
        for j in start..<end {
            let d = p[j] &- 0x30
            guard d <= 9 else { throw HTTPParseError(.badContentLength, at: j) }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1 && !o2 else { throw HTTPParseError(.badContentLength, at: j) }
            n = a
        }
        return n
    }

    /// Request field names the proxy does not act on but a backend might: a name that reads as a
    /// framing field once `-` and `_` are ignored is refused; a name with `_` is refused, dropped
    /// or allowed as `limits.underscores` says. Returns true when the field is to be dropped
    /// (recorded as hop-by-hop, so it is never forwarded).
    @inline(__always)
    mutating func checkUnusualName(_ p: UnsafePointer<UInt8>) throws(HTTPParseError) -> Bool {
        let start = m.nameStart, count = m.nameEnd - m.nameStart
        var underscore = false
        var i = 0
        while i &+ 8 <= count {
            if hasByteBelow(loadWord(p, start &+ i) ^ (ones &* 0x5F), 1) { underscore = true; break }
            i &+= 8
        }
        if !underscore {
            while i < count { if p[start &+ i] == 0x5F { underscore = true; break }; i &+= 1 }
        }
        // The shortest look-alike is "contentlength" (13 letters); only names starting with c or t qualify.
        if count >= 13 {
            let first = p[start] | 0x20
            if (first == 0x63 || first == 0x74) && (lettersEqual(p + start, count, "contentlength")
                                                   || lettersEqual(p + start, count, "transferencoding")) {
                throw HTTPParseError(.framingHeaderLookalike, at: start)
            }
        }
        guard underscore else { return false }
        switch limits.underscores {
        case .refuse: throw HTTPParseError(.underscoreInHeaderName, at: start)
        case .allow: return false
        case .drop:
            fields.append(HeaderField(
                nameStart: Int32(truncatingIfNeeded: start), nameLength: Int32(truncatingIfNeeded: count),
                valueStart: Int32(truncatingIfNeeded: m.valueStart), valueLength: Int32(truncatingIfNeeded: m.valueEnd - m.valueStart),
                kind: .other, hopByHop: true))
            return true
        }
    }

    /// Applies the whole-head rules that need every field line; also marks fields named by Connection.
    mutating func finishCommon(_ p: UnsafePointer<UInt8>) {
        guard m.connectionNamesOthers else { return }
        // RFC 9110 7.6.1: fields named in Connection are hop-by-hop. Rare, so the quadratic walk is fine.
        for c in fields.indices where fields[c].kind == .connection {
            let f = fields[c]
            forEachListElement(p, Int(f.valueStart), Int(f.valueStart) + Int(f.valueLength)) { (s, e) in
                for j in fields.indices where !fields[j].hopByHop && Int(fields[j].nameLength) == e - s {
                    switch fields[j].kind {
                    case .host, .contentLength, .transferEncoding: continue
                    default: break
                    }
                    if equalsFolded(p + Int(fields[j].nameStart), p + s, e - s) { fields[j].hopByHop = true }
                }
            }
        }
    }

    /// Whole-head rules for a request.
    mutating func finishRequest(_ p: UnsafePointer<UInt8>) throws(HTTPParseError) {
        let finalLine = m.headLength - 2
        if m.transferEncodingName >= 0 {
            if m.versionMinor == 0 { throw HTTPParseError(.transferEncodingInHTTP10, at: m.transferEncodingName) }
            if m.codings == 0 { throw HTTPParseError(.badTransferEncoding, at: m.transferEncodingName) }
            if !m.lastCodingChunked { throw HTTPParseError(.transferEncodingNotChunkedLast, at: m.lastCodingOffset) }
            if m.otherCodings > 0 { throw HTTPParseError(.unsupportedTransferCoding, at: m.firstOtherCodingOffset) }
            if m.chunkedCodings > 1 { throw HTTPParseError(.badTransferEncoding, at: m.secondChunkedOffset) }
        }
        if m.hostCount == 0 && m.versionMinor == 1 && limits.requireHost {
            throw HTTPParseError(.missingHost, at: finalLine)
        }
        finishCommon(p)
    }

    /// Whole-head rules for a response; returns its body framing (RFC 9112 6.3).
    mutating func responseFraming(_ p: UnsafePointer<UInt8>, _ requestMethod: HTTPMethod) throws(HTTPParseError) -> BodyFraming {
        if m.transferEncodingName >= 0 {
            if m.codings == 0 { throw HTTPParseError(.badTransferEncoding, at: m.transferEncodingName) }
            if m.chunkedCodings > 1 { throw HTTPParseError(.badTransferEncoding, at: m.secondChunkedOffset) }
        }
        finishCommon(p)
        if requestMethod == .head || m.status < 200 || m.status == 204 || m.status == 304 { return .none }
        if requestMethod == .connect && m.status < 300 { return .none }
        if m.transferEncodingName >= 0 {
            // HTTP/1.0 has no chunked coding (RFC 9112 6.1: treat the framing as faulty).
            return m.lastCodingChunked && m.versionMinor == 1 ? .chunked : .untilClose
        }
        if let n = m.contentLength { return .contentLength(n) }
        return .untilClose
    }
}

/// "HTTP/1.1" and "HTTP/1.0" as little-endian 8-byte words (compared against `UInt64(littleEndian:)` loads).
let http11Word: UInt64 = 0x312E_312F_5054_5448
let http10Word: UInt64 = 0x302E_312F_5054_5448

/// The outcome of one `HeadParser` call.
public enum ParseStatus: Equatable, Sendable {
    /// More bytes are needed; call again with the grown buffer.
    case incomplete
    /// The head is complete and the head value filled; it is `headLength` bytes long.
    case complete(headLength: Int)
    /// The head is rejected.
    case error(HTTPParseError)
}
