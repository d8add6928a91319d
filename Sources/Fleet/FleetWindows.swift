import Config

/// One version's exchanges counted by one instance since it started (cumulative), as an
/// instance publishes them every second for the leader to judge the fleet's rollout.
public struct ExchangeTotals: Equatable, Sendable {
    public var requests = 0
    /// Answers with a 5xx status.
    public var errors = 0
    /// The latency histogram's counts (`LatencyHistogram.bucketCount` of them).
    public var latency: [Int] = []
    /// CONCURRENT: exchanges compared with the version before, and how many diverged.
    public var compared = 0
    public var divergent = 0

    public init(requests: Int = 0, errors: Int = 0, latency: [Int] = [], compared: Int = 0, divergent: Int = 0) {
        self.requests = requests
        self.errors = errors
        self.latency = latency
        self.compared = compared
        self.divergent = divergent
    }

    /// Adds another instance's totals.
    public mutating func add(_ other: ExchangeTotals) {
        requests += other.requests
        errors += other.errors
        if latency.count < other.latency.count { latency += Array(repeating: 0, count: other.latency.count - latency.count) }
        for (i, n) in other.latency.enumerated() { latency[i] += n }
        compared += other.compared
        divergent += other.divergent
    }
}

/// The compact form an instance publishes: `{"clusters":{"<uuid>":{"n":requests,"e":errors,
/// "l":{"<bucket>":count,…},"c":compared,"d":divergent}}}` — only the histogram buckets that
/// are not empty, so a second's record stays a few hundred bytes.
public enum FleetWindows {
    /// Encodes one instance's totals by cluster uuid.
    public static func encode(_ totals: [String: ExchangeTotals]) -> [UInt8] {
        var clusters: [String: Any] = [:]
        for (uuid, t) in totals {
            var buckets: [String: Any] = [:]
            for (i, n) in t.latency.enumerated() where n != 0 { buckets[String(i)] = n }
            var o: [String: Any] = ["n": t.requests, "e": t.errors, "l": buckets]
            if t.compared != 0 { o["c"] = t.compared }
            if t.divergent != 0 { o["d"] = t.divergent }
            clusters[uuid] = o
        }
        return JSONText.encode(["clusters": clusters])
    }

    /// Decodes one instance's record; `buckets` is the histogram's length. Malformed records
    /// read as empty (one instance's bad record must not stop the judgement of the others).
    public static func decode(_ bytes: [UInt8], buckets: Int) -> [String: ExchangeTotals] {
        guard let top = (try? JSONText.parse(bytes)) as? [String: Any], let clusters = top["clusters"] as? [String: Any] else { return [:] }
        var out: [String: ExchangeTotals] = [:]
        for (uuid, value) in clusters {
            guard let o = value as? [String: Any] else { continue }
            var t = ExchangeTotals(requests: max(0, o["n"] as? Int ?? 0), errors: max(0, o["e"] as? Int ?? 0),
                                   latency: Array(repeating: 0, count: buckets),
                                   compared: max(0, o["c"] as? Int ?? 0), divergent: max(0, o["d"] as? Int ?? 0))
            for (key, n) in o["l"] as? [String: Any] ?? [:] {
                if let i = Int(key), i >= 0, i < buckets, let n = n as? Int, n > 0 { t.latency[i] = n }
            }
            out[uuid] = t
        }
        return out
    }

    /// The fleet's totals: every instance's record summed by cluster.
    public static func sum(_ records: [[String: ExchangeTotals]]) -> [String: ExchangeTotals] {
        var out: [String: ExchangeTotals] = [:]
        for record in records {
            for (uuid, t) in record { out[uuid, default: ExchangeTotals()].add(t) }
        }
        return out
    }
}
