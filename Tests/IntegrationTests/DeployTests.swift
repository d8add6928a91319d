import Foundation
import Testing

/// The repository's root (this file is Tests/IntegrationTests/DeployTests.swift).
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// `deploy/`: the Containerfile, the Kubernetes manifests, the alerts and the dashboard are
/// checked against each other, against the configuration rules and against `/metrics`.
@Suite("Deployment recipes", .serialized)
struct DeployTests {
    /// Every YAML document of `files`, parsed by PyYAML and handed over as JSON; nil (the test
    /// is skipped) where python3 has no PyYAML (`.ci/run` installs python3-yaml).
    func yamlDocuments(_ files: [String]) throws -> [[String: Any]]? {
        guard let python = which("python3") else { return nil }
        let script = "import json, sys, yaml\nprint(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None]))"
        let (status, out) = try run(python, ["-c", script] + files)
        guard status == 0 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]
    }

    func path(_ relative: String) -> String { repositoryRoot.appendingPathComponent(relative).path }

    /// Runs `switchyard --check-config FILE --no-resolve` on `text`: (status, stderr).
    func checkConfig(_ text: String) throws -> (Int32, String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString).json")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try runSwitchyard(["--check-config", file.path, "--no-resolve"])
        return (result.status, result.stderr)
    }

    @Test("Kubernetes manifests parse and agree: labels, ports, ConfigMap keys, probe paths, state volume, the embedded configuration")
    func kubernetes() throws {
        let dir = path("deploy/kubernetes")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted().map { "\(dir)/\($0)" }
        #expect(files.count == 4)
        guard let docs = try yamlDocuments(files) else {
            print("skipped: python3 with PyYAML is not installed (apt-get install python3-yaml)")
            return
        }
        func one(_ kind: String) throws -> [String: Any] {
            let found = docs.filter { $0["kind"] as? String == kind }
            guard found.count == 1 else { throw HarnessError("expected one \(kind), found \(found.count)") }
            return found[0]
        }
        func dict(_ v: Any?) -> [String: Any] { v as? [String: Any] ?? [:] }
        func list(_ v: Any?) -> [[String: Any]] { v as? [[String: Any]] ?? [] }
        let deployment = try one("Deployment"), service = try one("Service"), configMap = try one("ConfigMap")
        let budget = try one("PodDisruptionBudget")
        #expect(budget["apiVersion"] as? String == "policy/v1")

        // Labels: every selector matches the pod template's labels.
        let podLabels = dict(dict(dict(dict(deployment["spec"])["template"])["metadata"])["labels"]) as? [String: String] ?? [:]
        #expect(!podLabels.isEmpty)
        func matches(_ selector: Any?) -> Bool {
            guard let s = selector as? [String: String], !s.isEmpty else { return false }
            return s.allSatisfy { podLabels[$0.key] == $0.value }
        }
        #expect(matches(dict(dict(deployment["spec"])["selector"])["matchLabels"]))
        #expect(matches(dict(service["spec"])["selector"]))
        #expect(matches(dict(dict(budget["spec"])["selector"])["matchLabels"]))

        let pod = dict(dict(dict(deployment["spec"])["template"])["spec"])
        let container = try #require(list(pod["containers"]).first)
        var containerPorts: [String: Int] = [:]
        for p in list(container["ports"]) { containerPorts[p["name"] as? String ?? ""] = p["containerPort"] as? Int }
        // Ports: the Service's target ports are named container ports.
        for p in list(dict(service["spec"])["ports"]) {
            let target = p["targetPort"] as? String ?? ""
            #expect(containerPorts[target] != nil, "Service targetPort \(target) is not a container port")
        }
        // Probes: liveness on /healthz, readiness on /readyz, on the admin port.
        let liveness = dict(dict(container["livenessProbe"])["httpGet"]), readiness = dict(dict(container["readinessProbe"])["httpGet"])
        #expect(liveness["path"] as? String == "/healthz")
        #expect(readiness["path"] as? String == "/readyz")
        #expect(liveness["port"] as? String == "admin" && readiness["port"] as? String == "admin")
        // preStop, then the proxy's own drain (10 s), fit in the grace period.
        let preStop = dict(dict(container["lifecycle"])["preStop"])
        let sleep = Int((dict(preStop["exec"])["command"] as? [String])?.last ?? "") ?? -1
        #expect(sleep >= 0)
        #expect((pod["terminationGracePeriodSeconds"] as? Int ?? 30) >= sleep + 10)
        #expect(dict(dict(container["resources"])["requests"]).count >= 2)

        // The ConfigMap: mounted where --config points, its key present, the configuration valid.
        let volumes = list(pod["volumes"])
        let configVolume = try #require(volumes.first { dict($0["configMap"])["name"] as? String == dict(configMap["metadata"])["name"] as? String })
        let item = try #require(list(dict(configVolume["configMap"])["items"]).first)
        let key = try #require(item["key"] as? String)
        let configText = try #require(dict(configMap["data"])[key] as? String, "ConfigMap has no key \(key)")
        let mounts = list(container["volumeMounts"])
        let configMount = try #require(mounts.first { $0["name"] as? String == configVolume["name"] as? String })
        let args = container["args"] as? [String] ?? []
        let configArg = args.firstIndex(of: "--config").map { args[$0 + 1] }
        #expect(configArg == "\(configMount["mountPath"] as? String ?? "")/\(item["path"] as? String ?? "")")
        let (status, message) = try checkConfig(configText)
        #expect(status == 0, "embedded configuration refused: \(message)")
        let config = try #require(try JSONSerialization.jsonObject(with: Data(configText.utf8)) as? [String: Any])
        #expect(dict(config["proxy"])["port"] as? Int == containerPorts["http"])
        #expect(dict(config["configService"])["port"] as? Int == containerPorts["admin"])
        // The state directory is a volume.
        let stateDir = dict(config["state"])["dir"] as? String
        let stateMount = try #require(mounts.first { $0["mountPath"] as? String == stateDir }, "no volume at the state directory")
        #expect(volumes.contains { $0["name"] as? String == stateMount["name"] as? String })
    }

    @Test("Containerfile: static release build, the binary it copies exists and runs without the Swift runtime libraries")
    func containerfile() throws {
        let text = try String(contentsOfFile: path("deploy/Containerfile"), encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        let froms = lines.filter { $0.hasPrefix("FROM ") }
        #expect(froms.count == 2)
        #expect(froms.first?.hasSuffix(" AS build") == true)
        #expect(lines.contains { $0.hasPrefix("RUN ") && $0.contains("swift build -c release --static-swift-stdlib") })
        let workdir = try #require(lines.first { $0.hasPrefix("WORKDIR ") }).dropFirst("WORKDIR ".count)
        let copy = try #require(lines.first { $0.hasPrefix("COPY --from=build ") }).split(separator: " ")
        let source = String(copy[2])
        #expect(source.hasPrefix(workdir + "/"))
        let user = try #require(lines.last { $0.hasPrefix("USER ") }).dropFirst("USER ".count)
        #expect(!user.hasPrefix("0") && !user.hasPrefix("root"))
        let containerConfig = try String(contentsOfFile: path("deploy/container.json"), encoding: .utf8)
        #expect(try checkConfig(containerConfig).0 == 0)
        let config = try #require(try JSONSerialization.jsonObject(with: Data(containerConfig.utf8)) as? [String: Any])
        let exposed = Set(try #require(lines.first { $0.hasPrefix("EXPOSE ") }).split(separator: " ").dropFirst().compactMap { Int($0) })
        #expect(exposed == [(config["proxy"] as? [String: Any])?["port"] as? Int ?? -1, (config["configService"] as? [String: Any])?["port"] as? Int ?? -1])
        #expect(lines.contains { $0.hasPrefix("VOLUME") && $0.contains((config["state"] as? [String: Any])?["dir"] as? String ?? "?") })
        #expect(text.contains("HEALTHCHECK") && text.contains("\"health\""))
        #expect(lines.contains { $0.hasPrefix("COPY deploy/container.json ") })

        // The binary at the path the Containerfile copies (relative to its WORKDIR).
        let binary = path(String(source.dropFirst(workdir.count + 1)))
        let required = ProcessInfo.processInfo.environment["SWITCHYARD_REQUIRE_STATIC"] == "1"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            #expect(!required, "\(binary) is missing: run swift build -c release --static-swift-stdlib --product switchyard")
            print("skipped: \(binary) not built (swift build -c release --static-swift-stdlib --product switchyard; .ci/run does)")
            return
        }
        let (_, libraries) = try run("/usr/bin/env", ["ldd", binary])
        guard !libraries.contains("libswiftCore") else {
            #expect(!required, "\(binary) is linked against the Swift runtime:\n\(libraries)")
            print("skipped: \(binary) is not the static build (it needs libswiftCore)")
            return
        }
        #expect(!libraries.contains("libFoundation"))
        // --help with an empty library path: nothing from the toolchain can be found.
        let (status, out) = try run("/usr/bin/env", ["-i", "LD_LIBRARY_PATH=", binary, "--help"])
        #expect(status == 0)
        #expect(out.hasPrefix("Usage:"))
    }

    @Test("every metric the Grafana dashboard and the alerts query exists in /metrics")
    func dashboardMetrics() throws {
        let dashboard = try String(contentsOfFile: path("deploy/grafana/switchyard.json"), encoding: .utf8)
        let alerts = try String(contentsOfFile: path("deploy/prometheus/alerts.yml"), encoding: .utf8)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) as? [String: Any])
        let exprs = (json["panels"] as? [[String: Any]] ?? []).flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(exprs.count >= 10)
        let pattern = try NSRegularExpression(pattern: "switchyard_[a-z_]+")
        func names(_ text: String) -> Set<String> {
            Set(pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { Range($0.range, in: text).map { String(text[$0]) } })
        }
        let queried = names(exprs.joined(separator: "\n")).union(names(alerts))

        // A proxy with a rollout in progress, so the rollout families are present too.
        let v1 = try ProbedBackend("v1"), v2 = try ProbedBackend("v2")
        defer { v1.stop(); v2.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        var plan = ProxyProcess.cluster(ports: [v2.port], version: "2.0", uuid: "v2")
        plan["upgradeTransition"] = ["steps": [["mode": "GRADUAL", "percent": 10, "holdSeconds": 60], ["mode": "INSTANT"]],
                                     "analysis": ["maxErrorRatio": 0.5]]
        _ = try proxy.putCluster(plan)
        let (status, metrics) = try proxy.api("GET", "/metrics")
        #expect(status == 200)
        var exposed = Set<String>()
        for line in metrics.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            let name = String(parts[2])
            exposed.insert(name)
            if parts[3] == "histogram" { exposed.formUnion([name + "_bucket", name + "_sum", name + "_count"]) }
        }
        let missing = queried.subtracting(exposed).sorted()
        #expect(missing.isEmpty, "queried but not in /metrics: \(missing)")
        #expect(exposed.contains("switchyard_workers_answering"))
    }

    @Test("promtool accepts the alerting rules (where Debian's prometheus package is installed)")
    func alertRules() throws {
        guard let promtool = which("promtool") else {
            print("skipped: promtool is not installed (apt-get install prometheus; .ci/run checks the rules too)")
            return
        }
        let (status, out) = try run(promtool, ["check", "rules", path("deploy/prometheus/alerts.yml")])
        #expect(status == 0, "\(out)")
    }
}
