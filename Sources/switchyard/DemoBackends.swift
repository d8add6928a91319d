import Admin
import Config
import Reactor
import Routing
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// Built-in backends for `switchyard demo`: two versions of a small web app (two servers
/// each), and two versions of a shop's pages and of its API (the `shop` and `shop-api`
/// services, one release group), on one event loop thread of their own.
final class DemoBackends: Sendable {
    static let servers: [(app: String, version: String, port: Int)] = [
        ("", "1.0", 8081), ("", "1.0", 8082), ("", "2.0", 8083), ("", "2.0", 8084),
        ("shop ", "1.0", 8085), ("shop ", "2.0", 8086), ("shop-api ", "1.0", 8087), ("shop-api ", "2.0", 8088),
    ]
    let loop: EventLoop
    let thread: pthread_t

    private init(loop: EventLoop, thread: pthread_t) {
        self.loop = loop
        self.thread = thread
    }

    /// Binds the four backends and starts their thread.
    static func start() throws(SyscallError) -> DemoBackends {
        let loop = try EventLoop(id: -2)
        var httpServers: [AdminHTTPServer] = []
        for (app, version, port) in servers {
            guard let address = SocketAddress(host: "127.0.0.1", port: port) else { continue }
            let fd = try Socket.listen(address, reusePort: false)
            let name = "127.0.0.1:\(port)"
            httpServers.append(AdminHTTPServer(loop: loop, listenerFD: fd, maxBodyBytes: 1 << 20) { request in
                respond(request, version: version, backend: name, app: app)
            })
        }
        let ready = httpServers
        let thread = ReactorThread.start {
            for server in ready { try? server.start() }
            loop.run()
        }
        return DemoBackends(loop: loop, thread: thread)
    }

    /// `GET /` answers with the version and backend; `/status/NNN` answers with that status
    /// (to try rollback); `/flaky` fails with 500 on version 2.0 only (to watch CONCURRENT
    /// fall back to 1.0); `/echo` returns the request body.
    static func respond(_ request: AdminRequest, version: String, backend: String, app: String = "") -> AdminResponse {
        if request.path == "/flaky" && version == "2.0" {
            return .text(500, "version 2.0 fails on /flaky (backend \(backend))")
        }
        if request.path.hasPrefix("/status/"), let code = Int(request.path.dropFirst(8)), (200...599).contains(code) {
            return .text(code, "version \(version) answered \(code) (backend \(backend))")
        }
        if request.path == "/echo" {
            return AdminResponse(status: 200, contentType: "application/octet-stream", body: request.body)
        }
        return AdminResponse(status: 200, body: Array("Hello from \(app)version \(version) (backend \(backend))\n".utf8),
                             extraHeaders: ["X-Version: \(version)", "X-Backend: \(backend)"])
    }

    /// The demo's configuration: v1.0 only; v2.0 is added through the API.
    static func configuration(proxyPort: Int, adminPort: Int) -> ProxyConfig {
        var config = ProxyConfig(clusters: [
            ClusterSpec(uuid: "demo-v1", version: "1.0",
                        servers: [ServerAddress(hostname: "127.0.0.1", port: 8081), ServerAddress(hostname: "127.0.0.1", port: 8082)],
                        mode: .instant, sessionTimeout: nil, percentageTransitionPerRequest: nil, mirrorUnsafeMethods: false),
        ])
        // A shop whose pages and API upgrade together: one release group on shop.localhost.
        func server(_ port: Int) -> [ServerAddress] { [ServerAddress(hostname: "127.0.0.1", port: port)] }
        var shopV1 = ClusterSpec(uuid: "shop-2026-11", version: "1.0", servers: server(8085))
        shopV1.release = "2026.11"
        var apiV1 = ClusterSpec(uuid: "shop-api-2026-11", version: "1.0", servers: server(8087))
        apiV1.release = "2026.11"
        config.services = [
            ServiceConfig(spec: ServiceSpec(name: "shop", hosts: ["shop.localhost"], pathPrefix: "/", releaseGroup: "web"), clusters: [shopV1]),
            ServiceConfig(spec: ServiceSpec(name: "shop-api", hosts: ["shop.localhost"], pathPrefix: "/api", releaseGroup: "web"),
                          clusters: [apiV1]),
        ]
        config.proxyHost = "0.0.0.0"
        config.proxyPort = proxyPort
        config.adminHost = "127.0.0.1"
        config.adminPort = adminPort
        return config
    }

    static func printHelp(proxyPort: Int, adminPort: Int) {
        let api = "http://127.0.0.1:\(adminPort)/configuration/cluster"
        printOut("""
        Switchyard demo: proxy on :\(proxyPort), API on 127.0.0.1:\(adminPort).
        Version 1.0 answers on 127.0.0.1:8081-8082, version 2.0 on 8083-8084 (not yet added).

          curl -i http://127.0.0.1:\(proxyPort)/                       # served by version 1.0
          curl -s \(api) | python3 -m json.tool   # the cluster list

        Upgrade to 2.0 (pick one mode):
          curl -i -X PUT \(api) -d '{"cluster":{"servers":[{"hostname":"127.0.0.1","port":8083},{"hostname":"127.0.0.1","port":8084}],"version":"2.0","upgradeTransition":{"mode":"INSTANT"}}}'
          curl -i -X PUT \(api) -d '{"cluster":{"servers":[{"hostname":"127.0.0.1","port":8083}],"version":"2.0","upgradeTransition":{"mode":"SESSION","sessionTimeout":60}}}'
          curl -i -X PUT \(api) -d '{"cluster":{"servers":[{"hostname":"127.0.0.1","port":8083}],"version":"2.0","upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":5}}}'
          curl -i -X PUT \(api) -d '{"cluster":{"servers":[{"hostname":"127.0.0.1","port":8083}],"version":"2.0","upgradeTransition":{"mode":"CONCURRENT"}}}'

        Two services on one host, upgraded together (release group "web"; pages on :8085/:8086, API on :8087/:8088):
          curl -H 'Host: shop.localhost' http://127.0.0.1:\(proxyPort)/        # shop 1.0
          curl -H 'Host: shop.localhost' http://127.0.0.1:\(proxyPort)/api/x   # shop-api 1.0
          curl -i -X POST http://127.0.0.1:\(adminPort)/changes -d '{"changes":[{"service":"shop","put":{"uuid":"shop-2026-12","version":"2.0","release":"2026.12","servers":[{"hostname":"127.0.0.1","port":8086}],"upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":5}}},{"service":"shop-api","put":{"uuid":"shop-api-2026-12","version":"2.0","release":"2026.12","servers":[{"hostname":"127.0.0.1","port":8088}],"upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":5}}}]}'

        Then:
          curl -i http://127.0.0.1:\(proxyPort)/                       # see Set-Cookie and the version
          curl -s http://127.0.0.1:\(adminPort)/status                 # clusters, state, thresholds
          curl -s http://127.0.0.1:\(adminPort)/metrics                # Prometheus metrics
          curl -i http://127.0.0.1:\(proxyPort)/flaky                  # 2.0 fails here: CONCURRENT serves 1.0's answer
          curl -s http://127.0.0.1:\(adminPort)/comparisons            # CONCURRENT: what differed
          curl -i -X DELETE \(api)/<uuid>                  # remove a version

        Stop with Ctrl-C.
        """)

    }

    func stop() {
        loop.stop()
        ReactorThread.join(thread)
    }
}
