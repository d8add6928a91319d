import Testing
@testable import Routing

/// Random source that returns a fixed sequence, so issued ids are known.
struct FixedRNG: RandomNumberGenerator {
    var values: [UInt64]
    var index = 0
    init(_ values: UInt64...) { self.values = values }
    mutating func next() -> UInt64 {
        defer { index += 1 }
        return values[index % values.count]
    }
}

/// `now` chosen so that now + 60 s is the RFC 9110 example date.
let now: Int64 = 784_111_777 - 60
let attrs = "; Path=/; HttpOnly; SameSite=Lax"
func plain(_ uuid: String) -> String { "dynsoftup=\(uuid)" + attrs }
func expiring(_ uuid: String, _ seconds: Int) -> String {
    plain(uuid) + "; Expires=\(httpDate(unixSeconds: now + Int64(seconds))); Max-Age=\(seconds)"
}
/// The id FixedRNG(0x0123456789abcdef) issues; its bucket is 77.
let issuedID = "0123456789abcdef"
let issuedCookie = "transition=\(issuedID)" + attrs
/// The last-seen cookie a client without fetch metadata gets while it waits on an older version.
let seenCookie = "dynsoftup_seen=\(now * 1000)" + attrs

func cand(
    _ uuid: String, _ mode: UpgradeMode = .instant, timeout: Int? = nil, mirror: Bool = false,
    usable: Bool = true, threshold: Double = 0
) -> RouteCandidate {
    RouteCandidate(
        uuid: uuid, mode: mode, sessionTimeout: timeout, mirrorUnsafeMethods: mirror, usable: usable,
        gradualThreshold: threshold)
}

struct RouteCase: CustomTestStringConvertible, Sendable {
    var name: String
    var candidates: [RouteCandidate]
    var session: String? = nil
    var transition: String? = nil
    var idempotent = true
    /// Most cases are page loads; the cases of the "page from one version" rule set it.
    var fetch: FetchKind = .navigation
    var lastSeen: Int64? = nil
    var expected: RouteDecision?
    var testDescription: String { name }
}

func decision(_ primary: Int, shadow: Int? = nil, _ cookies: [String], _ mode: UpgradeMode) -> RouteDecision {
    RouteDecision(primary: primary, shadow: shadow, setCookies: cookies, effectiveMode: mode)
}

// Buckets of fixed ids (see BucketTests): c5 → 1, c2 → 24, c0 → 46, c4 → 90, issuedID → 77.
let routeCases: [RouteCase] = [
    // INSTANT
    RouteCase(name: "instant, one cluster, no cookie", candidates: [cand("new")],
              expected: decision(0, [plain("new")], .instant)),
    RouteCase(name: "instant ignores a cookie naming the old cluster", candidates: [cand("new"), cand("old")],
              session: "old", expected: decision(0, [plain("new")], .instant)),
    RouteCase(name: "instant, failed latest is skipped", candidates: [cand("new", usable: false), cand("old")],
              expected: decision(1, [plain("old")], .instant)),
    RouteCase(name: "nothing usable", candidates: [cand("new", usable: false), cand("old", usable: false)],
              expected: nil),
    RouteCase(name: "no candidates", candidates: [], expected: nil),

    // SESSION
    RouteCase(name: "session, no cookie → latest with expiry",
              candidates: [cand("new", .session, timeout: 60), cand("old", .session, timeout: 30)],
              expected: decision(0, [plain("new") + "; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Max-Age=60"], .session)),
    RouteCase(name: "session, cookie pins the old cluster with its own timeout",
              candidates: [cand("new", .session, timeout: 60), cand("old", .session, timeout: 30)],
              session: "old", expected: decision(1, [expiring("old", 30)], .session)),
    RouteCase(name: "session, stale uuid → latest",
              candidates: [cand("new", .session, timeout: 60), cand("old")],
              session: "gone", expected: decision(0, [expiring("new", 60)], .session)),
    RouteCase(name: "session, cookie names a failed cluster → latest",
              candidates: [cand("new", .session, timeout: 60), cand("old", usable: false)],
              session: "old", expected: decision(0, [expiring("new", 60)], .session)),
    RouteCase(name: "session, empty cookie → latest",
              candidates: [cand("new", .session, timeout: 60), cand("old")],
              session: "", expected: decision(0, [expiring("new", 60)], .session)),
    RouteCase(name: "session, pinned cluster without timeout uses the latest's",
              candidates: [cand("new", .session, timeout: 60), cand("old", .instant)],
              session: "old", expected: decision(1, [expiring("old", 60)], .session)),
    RouteCase(name: "session needs no older cluster",
              candidates: [cand("new", .session, timeout: 5)],
              expected: decision(0, [expiring("new", 5)], .session)),
    RouteCase(name: "session without any timeout → cookie without expiry",
              candidates: [cand("new", .session), cand("old")],
              expected: decision(0, [plain("new")], .session)),
    RouteCase(name: "session latest failed: the next cluster's mode governs",
              candidates: [cand("new", .session, timeout: 60, usable: false), cand("old", .instant)],
              session: "new", expected: decision(1, [plain("old")], .instant)),
    RouteCase(name: "session cookie pinning the latest",
              candidates: [cand("new", .session, timeout: 60), cand("old")],
              session: "new", expected: decision(0, [expiring("new", 60)], .session)),

    // GRADUAL
    RouteCase(name: "gradual, new client at threshold 0 → previous, id issued",
              candidates: [cand("new", .gradual, threshold: 0), cand("old")],
              expected: decision(1, [plain("old"), issuedCookie], .gradual)),
    RouteCase(name: "gradual, issued id in bucket 77 < 77.5 → latest",
              candidates: [cand("new", .gradual, threshold: 77.5), cand("old")],
              expected: decision(0, [plain("new"), issuedCookie], .gradual)),
    RouteCase(name: "gradual, bucket 1 < 1.5 → latest",
              candidates: [cand("new", .gradual, threshold: 1.5), cand("old")],
              transition: "c5", expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, bucket 1 not < 1 → previous",
              candidates: [cand("new", .gradual, threshold: 1), cand("old")],
              transition: "c5", expected: decision(1, [plain("old")], .gradual)),
    RouteCase(name: "gradual, threshold 100 takes bucket 90",
              candidates: [cand("new", .gradual, threshold: 100), cand("old")],
              transition: "c4", expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, threshold 90 leaves bucket 90",
              candidates: [cand("new", .gradual, threshold: 90), cand("old")],
              transition: "c4", expected: decision(1, [plain("old")], .gradual)),
    RouteCase(name: "gradual, client already on latest stays",
              candidates: [cand("new", .gradual, threshold: 10), cand("old")],
              session: "new", transition: "c0", expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, cookie names an older usable cluster",
              candidates: [cand("new", .gradual, threshold: 10), cand("old"), cand("oldest")],
              session: "oldest", transition: "c0", expected: decision(2, [plain("oldest")], .gradual)),
    RouteCase(name: "gradual, stale cookie → previous",
              candidates: [cand("new", .gradual, threshold: 10), cand("old")],
              session: "gone", transition: "c0", expected: decision(1, [plain("old")], .gradual)),
    RouteCase(name: "gradual, cookie names failed cluster → next usable previous",
              candidates: [cand("new", .gradual, threshold: 10), cand("old", usable: false), cand("oldest")],
              session: "old", transition: "c0", expected: decision(2, [plain("oldest")], .gradual)),
    RouteCase(name: "gradual, malformed transition id is replaced",
              candidates: [cand("new", .gradual), cand("old")],
              transition: "bad value!", expected: decision(1, [plain("old"), issuedCookie], .gradual)),
    RouteCase(name: "gradual, empty transition id is replaced",
              candidates: [cand("new", .gradual), cand("old")],
              transition: "", expected: decision(1, [plain("old"), issuedCookie], .gradual)),
    RouteCase(name: "gradual, over-long transition id is replaced",
              candidates: [cand("new", .gradual), cand("old")],
              transition: String(repeating: "a", count: 65),
              expected: decision(1, [plain("old"), issuedCookie], .gradual)),
    // GRADUAL: a page comes from one version (bucket of c0 is 46, below the threshold 50).
    RouteCase(name: "gradual, pinned to previous, page load → moves to latest",
              candidates: [cand("new", .gradual, threshold: 50), cand("old")],
              session: "old", transition: "c0", fetch: .navigation, expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, pinned to previous, sub-resource → stays on previous",
              candidates: [cand("new", .gradual, threshold: 50), cand("old")],
              session: "old", transition: "c0", fetch: .subresource, expected: decision(1, [plain("old")], .gradual)),
    RouteCase(name: "gradual, pinned to an older cluster, sub-resource → stays there",
              candidates: [cand("new", .gradual, threshold: 50), cand("old"), cand("oldest")],
              session: "oldest", transition: "c0", fetch: .subresource, expected: decision(2, [plain("oldest")], .gradual)),
    RouteCase(name: "gradual, no fetch metadata, no last-seen cookie → moves (as in 2014)",
              candidates: [cand("new", .gradual, threshold: 50), cand("old")],
              session: "old", transition: "c0", fetch: .absent, expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, no fetch metadata, seen 1.999 s ago → stays, last-seen renewed",
              candidates: [cand("new", .gradual, threshold: 50), cand("old")],
              session: "old", transition: "c0", fetch: .absent, lastSeen: now * 1000 - 1999,
              expected: decision(1, [plain("old"), seenCookie], .gradual)),
    RouteCase(name: "gradual, no fetch metadata, seen 2 s ago → moves",
              candidates: [cand("new", .gradual, threshold: 50), cand("old")],
              session: "old", transition: "c0", fetch: .absent, lastSeen: now * 1000 - 2000,
              expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, no fetch metadata, bucket above the threshold → previous, last-seen set",
              candidates: [cand("new", .gradual, threshold: 10), cand("old")],
              transition: "c0", fetch: .absent, expected: decision(1, [plain("old"), seenCookie], .gradual)),
    RouteCase(name: "gradual, on latest, sub-resource, bucket above the threshold → stays on latest",
              candidates: [cand("new", .gradual, threshold: 10), cand("old")],
              session: "new", transition: "c0", fetch: .subresource, expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual, pinned cluster failed, sub-resource → moves (nothing to stay on)",
              candidates: [cand("new", .gradual, threshold: 50), cand("old"), cand("oldest", usable: false)],
              session: "oldest", transition: "c0", fetch: .subresource, expected: decision(0, [plain("new")], .gradual)),
    RouteCase(name: "gradual without older cluster → instant",
              candidates: [cand("new", .gradual, threshold: 0)],
              expected: decision(0, [plain("new")], .instant)),
    RouteCase(name: "gradual whose previous failed → instant",
              candidates: [cand("new", .gradual), cand("old", usable: false)],
              session: "old", expected: decision(0, [plain("new")], .instant)),

    // CONCURRENT
    RouteCase(name: "concurrent GET is mirrored to previous",
              candidates: [cand("new", .concurrent), cand("old")],
              expected: decision(0, shadow: 1, [plain("new")], .concurrent)),
    RouteCase(name: "concurrent POST is not mirrored by default",
              candidates: [cand("new", .concurrent), cand("old")],
              idempotent: false, expected: decision(0, [plain("new")], .concurrent)),
    RouteCase(name: "concurrent POST mirrored with mirrorUnsafeMethods",
              candidates: [cand("new", .concurrent, mirror: true), cand("old")],
              idempotent: false, expected: decision(0, shadow: 1, [plain("new")], .concurrent)),
    RouteCase(name: "concurrent without older cluster → instant",
              candidates: [cand("new", .concurrent)],
              expected: decision(0, [plain("new")], .instant)),
    RouteCase(name: "concurrent shadow skips a failed cluster",
              candidates: [cand("new", .concurrent), cand("old", usable: false), cand("oldest")],
              expected: decision(0, shadow: 2, [plain("new")], .concurrent)),
    RouteCase(name: "concurrent ignores the session cookie",
              candidates: [cand("new", .concurrent), cand("old")],
              session: "old", expected: decision(0, shadow: 1, [plain("new")], .concurrent)),
    RouteCase(name: "failed concurrent latest: previous's session mode governs",
              candidates: [cand("new", .concurrent, usable: false), cand("old", .session, timeout: 30), cand("oldest")],
              session: "oldest", expected: decision(2, [expiring("oldest", 30)], .session)),
]

@Test(arguments: routeCases)
func routeTable(_ c: RouteCase) {
    var rng = FixedRNG(0x0123_4567_89ab_cdef)
    let input = RouteInput(
        sessionCookie: c.session, transitionCookie: c.transition, methodIsIdempotent: c.idempotent, nowUnix: now,
        fetch: c.fetch, lastSeenMillis: c.lastSeen)
    let got = route(input, candidates: c.candidates, names: CookieNames(), random: &rng)
    #expect(got == c.expected)

    // The proxy's path: the same decision without Strings, its cookie lines written as bytes.
    var again = FixedRNG(0x0123_4567_89ab_cdef)
    guard let lean = route(input, candidates: c.candidates, names: CookieNames(), random: &again, renderCookies: false),
          let got else { return }
    #expect(lean.primary == got.primary && lean.shadow == got.shadow && lean.setCookies.isEmpty)
    var dates = HTTPDateCache()
    var bytes: [UInt8] = []
    let line = Array("\(CookieNames().session)=\(c.candidates[lean.primary].uuid)\(attrs)".utf8)
    appendSetCookieLines(lean, sessionCookieLine: line, names: CookieNames(), dates: &dates, to: &bytes)
    #expect(String(decoding: bytes, as: UTF8.self) == got.setCookies.map { "Set-Cookie: \($0)\r\n" }.joined())
}

@Test func routeFromCookieHeaderWithQuotesAndSeveralCookies() {
    var rng = FixedRNG(1)
    let input = RouteInput(
        cookieHeader: "theme=dark; dynsoftup=\"old\"; transition=c5", names: CookieNames(), nowUnix: now)
    #expect(input.sessionCookie == "old")
    #expect(input.transitionCookie == "c5")
    let got = route(
        input, candidates: [cand("new", .session, timeout: 60), cand("old", .session, timeout: 60)],
        names: CookieNames(), random: &rng)
    #expect(got == decision(1, [expiring("old", 60)], .session))
}

@Test func routeWithCustomCookieNames() {
    var rng = FixedRNG(0x0123_4567_89ab_cdef)
    let names = CookieNames(session: "sid", transition: "tid", lastSeen: "seen")
    let input = RouteInput(cookieHeader: "dynsoftup=new; sid=old", names: names, nowUnix: now)
    let got = route(input, candidates: [cand("new", .gradual), cand("old")], names: names, random: &rng)
    #expect(got == decision(1, ["sid=old" + attrs, "tid=\(issuedID)" + attrs, "seen=\(now * 1000)" + attrs], .gradual))
}

@Test func routeWithoutCookieHeader() {
    let input = RouteInput(cookieHeader: nil, names: CookieNames(), nowUnix: now)
    #expect(input.sessionCookie == nil && input.transitionCookie == nil)
}

/// A GRADUAL client follows the threshold as it rises: once its bucket is
/// below the threshold it is served by latest, and its cookie keeps it there
/// even if the threshold were lowered again.
@Test func gradualClientMovesOnceAndStays() {
    let state = ClusterState()
    var rng = FixedRNG(0x0123_4567_89ab_cdef)
    var session: String? = nil
    var transition: String? = nil
    var servedBy: [Int] = []
    for _ in 0..<10 {
        let candidates = [cand("new", .gradual, threshold: state.gradualThreshold), cand("old")]
        let input = RouteInput(sessionCookie: session, transitionCookie: transition, nowUnix: now)
        let d = route(input, candidates: candidates, names: CookieNames(), random: &rng)!
        servedBy.append(d.primary)
        for c in d.setCookies {
            let header = String(c.prefix { $0 != ";" })
            if let v = cookieValue(named: "dynsoftup", inCookieHeader: header) { session = v }
            if let v = cookieValue(named: "transition", inCookieHeader: header) { transition = v }
        }
        state.advanceGradual(by: 10)
    }
    #expect(transition == issuedID)
    // Bucket 77: threshold after n exchanges is 10n, so exchanges 0...7 see ≤ 70, exchange 8 sees 80.
    #expect(servedBy == [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    let back = route(
        RouteInput(sessionCookie: session, transitionCookie: transition, nowUnix: now),
        candidates: [cand("new", .gradual, threshold: 0), cand("old")], names: CookieNames(), random: &rng)
    #expect(back?.primary == 0)
}

@Test func transitionIDs() {
    var rng = FixedRNG(0x0123_4567_89ab_cdef, 0xffff_0000_0000_0001)
    #expect(newTransitionID(using: &rng) == "0123456789abcdef")
    #expect(newTransitionID(using: &rng) == "ffff000000000001")
    #expect(isValidTransitionID("abc-DEF_1.2"))
    #expect(!isValidTransitionID("a b"))
    #expect(!isValidTransitionID("é"))
    #expect(isValidTransitionID(String(repeating: "x", count: 64)))
}

@Test func candidateFromSpecAndState() {
    let spec = ClusterSpec(
        uuid: "u", version: "1", servers: [ServerAddress(hostname: "h", port: 1)], mode: .gradual,
        percentageTransitionPerRequest: 5)
    let state = ClusterState()
    state.advanceGradual(by: 5)
    #expect(RouteCandidate(spec, state: state) == cand("u", .gradual, threshold: 5))
    #expect(!RouteCandidate(spec, state: state, hasLiveBackend: false).usable)
    _ = state.markFailed(reason: "x", at: 0)
    #expect(!RouteCandidate(spec, state: state).usable)
}

@Test func lastSeenCookieValues() {
    #expect(parseLastSeen("1764534661123") == 1_764_534_661_123)
    #expect(parseLastSeen(nil) == nil)
    #expect(parseLastSeen("") == nil)
    #expect(parseLastSeen("-5") == nil)
    #expect(parseLastSeen("12a") == nil)
    #expect(parseLastSeen(String(repeating: "9", count: 16)) == nil)
}
