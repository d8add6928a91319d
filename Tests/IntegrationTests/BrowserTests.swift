import Foundation
import Testing

/// The path of a Chromium binary, or nil (the browser tests are then skipped).
let chromiumPath: String? = which("chromium") ?? which("chromium-browser")

/// A real browser during a rising rollout: the rule that a page comes from one version.
@Suite("A browser during a GRADUAL rollout", .enabled(if: chromiumPath != nil, "needs Chromium (apt-get install chromium)"))
struct BrowserTests {
    static let frames = 12
    static let images = 30

    /// A 1×1 transparent GIF.
    static let gif: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]

    /// A backend for the site: `/top.html` loads `frames` pages one after another (each in an
    /// iframe, the next once the previous has loaded), each page holds `images` images.
    static func site(_ name: String) throws -> TestBackend {
        try TestBackend { request, socket in
            let html = ["Content-Type: text/html", "Cache-Control: no-store", "X-Backend: \(name)"]
            if request.target == "/top.html" {
                let page = """
                    <!doctype html><html><body><p id=state>loading</p><script>
                    let k = 0;
                    function next() {
                      if (k == \(frames)) { document.getElementById('state').textContent = 'loaded ' + k; return; }
                      const f = document.createElement('iframe');
                      f.src = '/frame.html?k=' + k;
                      f.onload = () => { k++; next(); };
                      document.body.appendChild(f);
                    }
                    next();
                    </script></body></html>
                    """
                try TestBackend.respond(socket, headers: html, body: page)
            } else if request.target.hasPrefix("/frame.html?k=") {
                let k = request.target.dropFirst("/frame.html?k=".count)
                let images = (0..<images).map { "<img src=\"/img?k=\(k)&i=\($0)\">" }.joined()
                try TestBackend.respond(socket, headers: html, body: "<!doctype html><html><body>\(images)</body></html>")
            } else {
                try TestBackend.respond(socket, headers: ["Content-Type: image/gif", "Cache-Control: no-store", "X-Backend: \(name)"],
                                        body: gif)
            }
            return true
        }
    }

    /// The page load a request belongs to (`k` of its target), or nil for `/top.html`, favicons…
    static func pageLoad(_ target: String) -> Int? {
        guard target.hasPrefix("/frame.html?k=") || target.hasPrefix("/img?k=") else { return nil }
        let k = target.split(separator: "=")[1].prefix { $0.isNumber }
        return Int(k)
    }

    @Test("each page and its 30 images come from one version, while the threshold passes the browser's bucket")
    func pageFromOneVersion() throws {
        let v1 = try Self.site("v1")
        let v2 = try Self.site("v2")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1"),
        ]))
        defer { proxy.stop(); v1.stop(); v2.stop() }
        // 373 exchanges in all: the threshold rises 0.4 points with each, so it passes every
        // bucket below 100 before the last page, and most buckets mid-way.
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [v2.port], version: "2.0", uuid: "v2",
                                                      mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 0.4]))
        try waitUntil("GRADUAL to govern") { try proxy.api("GET", "/status").1.contains("gradualThreshold") }

        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let (status, dom) = try run("/usr/bin/timeout", [
            "120", chromiumPath!, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)",
            "--virtual-time-budget=60000", "--dump-dom", "http://127.0.0.1:\(proxy.port)/top.html",
        ])
        #expect(status == 0, "chromium exit status")
        #expect(dom.contains("loaded \(Self.frames)"), "every page loaded: \(dom.prefix(300))")

        // Which versions served each page load (its document and its images).
        var versions: [Int: Set<String>] = [:]
        var counts: [Int: Int] = [:]
        for (name, backend) in [("v1", v1), ("v2", v2)] {
            for request in backend.requests {
                guard let k = Self.pageLoad(request.target) else { continue }
                versions[k, default: []].insert(name)
                counts[k, default: 0] += 1
            }
        }
        #expect(versions.count == Self.frames)
        for k in 0..<Self.frames {
            #expect(counts[k] == 1 + Self.images, "page \(k): every request reached a backend once")
            #expect(versions[k]?.count == 1, "page \(k) was served by \(versions[k] ?? [])")
        }
        #expect(v1.requests.contains { $0.target == "/top.html" }, "the first page came from v1 (threshold 0)")
        #expect(versions[Self.frames - 1] == ["v2"], "the browser moved to v2 by the last page")
        let moved = (0..<Self.frames).first { versions[$0] == ["v2"] } ?? -1
        let after = (moved..<Self.frames).allSatisfy { versions[$0] == ["v2"] }
        #expect(after, "once moved, the browser never went back: \(versions.sorted { $0.key < $1.key })")
    }
}
