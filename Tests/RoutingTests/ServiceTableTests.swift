import Testing
@testable import Routing

/// The services every case below routes among (index = position).
let tableServices: [ServiceSpec] = [
    ServiceSpec(name: "default"),                                                              // 0
    ServiceSpec(name: "shop", hosts: ["shop.example.com", "*.shop.example.com"], pathPrefix: "/"), // 1
    ServiceSpec(name: "static", hosts: ["shop.example.com"], pathPrefix: "/static/"),          // 2
    ServiceSpec(name: "api", hosts: ["api.example.com"], pathPrefix: "/"),                     // 3
    ServiceSpec(name: "apiv2", hosts: ["api.example.com"], pathPrefix: "/v2"),                 // 4
    ServiceSpec(name: "anyexample", hosts: ["*.example.com"], pathPrefix: "/"),               // 5
    ServiceSpec(name: "euonly", hosts: ["*.eu.shop.example.com"], pathPrefix: "/eu"),         // 6
    ServiceSpec(name: "v6", hosts: ["[::1]"], pathPrefix: "/"),                                // 7
]

struct MatchCase: CustomTestStringConvertible, Sendable {
    var host: String?
    var path: String
    var expected: Int?
    var testDescription: String { "\(host ?? "(no host)") \(path) → \(expected.map(String.init) ?? "none")" }
}

let matchCases: [MatchCase] = [
    MatchCase(host: "shop.example.com", path: "/", expected: 1),
    MatchCase(host: "SHOP.Example.COM", path: "/cart", expected: 1),
    MatchCase(host: "shop.example.com:8080", path: "/cart", expected: 1),
    MatchCase(host: "shop.example.com.", path: "/cart", expected: 1),
    MatchCase(host: "shop.example.com", path: "/static/app.css", expected: 2),
    MatchCase(host: "shop.example.com", path: "/static", expected: 2),
    MatchCase(host: "shop.example.com", path: "/static?x=1", expected: 2),
    MatchCase(host: "shop.example.com", path: "/statics", expected: 1),
    MatchCase(host: "shop.example.com", path: "/staticx/a", expected: 1),
    MatchCase(host: "www.shop.example.com", path: "/static/a", expected: 1),  // static is exact-host only
    MatchCase(host: "a.b.shop.example.com", path: "/", expected: 1),
    MatchCase(host: "x.eu.shop.example.com", path: "/eu/page", expected: 6),  // longest wildcard
    MatchCase(host: "x.eu.shop.example.com", path: "/other", expected: 1),    // falls to the shorter wildcard
    MatchCase(host: "api.example.com", path: "/v1/users", expected: 3),
    MatchCase(host: "api.example.com", path: "/v2/users", expected: 4),
    MatchCase(host: "api.example.com", path: "/v2", expected: 4),
    MatchCase(host: "api.example.com", path: "/v20", expected: 3),
    MatchCase(host: "other.example.com", path: "/", expected: 5),
    MatchCase(host: "example.com", path: "/", expected: 0),                   // a wildcard needs a label in front
    MatchCase(host: "unknown.org", path: "/", expected: 0),
    MatchCase(host: nil, path: "/", expected: 0),
    MatchCase(host: "", path: "/", expected: 0),
    MatchCase(host: "[::1]:8080", path: "/x", expected: 7),
    MatchCase(host: "[::1]", path: "/x", expected: 7),
    MatchCase(host: "shop.example.com", path: "*", expected: 1),
]

@Test(arguments: matchCases)
func hostAndPathMatching(_ c: MatchCase) {
    let table = ServiceTable(services: tableServices)
    #expect(table.match(host: c.host, path: c.path) == c.expected)
}

@Test func withoutDefaultServiceAnUnmatchedHostHasNoService() {
    let table = ServiceTable(services: Array(tableServices.dropFirst()))
    #expect(table.match(host: "unknown.org", path: "/") == nil)
    #expect(table.match(host: "shop.example.com", path: "/") == 0)
    #expect(table.match(host: nil, path: "/") == nil)
}

@Test func onlyTheDefaultServiceIsTrivial() {
    let table = ServiceTable(services: [ServiceSpec(name: "default")])
    #expect(table.isTrivial)
    #expect(table.match(host: "anything", path: "/x") == 0)
}

@Test func manyServicesStillMatchExactly() {
    var services = [ServiceSpec(name: "default")]
    for i in 0..<200 {
        switch i % 3 {
        case 0: services.append(ServiceSpec(name: "s\(i)", hosts: ["h\(i).example.com"]))
        case 1: services.append(ServiceSpec(name: "s\(i)", hosts: ["*.w\(i).example.com"]))
        default: services.append(ServiceSpec(name: "s\(i)", hosts: ["h\(i - 2).example.com"], pathPrefix: "/p\(i)"))
        }
    }
    let table = ServiceTable(services: services)
    for i in 0..<200 {
        switch i % 3 {
        case 0: #expect(table.match(host: "h\(i).example.com", path: "/") == i + 1)
        case 1: #expect(table.match(host: "x.w\(i).example.com", path: "/") == i + 1)
        default: #expect(table.match(host: "h\(i - 2).example.com", path: "/p\(i)/a") == i + 1)
        }
    }
}

struct PatternCase: CustomTestStringConvertible, Sendable {
    var text: String
    var valid: Bool
    var testDescription: String { "\"\(text)\" \(valid ? "valid" : "refused")" }
}

let patternCases: [PatternCase] = [
    PatternCase(text: "shop.example.com", valid: true),
    PatternCase(text: "*.example.com", valid: true),
    PatternCase(text: "Shop.Example.com", valid: true),
    PatternCase(text: "localhost", valid: true),
    PatternCase(text: "10.0.0.1", valid: true),
    PatternCase(text: "[::1]", valid: true),
    PatternCase(text: "", valid: false),
    PatternCase(text: "*", valid: false),
    PatternCase(text: "*.", valid: false),
    PatternCase(text: "shop.*.com", valid: false),
    PatternCase(text: "shop.example.com:80", valid: false),
    PatternCase(text: "shop..example.com", valid: false),
    PatternCase(text: "shop.example.com.", valid: false),
    PatternCase(text: "sh op.com", valid: false),
    PatternCase(text: "[::1", valid: false),
    PatternCase(text: "exa_mple.com", valid: false),
]

@Test(arguments: patternCases)
func hostPatterns(_ c: PatternCase) {
    #expect((HostPattern(c.text) != nil) == c.valid)
}

@Test func conflictingClaimsAreFound() {
    let a = ServiceSpec(name: "a", hosts: ["x.com"], pathPrefix: "/static/")
    let b = ServiceSpec(name: "b", hosts: ["X.com"], pathPrefix: "/static")
    let conflict = serviceConflict([a, b])
    #expect(conflict?.service == 1)
    #expect(conflict?.host == 0)
    #expect(serviceConflict([a, ServiceSpec(name: "c", hosts: ["x.com"], pathPrefix: "/")]) == nil)
}

@Test func serviceCookieNames() {
    let base = CookieNames()
    #expect(ServiceSpec(name: "default").cookieNames(base: base) == base)
    let shop = ServiceSpec(name: "shop").cookieNames(base: base)
    #expect(shop.session == "dynsoftup_shop")
    #expect(shop.transition == "transition_shop")
    #expect(shop.lastSeen == "dynsoftup_seen_shop")
    #expect(shop.attributes == "; Path=/; HttpOnly; SameSite=Lax")
    let own = ServiceSpec(name: "api", cookies: ServiceCookies(session: "api_v", path: "/api")).cookieNames(base: base)
    #expect(own.session == "api_v")
    #expect(own.transition == "transition_api")
    #expect(own.attributes == "; Path=/api; HttpOnly; SameSite=Lax")
    let grouped = ServiceSpec(name: "api", releaseGroup: "web").cookieNames(base: base, domain: "example.com")
    #expect(grouped.session == "dynsoftup_web")
    #expect(grouped.attributes == "; Path=/; Domain=example.com; HttpOnly; SameSite=Lax")
}
