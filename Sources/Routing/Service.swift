// Services: one proxy in front of many applications. A *service* is the set of clusters that
// serve one application, reached by host name and path prefix; each has its own versions,
// modes, rollouts and cookies.

/// The name of the service the 2014 `cluster`/`clusters` keys and `/configuration/cluster`
/// define: it matches any host no other service claims, and keeps the 2014 cookie names.
public let defaultServiceName = "default"

/// A service's own routing cookies (`services[].cookies`); absent names get the proxy's names
/// with the service's suffix (see `ServiceSpec.cookieNames`).
public struct ServiceCookies: Sendable, Equatable {
    public var session: String?
    public var transition: String?
    public var lastSeen: String?
    /// The cookies' `Path` attribute; "/" when absent.
    public var path: String?

    public init(session: String? = nil, transition: String? = nil, lastSeen: String? = nil, path: String? = nil) {
        self.session = session
        self.transition = transition
        self.lastSeen = lastSeen
        self.path = path
    }

    public var isEmpty: Bool { session == nil && transition == nil && lastSeen == nil && path == nil }
}

/// The validated description of one service (its clusters are kept apart, by service name).
public struct ServiceSpec: Sendable, Equatable {
    /// 1–64 characters of `[a-z0-9_-]`; `default` is the catch-all.
    public var name: String
    /// Exact host names and `*.suffix` patterns, lower-case, without port.
    public var hosts: [String]
    /// Path prefix the service serves under each of its hosts ("/" for all).
    public var pathPrefix: String
    /// Own cookie names and path, if any.
    public var cookies: ServiceCookies
    /// The release group whose clients move between releases together, if any.
    public var releaseGroup: String?

    public init(name: String, hosts: [String] = [], pathPrefix: String = "/", cookies: ServiceCookies = ServiceCookies(),
                releaseGroup: String? = nil) {
        self.name = name
        self.hosts = hosts
        self.pathPrefix = pathPrefix
        self.cookies = cookies
        self.releaseGroup = releaseGroup
    }

    /// The default service's description: every host, every path.
    public static let catchAll = ServiceSpec(name: defaultServiceName)

    /// The routing cookies of this service: its own names where it gives them, otherwise the
    /// proxy's `base` names with `_name` appended (`dynsoftup_shop`) — except for `default`,
    /// which keeps `base` as it is. A service in a release group uses the group's suffix
    /// instead, so the group's services share one set of cookies; `domain` is the group's
    /// cookie domain.
    public func cookieNames(base: CookieNames, domain: String? = nil) -> CookieNames {
        let suffix: String
        if let group = releaseGroup {
            suffix = "_" + group
        } else {
            suffix = name == defaultServiceName ? "" : "_" + name
        }
        var names = CookieNames(session: cookies.session ?? base.session + suffix,
                                transition: cookies.transition ?? base.transition + suffix,
                                lastSeen: cookies.lastSeen ?? base.lastSeen + suffix)
        names.path = cookies.path ?? base.path
        names.domain = domain ?? base.domain
        return names
    }

    /// Whether the service's name is acceptable: 1–64 of `[a-z0-9_-]`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
        }
    }
}

/// A host rule: an exact name, or `*.suffix` matching any name that ends with `.suffix`
/// (one label or more in front).
public enum HostPattern: Sendable, Equatable, Hashable {
    case exact(String)
    /// The suffix including its leading dot: `*.shop.example.com` is `.shop.example.com`.
    case wildcard(String)

    /// Parses a host rule; nil when it is not one (the caller names the field). Accepted:
    /// DNS names of letters, digits, `-` and `.` (labels 1–63, total ≤ 253), IPv4 literals,
    /// IPv6 literals in brackets, and `*.` in front of a DNS name. Upper case is folded; a
    /// port, a trailing dot, a `*` anywhere else or an empty label is refused.
    public init?(_ text: String) {
        let lower = text.lowercased()
        if lower.hasPrefix("*.") {
            let rest = String(lower.dropFirst(2))
            guard HostPattern.isDNSName(rest) else { return nil }
            self = .wildcard("." + rest)
            return
        }
        if lower.hasPrefix("[") {
            guard lower.hasSuffix("]"), lower.count > 2,
                  lower.dropFirst().dropLast().allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
            self = .exact(lower)
            return
        }
        guard HostPattern.isDNSName(lower) else { return nil }
        self = .exact(lower)
    }

    /// The pattern as written in a configuration.
    public var text: String {
        switch self {
        case .exact(let name): name
        case .wildcard(let suffix): "*" + suffix
        }
    }

    static func isDNSName(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        var label = 0
        for b in bytes {
            if b == 0x2E {
                guard label > 0 else { return false }
                label = 0
                continue
            }
            guard (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D else { return false }
            label += 1
            guard label <= 63 else { return false }
        }
        return label > 0
    }
}

/// Whether `prefix` is an acceptable path prefix: starts with `/`, no `?`, `#`, spaces or
/// control characters, at most 1024 bytes.
public func isValidPathPrefix(_ prefix: String) -> Bool {
    prefix.hasPrefix("/") && prefix.utf8.count <= 1024
        && prefix.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
}

/// Why a set of services cannot be served together: two of them claim the same host and
/// path prefix. Names the later service's field.
public func serviceConflict(_ services: [ServiceSpec]) -> (service: Int, host: Int, message: String)? {
    var claimed: [String: String] = [:]
    for (s, service) in services.enumerated() where service.name != defaultServiceName {
        let prefix = normalizedPrefix(service.pathPrefix)
        for (h, host) in service.hosts.enumerated() {
            let key = (HostPattern(host)?.text ?? host) + " " + prefix
            if let other = claimed[key], other != service.name {
                return (s, h, "\"\(host)\" with path prefix \"\(service.pathPrefix)\" is already served by service \"\(other)\"")
            }
            claimed[key] = service.name
        }
    }
    return nil
}

/// A prefix as matched: without a trailing `/` unless it is "/" (so `/static/` and `/static`
/// claim the same paths).
func normalizedPrefix(_ prefix: String) -> String {
    var p = prefix
    while p.count > 1, p.hasSuffix("/") { p.removeLast() }
    return p
}
