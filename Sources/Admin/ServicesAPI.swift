import Config
import Observability
import Proxy
import Routing
import Syscalls

/// The services API: `/services`, `/services/{name}`, `/services/{name}/clusters[/{id}…]`, and
/// change sets (`POST /changes`).
extension AdminAPI {
    static let servicesPrefix = "/services"

    func handleServices(_ request: AdminRequest) -> AdminResponse {
        var rest = String(request.path.dropFirst(Self.servicesPrefix.count))
        if rest.hasPrefix("/") { rest.removeFirst() }
        if rest.hasSuffix("/") { rest.removeLast() }
        if rest.isEmpty {
            guard request.method == "GET" else { return methodNotAllowed("GET") }
            let snapshot = registry.snapshot
            return .json(200, JSONText.encode(snapshot.services.indices.map { renderService(snapshot, $0) as Any }))
        }
        let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        guard ServiceSpec.isValidName(name) else { return .text(404, "no service called \(name)") }
        if parts.count == 1 {
            switch request.method {
            case "GET":
                let snapshot = registry.snapshot
                guard let i = snapshot.serviceIndex(of: name) else { return .text(404, "no service called \(name)") }
                return .json(200, JSONText.encode(renderService(snapshot, i)))
            case "PUT":
                return putService(request.body, name: name)
            case "DELETE":
                guard registry.snapshot.serviceIndex(of: name) != nil || name == defaultServiceName else {
                    return .text(404, "no service called \(name)")
                }
                do {
                    try registry.deleteService(name)
                    rollouts?.clustersChanged()
                    dashboard?.noticeChanges(cause: "API")
                    return .text(202, name)
                } catch {
                    return Self.response(error)
                }
            default:
                return methodNotAllowed("GET, PUT, DELETE")
            }
        }
        let prefix = Self.servicesPrefix + "/" + name + "/clusters"
        guard request.path.hasPrefix(prefix) else { return .text(404, "no such path: \(request.path)") }
        guard registry.snapshot.serviceIndex(of: name) != nil else {
            return .text(404, "no service called \(name)")
        }
        return handleClusters(request, prefix: prefix, service: name) ?? .text(404, "no such path: \(request.path)")
    }

    /// `{"name", "hosts", "pathPrefix", "cookies"?, "releaseGroup"?, "clusters": [uuids, latest first], "latest"?}`.
    func renderService(_ snapshot: Snapshot, _ i: Int) -> [String: Any] {
        var entry = ServiceJSON.render(snapshot.services[i])
        let clusters = snapshot.clusters[snapshot.serviceRanges[i]]
        entry["clusters"] = clusters.map(\.spec.uuid)
        if let latest = clusters.first(where: { !$0.state.isFailed && !$0.health.isPending }) { entry["latest"] = latest.spec.uuid }
        return entry
    }

    /// `PUT /services/{name}`: 202 with the name; 400 naming the field.
    private func putService(_ body: [UInt8], name: String) -> AdminResponse {
        let spec: ServiceSpec
        do {
            spec = try ServiceJSON.parseServiceBody(body, name: name)
        } catch {
            Log.info("api_rejected", ["reason": error.description])
            return .text(400, error.description)
        }
        do {
            try registry.apply([.putService(spec)], paths: [""])
            return .text(202, name).withoutNewline()
        } catch {
            return Self.response(error)
        }
    }

    /// `POST /changes`: 202 `{"generation": N, "uuids": [...]}`; 400 naming the change and
    /// field; 404 for an unknown service or cluster; 409 when `ifGeneration` moved on.
    func postChanges(_ body: [UInt8]) -> AdminResponse {
        let parsed: (ifGeneration: UInt64?, changes: [ServiceChange])
        do {
            parsed = try ChangeSetJSON.parse(body, resolve: { [registry] in registry.resolver.resolves($0) }, newUUID: makeUUID)
        } catch {
            Log.info("api_rejected", ["reason": error.description])
            return .text(400, error.description)
        }
        do {
            let (snapshot, uuids) = try registry.apply(parsed.changes, ifGeneration: parsed.ifGeneration)
            rollouts?.clustersChanged()
            dashboard?.noticeChanges(cause: "API")
            Log.notice("changes_applied", ["changes": String(parsed.changes.count), "generation": String(snapshot.generation)])
            return .json(202, JSONText.encode(["generation": Int(snapshot.generation), "uuids": uuids] as [String: Any]))
        } catch {
            return Self.response(error)
        }
    }
}
