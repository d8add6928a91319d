import COpenSSL
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// A command-line client's TLS connection to the admin API (`switchyard ctl`, `switchyard
/// upgrade`) on a non-blocking socket, verifying the server's certificate: its chain must lead
/// to a CA of `caFile` (or of the system's store), and it must name the host the caller
/// connected to (a DNS name, or an IP address in its subjectAltName). A `TLSClientContext`
/// and a client-side `TLSConnection` with array-based reads and writes, so the caller handles
/// no pointers; it owns the socket and waits for readiness as each call asks.
///
/// Not thread-safe: one caller at a time.
public final class TLSClient {
    private let context: TLSClientContext
    private let connection: TLSConnection
    /// The host the certificate must name.
    public let serverName: String

    /// Prepares a connection on `fd` to `serverName`. `caFile`: PEM file of the CAs to trust
    /// (nil: the system's). Throws `TLSError` (field `cacert`) when the CA file cannot be
    /// loaded, or when OpenSSL cannot make a connection.
    public init(fd: Int32, serverName: String, caFile: String?) throws(TLSError) {
        if let caFile, access(caFile, R_OK) != 0 {
            throw TLSError(field: "cacert", message: "cannot read \(caFile): \(String(cString: strerror(errno)))")
        }
        do {
            context = try TLSClientContext(caFile: caFile, verify: true)
        } catch {
            throw TLSError(field: "cacert", message: error.message)
        }
        let address = TLSConnection.isAddressLiteral(serverName)
        guard let connection = TLSConnection(client: context, fd: fd, serverName: address ? nil : serverName,
                                             address: address ? serverName : nil, peer: "server") else {
            throw TLSError(field: "cacert", message: "OpenSSL could not make a connection: \(lastError())")
        }
        self.connection = connection
        self.serverName = serverName
    }

    /// Advances the handshake. A certificate that fails verification ends it with a reason
    /// that says why (untrusted issuer, wrong name, expired…).
    public func handshake() -> TLSConnection.Handshake {
        let outcome = connection.handshake()
        guard case .failed(let reason) = outcome else { return outcome }
        if let why = connection.verifyFailure { return .failed("the certificate of \(serverName) was not accepted: \(why)") }
        return .failed(reason)
    }

    /// Encrypts and sends `bytes` (partial writes allowed: `.done` says how many were taken).
    public func write(_ bytes: ArraySlice<UInt8>) -> TLSConnection.Transfer {
        bytes.withUnsafeBytes { connection.write($0) }
    }

    /// Decrypts up to `max` bytes: the bytes (empty unless the outcome is `.done`) and the
    /// outcome (`.closed` at the end of the stream).
    public func read(max: Int) -> (bytes: [UInt8], outcome: TLSConnection.Transfer) {
        let buffer = ByteBuffer(capacity: max)
        let outcome = connection.read(into: buffer)
        guard case .done = outcome else { return ([], outcome) }
        return (Array(buffer.readable), outcome)
    }

    /// Sends close_notify (best effort).
    public func shutdown() { connection.shutdown() }
}
