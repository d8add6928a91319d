/// Reads the framing of a chunked body (RFC 9112 7.1) without ever holding chunk data.
///
/// The decoder sees size lines, the CRLF after each chunk's data, the last chunk and the trailer
/// section; it hands chunk data back to the caller as a byte count, so the data can be copied or
/// spliced without passing through here. The proxy never forwards what it consumes: it writes the
/// framing anew (`ChunkedFraming`), or drops it for a client that cannot read chunked bodies.
///
/// Strictness: sizes are 1*HEXDIG below 2^63; whitespace is allowed only before a `;` (BWS);
/// extensions must be `;name[=token|quoted-string]`; a size line (extensions included) may be at
/// most 4096 bytes; every line ends in CRLF; trailer fields are `token ":" value` without control
/// characters and together at most `maxTrailerBytes`.
///
/// Error offsets count from the first byte of the body (chunk data included), so they are the same
/// however the body arrived.
public struct ChunkedDecoder: Sendable {
    /// What the caller does next.
    public enum Event: Equatable, Sendable {
        /// Every given byte was consumed; call again with more.
        case needMore
        /// The next n bytes after the consumed ones are chunk data (n > 0): forward them, then call
        /// again with the bytes that follow them.
        case chunkData(UInt64)
        /// The body is complete (last chunk, trailers and final CRLF consumed).
        case end
        /// The body is malformed; it cannot be forwarded further.
        case error(HTTPParseError)
    }

    /// Where the decoder is in the chunk framing.
    @usableFromInline enum State: UInt8, Sendable {
        /// At the first hex digit of a size line.
        case size
        /// Inside the hex digits.
        case sizeDigits
        /// Whitespace after the digits; only `;` may follow.
        case sizeBWS
        /// After `;`, before an extension name (BWS allowed).
        case extNameStart
        /// Inside an extension name.
        case extName
        /// Whitespace after an extension name.
        case extAfterName
        /// After `=`, before the extension value (BWS allowed).
        case extValueStart
        /// Inside a token extension value.
        case extValueToken
        /// Inside a quoted-string extension value.
        case extQuoted
        /// After a backslash inside a quoted-string.
        case extQuotedPair
        /// After an extension value: whitespace, `;` or CR.
        case extAfterValue
        /// After a size line's CR: LF must follow.
        case sizeLF
        /// After chunk data: CR must follow.
        case dataCR
        /// After chunk data's CR: LF must follow.
        case dataLF
        /// At the start of a trailer field line or the final empty line.
        case trailerLineStart
        /// Inside a trailer field name.
        case trailerName
        /// Inside a trailer field value.
        case trailerValue
        /// After a trailer line's CR: LF must follow.
        case trailerLF
        /// After the final CR: LF must follow.
        case finalLF
        /// The body is complete.
        case end
        /// The body was rejected; `failure` is set.
        case failed
    }

    /// Longest size line accepted, extensions included.
    public static let maxSizeLineBytes = 4096

    /// Largest trailer section accepted, in bytes (final CRLF excluded).
    public let maxTrailerBytes: Int
    @usableFromInline var state: State = .size
    var size: UInt64 = 0
    var lineBytes = 0
    var trailerBytes = 0
    /// Body offset of the first byte of the next `decode` call's buffer.
    var base: UInt64 = 0
    var failure: HTTPParseError? = nil

    /// Creates a decoder at the start of a chunked body.
    public init(maxTrailerBytes: Int = 16384) {
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// Prepares the decoder for the next body.
    public mutating func reset() {
        self = ChunkedDecoder(maxTrailerBytes: maxTrailerBytes)
    }

    /// Whether the whole body has been read.
    public var isComplete: Bool { state == .end }

    /// Consumes chunk framing from the start of `bytes`.
    ///
    /// Returns how many bytes were consumed (the caller forwards them verbatim) and what follows:
    /// `.chunkData(n)` when a size line was read and the next n bytes are data; `.end` when the body
    /// is complete (bytes after `consumed` belong to the next message); `.needMore` when all bytes
    /// were consumed; `.error` with the bytes before the offending one consumed. After `.end` or
    /// `.error` every call returns the same event and consumes nothing.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) -> (consumed: Int, event: Event) {
        switch state {
        case .end: return (0, .end)
        case .failed: return (0, .error(failure!))
        default: break
        }
        guard let p = bytes.bytePointer else { return (0, .needMore) }
        let count = bytes.count
        var i = 0
        do throws(HTTPParseError) {
            while i < count {
                let b = p[i]
                let at = Int(truncatingIfNeeded: base) &+ i
                switch state {
                case .size:
                    guard let d = hexValue(b) else { throw HTTPParseError(.badChunkSize, at: at) }
                    size = UInt64(d)
                    lineBytes = 1
                    state = .sizeDigits
                    i += 1
                    continue
                case .sizeDigits:
                    if let d = hexValue(b) {
                        guard size >> 59 == 0 else { throw HTTPParseError(.chunkSizeOverflow, at: at) }
                        size = size << 4 | UInt64(d)
                    } else if b == CR {
                        state = .sizeLF
                    } else if b == 0x3B {
                        state = .extNameStart
                    } else if b == SP || b == HT {
                        state = .sizeBWS
                    } else {
                        throw HTTPParseError(.badChunkSize, at: at)
                    }
                case .sizeBWS:
                    if b == 0x3B {
                        state = .extNameStart
                    } else if b != SP && b != HT {
                        throw HTTPParseError(.badChunkSize, at: at)
                    }
                case .extNameStart:
                    if isToken(b) {
                        state = .extName
                    } else if b != SP && b != HT {
                        throw HTTPParseError(.badChunkExtension, at: at)
                    }
                case .extName, .extAfterName, .extValueToken, .extAfterValue:
                    if isToken(b) && (state == .extName || state == .extValueToken) {
                        // still inside the name or value
                    } else if b == SP || b == HT {
                        state = state == .extName || state == .extAfterName ? .extAfterName : .extAfterValue
                    } else if b == 0x3D && (state == .extName || state == .extAfterName) {
                        state = .extValueStart
                    } else if b == 0x3B {
                        state = .extNameStart
                    } else if b == CR {
                        state = .sizeLF
                    } else {
                        throw HTTPParseError(.badChunkExtension, at: at)
                    }
                case .extValueStart:
                    if b == 0x22 {
                        state = .extQuoted
                    } else if isToken(b) {
                        state = .extValueToken
                    } else if b != SP && b != HT {
                        throw HTTPParseError(.badChunkExtension, at: at)
                    }
                case .extQuoted:
                    if b == 0x22 {
                        state = .extAfterValue
                    } else if b == 0x5C {
                        state = .extQuotedPair
                    } else if !(b == HT || (b >= SP && b != DEL)) {
                        throw HTTPParseError(.badChunkExtension, at: at)
                    }
                case .extQuotedPair:
                    guard b == HT || (b >= SP && b != DEL) else { throw HTTPParseError(.badChunkExtension, at: at) }
                    state = .extQuoted
                case .sizeLF:
                    guard b == LF else { throw HTTPParseError(.badChunkSize, at: at) }
                    i += 1
                    if size == 0 {
                        state = .trailerLineStart
                        continue
                    }
                    state = .dataCR
                    base = base &+ UInt64(i) &+ size
                    return (i, .chunkData(size))
                case .dataCR:
                    guard b == CR else { throw HTTPParseError(.badChunkTerminator, at: at) }
                    state = .dataLF
                    i += 1
                    continue
                case .dataLF:
                    guard b == LF else { throw HTTPParseError(.badChunkTerminator, at: at) }
                    state = .size
                    i += 1
                    continue
                case .trailerLineStart, .trailerName, .trailerValue, .trailerLF:
                    if state == .trailerLineStart && b == CR {
                        state = .finalLF
                        i += 1
                        continue
                    }
                    trailerBytes += 1
                    guard trailerBytes <= maxTrailerBytes else { throw HTTPParseError(.trailersTooLarge, at: at) }
                    switch state {
                    case .trailerLineStart:
                        guard isToken(b) else { throw HTTPParseError(.badTrailer, at: at) }
                        state = .trailerName
                    case .trailerName:
                        if b == COLON {
                            state = .trailerValue
                        } else if !isToken(b) {
                            throw HTTPParseError(.badTrailer, at: at)
                        }
                    case .trailerValue:
                        if b == CR {
                            state = .trailerLF
                        } else if !(b == HT || (b >= SP && b != DEL)) {
                            throw HTTPParseError(.badTrailer, at: at)
                        }
                    default:  // .trailerLF
                        guard b == LF else { throw HTTPParseError(.badTrailer, at: at) }
                        state = .trailerLineStart
                    }
                    i += 1
                    continue
                case .finalLF:
                    guard b == LF else { throw HTTPParseError(.badTrailer, at: at) }
                    i += 1
                    state = .end
                    base = base &+ UInt64(i)
                    return (i, .end)
                case .end, .failed:
                    preconditionFailure("unreachable")
                }
                // Only size-line states reach here.
                lineBytes += 1
                guard lineBytes <= ChunkedDecoder.maxSizeLineBytes else {
                    throw HTTPParseError(.chunkLineTooLong, at: at)
                }
                i += 1
            }
        } catch {
            state = .failed
            failure = error
            base = base &+ UInt64(i)
            return (i, .error(error))
        }
        base = base &+ UInt64(i)
        return (i, .needMore)
    }
}

extension ChunkedDecoder {
    /// What a chunked body's first bytes say, read without consuming them (see `scan`).
    public enum Scan: Equatable, Sendable {
        /// No error so far, and the body goes on past these bytes.
        case incomplete
        /// The whole body is here: `dataBytes` of chunk data in `encodedBytes` bytes of body.
        case complete(dataBytes: UInt64, encodedBytes: Int)
        /// The framing is invalid (offset from the first body byte).
        case invalid(HTTPParseError)
    }

    /// Reads the chunked body at the start of `bytes` without taking anything from it: lets the
    /// proxy refuse a malformed body before a backend sees the head, and learn the length of a
    /// body that arrived whole.
    public static func scan(_ bytes: UnsafeRawBufferPointer) -> Scan {
        var decoder = ChunkedDecoder()
        var offset = 0
        var data: UInt64 = 0
        while true {
            let (consumed, event) = decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            offset += consumed
            switch event {
            case .needMore: return .incomplete
            case .end: return .complete(dataBytes: data, encodedBytes: offset)
            case .error(let error): return .invalid(error)
            case .chunkData(let n):
                guard n <= UInt64(bytes.count - offset) else { return .incomplete }
                data += n
                offset += Int(n)   // the decoder's offsets already count the data it skips
            }
        }
    }
}

/// Writes chunked framing the way the proxy forwards it, whatever the sender wrote: the size in
/// minimal lowercase hex with no extensions, CRLF after each chunk's data, and a last chunk with
/// no trailer fields. A backend that truncates long hex numbers or reads extensions differently
/// then sees the same body the proxy checked.
public enum ChunkedFraming {
    /// Appends the size line of a chunk of `size` (> 0) bytes.
    public static func appendSizeLine(_ size: UInt64, to out: inout [UInt8]) {
        var digits = 1
        while digits < 16 && size >> (4 * UInt64(digits)) != 0 { digits += 1 }
        for k in stride(from: digits - 1, through: 0, by: -1) {
            let d = UInt8(truncatingIfNeeded: (size >> (4 * UInt64(k))) & 0xF)
            out.append(d < 10 ? 0x30 &+ d : 0x57 &+ d)
        }
        out.append(CR)
        out.append(LF)
    }

    /// Appends the CRLF that ends a chunk's data.
    public static func appendDataEnd(to out: inout [UInt8]) {
        out.append(CR)
        out.append(LF)
    }

    /// Appends the last chunk and the empty trailer section: `0 CRLF CRLF`.
    public static func appendLastChunk(to out: inout [UInt8]) {
        out.append(contentsOf: [0x30, CR, LF, CR, LF])
    }
}
