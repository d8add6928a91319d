#if canImport(Glibc)
import Glibc
#endif

/// What a TLS listener is configured with (`proxy.listeners[].tls`).
public struct TLSSettings: Sendable, Equatable {
    /// One certificate chain and its private key, both PEM files.
    public struct Certificate: Sendable, Equatable {
        /// Path of the certificate chain (leaf first).
        public var cert: String
        /// Path of the private key.
        public var key: String

        public init(cert: String, key: String) {
            self.cert = cert
            self.key = key
        }
    }

    /// The oldest protocol version accepted.
    public enum Version: String, Sendable, Equatable, CaseIterable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// Certificates, the first one being the default when no other matches the client's SNI.
    public var certificates: [Certificate]
    /// The oldest version a client may use.
    public var minVersion = Version.tls12
    /// OpenSSL cipher list for TLS 1.2 (nil: OpenSSL's default). TLS 1.3 suites keep their defaults.
    public var ciphers: String?
    /// Application protocols offered by ALPN; only `http/1.1` is served.
    public var alpn = ["http/1.1"]
    /// Session tickets sent after a handshake (TLS 1.3; 0 turns tickets off). One suffices for a
    /// client that resumes one connection at a time; OpenSSL's own default is two.
    public var sessionTickets = 1

    public init(certificates: [Certificate]) {
        self.certificates = certificates
    }
}

/// A TLS configuration that cannot be used, with the field it concerns (relative to the
/// listener's `tls` object, e.g. `certificates[1].key`).
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// What a loaded certificate says about itself (shown in `/status` and the metrics).
public struct CertificateInfo: Sendable, Equatable {
    /// The certificate file it came from.
    public var file: String
    /// The subject as an RFC 2253 string, e.g. `CN=shop.example`.
    public var subject: String
    /// The DNS names of the subjectAltName extension (or the common name when there are none).
    public var names: [String]
    /// When it expires, in seconds since the Unix epoch.
    public var notAfter: Int64
}

/// Which server name picks which certificate: exact names first, then wildcards (`*.example.com`
/// covers one label), then the first certificate. Pure: built once per context.
public struct CertificateSelector: Sendable, Equatable {
    private var exact: [String: Int] = [:]
    private var wildcard: [String: Int] = [:]

    /// `names[i]` lists the names certificate `i` covers; earlier certificates win ties.
    public init(names: [[String]]) {
        for (index, list) in names.enumerated() {
            for name in list {
                let lower = name.lowercased()
                if lower.hasPrefix("*.") {
                    let suffix = String(lower.dropFirst(2))
                    if wildcard[suffix] == nil { wildcard[suffix] = index }
                } else if exact[lower] == nil {
                    exact[lower] = index
                }
            }
        }
    }

    /// The index of the certificate for `serverName` (nil: the client sent no SNI).
    public func select(_ serverName: String?) -> Int {
        guard let serverName, !serverName.isEmpty else { return 0 }
        let lower = serverName.lowercased()
        if let index = exact[lower] { return index }
        if let dot = lower.firstIndex(of: "."), let index = wildcard[String(lower[lower.index(after: dot)...])] { return index }
        return 0
    }
}

/// Kernel TLS (kTLS): the kernel encrypts and decrypts records once OpenSSL has done the
/// handshake, so bodies can be spliced as on plain TCP. It needs the `tls` upper-layer
/// protocol (module `tls`, listed in `/proc/sys/net/ipv4/tcp_available_ulp`) and an OpenSSL
/// built with kTLS; whether a connection got it is known only after its handshake.
public enum KernelTLS {
    /// Where the kernel lists its TCP upper-layer protocols.
    public static let ulpListPath = "/proc/sys/net/ipv4/tcp_available_ulp"

    /// Whether the text of `tcp_available_ulp` (space-separated names) lists `tls`.
    public static func offered(byULPList text: String) -> Bool {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).contains("tls")
    }

    /// Whether this kernel offers the `tls` ULP now (false when the file cannot be read).
    public static func offeredByKernel() -> Bool {
        guard let text = readSmallFile(ulpListPath) else { return false }
        return offered(byULPList: text)
    }

    /// Whether the linked OpenSSL knows how to hand connections to the kernel.
    public static var libraryCapable: Bool { TLSContext.libraryKnowsKernelTLS }

    /// The data path a listener's connections take: `"ktls"` when the kernel and OpenSSL both
    /// can (each connection still falls back when its cipher is not offloaded), otherwise
    /// `"userspace"`, with the reason.
    public static func path(kernelOffers: Bool, libraryCapable: Bool) -> (path: String, reason: String) {
        switch (kernelOffers, libraryCapable) {
        case (true, true): return ("ktls", "the kernel offers the tls ULP and OpenSSL enables it")
        case (false, _): return ("userspace", "the kernel does not offer the tls ULP (\(ulpListPath))")
        case (true, false): return ("userspace", "OpenSSL was built without kTLS")
        }
    }
}

/// Reads a small text file (a /proc entry) whole; nil when it cannot be opened.
func readSmallFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if bytes.count > 1 << 20 { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
