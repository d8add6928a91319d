import Foundation

/// Headless Chromium driven over the DevTools protocol through `--remote-debugging-pipe`:
/// the browser reads commands on its descriptor 3 and writes answers and events on 4, each
/// a JSON message ended by a NUL byte — no WebSocket needed. One page (target) is opened
/// and attached at start; `send` talks to it.
final class DevTools: @unchecked Sendable {
    private struct State {
        var nextID = 1
        /// Answers by command id: the raw message.
        var answers: [Int: Data] = [:]
        /// Console errors, uncaught exceptions and error log entries of the page.
        var errors: [String] = []
        var closed = false
    }

    private let process = Process()
    private let commands = Pipe()
    private let output = Pipe()
    private let state = Locked(State())
    private let profile: URL
    /// The attached page's session id (empty until attached).
    private var session = ""

    /// Starts the browser with a fresh profile and opens one blank page.
    init(chromium: String, width: Int = 1280, height: Int = 1000) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        // The shell hands the two pipes to the browser as descriptors 3 and 4.
        let browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                       "--user-data-dir=\(profile.path)", "--window-size=\(width),\(height)", "--remote-debugging-pipe", "about:blank"]
        let (executable, arguments) = withSignalsUnblocked(["/bin/sh", "-c", "exec \"$@\" 3<&0 4>&1 </dev/null >/dev/null", "sh"] + browser)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = commands
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = output.fileHandleForReading
        Thread.detachNewThread { [state] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let end = buffer.firstIndex(of: 0) {
                    let message = buffer.subdata(in: buffer.startIndex..<end)
                    buffer.removeSubrange(buffer.startIndex...end)
                    Self.dispatch(message, state)
                }
            }
            state.withLock { $0.closed = true }
        }
        let target = try send("Target.createTarget", ["url": "about:blank"], toPage: false)
        guard let id = target["targetId"] as? String else { throw HarnessError("no target: \(target)") }
        let attached = try send("Target.attachToTarget", ["targetId": id, "flatten": true], toPage: false)
        guard let sessionID = attached["sessionId"] as? String else { throw HarnessError("not attached: \(attached)") }
        session = sessionID
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] { _ = try send(domain) }
    }

    /// Files an answer under its id; keeps the page's errors.
    private static func dispatch(_ message: Data, _ state: Locked<State>) {
        guard let object = try? JSONSerialization.jsonObject(with: message) as? [String: Any] else { return }
        if let id = object["id"] as? Int {
            state.withLock { $0.answers[id] = message }
            return
        }
        let params = object["params"] as? [String: Any] ?? [:]
        var error: String?
        switch object["method"] as? String {
        case "Runtime.consoleAPICalled" where params["type"] as? String == "error":
            let args = params["args"] as? [[String: Any]] ?? []
            error = "console.error: " + args.map { "\($0["value"] ?? $0["description"] ?? "")" }.joined(separator: " ")
        case "Runtime.exceptionThrown":
            let details = params["exceptionDetails"] as? [String: Any] ?? [:]
            let exception = details["exception"] as? [String: Any]
            error = "exception: \(exception?["description"] ?? details["text"] ?? "?")"
        case "Log.entryAdded":
            let entry = params["entry"] as? [String: Any] ?? [:]
            if entry["level"] as? String == "error" { error = "log: \(entry["text"] ?? "?") \(entry["url"] ?? "")" }
        default: break
        }
        if let error { state.withLock { $0.errors.append(error) } }
    }

    /// Sends a command (to the page unless `toPage` is false) and waits for its answer;
    /// returns its `result`, throws its `error`.
    @discardableResult
    func send(_ method: String, _ params: [String: Any] = [:], toPage: Bool = true, timeout: Double = 15) throws -> [String: Any] {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        var message: [String: Any] = ["id": id, "method": method, "params": params]
        if toPage { message["sessionId"] = session }
        var bytes = try JSONSerialization.data(withJSONObject: message)
        bytes.append(0)
        try commands.fileHandleForWriting.write(contentsOf: bytes)
        var answer: Data?
        try waitUntil("the browser's answer to \(method)", timeout: timeout) {
            answer = state.withLock { s in s.answers.removeValue(forKey: id) }
            if answer == nil, state.withLock({ $0.closed }) { throw HarnessError("the browser exited") }
            return answer != nil
        }
        let object = try JSONSerialization.jsonObject(with: answer!) as? [String: Any] ?? [:]
        if let error = object["error"] { throw HarnessError("\(method): \(error)") }
        return object["result"] as? [String: Any] ?? [:]
    }

    /// Evaluates `expression` in the page and returns its value (JSON-like), nil for
    /// undefined; an exception thrown by it becomes an error.
    func evaluate(_ expression: String) throws -> Any? {
        let result = try send("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let details = result["exceptionDetails"] { throw HarnessError("evaluate \(expression): \(details)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Loads `url` in the page and returns once its document has loaded (its scripts ran).
    func navigate(_ url: String) throws {
        try send("Page.navigate", ["url": url])
        let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [url]), as: UTF8.self)
        try waitUntil("\(url) to load") {
            try evaluate("location.href === \(quoted)[0] && document.readyState === 'complete'") as? Bool == true
        }
    }

    /// Clicks the middle of the first element matching `selector` with the mouse (pressed and
    /// released), as a person would; throws when no element matches.
    func click(_ selector: String) throws {
        let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [selector]), as: UTF8.self)
        let box = try evaluate("""
            (() => { const e = document.querySelector(\(quoted)[0]); if (!e) return null;
                     e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
                     return [r.left + r.width / 2, r.top + r.height / 2]; })()
            """) as? [Double]
        guard let box else { throw HarnessError("nothing matches \(selector)") }
        for type in ["mousePressed", "mouseReleased"] {
            try send("Input.dispatchMouseEvent", ["type": type, "x": box[0], "y": box[1], "button": "left", "clickCount": 1])
        }
    }

    /// A PNG of the page as it is shown.
    func screenshot() throws -> Data {
        let result = try send("Page.captureScreenshot", ["format": "png"])
        guard let base64 = result["data"] as? String, let png = Data(base64Encoded: base64) else { throw HarnessError("no screenshot") }
        return png
    }

    /// The page's console errors, uncaught exceptions and error log entries so far.
    var errors: [String] { state.withLock { $0.errors } }

    /// Closes the browser and removes its profile.
    func close() {
        _ = try? send("Browser.close", toPage: false, timeout: 5)
        try? commands.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: profile)
    }
}
