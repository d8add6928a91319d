/// Which service a request belongs to, by host and path: built once per snapshot, read by
/// every exchange without allocating.
///
/// Matching: the exact host's rules first, then the wildcards' from the longest suffix to the
/// shortest, then the default service. Within one host (or wildcard) the longest path prefix
/// that ends on a segment boundary wins (`/static` matches `/static` and `/static/a.css`, not
/// `/statics`). A host or wildcard without a fitting prefix falls through to the next step.
/// Host names compare without case, without port and without a trailing dot.
public final class ServiceTable: Sendable {
    struct Rule: Sendable {
        /// Normalized prefix (`normalizedPrefix`) as bytes.
        var prefix: [UInt8]
        var service: Int
    }

    struct Entry: Sendable {
        var hash: UInt64
        /// Lower-case host, or a wildcard's suffix with its leading dot.
        var name: [UInt8]
        /// Longest prefix first.
        var rules: [Rule]
    }

    /// An open-addressed hash set of entries, keyed by `ServiceTable.hash`.
    struct Index: Sendable {
        var entries: [Entry] = []
        var slots: [Int32] = []
        var mask = 0
        /// Bit n set: some name is n bytes long (bit 63: 63 or more), so most look-ups of a
        /// length no name has end before hashing.
        var lengths: UInt64 = 0

        init(_ named: [(name: [UInt8], rules: [Rule])]) {
            guard !named.isEmpty else { return }
            for (name, _) in named { lengths |= 1 << UInt64(min(name.count, 63)) }
            var capacity = 8
            while capacity < named.count * 2 { capacity <<= 1 }
            slots = [Int32](repeating: -1, count: capacity)
            mask = capacity - 1
            for (name, rules) in named {
                let h = ServiceTable.hash(name[...])
                entries.append(Entry(hash: h, name: name, rules: rules.sorted { $0.prefix.count > $1.prefix.count }))
                var slot = Int(truncatingIfNeeded: h) & mask
                while slots[slot] >= 0 { slot = (slot + 1) & mask }
                slots[slot] = Int32(entries.count - 1)
            }
        }

        var isEmpty: Bool { entries.isEmpty }

        /// Whether some name might be `count` bytes long.
        @inline(__always) func mayHold(_ count: Int) -> Bool { lengths & (1 << UInt64(min(count, 63))) != 0 }

        /// The entry whose name is `source[range]` (lower-cased) and whose hash is `h`.
        func find(_ h: UInt64, _ source: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
            guard !slots.isEmpty else { return nil }
            var slot = Int(truncatingIfNeeded: h) & mask
            while true {
                let e = Int(slots[slot])
                if e < 0 { return nil }
                if entries[e].hash == h && ServiceTable.equalFolded(entries[e].name, source, range) { return e }
                slot = (slot + 1) & mask
            }
        }
    }

    private let exact: Index
    private let wildcards: Index
    /// Index of the `default` service, if there is one.
    public let defaultService: Int?

    /// No host rule at all: every request goes to the default service.
    public var isTrivial: Bool { exact.isEmpty && wildcards.isEmpty }

    /// Builds the table for `services` (a request's service is its index in this array). Host
    /// patterns that do not parse are skipped (the configuration refuses them first).
    public init(services: [ServiceSpec]) {
        var exactRules: [String: [Rule]] = [:]
        var wildcardRules: [String: [Rule]] = [:]
        var order: [String] = []
        var wildcardOrder: [String] = []
        var defaultIndex: Int?
        for (i, service) in services.enumerated() {
            if service.name == defaultServiceName {
                defaultIndex = i
                continue
            }
            let rule = Rule(prefix: Array(normalizedPrefix(service.pathPrefix).utf8), service: i)
            for host in service.hosts {
                switch HostPattern(host) {
                case .exact(let name)?:
                    if exactRules[name] == nil { order.append(name) }
                    exactRules[name, default: []].append(rule)
                case .wildcard(let suffix)?:
                    if wildcardRules[suffix] == nil { wildcardOrder.append(suffix) }
                    wildcardRules[suffix, default: []].append(rule)
                case nil:
                    continue
                }
            }
        }
        exact = Index(order.map { (Array($0.utf8), exactRules[$0]!) })
        wildcards = Index(wildcardOrder.map { (Array($0.utf8), wildcardRules[$0]!) })
        defaultService = defaultIndex
    }

    /// The service of a request whose host is `source[host]` (the `Host` value or the
    /// absolute-form authority, as sent: any case, maybe with a port) and whose request
    /// target's path is `source[path]` (a query after `?` is ignored). Nil: no service.
    public func match(source: UnsafeRawBufferPointer, host: Range<Int>?, path: Range<Int>) -> Int? {
        if isTrivial { return defaultService }
        let pathEnd = Self.pathEnd(source, path)
        guard let host, let name = Self.hostName(source, host) else { return defaultService }
        // One pass from the right end: the hash of every suffix that starts with a dot, and
        // at the end the whole name's.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        var wildcard: Int?
        var i = name.upperBound
        let wildcardLengths = wildcards.lengths
        while i > name.lowerBound {
            i -= 1
            h = (h ^ UInt64(Self.lower(source[i]))) &* 0x0000_0100_0000_01B3
            if source[i] == 0x2E, i > name.lowerBound, wildcardLengths & (1 << UInt64(min(name.upperBound - i, 63))) != 0,
               let e = wildcards.find(h, source, i..<name.upperBound),
               let service = Self.firstRule(wildcards.entries[e].rules, source, path.lowerBound..<pathEnd) {
                wildcard = service  // each later hit is a longer suffix
            }
        }
        if exact.mayHold(name.count), let e = exact.find(h, source, name),
           let service = Self.firstRule(exact.entries[e].rules, source, path.lowerBound..<pathEnd) {
            return service
        }
        return wildcard ?? defaultService
    }

    /// The same for a host and path given as strings (tests, the API's explanations).
    public func match(host: String?, path: String) -> Int? {
        var bytes = Array((host ?? "").utf8)
        let hostCount = bytes.count
        bytes.append(contentsOf: path.utf8)
        return bytes.withUnsafeBytes { raw in
            match(source: raw, host: host == nil ? nil : 0..<hostCount, path: hostCount..<raw.count)
        }
    }

    /// The first rule (longest prefix first) whose prefix covers the path on a segment boundary.
    static func firstRule(_ rules: [Rule], _ source: UnsafeRawBufferPointer, _ path: Range<Int>) -> Int? {
        for rule in rules {
            let p = rule.prefix
            if p.count == 1 { return rule.service }  // "/"
            guard path.count >= p.count else { continue }
            var k = 0
            while k < p.count, source[path.lowerBound + k] == p[k] { k += 1 }
            guard k == p.count else { continue }
            if path.count == p.count || source[path.lowerBound + k] == 0x2F { return rule.service }
        }
        return nil
    }

    /// Where the path of a request target ends (before `?` or `#`).
    static func pathEnd(_ source: UnsafeRawBufferPointer, _ path: Range<Int>) -> Int {
        var i = path.lowerBound
        while i < path.upperBound {
            let b = source[i]
            if b == 0x3F || b == 0x23 { return i }
            i += 1
        }
        return path.upperBound
    }

    /// The host name within a `Host` value: without a port and a trailing dot; an IPv6
    /// literal keeps its brackets. Nil when nothing is left.
    static func hostName(_ source: UnsafeRawBufferPointer, _ host: Range<Int>) -> Range<Int>? {
        var start = host.lowerBound
        var end = host.upperBound
        while start < end, source[start] == 0x20 || source[start] == 0x09 { start += 1 }
        while end > start, source[end - 1] == 0x20 || source[end - 1] == 0x09 { end -= 1 }
        guard start < end else { return nil }
        if source[start] == 0x5B {  // [v6]:port
            var i = start
            while i < end, source[i] != 0x5D { i += 1 }
            return i < end ? start..<(i + 1) : nil
        }
        var i = end
        while i > start {
            i -= 1
            if source[i] == 0x3A { end = i; break }
        }
        if end > start, source[end - 1] == 0x2E { end -= 1 }
        return start < end ? start..<end : nil
    }

    /// The hash the table is keyed by: FNV-1a over the lower-cased bytes, last byte first (so a
    /// name's suffixes are hashed on the way to the whole name).
    static func hash(_ name: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.reversed() { h = (h ^ UInt64(lower(b))) &* 0x0000_0100_0000_01B3 }
        return h
    }

    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    static func equalFolded(_ name: [UInt8], _ source: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard name.count == range.count else { return false }
        var k = 0
        for i in range {
            if lower(source[i]) != name[k] { return false }
            k += 1
        }
        return true
    }
}
