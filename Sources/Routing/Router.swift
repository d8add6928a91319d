/// One cluster as the router sees it. `route` takes them latest first (see
/// `orderLatestFirst`), built from the routing snapshot and `ClusterState`.
public struct RouteCandidate: Sendable, Equatable {
    /// Cluster uuid; compared with the session cookie and written into it.
    public var uuid: String
    /// The cluster's upgrade mode (applies while it is the effective latest).
    public var mode: UpgradeMode
    /// Session cookie lifetime in seconds (SESSION).
    public var sessionTimeout: Int?
    /// Mirror non-idempotent requests too (CONCURRENT).
    public var mirrorUnsafeMethods: Bool
    /// Not failed, and at least one backend is not marked down.
    public var usable: Bool
    /// Current GRADUAL threshold, 0...100 (from `ClusterState.gradualThreshold`).
    public var gradualThreshold: Double

    /// Creates a candidate.
    public init(
        uuid: String,
        mode: UpgradeMode = .instant,
        sessionTimeout: Int? = nil,
        mirrorUnsafeMethods: Bool = false,
        usable: Bool = true,
        gradualThreshold: Double = 0
    ) {
        self.uuid = uuid
        self.mode = mode
        self.sessionTimeout = sessionTimeout
        self.mirrorUnsafeMethods = mirrorUnsafeMethods
        self.usable = usable
        self.gradualThreshold = gradualThreshold
    }

    /// Creates a candidate from a cluster's description and live state.
    public init(_ spec: ClusterSpec, state: ClusterState, hasLiveBackend: Bool = true) {
        self.init(
            uuid: spec.uuid, mode: spec.mode, sessionTimeout: spec.sessionTimeout,
            mirrorUnsafeMethods: spec.mirrorUnsafeMethods,
            usable: hasLiveBackend && !state.isFailed,
            gradualThreshold: state.gradualThreshold)
    }
}

/// What a request says about itself through a browser's fetch metadata (`Sec-Fetch-*`).
public enum FetchKind: Sendable, Equatable {
    /// No fetch metadata (curl, API clients, older browsers).
    case absent
    /// A page load (`Sec-Fetch-Mode: navigate` or `Sec-Fetch-Dest: document`).
    case navigation
    /// A sub-resource of a page, or a script's request.
    case subresource
}

/// What `route` needs to know about one request.
public struct RouteInput: Sendable {
    /// Value of the session cookie (`dynsoftup`), if the request has one.
    public var sessionCookie: String?
    /// Value of the transition cookie, if the request has one.
    public var transitionCookie: String?
    /// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2): safe to mirror.
    public var methodIsIdempotent: Bool
    /// Current time in unix seconds (for cookie expiry).
    public var nowUnix: Int64
    /// Page load, sub-resource, or unknown (see `route`: when a pinned client may move).
    public var fetch: FetchKind = .absent
    /// Value of the last-seen cookie (unix milliseconds), if the request has a valid one.
    public var lastSeenMillis: Int64?
    /// Current time in unix milliseconds (the last-seen cookie's clock).
    public var nowMillis: Int64
    /// How long a client without fetch metadata must stay quiet before it moves.
    public var moveAfterIdleMillis: Int64 = 2000

    /// Creates an input from already extracted cookie values.
    public init(sessionCookie: String? = nil, transitionCookie: String? = nil, methodIsIdempotent: Bool = true, nowUnix: Int64,
                fetch: FetchKind = .absent, lastSeenMillis: Int64? = nil, nowMillis: Int64? = nil, moveAfterIdleMillis: Int64 = 2000) {
        self.sessionCookie = sessionCookie
        self.transitionCookie = transitionCookie
        self.methodIsIdempotent = methodIsIdempotent
        self.nowUnix = nowUnix
        self.fetch = fetch
        self.lastSeenMillis = lastSeenMillis
        self.nowMillis = nowMillis ?? nowUnix * 1000
        self.moveAfterIdleMillis = moveAfterIdleMillis
    }

    /// Creates an input from a `Cookie` header value (nil when the request has none).
    public init(cookieHeader: String?, names: CookieNames, methodIsIdempotent: Bool = true, nowUnix: Int64) {
        self.init(
            sessionCookie: cookieHeader.flatMap { cookieValue(named: names.session, inCookieHeader: $0) },
            transitionCookie: cookieHeader.flatMap { cookieValue(named: names.transition, inCookieHeader: $0) },
            methodIsIdempotent: methodIsIdempotent, nowUnix: nowUnix)
    }
}

/// Where one exchange goes and which cookies its response sets.
public struct RouteDecision: Equatable, Sendable {
    /// Decisions are equal when they route alike and set the same cookies.
    public static func == (a: RouteDecision, b: RouteDecision) -> Bool {
        a.primary == b.primary && a.shadow == b.shadow && a.setCookies == b.setCookies && a.effectiveMode == b.effectiveMode
    }

    /// Index into the candidates of the cluster that answers the client.
    public var primary: Int
    /// CONCURRENT: index of the previous version, which gets a mirrored copy.
    public var shadow: Int?
    /// Full `Set-Cookie` header values, session cookie first.
    public var setCookies: [String]
    /// The mode applied: the latest cluster's mode, or INSTANT when that mode
    /// needs an older usable cluster and there is none.
    public var effectiveMode: UpgradeMode
    /// SESSION: the session cookie's `Expires` (unix seconds) and `Max-Age`.
    public var sessionExpiry: (unix: Int64, maxAge: Int)?
    /// GRADUAL: the transition id issued with this response, when the client had none.
    public var newTransitionID: String?
    /// GRADUAL: the last-seen cookie's new value (unix ms), set for a client without fetch
    /// metadata that is not yet on the latest version (it moves after a quiet spell).
    public var lastSeenMillis: Int64?

    /// Creates a decision.
    public init(primary: Int, shadow: Int? = nil, setCookies: [String], effectiveMode: UpgradeMode) {
        self.primary = primary
        self.shadow = shadow
        self.setCookies = setCookies
        self.effectiveMode = effectiveMode
    }
}


/// Picks the cluster for one exchange. Pure: the time comes from `input`,
/// new transition ids from `random`.
///
/// - The *latest* is the first usable candidate; the *previous* is the next
///   usable one after it. The latest's mode governs.
/// - INSTANT: latest.
/// - SESSION: the cluster named by the session cookie if it is a usable
///   candidate, else latest. The session cookie gets `Expires`/`Max-Age` from
///   the chosen cluster's `sessionTimeout` (the latest's when it has none).
/// - GRADUAL: the client's transition id (issued when absent or malformed)
///   falls in bucket `gradualBucket(id)`; bucket < latest's threshold →
///   latest; else the usable cluster named by the session cookie; else previous.
///   A page comes from one version: a client whose session cookie names another
///   usable cluster moves to the latest only on a page load (`fetch` is
///   `.navigation`), or, without fetch metadata, once it has been quiet for
///   `moveAfterIdleMillis` (its last-seen cookie, renewed while it waits, says
///   since when); until then it stays where its cookie says. A client on the
///   latest never moves back while the threshold rises.
/// - CONCURRENT: latest, with previous as shadow for idempotent methods (or
///   every method when the latest has `mirrorUnsafeMethods`).
/// - GRADUAL and CONCURRENT without a previous cluster behave as INSTANT.
/// - Every decision sets the session cookie to the served cluster's uuid.
///
/// Returns nil when no candidate is usable (the caller answers 503).
///
/// With `renderCookies` false, `setCookies` is left empty and the caller writes the cookie
/// lines from the decision (`appendSetCookieLines`), without building Strings.
public func route(
    _ input: RouteInput,
    candidates: [RouteCandidate],
    names: CookieNames,
    random: inout some RandomNumberGenerator,
    renderCookies: Bool = true
) -> RouteDecision? {
    route(input, candidates: candidates[...], names: names, random: &random, renderCookies: renderCookies)
}

/// `route` over one service's candidates within a longer array; the decision's indices are
/// those of the whole array.
public func route(
    _ input: RouteInput,
    candidates: ArraySlice<RouteCandidate>,
    names: CookieNames,
    random: inout some RandomNumberGenerator,
    renderCookies: Bool = true
) -> RouteDecision? {
    guard let latest = candidates.firstIndex(where: { $0.usable }) else { return nil }
    let previous = candidates[(latest + 1)...].firstIndex(where: { $0.usable })

    /// Index of the usable candidate the session cookie names, if any.
    func pinned() -> Int? {
        guard let uuid = input.sessionCookie, !uuid.isEmpty else { return nil }
        return candidates.firstIndex { $0.usable && $0.uuid == uuid }
    }
    func sessionCookie(_ index: Int) -> String {
        renderCookies ? names.session + "=" + candidates[index].uuid + names.attributes : ""
    }

    switch candidates[latest].mode {
    case .instant:
        break

    case .session:
        let chosen = pinned() ?? latest
        guard let timeout = candidates[chosen].sessionTimeout ?? candidates[latest].sessionTimeout else {
            return RouteDecision(primary: chosen, setCookies: renderCookies ? [sessionCookie(chosen)] : [], effectiveMode: .session)
        }
        var decision = RouteDecision(primary: chosen, setCookies: [], effectiveMode: .session)
        decision.sessionExpiry = (input.nowUnix + Int64(timeout), timeout)
        if renderCookies {
            let expires = httpDate(unixSeconds: input.nowUnix + Int64(timeout))
            decision.setCookies = [sessionCookie(chosen) + "; Expires=" + expires + "; Max-Age=" + String(timeout)]
        }
        return decision

    case .gradual:
        guard let previous else { break }
        var cookies: [String] = []
        let clientID: String
        if let id = input.transitionCookie, isValidTransitionID(id) {
            clientID = id
        } else {
            clientID = newTransitionID(using: &random)
        }
        var chosen: Int
        let pin = pinned()
        if Double(gradualBucket(clientID)) < candidates[latest].gradualThreshold {
            chosen = latest
            if let pin, pin != latest, !mayMove(input) { chosen = pin }
        } else {
            chosen = pin ?? previous
        }
        if renderCookies { cookies.append(sessionCookie(chosen)) }
        var decision = RouteDecision(primary: chosen, setCookies: [], effectiveMode: .gradual)
        if clientID != input.transitionCookie {
            decision.newTransitionID = clientID
            if renderCookies { cookies.append(names.transition + "=" + clientID + names.attributes) }
        }
        if chosen != latest && input.fetch == .absent {
            decision.lastSeenMillis = input.nowMillis
            if renderCookies { cookies.append(names.lastSeen + "=" + String(input.nowMillis) + names.attributes) }
        }
        decision.setCookies = cookies
        return decision

    case .concurrent:
        guard let previous else { break }
        let mirror = input.methodIsIdempotent || candidates[latest].mirrorUnsafeMethods
        return RouteDecision(
            primary: latest, shadow: mirror ? previous : nil,
            setCookies: renderCookies ? [sessionCookie(latest)] : [], effectiveMode: .concurrent)
    }
    return RouteDecision(primary: latest, setCookies: renderCookies ? [sessionCookie(latest)] : [], effectiveMode: .instant)
}

/// Whether a client pinned to an older version may move now (see `route`, GRADUAL): on a
/// page load, or, when it sends no fetch metadata, after a quiet spell (or when it keeps no
/// last-seen cookie, as the 2014 proxy did).
func mayMove(_ input: RouteInput) -> Bool {
    switch input.fetch {
    case .navigation: return true
    case .subresource: return false
    case .absent:
        guard let seen = input.lastSeenMillis else { return true }
        return input.nowMillis - seen >= input.moveAfterIdleMillis
    }
}

/// Parses a last-seen cookie value: unix milliseconds, 1 to 15 decimal digits.
public func parseLastSeen(_ value: String?) -> Int64? {
    guard let value, !value.isEmpty, value.utf8.count <= 15, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return Int64(value)
}

/// `Expires` dates of the second last asked for, so a busy proxy formats one per second.
public struct HTTPDateCache: Sendable {
    private var second: Int64 = .min
    private var text: [UInt8] = []

    public init() {}

    /// The IMF-fixdate of `unixSeconds`, as bytes.
    public mutating func bytes(unixSeconds: Int64) -> [UInt8] {
        if unixSeconds != second {
            second = unixSeconds
            text = Array(httpDate(unixSeconds: unixSeconds).utf8)
        }
        return text
    }
}

/// Appends the `Set-Cookie` header lines of `decision` (made with `renderCookies: false`),
/// byte for byte what `setCookies` spells: the session cookie naming the served cluster
/// (`sessionCookieLine` is its prebuilt `name=uuid; Path=/; HttpOnly; SameSite=Lax`), with its
/// expiry in SESSION, then a new transition cookie and the last-seen cookie in GRADUAL.
public func appendSetCookieLines(_ decision: RouteDecision, sessionCookieLine: [UInt8], names: CookieNames,
                                 dates: inout HTTPDateCache, to out: inout [UInt8]) {
    out.append(contentsOf: setCookiePrefix)
    out.append(contentsOf: sessionCookieLine)
    if let (unix, maxAge) = decision.sessionExpiry {
        out.append(contentsOf: expiresAttribute)
        out.append(contentsOf: dates.bytes(unixSeconds: unix))
        out.append(contentsOf: maxAgeAttribute)
        appendDecimal(Int64(maxAge), to: &out)
    }
    out.append(13); out.append(10)
    if let id = decision.newTransitionID {
        out.append(contentsOf: names.transitionLine)
        let bytes = id.utf8.span
        for i in bytes.indices { out.append(bytes[i]) }
        out.append(contentsOf: names.attributesLine)
    }
    if let seen = decision.lastSeenMillis {
        out.append(contentsOf: names.lastSeenLine)
        appendDecimal(seen, to: &out)
        out.append(contentsOf: names.attributesLine)
    }
}

/// Whether a transition cookie value is an id we issued or could have: 1 to
/// 64 characters from `[A-Za-z0-9._-]`. Anything else is replaced, so a
/// mangled cookie cannot pick its bucket through odd bytes.
public func isValidTransitionID(_ id: String) -> Bool {
    let bytes = id.utf8
    guard !bytes.isEmpty, bytes.count <= 64 else { return false }
    return bytes.allSatisfy { b in
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }
}

/// A new transition id: 16 lowercase hex characters from one 64-bit draw
/// (64 bits are plenty to spread clients over 100 buckets).
public func newTransitionID(using random: inout some RandomNumberGenerator) -> String {
    let value = random.next()
    return String(unsafeUninitializedCapacity: 16) { out in
        for i in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * i)) & 0xF
            out[i] = nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble
        }
        return 16
    }
}

/// Stable bucket 0..<100 for a transition id: FNV-1a 64 of its UTF-8 bytes
/// modulo 100. The same id lands in the same bucket in every process and run
/// (unlike `Hasher`, which is seeded per process).
public func gradualBucket(_ clientID: String) -> Int {
    let bytes = clientID.utf8.span
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for i in bytes.indices {
        hash ^= UInt64(bytes[i])
        hash &*= 0x0000_0100_0000_01b3
    }
    return Int(hash % 100)
}

/// Appends the decimal digits of `value` (with `-` when negative), without a String.
func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
    if value < 0 { out.append(0x2D) }
    // Least significant digit first (divisions by a constant), then turned around in place.
    let start = out.count
    var rest = value.magnitude
    repeat {
        out.append(0x30 &+ UInt8(truncatingIfNeeded: rest % 10))
        rest /= 10
    } while rest > 0
    var (i, j) = (start, out.count - 1)
    while i < j {
        out.swapAt(i, j)
        i += 1
        j -= 1
    }
}

/// Byte spellings of `appendSetCookieLines`'s fixed parts.
private let setCookiePrefix = Array("Set-Cookie: ".utf8)
private let expiresAttribute = Array("; Expires=".utf8)
private let maxAgeAttribute = Array("; Max-Age=".utf8)
