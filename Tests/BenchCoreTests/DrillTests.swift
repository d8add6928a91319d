import Foundation
import Syscalls
import Testing
@testable import BenchCore

/// One exchange on an open connection to a drill backend: the response's status, body and raw head.
private func get(_ fd: Int32, _ target: String, close: Bool = false) throws -> (status: Int, body: [UInt8], head: String) {
    let deadline = Clock.nanoseconds() + 5_000_000_000
    let request = "GET \(target) HTTP/1.1\r\nHost: x\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n"
    guard LoopbackIO.writeAll(fd, Array(request.utf8), until: deadline) else { throw BenchUsageError("write failed") }
    var received: [UInt8] = []
    while true {
        let r = LoopbackIO.read(fd, into: &received, until: deadline)
        guard r == .closed || r.isData else { throw BenchUsageError("read: \(r)") }
        switch ResponseFrame.parse(received, atEOF: r == .closed) {
        case .incomplete: if r == .closed { throw BenchUsageError("closed early") }
        case .malformed(let why): throw BenchUsageError(why)
        case .complete(let status, let body, _, let length):
            #expect(length == received.count, "nothing follows the response")
            let headText = String(decoding: received[0..<(length - body.count)], as: UTF8.self)
            return (status, body, headText)
        }
    }
}

private func connect(_ backend: DrillBackend) throws -> Int32 {
    try #require(LoopbackIO.connect(port: backend.port, until: Clock.nanoseconds() + 2_000_000_000))
}

@Suite(.serialized) struct DrillBackends {
    @Test func v1AndGoodAnswerEveryItemWithItsBodyOnOneConnection() throws {
        for kind in [DrillBackendKind.v1, .good] {
            let backend = try DrillBackend(kind: kind)
            defer { backend.stop() }
            let fd = try connect(backend)
            defer { Socket.close(fd) }
            for n in [0, 1, 7, 10, 999] {
                let r = try get(fd, "/item/\(n)")
                #expect(r.status == 200)
                #expect(r.body == DrillAnswers.body(n))
                #expect(r.body.count == DrillAnswers.bodyLength)
                #expect(r.head.contains("Content-Type: text/plain\r\n"))
                #expect(!r.head.lowercased().contains("version") && !r.head.contains("v1") && !r.head.contains("good"))
            }
            #expect(try get(fd, "/item/3?x=1").body == DrillAnswers.body(3))
            #expect(try get(fd, "/other").status == 404)
            #expect(try get(fd, "/item/x").status == 404)
            #expect(eventually { backend.served == 8 })
            #expect(backend.accepted == 1)
            #expect(backend.badAnswers == 0 && backend.firstBadNanos == nil)
        }
    }

    @Test func bodiesDependOnTheItem() {
        #expect(DrillAnswers.body(1) != DrillAnswers.body(2))
        #expect(String(decoding: DrillAnswers.body(42), as: UTF8.self).hasPrefix("item 42 "))
        #expect(DrillAnswers.body(42).last == UInt8(ascii: "\n"))
        #expect(DrillAnswers.body(42, shift: 1).count == DrillAnswers.body(42).count)
        #expect(DrillAnswers.body(42, shift: 1) != DrillAnswers.body(42))
        #expect(DrillAnswers.item("/item/12") == 12)
        #expect(DrillAnswers.item("/item/12?a=b") == 12)
        #expect(DrillAnswers.item("/item/") == nil)
        #expect(DrillAnswers.item("/item/-1") == nil)
        #expect(DrillAnswers.item("/items/1") == nil)
    }

    @Test func errorsAnswer503ToAboutFivePercentAtRandom() throws {
        let backend = try DrillBackend(kind: .errors)
        defer { backend.stop() }
        let fd = try connect(backend)
        defer { Socket.close(fd) }
        var failures = 0
        for i in 0..<1000 {
            let r = try get(fd, "/item/\(i % 100)")
            if r.status == 503 {
                failures += 1
            } else {
                #expect(r.status == 200 && r.body == DrillAnswers.body(i % 100))
            }
        }
        // Binomial(1000, 0.05): mean 50, standard deviation 6.9.
        #expect((20...90).contains(failures), "\(failures) of 1000 were 503")
        #expect(eventually { backend.badAnswers == failures })
        #expect(backend.firstBadNanos != nil)
        // The draw decides, not the path: the same item gets both answers.
        #expect(DrillAnswers.answer(.errors, target: "/item/5", draw: 0.01).status == 503)
        #expect(DrillAnswers.answer(.errors, target: "/item/5", draw: 0.5).status == 200)
    }

    @Test func slowAnswersLikeV1FiftyMillisecondsLaterWithoutHoldingOtherConnections() throws {
        let backend = try DrillBackend(kind: .slow)
        defer { backend.stop() }
        let fd = try connect(backend)
        defer { Socket.close(fd) }
        var start = Clock.nanoseconds()
        let r = try get(fd, "/item/3")
        #expect(Clock.nanoseconds() - start >= 50_000_000)
        #expect(r.status == 200 && r.body == DrillAnswers.body(3))

        // Eight connections at once: one at a time would take 400 ms.
        let fds = try (0..<8).map { _ in try connect(backend) }
        defer { for f in fds { Socket.close(f) } }
        start = Clock.nanoseconds()
        for (i, f) in fds.enumerated() {
            #expect(LoopbackIO.writeAll(f, Array("GET /item/\(i) HTTP/1.1\r\nHost: x\r\n\r\n".utf8), until: start + 2_000_000_000))
        }
        for (i, f) in fds.enumerated() {
            var received: [UInt8] = []
            var frame = ResponseFrame.incomplete
            while case .incomplete = frame {
                guard LoopbackIO.read(f, into: &received, until: start + 5_000_000_000).isData else { break }
                frame = ResponseFrame.parse(received)
            }
            #expect(frame == .complete(status: 200, body: DrillAnswers.body(i), keepAlive: true, length: received.count))
        }
        let elapsed = Clock.nanoseconds() - start
        #expect(elapsed >= 50_000_000 && elapsed < 300_000_000, "8 slow answers in parallel took \(elapsed / 1_000_000) ms")
        #expect(eventually { backend.badAnswers == 9 })
    }

    @Test func divergentAnswersADifferentBodyForOnePathInTen() throws {
        let backend = try DrillBackend(kind: .divergent)
        defer { backend.stop() }
        let fd = try connect(backend)
        defer { Socket.close(fd) }
        var different = 0
        for n in 0..<100 {
            let r = try get(fd, "/item/\(n)")
            #expect(r.status == 200)
            #expect(r.body.count == DrillAnswers.bodyLength)
            if r.body != DrillAnswers.body(n) {
                different += 1
                #expect(n % 10 == 0)
            }
        }
        #expect(different == 10)
        #expect(eventually { backend.badAnswers == 10 })
    }

    @Test func connectionCloseEndsTheConnectionAndStopEndsEveryThread() throws {
        let backend = try DrillBackend(kind: .v1)
        let fd = try connect(backend)
        defer { Socket.close(fd) }
        let r = try get(fd, "/item/1", close: true)
        #expect(r.head.contains("Connection: close"))
        var rest: [UInt8] = []
        #expect(LoopbackIO.read(fd, into: &rest, until: Clock.nanoseconds() + 2_000_000_000) == .closed)
        let idle = try connect(backend)
        defer { Socket.close(idle) }
        let start = Clock.nanoseconds()
        backend.stop()
        #expect(Clock.nanoseconds() - start < 2_000_000_000)
        #expect(LoopbackIO.read(idle, into: &rest, until: Clock.nanoseconds() + 2_000_000_000) == .closed)
    }
}

@Suite struct DrillResponseChecks {
    @Test func theCheckerComparesWithV1sAnswer() {
        #expect(DrillCheck.check(item: 4, status: 200, body: DrillAnswers.body(4)) == .good)
        #expect(DrillCheck.check(item: 4, status: 200, body: DrillAnswers.body(5)) == .wrongBody)
        #expect(DrillCheck.check(item: 4, status: 200, body: DrillAnswers.body(4, shift: 1)) == .wrongBody)
        #expect(DrillCheck.check(item: 4, status: 200, body: []) == .wrongBody)
        #expect(DrillCheck.check(item: 4, status: 404, body: DrillAnswers.body(4)) == .wrongBody)
        #expect(DrillCheck.check(item: 4, status: 500, body: DrillAnswers.body(4)) == .serverError)
        #expect(DrillCheck.check(item: 4, status: 503, body: []) == .serverError)
        #expect(DrillCheck.check(item: 4, status: 502, body: []).isBad)
        #expect(!DrillCheck.good.isBad && DrillCheck.connectionError.isBad)
    }

    @Test func responsesAreFramedByLengthChunksOrClose() {
        let fixed = Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1".utf8)
        #expect(ResponseFrame.parse(fixed) == .complete(status: 200, body: Array("abc".utf8), keepAlive: true, length: fixed.count - 8))
        #expect(ResponseFrame.parse(Array(fixed[0..<40])) == .incomplete)
        if case .malformed = ResponseFrame.parse(Array(fixed[0..<40]), atEOF: true) {} else { Issue.record("a cut body is malformed at EOF") }

        let chunked = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n".utf8)
        #expect(ResponseFrame.parse(chunked) == .complete(status: 200, body: Array("abc".utf8), keepAlive: true, length: chunked.count))
        #expect(ResponseFrame.parse(Array(chunked.dropLast(3))) == .incomplete)

        let untilClose = Array("HTTP/1.1 200 OK\r\n\r\nxyz".utf8)
        #expect(ResponseFrame.parse(untilClose) == .incomplete)
        #expect(ResponseFrame.parse(untilClose, atEOF: true) == .complete(status: 200, body: Array("xyz".utf8), keepAlive: false, length: untilClose.count))

        let closing = Array("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8)
        #expect(ResponseFrame.parse(closing) == .complete(status: 503, body: [], keepAlive: false, length: closing.count))
        if case .malformed = ResponseFrame.parse(Array("HTTP/1.1 2x0 OK\r\n\r\n".utf8)) {} else { Issue.record("a bad status line is malformed") }
    }

    @Test func theLoadCountsEveryKindOfBadExchange() throws {
        let good = try DrillBackend(kind: .v1)
        let divergent = try DrillBackend(kind: .divergent)
        let errors = try DrillBackend(kind: .errors)
        defer { good.stop(); divergent.stop(); errors.stop() }
        func load(_ port: Int) -> DrillTally {
            let load = DrillLoad(port: port, connections: 4, rate: 400)
            load.start()
            usleep(1_000_000)
            return load.stop()
        }
        let g = load(good.port)
        #expect(g.requests >= 300 && g.requests <= 420, "\(g.requests) requests in 1 s at 400/s")
        #expect(g.bad == 0 && g.firstBadNanos == nil)
        #expect(eventually { good.served == g.requests })
        #expect(good.accepted == 4)

        let d = load(divergent.port)
        // Items cycle over 0..999, so one in ten is divergent, whatever the connection.
        #expect(d.wrongBodies >= d.requests / 10 - 2 && d.wrongBodies <= d.requests / 10 + 2, "\(d.wrongBodies) of \(d.requests)")
        #expect(d.serverErrors == 0 && d.connectionErrors == 0 && d.firstBadNanos != nil)

        let e = load(errors.port)
        #expect(e.serverErrors > 0 && e.serverErrors < e.requests / 5)
        #expect(eventually { errors.badAnswers == e.serverErrors })

        let closedPort = try freeLoopbackPort()
        let c = load(closedPort)
        #expect(c.requests > 0 && c.connectionErrors == c.requests)
    }
}

@Suite struct DrillOptionsAndPlans {
    @Test func defaults() throws {
        let o = try #require(try DrillCommand.parse([]))
        #expect(o.scenarios == [.good, .errors, .slow, .divergent])
        #expect(o.connections == 8 && o.rate == 400 && !o.json && o.switchyardPath == nil && o.timeoutSeconds == nil)
        #expect(o.plan == DrillPlan.standard)
        #expect(o.plan.stepCount == 4 && o.plan.totalHoldSeconds == 60 && o.plan.startsWithConcurrent)
        #expect(o.effectiveTimeout == 120)
        #expect(try DrillCommand.parse(["--help"]) == nil)
        #expect(try DrillCommand.parse(["--json", "-h"]) == nil)
    }

    @Test func everyOption() throws {
        let file = NSTemporaryDirectory() + "drill-plan-\(getpid()).json"
        try "{\"steps\":[{\"mode\":\"GRADUAL\",\"percent\":20,\"holdSeconds\":5},{\"mode\":\"INSTANT\",\"holdSeconds\":2.5}]}\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let o = try #require(try DrillCommand.parse(["--plan", file, "--scenarios", "slow,good,slow", "--connections=3", "--rate", "50",
                                                     "--switchyard", "/x/switchyard", "--json", "--timeout", "9s", "--warmup", "0.5"]))
        #expect(o.plan.stepCount == 2 && o.plan.totalHoldSeconds == 7.5 && !o.plan.startsWithConcurrent)
        #expect(o.plan.text.hasPrefix("{\"steps\"") && !o.plan.text.hasSuffix("\n"))
        #expect(o.scenarios == [.slow, .good])
        #expect(o.connections == 3 && o.rate == 50 && o.switchyardPath == "/x/switchyard" && o.json)
        #expect(o.timeoutSeconds == 9 && o.effectiveTimeout == 9 && o.warmupSeconds == 0.5)
        var noTimeout = o
        noTimeout.timeoutSeconds = nil
        #expect(noTimeout.effectiveTimeout == 67.5)
    }

    @Test func usageErrorsSayWhatIsWrong() throws {
        let notObject = NSTemporaryDirectory() + "drill-array-\(getpid()).json"
        try "[1, 2]".write(toFile: notObject, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: notObject) }
        let cases: [([String], String)] = [
            (["--scenarios", "good,fast"], "unknown scenario \"fast\" (valid: good, errors, slow, divergent)"),
            (["--scenarios", ""], "unknown scenario \"\" (valid: good, errors, slow, divergent)"),
            (["--connections", "0"], "--connections must be 1...256, got \"0\""),
            (["--rate", "lots"], "--rate must be 1...100000 requests per second, got \"lots\""),
            (["--timeout", "0"], "--timeout must be a number of seconds in 1...86400, got \"0\""),
            (["--plan", "/nonexistent/plan.json"], "cannot read the plan file /nonexistent/plan.json"),
            (["--plan", notObject], "\(notObject): the plan is not a JSON object"),
            (["--plan"], "option --plan needs a value"),
            (["--bogus"], "unknown option --bogus"),
            (["--json=yes"], "option --json takes no value (got \"yes\")"),
            (["run"], "unexpected argument \"run\""),
        ]
        for (arguments, message) in cases {
            #expect(throws: BenchUsageError(message), "\(arguments)") { try DrillCommand.parse(arguments) }
        }
        // Usage errors end the command with status 2 before anything starts.
        #expect(DrillCommand.main(["--rate", "0"]) == 2)
        #expect(DrillCommand.main(["--switchyard", "/nonexistent/switchyard"]) == 2)
    }

    @Test func plans() throws {
        let p = try DrillPlan(text: " {\"mode\":\"INSTANT\"} ")
        #expect(p.text == "{\"mode\":\"INSTANT\"}" && p.stepCount == 0 && p.totalHoldSeconds == 0 && !p.startsWithConcurrent)
        #expect(throws: BenchUsageError("the plan is not a JSON object")) { try DrillPlan(text: "{\"steps\":") }
        #expect(throws: BenchUsageError("the plan's steps must be a list of objects")) { try DrillPlan(text: "{\"steps\":[1]}") }
        let body = Drill.clusterBody(plan: p, backendPort: 4321)
        #expect(body == "{\"cluster\":{\"uuid\":\"v2\",\"version\":\"2.0\",\"servers\":[{\"hostname\":\"127.0.0.1\",\"port\":4321}],"
                + "\"upgradeTransition\":{\"mode\":\"INSTANT\"}}}")
        let config = try #require(try JSONSerialization.jsonObject(with: Data(Drill.config(backendPort: 99).utf8)) as? [String: Any])
        let clusters = try #require(config["clusters"] as? [[String: Any]])
        #expect(clusters.count == 1 && clusters[0]["uuid"] as? String == "v1")
        #expect(Drill.startedPorts("x\nlevel=NOTICE event=started proxy=127.0.0.1:8080 api=127.0.0.1:9090 workers=1\n")! == (8080, 9090))
        #expect(Drill.startedPorts("level=NOTICE event=listening proxy=127.0.0.1:8080") == nil)
    }
}

@Suite struct DrillRolloutsAndReports {
    @Test func rolloutStatusFromTheClusterDocument() throws {
        let progressing = """
        {"cluster":{"uuid":"v2","state":"active","rollout":{"state":"progressing","step":2,"steps":4,"percent":10,
        "gates":{"errorRatio":{"value":0.002,"limit":0.01}},"requests":{"new":12,"old":99}}}}
        """
        let (rollout, state) = try #require(RolloutStatus.parse(progressing))
        let r = try #require(rollout)
        #expect(state == "active" && r.state == "progressing" && r.step == 2 && r.steps == 4 && r.percent == 10 && !r.isFinal)
        #expect(r.summary == "progressing, step 2/4, 10 %")
        #expect(r.raw.text(pretty: false).contains("\"requests\":{\"new\":12,\"old\":99}"))

        let back = "{\"cluster\":{\"rollout\":{\"state\":\"rolledBack\",\"reason\":\"gate divergenceRatio 0.1 over limit 0.01\","
            + "\"gates\":{\"divergenceRatio\":{\"value\":0.1,\"limit\":0.01}}}}}"
        let b = try #require(RolloutStatus.parse(back)?.rollout)
        #expect(b.isFinal && b.gate == "divergenceRatio" && b.reason == "gate divergenceRatio 0.1 over limit 0.01")
        #expect(RolloutStatus.parse("{\"rollout\":{\"state\":\"rolledBack\",\"gate\":\"latencyRatio\",\"reason\":\"slow\"}}")?.rollout?.gate == "latencyRatio")
        #expect(RolloutStatus.gate(in: "operator", known: []) == "operator")
        #expect(RolloutStatus.gate(in: "ERRORRATIO 0.05 > 0.01", known: []) == "errorRatio")
        #expect(RolloutStatus.gate(in: "something else", known: []) == nil)

        let none = try #require(RolloutStatus.parse("{\"cluster\":{\"uuid\":\"v2\",\"state\":\"failed\"}}"))
        #expect(none.rollout == nil && none.clusterState == "failed")
        #expect(RolloutStatus.parse("not json") == nil)
    }

    @Test func verdictsFollowTheExpectation() {
        let table: [(DrillScenario, DrillOutcome, Bool)] = [
            (.good, .completed, true),
            (.good, .rolledBack(gate: "errorRatio", reason: nil), false),
            (.errors, .rolledBack(gate: "errorRatio", reason: nil), true),
            (.slow, .rolledBack(gate: nil, reason: "?"), true),
            (.divergent, .completed, false),
            (.good, .timeout("no rollout"), false),
            (.errors, .failed("refused"), false),
        ]
        for (scenario, outcome, pass) in table {
            #expect(DrillScenarioResult(scenario: scenario, outcome: outcome).passed == pass, "\(scenario) \(outcome)")
        }
        let plan = DrillPlan.standard
        let good = DrillScenarioResult(scenario: .good, outcome: .completed)
        let errors = DrillScenarioResult(scenario: .errors, outcome: .rolledBack(gate: "errorRatio", reason: "x"))
        #expect(DrillReport(plan: plan, results: [good, errors]).exitStatus == 0)
        #expect(DrillReport(plan: plan, results: [good, DrillScenarioResult(scenario: .slow, outcome: .completed)]).exitStatus == 1)
        #expect(DrillReport(plan: plan, results: []).exitStatus == 1)
    }

    @Test func timesOfADecision() {
        var tally = DrillTally()
        tally.firstBadNanos = 7_000_000_000
        var r = DrillScenarioResult(scenario: .errors, outcome: .rolledBack(gate: "errorRatio", reason: nil), tally: tally)
        r.setTimes(putNanos: 5_000_000_000, decidedNanos: 16_500_000_000, backendFirstBad: 6_000_000_000)
        #expect(r.secondsToDecision == 11.5)
        #expect(r.secondsFromFirstBad == 10.5)  // the new version's first bad answer came before any client saw one
        r.setTimes(putNanos: 5_000_000_000, decidedNanos: 16_500_000_000, backendFirstBad: nil)
        #expect(r.secondsFromFirstBad == 9.5)

        var completed = DrillScenarioResult(scenario: .good, outcome: .completed, tally: tally)
        completed.setTimes(putNanos: 5_000_000_000, decidedNanos: 65_000_000_000, backendFirstBad: nil)
        #expect(completed.secondsToDecision == 60 && completed.secondsFromFirstBad == nil)
    }

    @Test func tableAndJSON() throws {
        var tally = DrillTally()
        tally.requests = 24512
        var good = DrillScenarioResult(scenario: .good, outcome: .completed, tally: tally)
        good.secondsToDecision = 61.24
        tally.requests = 5023
        tally.serverErrors = 3
        var errors = DrillScenarioResult(scenario: .errors, outcome: .rolledBack(gate: "errorRatio", reason: "errorRatio 0.05 > 0.01"), tally: tally)
        errors.secondsToDecision = 12.3
        errors.secondsFromFirstBad = 10.4
        errors.newVersionBadAnswers = 40
        let slow = DrillScenarioResult(scenario: .slow, outcome: .timeout("the proxy reported no rollout"))
        let report = DrillReport(plan: .standard, results: [good, errors, slow])
        let table = report.table()
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines[0] == "scenario  outcome                  decision  after 1st bad  bad responses  expected    verdict")
        #expect(lines[1] == "good      completed                  61.2 s              -      0 / 24512  completed   PASS")
        #expect(lines[2] == "errors    rolledBack (errorRatio)    12.3 s         10.4 s       3 / 5023  rolledBack  PASS")
        #expect(lines[3] == "slow      timeout                         -              -          0 / 0  rolledBack  FAIL")
        #expect(table.contains("errors: reason: errorRatio 0.05 > 0.01\n"))
        #expect(table.contains("errors: bad responses: 3 status >= 500, 0 wrong bodies, 0 connection errors\n"))
        #expect(table.contains("slow: the proxy reported no rollout\n"))
        #expect(table.hasSuffix("drill: FAIL\n"))

        let json = report.json().text(pretty: false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["pass"] as? Bool == false)
        let scenarios = try #require(object["scenarios"] as? [[String: Any]])
        #expect(scenarios.map { $0["scenario"] as? String } == ["good", "errors", "slow"])
        #expect(scenarios[1]["outcome"] as? String == "rolledBack" && scenarios[1]["gate"] as? String == "errorRatio")
        #expect(scenarios[1]["badResponses"] as? Int == 3 && scenarios[1]["requests"] as? Int == 5023)
        #expect(scenarios[1]["secondsFromFirstBad"] as? Double == 10.4 && scenarios[1]["newVersionBadAnswers"] as? Int == 40)
        #expect(scenarios[2]["outcome"] as? String == "timeout" && scenarios[2]["message"] as? String == "the proxy reported no rollout")
        #expect(scenarios[2]["secondsToDecision"] is NSNull && scenarios[2]["pass"] as? Bool == false)
        #expect(scenarios[0]["expected"] as? String == "completed" && scenarios[0]["pass"] as? Bool == true)
    }

    @Test func decodedJSONKeepsItsTypes() {
        let object = try! JSONSerialization.jsonObject(with: Data("{\"b\":true,\"i\":3,\"d\":0.25,\"s\":\"x\",\"n\":null,\"a\":[1]}".utf8))
        #expect(JSONOut(any: object).text(pretty: false) == "{\"a\":[1],\"b\":true,\"d\":0.25,\"i\":3,\"n\":null,\"s\":\"x\"}")
    }
}

/// The drill against the real switchyard binary (built with the tests: the test target depends on
/// it). Today's proxy runs no staged plans, so these check the paths that do not need them.
@Suite(.serialized) struct DrillAgainstTheProxy {
    /// `switchyard` in the directory the test build put its products.
    static func binary() throws -> String {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("switchyard").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        let path = dir.appendingPathComponent("switchyard").path
        try #require(FileManager.default.isExecutableFile(atPath: path), "no switchyard binary near the test executable")
        return path
    }

    static func options(plan: String, timeout: Double, scenarios: [DrillScenario]) throws -> DrillCommand.Options {
        var o = DrillCommand.Options()
        o.plan = try DrillPlan(text: plan)
        o.timeoutSeconds = timeout
        o.warmupSeconds = 0.5
        o.rate = 200
        o.connections = 4
        o.scenarios = scenarios
        return o
    }

    @Test func aProxyThatReportsNoRolloutTimesOutWithAClearMessage() throws {
        let o = try Self.options(plan: "{\"mode\":\"INSTANT\"}", timeout: 1, scenarios: [.good, .divergent])
        var lines: [String] = []
        let start = Clock.nanoseconds()
        let report = Drill(o, binary: try Self.binary()).run { lines.append($0) }
        #expect(Clock.nanoseconds() - start < 15_000_000_000)
        #expect(report.results.map(\.scenario) == [.good, .divergent])
        for r in report.results {
            guard case .timeout(let message) = r.outcome else { Issue.record("\(r.scenario): \(r.outcome)"); continue }
            #expect(message.contains("reported no rollout for v2 within 1 s of the PUT"), "\(message)")
            #expect(!r.passed && r.secondsToDecision == nil && r.lastRollout == nil)
            #expect(r.tally.requests >= 100, "\(r.scenario): \(r.tally.requests) requests")
        }
        // INSTANT moved every client to v2 at once: the good version is invisible, the divergent one is not.
        #expect(report.results[0].tally.bad == 0)
        let divergent = report.results[1]
        #expect(divergent.tally.wrongBodies > 0 && divergent.tally.serverErrors == 0 && divergent.tally.connectionErrors == 0)
        #expect(divergent.newVersionBadAnswers > 0)
        #expect(report.exitStatus == 1)
        #expect(lines.contains { $0.hasPrefix("[good] v1 alone: ") && $0.hasSuffix(" 0 bad; starting the plan") })
        #expect(report.table().contains("divergent: the proxy reported no rollout for v2 within 1 s"))
    }

    @Test("the drill on a short plan that starts with a dark launch: good completes, the others roll back unseen")
    func darkLaunchDrill() throws {
        let plan = #"{"steps":[{"mode":"CONCURRENT","holdSeconds":1,"minRequests":30},{"mode":"GRADUAL","percent":50,"holdSeconds":1},"#
            + #"{"mode":"INSTANT"}],"analysis":{"maxErrorRatio":0.01,"maxLatencyRatio":1.5,"maxDivergenceRatio":0.01,"windowSeconds":2,"minRequests":20}}"#
        var o = try Self.options(plan: plan, timeout: 20, scenarios: [.good, .errors, .slow, .divergent])
        o.rate = 300
        let report = Drill(o, binary: try Self.binary()).run { _ in }
        for r in report.results {
            #expect(r.passed, "\(r.scenario): \(r.outcome)")
            #expect(r.tally.bad == 0, "\(r.scenario): \(r.tally.bad) bad responses reached clients")
        }
        let gates = report.results.dropFirst().map { $0.lastRollout?.gate }
        #expect(gates == ["errorRatio", "latencyRatio", "divergenceRatio"], "\(gates)")
    }

    @Test("the drill on a plan that starts with GRADUAL: bad versions roll back within the window plus a second")
    func gradualDrill() throws {
        let plan = #"{"steps":[{"mode":"GRADUAL","percent":20,"holdSeconds":30},{"mode":"INSTANT"}],"#
            + #""analysis":{"maxErrorRatio":0.01,"maxLatencyRatio":1.5,"maxDivergenceRatio":0.01,"windowSeconds":2,"minRequests":20}}"#
        var o = try Self.options(plan: plan, timeout: 20, scenarios: [.errors, .slow, .divergent])
        o.rate = 300
        let report = Drill(o, binary: try Self.binary()).run { _ in }
        for r in report.results {
            #expect(r.passed, "\(r.scenario): \(r.outcome)")
            let seconds = try #require(r.secondsFromFirstBad, "\(r.scenario): no time from the first bad exchange")
            #expect(seconds <= 2 + 1, "\(r.scenario): rolled back \(seconds) s after the first bad exchange")
        }
    }

    @Test func aPlanTheProxyRefusesIsAnError() throws {
        let o = try Self.options(plan: "{\"mode\":\"SIDEWAYS\"}", timeout: 1, scenarios: [.errors])
        let report = Drill(o, binary: try Self.binary()).run { _ in }
        let r = try #require(report.results.first)
        guard case .failed(let message) = r.outcome else { Issue.record("\(r.outcome)"); return }
        #expect(message.hasPrefix("the proxy refused the plan: 400 "), "\(message)")
        #expect(message.contains("mode"))
        #expect(r.tally.requests > 0 && r.tally.bad == 0)
        #expect(!report.passed)
    }
}
