/// Names of the two routing cookies. The defaults are the 2014 names, so
/// clients of the earlier proxy keep their sessions.
public struct CookieNames: Sendable, Equatable {
    /// Cookie naming the cluster that served the client (value: cluster uuid).
    public var session = "dynsoftup"
    /// Cookie holding the client's random id for GRADUAL bucketing.
    public var transition = "transition"
    /// Cookie holding when (unix milliseconds) a client without fetch metadata last made a
    /// request while it waited to move to the latest version.
    public var lastSeen = "dynsoftup_seen"
    /// The cookies' `Path` attribute (a service may narrow it).
    public var path = "/" { didSet { attributes = Self.render(path: path, domain: domain) } }
    /// The cookies' `Domain` attribute (a release group's `cookieDomain`), if any.
    public var domain: String? { didSet { attributes = Self.render(path: path, domain: domain) } }
    /// Every routing cookie's attributes after its value: `; Path=/; HttpOnly; SameSite=Lax`,
    /// with `; Domain=…` after the path when set.
    public private(set) var attributes = "; Path=/; HttpOnly; SameSite=Lax"

    /// Creates cookie names; defaults `dynsoftup`, `transition` and `dynsoftup_seen`.
    public init(session: String = "dynsoftup", transition: String = "transition", lastSeen: String = "dynsoftup_seen") {
        self.session = session
        self.transition = transition
        self.lastSeen = lastSeen
    }

    static func render(path: String, domain: String?) -> String {
        "; Path=" + path + (domain.map { "; Domain=" + $0 } ?? "") + "; HttpOnly; SameSite=Lax"
    }
}

/// Value of the first cookie called `named` in a `Cookie` header value
/// (RFC 6265 §5.4: `name=value` pairs separated by `;`), or nil when absent.
///
/// Names match case-sensitively; spaces and tabs around names and values are
/// ignored; a value in double quotes is returned without them; pairs without
/// `=` are skipped. When a request has several `Cookie` header lines, join
/// their values with `"; "` first.
public func cookieValue(named: String, inCookieHeader: String) -> String? {
    cookieValue(named: named, inCookieBytes: inCookieHeader.utf8)
}

/// Same as `cookieValue(named:inCookieHeader:)` on the raw bytes of the header
/// value, so the proxy can look into its read buffer without making a String.
@inlinable
public func cookieValue<C: BidirectionalCollection>(named: String, inCookieBytes header: C) -> String?
where C.Element == UInt8 {
    @inline(__always) func isOWS(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
    let name = named.utf8
    var pairStart = header.startIndex
    while pairStart < header.endIndex {
        let pairEnd = header[pairStart...].firstIndex(of: UInt8(ascii: ";")) ?? header.endIndex
        let pair = header[pairStart..<pairEnd]
        if let eq = pair.firstIndex(of: UInt8(ascii: "=")) {
            var n = pair[..<eq].drop(while: isOWS)
            while let last = n.last, isOWS(last) { n = n.dropLast() }
            if n.elementsEqual(name) {
                var v = pair[pair.index(after: eq)...].drop(while: isOWS)
                while let last = v.last, isOWS(last) { v = v.dropLast() }
                if v.count >= 2, v.first == UInt8(ascii: "\""), v.last == UInt8(ascii: "\"") {
                    v = v.dropFirst().dropLast()
                }
                return String(decoding: v, as: UTF8.self)
            }
        }
        pairStart = pairEnd == header.endIndex ? pairEnd : header.index(after: pairEnd)
    }
    return nil
}

/// Proleptic Gregorian civil date of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`), valid for any Int64 day count in range.
func civilFromDays(_ days: Int64) -> (year: Int64, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097                                    // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365 // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)              // [0, 365]
    let mp = (5 * doy + 2) / 153                                   // [0, 11], March first
    let day = Int(doy - (153 * mp + 2) / 5 + 1)
    let month = Int(mp < 10 ? mp + 3 : mp - 9)
    return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

/// Splits unix seconds into days since the epoch and seconds of that day.
func splitDay(_ unixSeconds: Int64) -> (days: Int64, secondOfDay: Int) {
    var days = unixSeconds / 86_400
    var rem = unixSeconds % 86_400
    if rem < 0 { rem += 86_400; days -= 1 }
    return (days, Int(rem))
}

/// Appends `value` zero-padded to `width` digits.
func appendPadded(_ out: inout String, _ value: Int64, width: Int) {
    let digits = String(value < 0 ? -value : value)
    if value < 0 { out += "-" }
    for _ in digits.utf8.count..<max(width, digits.utf8.count) { out += "0" }
    out += digits
}

private let weekdayNames = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
private let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

/// The IMF-fixdate of RFC 9110 §5.6.7 (`"Sun, 06 Nov 1994 08:49:37 GMT"`)
/// for unix seconds, without Foundation. Years before 1 or after 9999 are
/// printed as they come (the format has no room for them; cookies never need them).
public func httpDate(unixSeconds: Int64) -> String {
    let (days, sod) = splitDay(unixSeconds)
    let (year, month, day) = civilFromDays(days)
    var weekday = Int(days % 7)
    if weekday < 0 { weekday += 7 }
    var out = ""
    out.reserveCapacity(29)
    out += weekdayNames[weekday]
    out += ", "
    appendPadded(&out, Int64(day), width: 2)
    out += " "
    out += monthNames[month - 1]
    out += " "
    appendPadded(&out, year, width: 4)
    out += " "
    appendClock(&out, secondsOfDay: sod)
    out += " GMT"
    return out
}

/// Appends `HH:MM:SS` for a number of seconds since midnight.
private func appendClock(_ out: inout String, secondsOfDay seconds: Int) {
    let sod = Int64(seconds)
    appendPadded(&out, sod / 3600, width: 2)
    out += ":"
    appendPadded(&out, sod / 60 % 60, width: 2)
    out += ":"
    appendPadded(&out, sod % 60, width: 2)
}

/// RFC 3339 / ISO 8601 UTC timestamp (`"1994-11-06T08:49:37Z"`) for unix seconds.
public func iso8601(unixSeconds: Int64) -> String {
    let (days, sod) = splitDay(unixSeconds)
    let (year, month, day) = civilFromDays(days)
    var out = ""
    out.reserveCapacity(20)
    appendPadded(&out, year, width: 4)
    out += "-"
    appendPadded(&out, Int64(month), width: 2)
    out += "-"
    appendPadded(&out, Int64(day), width: 2)
    out += "T"
    appendClock(&out, secondsOfDay: sod)
    out += "Z"
    return out
}
