/// Why a head, chunked body or trailer section was rejected, and where.
///
/// `offset` is the byte offset of the first offending byte: from the start of the buffer given to
/// `HeadParser` for heads, and from the first body byte for `ChunkedDecoder`.
public struct HTTPParseError: Error, Equatable, Sendable {
    /// One case per rule the parser enforces. The raw value is a stable name for logs and metrics.
    public enum Code: String, Sendable {
        // Start line
        /// The request line is not `method SP target SP HTTP/1.x CRLF` (extra spaces, missing parts, junk).
        case badRequestLine
        /// The method contains a byte that is not a token character.
        case badMethod
        /// The request-target contains a control character.
        case badTarget
        /// `HTTP/x.y` is well formed but not HTTP/1.0 or HTTP/1.1 (505).
        case badVersion
        /// The HTTP/2 connection preface `PRI * HTTP/2.0` (505: this listener speaks HTTP/1.1 only).
        case http2Preface
        /// A request line naming `HTTP/0.x`: HTTP/0.9 has neither a version nor header fields, so
        /// such a request is malformed (400), not a version to negotiate.
        case http09Request
        /// The status line is not `HTTP/1.x SP 3DIGIT [SP reason] CRLF`.
        case badStatusLine
        // Line endings
        /// A LF not preceded by CR. Bare LF line endings are rejected, never accepted as CRLF.
        case bareLF
        /// A CR not followed by LF.
        case badLineEnding
        // Header fields
        /// A field name contains a byte that is not a token character.
        case badHeaderName
        /// A field line starts with a colon.
        case emptyHeaderName
        /// Whitespace between the field name and the colon (RFC 9112 5.1).
        case spaceBeforeColon
        /// A field line without a colon.
        case missingColon
        /// A line starting with SP or HT: obsolete line folding (RFC 9112 5.2).
        case obsFold
        /// A control character other than HT in a field value.
        case controlCharInValue
        /// A request field name containing `_` (refused unless `HeadLimits.underscores` says otherwise).
        case underscoreInHeaderName
        /// A request field name that reads as Content-Length or Transfer-Encoding once `-` and `_`
        /// are ignored (`Content_Length`, `Transfer---Encoding`): refused whatever the policy.
        case framingHeaderLookalike
        // Framing
        /// Content-Length repeated (or listed) with different values; in a request, repeated at all.
        case duplicateContentLength
        /// Content-Length that is empty, not all digits, or larger than 2^64-1; in a request, also a
        /// list (`5, 5`).
        case badContentLength
        /// Both Content-Length and Transfer-Encoding present (request smuggling guard).
        case contentLengthAndTransferEncoding
        /// A request transfer coding other than a single final `chunked`, e.g. `gzip, chunked` (501).
        case unsupportedTransferCoding
        /// A request Transfer-Encoding whose final coding is not `chunked`.
        case transferEncodingNotChunkedLast
        /// An empty Transfer-Encoding, or `chunked` applied more than once.
        case badTransferEncoding
        /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1: faulty framing).
        case transferEncodingInHTTP10
        /// An HTTP/1.1 request without Host (RFC 9112 3.2).
        case missingHost
        /// More than one Host field (RFC 9112 3.2).
        case duplicateHost
        // Limits
        /// The head is longer than `HeadLimits.maxHeadBytes` (431).
        case headTooLarge
        /// The request-target is longer than `HeadLimits.maxTargetBytes` (414).
        case targetTooLong
        /// More than `HeadLimits.maxHeaders` field lines (431).
        case tooManyHeaders
        // Chunked bodies
        /// A chunk size line that is not `1*HEXDIG [chunk-ext] CRLF`.
        case badChunkSize
        /// A chunk size of 2^63 or more.
        case chunkSizeOverflow
        /// A malformed chunk extension (`;name[=token|quoted-string]`).
        case badChunkExtension
        /// A chunk size line (extensions included) longer than the decoder accepts.
        case chunkLineTooLong
        /// Chunk data not followed by CRLF.
        case badChunkTerminator
        /// A malformed trailer field line.
        case badTrailer
        /// The trailer section is larger than the decoder's limit.
        case trailersTooLarge
    }

    /// Which rule was broken.
    public var code: Code
    /// Byte offset of the first offending byte (see the type's documentation for the origin).
    public var offset: Int

    /// Creates an error for `code` at byte `offset`.
    public init(_ code: Code, at offset: Int) {
        self.code = code
        self.offset = offset
    }

    /// The status the proxy answers a client with for this error in a request:
    /// 400, 414, 431, 501 or 505. (An error in a backend's response is always answered with 502.)
    public var status: Int {
        switch code {
        case .badVersion, .http2Preface: return 505
        case .targetTooLong: return 414
        case .headTooLarge, .tooManyHeaders, .trailersTooLarge: return 431
        case .unsupportedTransferCoding: return 501
        default: return 400
        }
    }

    /// One short human-readable line describing the rule that was broken (no offset, no newline).
    public var message: String {
        switch code {
        case .badRequestLine: return "Malformed request line"
        case .badMethod: return "Invalid character in method"
        case .badTarget: return "Invalid character in request target"
        case .badVersion: return "HTTP version not supported"
        case .http2Preface: return "HTTP/2 is not supported on this port"
        case .http09Request: return "HTTP/0.9 requests are not accepted"
        case .badStatusLine: return "Malformed status line"
        case .bareLF: return "Bare LF line ending"
        case .badLineEnding: return "CR not followed by LF"
        case .badHeaderName: return "Invalid character in header name"
        case .emptyHeaderName: return "Empty header name"
        case .spaceBeforeColon: return "Whitespace between header name and colon"
        case .missingColon: return "Header line without colon"
        case .obsFold: return "Obsolete line folding"
        case .controlCharInValue: return "Control character in header value"
        case .underscoreInHeaderName: return "Underscore in header name"
        case .framingHeaderLookalike: return "Header name imitates Content-Length or Transfer-Encoding"
        case .duplicateContentLength: return "Conflicting Content-Length values"
        case .badContentLength: return "Invalid Content-Length"
        case .contentLengthAndTransferEncoding: return "Content-Length and Transfer-Encoding both present"
        case .unsupportedTransferCoding: return "Unsupported transfer coding"
        case .transferEncodingNotChunkedLast: return "Final transfer coding is not chunked"
        case .badTransferEncoding: return "Invalid Transfer-Encoding"
        case .transferEncodingInHTTP10: return "Transfer-Encoding in an HTTP/1.0 request"
        case .missingHost: return "Missing Host header"
        case .duplicateHost: return "More than one Host header"
        case .headTooLarge: return "Request header fields too large"
        case .targetTooLong: return "Request target too long"
        case .tooManyHeaders: return "Too many header fields"
        case .badChunkSize: return "Invalid chunk size line"
        case .chunkSizeOverflow: return "Chunk size too large"
        case .badChunkExtension: return "Invalid chunk extension"
        case .chunkLineTooLong: return "Chunk size line too long"
        case .badChunkTerminator: return "Chunk data not followed by CRLF"
        case .badTrailer: return "Invalid trailer field"
        case .trailersTooLarge: return "Trailer section too large"
        }
    }
}

extension HTTPParseError: CustomStringConvertible {
    /// `"<code> at byte <offset>: <message>"`, for logs.
    public var description: String { "\(code.rawValue) at byte \(offset): \(message)" }
}
