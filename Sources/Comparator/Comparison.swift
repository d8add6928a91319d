import Locks
import Synchronization

/// What one side of a compared exchange answered.
public struct ResponseSummary: Sendable, Equatable {
    public var status: Int = 0
    /// "content-length", "chunked", "close" or "none".
    public var framing: String = "none"
    /// Compared headers, lower-cased names, in order received (bounded).
    public var headers: [(name: String, value: String)] = []
    /// Time from the request head to the end of the response, in milliseconds.
    public var latencyMillis: Double = 0
    /// Did the response complete? (false: failed, reset, timed out)
    public var complete = false
    /// Why it failed, when it did.
    public var failure: String?

    public init() {}

    public static func == (a: ResponseSummary, b: ResponseSummary) -> Bool {
        a.status == b.status && a.framing == b.framing && a.latencyMillis == b.latencyMillis && a.complete == b.complete
            && a.failure == b.failure && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }
}

/// Which headers take part in the comparison.
public struct HeaderPolicy: Sendable {
    /// Lower-cased names that are expected to differ between versions.
    public var ignored: Set<String> { didSet { ignoredBytes = Self.bytes(ignored) } }
    /// The same names as bytes, so a response's header names are checked without a String.
    private var ignoredBytes: [[UInt8]]
    /// Most headers kept per response (bounds memory).
    public var maxHeaders = 64

    public static let defaultIgnored: Set<String> = ["date", "server", "set-cookie", "age", "expires", "last-modified", "etag",
                                                     "x-request-id", "connection", "keep-alive", "transfer-encoding",
                                                     "content-length"]

    public init(ignored: Set<String> = HeaderPolicy.defaultIgnored) {
        self.ignored = ignored
        ignoredBytes = Self.bytes(ignored)
    }

    private static func bytes(_ names: Set<String>) -> [[UInt8]] { names.map { Array($0.lowercased().utf8) } }

    /// True when the header named `lowercasedName` is compared.
    public func compares(_ lowercasedName: String) -> Bool { !ignored.contains(lowercasedName) }

    /// True when the header named `name` (as received, any case) is compared; no allocation.
    public func compares(name: UnsafeRawBufferPointer) -> Bool {
        for candidate in ignoredBytes where candidate.count == name.count {
            var same = true
            for i in 0..<name.count {
                let b = name[i]
                if (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) != candidate[i] { same = false; break }
            }
            if same { return false }
        }
        return true
    }
}

/// One compared exchange, as `GET /comparisons` shows it.
public struct ComparisonRecord: Sendable {
    public var method: String
    public var target: String
    /// [old, new]
    public var old: ResponseSummary
    public var new: ResponseSummary
    public var servedBy: String
    public var bodyLengths: (old: UInt64, new: UInt64)
    public var bodyDigestEqual: Bool
    public var firstDifferenceOffset: UInt64?
    /// Why the bodies were not compared (nil when they were): only their lengths are known.
    public var bodyNotCompared: String?
    public var headerDifferences: [String]
    public var unixTime: Int64
    public var clusters: (old: String, new: String)
    /// The exchange's X-Request-Id (as forwarded to both versions).
    public var requestID = ""
    /// The path is one whose bodies are not compared (the new cluster's `ignoreBodyFor`).
    public var bodyIgnored = false

    /// True when the two responses differ in status, compared headers or body (a body that
    /// was not compared counts as a difference only when the lengths differ; bodies of a path
    /// in `ignoreBodyFor` never count).
    public var divergent: Bool {
        let bodiesDiffer = bodyIgnored ? false : bodyNotCompared == nil ? !bodyDigestEqual : bodyLengths.old != bodyLengths.new
        return old.status != new.status || bodiesDiffer || !headerDifferences.isEmpty || old.complete != new.complete
    }

    public init(method: String, target: String, old: ResponseSummary, new: ResponseSummary, servedBy: String,
                comparator: StreamComparator, unixTime: Int64, clusters: (old: String, new: String)) {
        self.method = method
        self.target = target
        self.old = old
        self.new = new
        self.servedBy = servedBy
        self.bodyLengths = (comparator.lengths.0, comparator.lengths.1)
        self.bodyDigestEqual = comparator.bodiesEqual && old.complete && new.complete
        self.firstDifferenceOffset = comparator.firstDifferenceOffset
        self.bodyNotCompared = comparator.notCompared
        self.headerDifferences = Self.headerDifferences(old.headers, new.headers)
        if old.framing != new.framing { headerDifferences.insert("framing: \(old.framing) vs \(new.framing)", at: 0) }
        self.unixTime = unixTime
        self.clusters = clusters
    }

    /// Names of compared headers whose values differ or that only one side sent.
    static func headerDifferences(_ a: [(name: String, value: String)], _ b: [(name: String, value: String)]) -> [String] {
        // The usual case, identical lists, without building anything.
        if a.count == b.count && zip(a, b).allSatisfy({ $0.name == $1.name && $0.value == $1.value }) { return [] }
        var names: [String] = []
        for (name, _) in a + b where !names.contains(name) { names.append(name) }
        return names.filter { name in
            a.filter { $0.name == name }.map(\.value) != b.filter { $0.name == name }.map(\.value)
        }
    }
}

/// The comparisons kept for the API: totals, per-cluster-pair counts, and the newest N
/// records in a ring. Written by workers at the end of each compared exchange.
public final class ComparisonLog: Sendable {
    /// A cluster pair, hashed as two strings (no "old->new" string is built per exchange).
    private struct Pair: Hashable {
        var old: String
        var new: String
    }

    private struct State {
        var total = 0
        var divergent = 0
        var fallbacks = 0
        var pairs: [Pair: (compared: Int, divergent: Int, fallbacks: Int)] = [:]
        var ring: [ComparisonRecord] = []
        var next = 0
    }

    private let state = Lock(State())
    /// How many records are kept.
    public let capacity: Int

    public init(capacity: Int = 100) { self.capacity = max(0, capacity) }

    /// Adds a finished comparison.
    public func add(_ record: ComparisonRecord) {
        let key = Pair(old: record.clusters.old, new: record.clusters.new)
        state.withLock { s in
            s.total += 1
            let divergent = record.divergent
            if divergent { s.divergent += 1 }
            let fallback = record.servedBy == "old"
            if fallback { s.fallbacks += 1 }
            var pair = s.pairs[key] ?? (0, 0, 0)
            pair.compared += 1
            if divergent { pair.divergent += 1 }
            if fallback { pair.fallbacks += 1 }
            s.pairs[key] = pair
            guard capacity > 0 else { return }
            if s.ring.count < capacity {
                s.ring.append(record)
            } else {
                s.ring[s.next] = record
            }
            s.next = (s.next + 1) % capacity
        }
    }

    /// Comparisons recorded so far between `old` and `new` (cluster uuids), and how many
    /// of them diverged.
    public func totals(old: String, new: String) -> (compared: Int, divergent: Int) {
        state.withLock { s in
            let pair = s.pairs[Pair(old: old, new: new)] ?? (0, 0, 0)
            return (pair.compared, pair.divergent)
        }
    }

    /// The counts a self-upgrade hands to the new process (rollout gates read the per-pair
    /// counts): totals and per cluster pair; the kept records stay behind.
    public struct Totals: Equatable, Sendable {
        public var total = 0
        public var divergent = 0
        public var fallbacks = 0
        /// (old uuid, new uuid, compared, divergent, fallbacks), sorted by the uuids.
        public var pairs: [PairTotals] = []

        public init() {}
    }

    /// One cluster pair's counts.
    public struct PairTotals: Equatable, Sendable {
        public var old: String
        public var new: String
        public var compared: Int
        public var divergent: Int
        public var fallbacks: Int

        public init(old: String, new: String, compared: Int, divergent: Int, fallbacks: Int) {
            self.old = old
            self.new = new
            self.compared = compared
            self.divergent = divergent
            self.fallbacks = fallbacks
        }
    }

    /// The counts as they stand.
    public func totalsForHandover() -> Totals {
        state.withLock { s in
            var out = Totals()
            out.total = s.total
            out.divergent = s.divergent
            out.fallbacks = s.fallbacks
            out.pairs = s.pairs.map { PairTotals(old: $0.key.old, new: $0.key.new, compared: $0.value.compared,
                                                 divergent: $0.value.divergent, fallbacks: $0.value.fallbacks) }
                .sorted { ($0.old, $0.new) < ($1.old, $1.new) }
            return out
        }
    }

    /// Adds counts handed over by the previous process (before this one compared anything).
    public func restore(_ totals: Totals) {
        state.withLock { s in
            s.total += totals.total
            s.divergent += totals.divergent
            s.fallbacks += totals.fallbacks
            for p in totals.pairs {
                var pair = s.pairs[Pair(old: p.old, new: p.new)] ?? (0, 0, 0)
                pair.compared += p.compared
                pair.divergent += p.divergent
                pair.fallbacks += p.fallbacks
                s.pairs[Pair(old: p.old, new: p.new)] = pair
            }
        }
    }

    /// Totals and the kept records, newest first.
    public func snapshot() -> (total: Int, divergent: Int, fallbacks: Int, recent: [ComparisonRecord], pairs: [String: (compared: Int, divergent: Int, fallbacks: Int)]) {
        state.withLock { s in
            var recent: [ComparisonRecord] = []
            if s.ring.count < capacity || capacity == 0 {
                recent = s.ring.reversed()
            } else {
                for i in 0..<capacity { recent.append(s.ring[(s.next - 1 - i + capacity * 2) % capacity]) }
            }
            var pairs: [String: (compared: Int, divergent: Int, fallbacks: Int)] = [:]
            for (pair, counts) in s.pairs { pairs["\(pair.old)->\(pair.new)"] = counts }
            return (s.total, s.divergent, s.fallbacks, recent, pairs)
        }
    }
}
