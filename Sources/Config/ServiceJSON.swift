import Routing

/// A release group's settings (`releaseGroups.NAME`).
public struct ReleaseGroupSpec: Sendable, Equatable {
    /// The routing cookies' `Domain`, so they reach every host of the group under it.
    public var cookieDomain: String?

    public init(cookieDomain: String? = nil) { self.cookieDomain = cookieDomain }
}

/// One service of the configuration file with its clusters.
public struct ServiceConfig: Sendable, Equatable {
    public var spec: ServiceSpec
    public var clusters: [ClusterSpec]

    public init(spec: ServiceSpec, clusters: [ClusterSpec]) {
        self.spec = spec
        self.clusters = clusters
    }
}

/// The JSON form of a service: `{"name": "shop", "hosts": ["shop.example.com", "*.shop.example.com"],
/// "pathPrefix": "/", "cookies": {"session": …, "transition": …, "lastSeen": …, "path": "/"},
/// "releaseGroup": "web", "clusters": [ … ]}` (`clusters` only in the configuration file).
public enum ServiceJSON {
    /// Parses one service object. `name` given (from an API path) fills a missing `name` and must
    /// equal a present one. With `clusters` allowed, its clusters are parsed as the file's.
    public static func parseService(
        _ object: [String: Any], path: String, name given: String? = nil, allowClusters: Bool,
        resolve: (String) -> Bool, newUUID: () -> String
    ) throws(ConfigError) -> ServiceConfig {
        var fields = Fields(object, path: path)
        var name = try fields.string("name")
        if let given {
            if let name, name != given { throw fields.fail("name", "must be \"\(given)\" as in the path, or left out") }
            name = given
        }
        guard let name else { throw fields.fail("name", "missing") }
        guard ServiceSpec.isValidName(name) else {
            throw fields.fail("name", "must be 1 to 64 characters from a-z 0-9 _ -")
        }
        var spec = ServiceSpec(name: name)

        if let raw = fields.raw("hosts") {
            guard let list = raw as? [Any] else { throw fields.fail("hosts", "must be an array of host names") }
            var seen = Set<String>()
            for (i, element) in list.enumerated() {
                let field = fields.pathOf("hosts") + "[\(i)]"
                guard let text = element as? String, let pattern = HostPattern(text) else {
                    throw ConfigError(field: field, message: "must be a host name (shop.example.com), a wildcard (*.example.com) or an IP literal, without port")
                }
                guard seen.insert(pattern.text).inserted else {
                    throw ConfigError(field: field, message: "\"\(pattern.text)\" is listed twice")
                }
                spec.hosts.append(pattern.text)
            }
        }
        if name == defaultServiceName {
            guard spec.hosts.isEmpty else { throw fields.fail("hosts", "the default service serves every host no other service claims: leave hosts out") }
        } else if spec.hosts.isEmpty {
            throw fields.fail("hosts", "must list at least one host name")
        }

        if let prefix = try fields.string("pathPrefix") {
            guard isValidPathPrefix(prefix) else {
                throw fields.fail("pathPrefix", "must start with / and contain no spaces, ? or # (at most 1024 bytes)")
            }
            guard name != defaultServiceName || prefix == "/" else {
                throw fields.fail("pathPrefix", "the default service serves every path: leave pathPrefix out")
            }
            spec.pathPrefix = prefix
        }

        if var cookies = try fields.object("cookies") {
            spec.cookies.session = try ConfigFile.cookieName(&cookies, "session")
            spec.cookies.transition = try ConfigFile.cookieName(&cookies, "transition")
            spec.cookies.lastSeen = try ConfigFile.cookieName(&cookies, "lastSeen")
            if let p = try cookies.string("path") {
                guard isValidPathPrefix(p), !p.contains(";") else {
                    throw cookies.fail("path", "must start with / and contain no spaces, ; ? or #")
                }
                spec.cookies.path = p
            }
            let names = [spec.cookies.session, spec.cookies.transition, spec.cookies.lastSeen].compactMap { $0 }
            guard Set(names).count == names.count else { throw cookies.fail("transition", "the cookie names must differ") }
            try cookies.rejectUnknown()
        }

        if let group = try fields.string("releaseGroup") {
            guard ServiceSpec.isValidName(group) else {
                throw fields.fail("releaseGroup", "must be 1 to 64 characters from a-z 0-9 _ -")
            }
            spec.releaseGroup = group
        }

        var clusters: [ClusterSpec] = []
        if allowClusters, let raw = fields.raw("clusters") {
            guard let list = raw as? [Any] else { throw fields.fail("clusters", "must be an array of clusters") }
            for (i, element) in list.enumerated() {
                clusters.append(try ClusterJSON.parseListedCluster(element, path: fields.pathOf("clusters") + "[\(i)]",
                                                                   resolve: resolve, newUUID: newUUID))
            }
        }
        // Written by render; accepted so that a GET body can be PUT back.
        if !allowClusters { _ = fields.raw("clusters") }
        _ = fields.raw("generation")
        try fields.rejectUnknown()
        return ServiceConfig(spec: spec, clusters: clusters)
    }

    /// Parses the body of `PUT /services/{name}`: a service object, bare or as `{"service": {…}}`.
    public static func parseServiceBody(_ bytes: [UInt8], name: String) throws(ConfigError) -> ServiceSpec {
        guard var root = try JSONText.parse(bytes, keepingNumberText: true) as? [String: Any] else {
            throw ConfigError(field: "body", message: "must be a JSON object like {\"hosts\":[\"shop.example.com\"],\"pathPrefix\":\"/\"}")
        }
        var path = ""
        if root.count == 1, let inner = root["service"] {
            guard let o = inner as? [String: Any] else { throw ConfigError(field: "service", message: "must be an object") }
            root = o
            path = "service"
        }
        return try parseService(root, path: path, name: name, allowClusters: false, resolve: { _ in true }, newUUID: { "" }).spec
    }

    /// Checks rules that span services: unique names, no two claiming the same host and
    /// prefix, uuids unique over all clusters, release groups with a shared host or a cookie
    /// domain. `path(i)` names service `i` in errors ("" for the default service's top-level
    /// `clusters`).
    public static func validate(_ services: [ServiceConfig], groups: [String: ReleaseGroupSpec],
                                path: (Int) -> String) throws(ConfigError) {
        var names: [String: Int] = [:]
        for (i, s) in services.enumerated() {
            if let first = names[s.spec.name] {
                throw ConfigError(field: path(i) + ".name", message: "\"\(s.spec.name)\" is already used by \(path(first))")
            }
            names[s.spec.name] = i
        }
        if let conflict = serviceConflict(services.map(\.spec)) {
            throw ConfigError(field: path(conflict.service) + ".hosts[\(conflict.host)]", message: conflict.message)
        }
        var uuids: [String: String] = [:]
        for (i, s) in services.enumerated() {
            for (k, c) in s.clusters.enumerated() {
                let here = (path(i).isEmpty ? "" : path(i) + ".") + "clusters[\(k)]"
                if let first = uuids[c.uuid] {
                    throw ConfigError(field: here + ".uuid", message: "\"\(c.uuid)\" is already used by \(first)")
                }
                uuids[c.uuid] = here
            }
        }
        try validateGroups(services.map(\.spec), groups: groups, path: path)
    }

    /// A release group's services must share a host, or the group must set a cookie domain.
    public static func validateGroups(_ services: [ServiceSpec], groups: [String: ReleaseGroupSpec],
                                      path: (Int) -> String) throws(ConfigError) {
        var members: [String: [Int]] = [:]
        for (i, s) in services.enumerated() { if let g = s.releaseGroup { members[g, default: []].append(i) } }
        for (group, indices) in members.sorted(by: { $0.key < $1.key }) where indices.count > 1 {
            if groups[group]?.cookieDomain != nil { continue }
            let shared = indices.dropFirst().reduce(Set(services[indices[0]].hosts)) { $0.intersection(services[$1].hosts) }
            if shared.isEmpty {
                throw ConfigError(field: path(indices[1]) + ".releaseGroup",
                                  message: "the services of release group \"\(group)\" share no host: give releaseGroups.\(group).cookieDomain so the routing cookie reaches all of them")
            }
        }
    }

    /// The API form of a service (without its clusters).
    public static func render(_ spec: ServiceSpec) -> [String: Any] {
        var o: [String: Any] = ["name": spec.name, "hosts": spec.hosts, "pathPrefix": spec.pathPrefix]
        if !spec.cookies.isEmpty {
            var c: [String: Any] = [:]
            if let v = spec.cookies.session { c["session"] = v }
            if let v = spec.cookies.transition { c["transition"] = v }
            if let v = spec.cookies.lastSeen { c["lastSeen"] = v }
            if let v = spec.cookies.path { c["path"] = v }
            o["cookies"] = c
        }
        if let g = spec.releaseGroup { o["releaseGroup"] = g }
        return o
    }

    /// Parses `releaseGroups`: `{"web": {"cookieDomain": "example.com"}}`.
    static func parseGroups(_ fields: inout Fields) throws(ConfigError) -> [String: ReleaseGroupSpec] {
        var out: [String: ReleaseGroupSpec] = [:]
        for name in fields.object.keys.sorted() {
            guard ServiceSpec.isValidName(name) else { throw fields.fail(name, "a release group's name must be 1 to 64 characters from a-z 0-9 _ -") }
            guard var g = try fields.object(name) else { continue }
            var spec = ReleaseGroupSpec()
            if let domain = try g.string("cookieDomain") {
                guard case .exact? = HostPattern(domain), !domain.hasPrefix("[") else {
                    throw g.fail("cookieDomain", "must be a domain name such as example.com")
                }
                spec.cookieDomain = domain.lowercased()
            }
            try g.rejectUnknown()
            out[name] = spec
        }
        return out
    }
}

/// One change of a change set (`POST /changes`), or of the per-service API.
public enum ServiceChange: Sendable, Equatable {
    /// Adds or replaces a cluster of a service.
    case put(service: String, ClusterSpec)
    /// Removes a cluster; `service` nil: of whichever service it belongs to.
    case delete(service: String?, uuid: String)
    /// Creates or replaces a service's hosts, path, cookies and group.
    case putService(ServiceSpec)
    /// Removes a service with its clusters.
    case deleteService(String)
}

/// The body of `POST /changes`:
/// `{"ifGeneration": 41, "changes": [{"service": "shop", "put": {…cluster…}}, {"service": "api", "delete": "uuid"},
/// {"putService": {"name": …, "hosts": […], …}}, {"deleteService": "name"}]}`. A change without
/// `service` is the default service's.
public enum ChangeSetJSON {
    public static let maxChanges = 1000

    public static func parse(_ bytes: [UInt8], resolve: (String) -> Bool, newUUID: () -> String)
        throws(ConfigError) -> (ifGeneration: UInt64?, changes: [ServiceChange]) {
        guard let root = try JSONText.parse(bytes, keepingNumberText: true) as? [String: Any] else {
            throw ConfigError(field: "body", message: "must be a JSON object like {\"changes\":[{\"service\":\"shop\",\"put\":{…}}]}")
        }
        var fields = Fields(root, path: "")
        let generation = try fields.int("ifGeneration", in: 0...Int.max).map { UInt64($0) }
        guard let raw = fields.raw("changes") else { throw fields.fail("changes", "missing") }
        guard let list = raw as? [Any], !list.isEmpty, list.count <= maxChanges else {
            throw fields.fail("changes", "must be an array of 1 to \(maxChanges) changes")
        }
        try fields.rejectUnknown()
        var changes: [ServiceChange] = []
        for (i, element) in list.enumerated() {
            let path = "changes[\(i)]"
            guard let o = element as? [String: Any] else { throw ConfigError(field: path, message: "must be an object") }
            var f = Fields(o, path: path)
            let service = try f.string("service") ?? defaultServiceName
            guard ServiceSpec.isValidName(service) else { throw f.fail("service", "must be a service name") }
            let put = f.raw("put"), delete = f.raw("delete"), putService = f.raw("putService"), deleteService = f.raw("deleteService")
            let given = [put, delete, putService, deleteService].compactMap { $0 }.count
            guard given == 1 else { throw ConfigError(field: path, message: "must hold exactly one of put, delete, putService, deleteService") }
            if let put {
                changes.append(.put(service: service, try ClusterJSON.parseListedCluster(put, path: path + ".put", resolve: resolve, newUUID: newUUID)))
            } else if let delete {
                guard let uuid = delete as? String, ClusterJSON.isValidUUID(uuid) else { throw f.fail("delete", "must be a cluster uuid") }
                changes.append(.delete(service: service, uuid: uuid))
            } else if let putService {
                guard let so = putService as? [String: Any] else { throw f.fail("putService", "must be a service object") }
                changes.append(.putService(try ServiceJSON.parseService(so, path: path + ".putService", allowClusters: false,
                                                                        resolve: resolve, newUUID: newUUID).spec))
            } else if let deleteService {
                guard let name = deleteService as? String, ServiceSpec.isValidName(name) else { throw f.fail("deleteService", "must be a service name") }
                changes.append(.deleteService(name))
            }
            try f.rejectUnknown()
        }
        return (generation, changes)
    }
}
