import Syscalls
import TLS

/// The admin API's address, from a URL such as `http://127.0.0.1:9090` or
/// `https://admin.example:9443` (an optional path prefix is kept, for an API behind another proxy).
struct AdminURL: Equatable {
    var host: String
    var port: Int
    var pathPrefix: String
    /// True for `https://`: the API is spoken over TLS (`configService.tls`).
    var secure = false

    /// Parses `http://host[:port][/prefix]` or `https://…`; nil when malformed.
    init?(_ text: String) {
        let scheme: String
        if text.hasPrefix("http://") {
            scheme = "http://"
        } else if text.hasPrefix("https://") {
            scheme = "https://"
            secure = true
        } else {
            return nil
        }
        var rest = Substring(text.dropFirst(scheme.count))
        var prefix = ""
        if let slash = rest.firstIndex(of: "/") {
            prefix = String(rest[slash...])
            rest = rest[..<slash]
            while prefix.hasSuffix("/") { prefix.removeLast() }
        }
        var host = String(rest)
        var port = secure ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                port = p
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
        self.pathPrefix = prefix
    }

    /// `host:port` as the Host header and messages show it.
    var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `http://host:port` or `https://host:port`, for messages.
    var origin: String { (secure ? "https://" : "http://") + authority }
}

/// An answer of the admin API.
struct CtlAnswer: Equatable {
    var status: Int
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Why a call to the API did not get an answer.
struct CtlUnreachable: Error, CustomStringConvertible {
    var description: String
}

/// A small blocking HTTP/1.1 client for the admin API: one request per connection
/// (`Connection: close`), a deadline on every wait.
struct CtlClient {
    let url: AdminURL
    let token: String?
    /// CA certificates (PEM) that an `https://` API's certificate must chain to (`--cacert`);
    /// nil: the system's.
    var caFile: String? = nil
    /// Deadline of each connect, send and receive.
    var timeoutMillis: Int32 = 5000

    /// The request's bytes on the wire.
    static func request(method: String, path: String, authority: String, token: String?, body: [UInt8]?) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(authority)\r\nUser-Agent: switchyard-ctl\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    /// Parses a whole response (read to the end of the stream): status and body (by
    /// Content-Length when given, else all that followed the head; chunked bodies decoded).
    static func parseResponse(_ bytes: [UInt8]) -> CtlAnswer? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else { return nil }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else { return nil }
        var body = Array(bytes[(end + 4)...])
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces
            if name == "content-length", let n = Int(value), n <= body.count { body = Array(body[0..<n]) }
            if name == "transfer-encoding", value.lowercased().contains("chunked") { chunked = true }
        }
        if chunked { body = decodeChunked(body) ?? body }
        return CtlAnswer(status: status, body: body)
    }

    /// A chunked body decoded (chunk extensions and trailers ignored); nil when malformed.
    static func decodeChunked(_ bytes: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            guard let lineEnd = (i..<(bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { return nil }
            let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingSpaces, radix: 16) else { return nil }
            if size == 0 { return out }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { return nil }
            out += bytes[start..<start + size]
            i = start + size + 2
        }
        return nil
    }

    /// Sends one request and reads the whole answer. Throws `CtlUnreachable` with a sentence
    /// for the operator when the proxy cannot be reached or does not answer.
    func call(_ method: String, _ path: String, body: [UInt8]? = nil) throws(CtlUnreachable) -> CtlAnswer {
        let fullPath = url.pathPrefix + path
        let where_ = "the admin API at \(url.origin)"
        guard let address = SocketAddress(host: url.host, port: url.port) else {
            throw CtlUnreachable(description: "cannot resolve \"\(url.host)\" (\(where_))")
        }
        do {
            let connection = try BlockingConnection(connectingTo: address, timeoutMillis: timeoutMillis)
            let request = Self.request(method: method, path: fullPath, authority: url.authority, token: token, body: body)
            var received: [UInt8] = []
            if url.secure {
                received = try exchangeTLS(connection, request, where_)
            } else {
                try connection.send(request, timeoutMillis: timeoutMillis)
                while true {
                    let chunk = try connection.receive(max: 65536, timeoutMillis: timeoutMillis)
                    if chunk.isEmpty { break }
                    received += chunk
                    if received.count > 64 << 20 { break }
                }
            }
            guard let answer = Self.parseResponse(received) else {
                throw CtlUnreachable(description: "\(where_) sent something that is not an HTTP/1.1 answer (is --admin the API port? an API with TLS needs https://)")
            }
            return answer
        } catch let failure as BlockingConnection.Failure {
            switch failure {
            case .connect(let why):
                throw CtlUnreachable(description: "cannot reach \(where_): \(why) (is switchyard running? see --admin or SWITCHYARD_ADMIN)")
            case .timedOut(let what):
                throw CtlUnreachable(description: "\(where_) did not answer: \(what) after \(timeoutMillis / 1000) s")
            case .io(let why):
                throw CtlUnreachable(description: "\(where_): connection failed: \(why)")
            }
        } catch let error as CtlUnreachable {
            throw error
        } catch {
            throw CtlUnreachable(description: "\(where_): \(error)")
        }
    }

    /// Sends `request` over TLS on `connection` and reads the whole answer: handshake (the
    /// server's certificate verified against `caFile` and the URL's host), request, then
    /// everything up to the server's close. Throws `CtlUnreachable` saying which step failed.
    private func exchangeTLS(_ connection: borrowing BlockingConnection, _ request: [UInt8], _ where_: String) throws(CtlUnreachable) -> [UInt8] {
        let tls: TLSClient
        do {
            tls = try TLSClient(fd: connection.descriptor, serverName: url.host, caFile: caFile)
        } catch {
            throw CtlUnreachable(description: "--cacert: \(error.message)")
        }
        func wait(_ writable: Bool, _ what: String) throws(CtlUnreachable) {
            guard connection.waitUntilReady(writable: writable, timeoutMillis: timeoutMillis) else {
                throw CtlUnreachable(description: "\(where_) did not answer: timed out \(what) after \(timeoutMillis / 1000) s")
            }
        }
        handshake: while true {
            switch tls.handshake() {
            case .done: break handshake
            case .wantRead: try wait(false, "in the TLS handshake")
            case .wantWrite: try wait(true, "in the TLS handshake")
            case .failed(let reason):
                let hint = reason.contains("not accepted") && caFile == nil ? " (give the CA's certificate with --cacert FILE)" : ""
                throw CtlUnreachable(description: "TLS handshake with \(where_) failed: \(reason)\(hint)")
            }
        }
        var offset = 0
        while offset < request.count {
            switch tls.write(request[offset...]) {
            case .done(let n): offset += n
            case .wantRead: try wait(false, "sending")
            case .wantWrite: try wait(true, "sending")
            case .closed, .failed: throw CtlUnreachable(description: "\(where_): the connection broke while sending")
            }
        }
        var received: [UInt8] = []
        while received.count <= 64 << 20 {
            let (bytes, outcome) = tls.read(max: 65536)
            switch outcome {
            case .done: received += bytes
            case .wantRead: try wait(false, "waiting for the answer")
            case .wantWrite: try wait(true, "waiting for the answer")
            case .closed: return received
            case .failed(let reason):
                // An answer already complete counts even if the close was not clean.
                if Self.parseResponse(received) != nil { return received }
                throw CtlUnreachable(description: "\(where_): connection failed: \(reason)")
            }
        }
        return received
    }
}
