/// A version label ordered the way people read release numbers.
///
/// Rules, in order:
/// - The label is split on `.` into parts. A missing or empty label is `"0.0"`;
///   an empty part (`"1..2"`) counts as `0`.
/// - A part is a run of leading digits (its *number*) followed by an optional
///   *suffix* (`"10"` → 10 + "", `"0-beta"` → 0 + "-beta", `"rc1"` → no number + "rc1").
/// - Two parts with numbers compare by number (`"10"` > `"9"`, leading zeros
///   ignored, no overflow for long runs). On equal numbers a part without a
///   suffix is greater than one with a suffix, as in semantic versioning
///   (`"1.0"` > `"1.0-beta"`); two suffixes compare as strings (byte order).
/// - A part with a number is greater than a part without one (`"1.0"` > `"1.x"`),
///   so that release numbers rank above ad-hoc names.
/// - Two parts without numbers compare as strings (byte order).
/// - Missing trailing parts count as `0`, so `"1.0"` == `"1.0.0"` == `"1"`.
public struct Version: Comparable, Sendable, CustomStringConvertible {
    /// One dotted part: digits (leading zeros stripped; nil when the part
    /// does not start with a digit) and the rest.
    struct Part: Sendable, Equatable {
        var digits: String?
        var suffix: String
    }

    /// The label as given (or `"0.0"` when it was empty).
    public let description: String
    /// Parts with trailing zero parts removed, so equal versions have equal parts.
    let parts: [Part]

    /// Parses a version label; never fails (see the type's rules).
    public init(_ s: String) {
        let label = s.isEmpty ? "0.0" : s
        description = label
        var parts: [Part] = []
        for raw in label.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            var i = raw.startIndex
            while i < raw.endIndex, raw[i] >= UInt8(ascii: "0"), raw[i] <= UInt8(ascii: "9") {
                i = raw.index(after: i)
            }
            let suffix = String(decoding: raw[i...], as: UTF8.self)
            if i == raw.startIndex && !suffix.isEmpty {
                parts.append(Part(digits: nil, suffix: suffix))
            } else {
                // Zero is stored as "": equal numbers have equal spellings.
                let digits = raw[raw.startIndex..<i].drop(while: { $0 == UInt8(ascii: "0") })
                parts.append(Part(digits: String(decoding: digits, as: UTF8.self), suffix: suffix))
            }
        }
        while let last = parts.last, last.digits == "", last.suffix.isEmpty {
            parts.removeLast()
        }
        self.parts = parts
    }

    static let zero = Part(digits: "", suffix: "")

    /// Compares two parts: negative, zero or positive.
    static func compare(_ a: Part, _ b: Part) -> Int {
        switch (a.digits, b.digits) {
        case let (x?, y?):
            if x.utf8.count != y.utf8.count { return x.utf8.count < y.utf8.count ? -1 : 1 }
            if x != y { return x < y ? -1 : 1 }
            if a.suffix == b.suffix { return 0 }
            if a.suffix.isEmpty { return 1 }
            if b.suffix.isEmpty { return -1 }
            return a.suffix < b.suffix ? -1 : 1
        case (.some, nil):
            return 1
        case (nil, .some):
            return -1
        case (nil, nil):
            if a.suffix == b.suffix { return 0 }
            return a.suffix < b.suffix ? -1 : 1
        }
    }

    /// Compares two versions: negative, zero or positive.
    static func compare(_ a: Version, _ b: Version) -> Int {
        let n = max(a.parts.count, b.parts.count)
        for i in 0..<n {
            let pa = i < a.parts.count ? a.parts[i] : zero
            let pb = i < b.parts.count ? b.parts[i] : zero
            let c = compare(pa, pb)
            if c != 0 { return c }
        }
        return 0
    }

    /// True when `a` orders before `b`.
    public static func < (a: Version, b: Version) -> Bool { compare(a, b) < 0 }
    /// True when neither orders before the other (`"1.0"` == `"1.0.0"`), whatever the spelling.
    public static func == (a: Version, b: Version) -> Bool { compare(a, b) == 0 }
}

/// Orders clusters latest first: by `Version` descending; on a tie the one
/// added later (higher sequence) first. Returns a new array; `items` is not changed.
public func orderLatestFirst<T>(_ items: [T], version: (T) -> String, sequence: (T) -> UInt64) -> [T] {
    let keyed = items.map { (Version(version($0)), sequence($0), $0) }
    return keyed.sorted { a, b in
        let c = Version.compare(a.0, b.0)
        if c != 0 { return c > 0 }
        return a.1 > b.1
    }.map { $0.2 }
}
