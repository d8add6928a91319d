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
    static func site(_ name: String, imageDelayMillis: UInt32 = 0) throws -> TestBackend {
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
                if imageDelayMillis > 0 { usleep(imageDelayMillis * 1000) }   // a backend thread per connection: others go on
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

        let versions = try Self.loadPages(proxy: proxy, v1: v1, v2: v2)
        #expect(v1.requests.contains { $0.target == "/top.html" }, "the first page came from v1 (threshold 0)")
        #expect(versions[Self.frames - 1] == ["v2"], "the browser moved to v2 by the last page")
    }

    @Test("a staged plan (20 %, 60 %, all): every page comes from one version and the browser never moves back")
    func planStepsKeepPagesWhole() throws {
        // Slow images stretch the 12 page loads over the plan's steps (about 4 s).
        let v1 = try Self.site("v1", imageDelayMillis: 60)
        let v2 = try Self.site("v2", imageDelayMillis: 60)
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1"),
        ]))
        defer { proxy.stop(); v1.stop(); v2.stop() }
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [v2.port], version: "2.0", uuid: "v2", mode: [
            "steps": [["mode": "GRADUAL", "percent": 20, "holdSeconds": 1], ["mode": "GRADUAL", "percent": 60, "holdSeconds": 1],
                      ["mode": "INSTANT"]],
        ]))
        let versions = try Self.loadPages(proxy: proxy, v1: v1, v2: v2)
        let (_, state) = try proxy.api("GET", "/configuration/cluster/v2")
        #expect(state.contains(#""state":"completed""#), "the plan ran to its end during the page loads: \(state)")
        #expect(versions[Self.frames - 1] == ["v2"], "the browser moved to v2 by the last page")
    }

    /// Loads `/top.html` (12 pages one after another) in headless Chromium with a fresh
    /// profile, and checks that each page and its images came from one version and that the
    /// browser never went back from v2 to v1. Returns the versions of each page.
    static func loadPages(proxy: ProxyProcess, v1: TestBackend, v2: TestBackend) throws -> [Int: Set<String>] {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let (status, dom) = try run("/usr/bin/timeout", [
            "120", chromiumPath!, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)",
            "--virtual-time-budget=60000", "--dump-dom", "http://127.0.0.1:\(proxy.port)/top.html",
        ])
        #expect(status == 0, "chromium exit status")
        #expect(dom.contains("loaded \(frames)"), "every page loaded: \(dom.prefix(300))")

        // Which versions served each page load (its document and its images).
        var versions: [Int: Set<String>] = [:]
        var counts: [Int: Int] = [:]
        for (name, backend) in [("v1", v1), ("v2", v2)] {
            for request in backend.requests {
                guard let k = pageLoad(request.target) else { continue }
                versions[k, default: []].insert(name)
                counts[k, default: 0] += 1
            }
        }
        #expect(versions.count == frames)
        for k in 0..<frames {
            #expect(counts[k] == 1 + images, "page \(k): every request reached a backend once")
            #expect(versions[k]?.count == 1, "page \(k) was served by \(versions[k] ?? [])")
        }
        let moved = (0..<frames).first { versions[$0] == ["v2"] } ?? frames
        let after = (moved..<frames).allSatisfy { versions[$0] == ["v2"] }
        #expect(after, "once moved, the browser never went back: \(versions.sorted { $0.key < $1.key })")
        return versions
    }
}
