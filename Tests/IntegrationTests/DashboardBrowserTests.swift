import Foundation
import Testing

/// The live dashboard (`GET /` on the admin port) in a real headless Chromium, driven over
/// the DevTools protocol: what it shows, how soon it shows a change, and its buttons.
@Suite("The dashboard in a browser", .serialized,
       .enabled(if: chromiumPath != nil, "needs Chromium (apt-get install chromium); the dashboard's browser tests are skipped"))
struct DashboardBrowserTests {
    static func backend(_ name: String) throws -> TestBackend {
        try TestBackend { _, socket in
            try TestBackend.respond(socket, headers: ["X-Backend: \(name)"], body: "answer from \(name)\n")
            return true
        }
    }

    /// Evaluates `expression` in the page until it is true.
    static func waitFor(_ browser: DevTools, _ what: String, timeout: Double = 10, _ expression: String) throws {
        try waitUntil(what, timeout: timeout) { try browser.evaluate(expression) as? Bool == true }
    }

    /// The text of the first element matching `selector`, or nil.
    static func text(_ browser: DevTools, _ selector: String) throws -> String? {
        try browser.evaluate("document.querySelector('\(selector)')?.textContent ?? null") as? String
    }

    @Test("shows the clusters, a new cluster within 2 s, a rollout's percentage change; the pause button pauses; no console errors")
    func liveDashboard() throws {
        let v1 = try Self.backend("v1")
        let v2 = try Self.backend("v2")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")]))
        let browser = try DevTools(chromium: chromiumPath!)
        defer { browser.close(); proxy.stop(); v1.stop(); v2.stop() }

        try browser.navigate("http://127.0.0.1:\(proxy.adminPort)/")
        try Self.waitFor(browser, "the page to show cluster v1", #"document.querySelector('tr[data-cluster="v1"]') !== null"#)
        #expect(try Self.text(browser, #"tr[data-cluster="v1"]"#)?.contains("1.0") == true)

        // A new version with a plan: 10 % for 3 s (the page polls each second, so it sees
        // it), then 40 % until the operator acts.
        let started = Date()
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [v2.port], version: "2.0", uuid: "v2", mode: [
            "steps": [["mode": "GRADUAL", "percent": 10, "holdSeconds": 3], ["mode": "GRADUAL", "percent": 40, "holdSeconds": 600],
                      ["mode": "INSTANT"]],
        ]))
        try Self.waitFor(browser, "the page to show cluster v2", timeout: 5, #"document.querySelector('tr[data-cluster="v2"]') !== null"#)
        let shownAfter = Date().timeIntervalSince(started)
        print("dashboard: a PUT cluster showed on the page after \(Int(shownAfter * 1000)) ms")
        #expect(shownAfter < 2, "shown after \(shownAfter) s")

        // Some traffic for the charts and the split.
        let client = try ClientConnection(port: proxy.port)
        for _ in 0..<20 { _ = try client.get("/") }
        let percent = #"document.querySelector('[data-rollout="v2"] .percent')?.textContent"#
        try Self.waitFor(browser, "the rollout at 10 %", #"\#(percent) === "10.0 %""#)
        try Self.waitFor(browser, "the rollout at 40 %", #"\#(percent) === "40.0 %""#)
        try Self.waitFor(browser, "the step event", #"document.querySelector('#events [data-event="rollout_step"]') !== null"#)

        // The buttons stay the same elements from poll to poll (a click is never lost to a redraw).
        let pause = #"document.querySelector('button[data-command="pause"][data-cluster="v2"]')"#
        let polls = try browser.evaluate("(\(pause).marked = true, view.polls)") as? Int ?? 0
        try Self.waitFor(browser, "two more polls", "view.polls >= \(polls + 2)")
        #expect(try browser.evaluate("\(pause).marked === true") as? Bool == true, "the pause button was redrawn")

        // Pause with the mouse: the button, then the confirmation.
        try browser.click(#"button[data-command="pause"][data-cluster="v2"]"#)
        try Self.waitFor(browser, "the confirmation to open", "document.getElementById('confirm').classList.contains('open')")
        #expect(try Self.text(browser, "#confirm-text") == "pause the rollout of 2.0 (v2)?")
        try browser.click("#confirm-yes")
        try waitUntil("the API to report the rollout paused", timeout: 5) {
            try proxy.api("GET", "/configuration/cluster/v2").1.contains(#""state":"paused""#)
        }
        try Self.waitFor(browser, "the page to show it paused", #"document.querySelector('[data-rollout="v2"]')?.dataset.state === "paused""#)
        #expect(try Self.text(browser, "#message")?.contains("pause v2: done") == true)
        // Cancel leaves the rollout as it is; resume goes on.
        try browser.click(#"button[data-command="resume"][data-cluster="v2"]"#)
        try browser.click("#confirm-no")
        #expect(try browser.evaluate("document.getElementById('confirm').classList.contains('open')") as? Bool == false)
        #expect(try proxy.api("GET", "/configuration/cluster/v2").1.contains(#""state":"paused""#), "cancel changed nothing")
        try browser.click(#"button[data-command="resume"][data-cluster="v2"]"#)
        try browser.click("#confirm-yes")
        try waitUntil("the API to report the rollout resumed", timeout: 5) {
            try proxy.api("GET", "/configuration/cluster/v2").1.contains(#""state":"progressing""#)
        }
        #expect(try proxy.api("GET", "/events?after=0").1.contains(#""detail":"step 2 of 3 (40 %) (by operator)","id":"#),
                "the pause and resume are events")
        #expect(browser.errors.isEmpty, "console errors: \(browser.errors)")
        // The history of the charts came from the server: a page opened now has it too.
        let counted = try browser.evaluate("""
            ['v1', 'v2'].map(c => [...(view.series[c]?.points.values() ?? [])].reduce((n, p) => n + p[1], 0)).reduce((a, b) => a + b)
            """) as? Int
        #expect(counted == 20, "the series of the two versions counted the 20 exchanges: \(counted ?? -1)")
    }

    @Test("with a token configured the page asks for it, keeps it in the tab only, and then shows the clusters")
    func tokenPrompt() throws {
        let v1 = try Self.backend("v1")
        let proxy = try ProxyProcess(config: ProxyProcess.config(
            clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")],
            extra: ["configService": ["hostname": "127.0.0.1", "port": 0, "token": "s3cret"]]))
        let browser = try DevTools(chromium: chromiumPath!)
        defer { browser.close(); proxy.stop(); v1.stop() }

        try browser.navigate("http://127.0.0.1:\(proxy.adminPort)/")
        try Self.waitFor(browser, "the token form", "document.getElementById('token-form').classList.contains('open')")
        #expect(try browser.evaluate(#"document.querySelector('tr[data-cluster="v1"]') === null"#) as? Bool == true)
        try browser.click("#token")
        try browser.send("Input.insertText", ["text": "s3cret"])
        try browser.click("#token-form button")
        try Self.waitFor(browser, "the clusters with the token", #"document.querySelector('tr[data-cluster="v1"]') !== null"#)
        #expect(try browser.evaluate("sessionStorage.getItem('switchyard-token')") as? String == "s3cret")
        #expect(try browser.evaluate("localStorage.length") as? Int == 0, "nothing kept beyond the tab")
    }
}
