import Observability
import Routing
import Syscalls
import TLS

/// A cluster's TLS to its backends: the settings and the client context made from them,
/// once, when the cluster is configured (every connection of every worker shares it). A
/// context that could not be made (a CA bundle OpenSSL refuses) leaves `problem`: connects
/// to the cluster's backends then fail, each with that reason in its log line.
public final class ClusterTLS: Sendable {
    /// The cluster's `tls` object.
    public let spec: BackendTLSSpec
    /// Nil when it could not be made (see `problem`).
    public let context: TLSClientContext?
    /// Why there is no context.
    public let problem: String?

    /// Makes the context; logs a warning when certificates are not checked (`verify: false`)
    /// and an error when the context cannot be made.
    public init(_ spec: BackendTLSSpec, cluster uuid: String) {
        self.spec = spec
        do {
            context = try TLSClientContext(caFile: spec.caFile, verify: spec.verify)
            problem = nil
        } catch {
            context = nil
            problem = "tls.\(error.description)"
            Log.error("backend_tls_unusable", ["cluster": uuid, "error": "tls.\(error.description)",
                                               "action": "connections to its backends fail"])
        }
        if !spec.verify {
            Log.warning("backend_tls_unverified", ["cluster": uuid,
                                                   "reason": "tls.verify is false: the backends' certificates are not checked"])
        }
    }

    /// The name sent as SNI and checked for a server called `hostname`: `serverName`, else
    /// the host name itself unless it is an IP literal (then none: the address is checked).
    public func serverName(for hostname: String) -> String? {
        if let name = spec.serverName { return name }
        return TLSConnection.isAddressLiteral(hostname) ? nil : hostname
    }
}

/// How a worker reaches one TLS backend: the cluster's TLS, the name to send and check, and
/// the address literal checked when there is no name.
struct BackendTLSTarget {
    let tls: ClusterTLS
    let serverName: String?
    let addressLiteral: String?
}

/// Identity of a TLS backend in a worker: the same address reached with another cluster's
/// TLS, or another name, is another backend (its pooled connections are not interchangeable,
/// nor with plain ones).
struct BackendTLSKey: Hashable {
    let address: SocketAddress
    let tls: ObjectIdentifier
    let serverName: String?
}

extension Worker {
    /// The TLS targets of each address of `cluster` (whose `tls` is set), in address order.
    func tlsTargets(of cluster: ClusterRuntime) -> [BackendTLSTarget] {
        guard let tls = cluster.tls else { return [] }
        return cluster.addresses.indices.map { k in
            let server = cluster.spec.servers[cluster.addressServers[k]]
            let name = tls.serverName(for: server.hostname)
            return BackendTLSTarget(tls: tls, serverName: name,
                                    addressLiteral: name == nil ? cluster.addresses[k].host : nil)
        }
    }

    /// Starts TLS on a new connection to a TLS backend: the link stays `connecting` until
    /// its handshake is done (`ClientSession.stepBackendHandshake`), so the connect deadline
    /// covers both. False when no TLS connection could be made (logged; a connect failure).
    func startTLS(_ link: inout BackendLink) -> Bool {
        let backend = backends[link.backendID].address.description
        guard let target = tlsTargets[link.backendID] else { return false }
        guard let context = target.tls.context else {
            Log.warning("backend_tls_failed", ["backend": backend, "reason": target.tls.problem ?? "no context"])
            return false
        }
        guard let tls = TLSConnection(client: context, fd: link.fd, serverName: target.serverName,
                                      address: target.addressLiteral, session: tlsSessions[link.backendID]) else {
            Log.warning("backend_tls_failed", ["backend": backend, "reason": "OpenSSL could not make a connection"])
            return false
        }
        backendTLS[link.fd] = tls
        link.secure = true
        link.connecting = true
        return true
    }

    /// Whether a TLS connection whose exchange ended cleanly may be pooled: not when OpenSSL
    /// holds bytes nobody asked for.
    func keepsTLS(_ link: BackendLink) -> Bool {
        guard let tls = backendTLS[link.fd] else { return false }
        keepSession(of: link, tls)
        return !tls.hasBufferedBytes
    }

    /// Frees the TLS of a connection that is closed after its exchange, keeping its session.
    func discardTLS(_ link: BackendLink) {
        guard let tls = backendTLS.removeValue(forKey: link.fd) else { return }
        if !link.connecting { keepSession(of: link, tls) }
    }

    /// Keeps the session of a new connection (once per connection, at the end of its first
    /// exchange: TLS 1.3 tickets arrive after the handshake, and a resumed connection gets
    /// fresh ones), so the next connection to the backend resumes it — also when the backend
    /// closes every connection after one exchange.
    private func keepSession(of link: BackendLink, _ tls: TLSConnection) {
        if !link.reused, let session = tls.resumableSession() { tlsSessions[link.backendID] = session }
    }

    /// Frees the TLS state of a backend connection about to be closed (none on plain ones).
    @inline(__always)
    func forgetTLS(_ fd: Int32) {
        if !backendTLS.isEmpty { backendTLS[fd] = nil }
    }
}
