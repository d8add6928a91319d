import Rollout
import Routing
import Testing
@testable import Config

/// `{"cluster":{…,"upgradeTransition":{<transition>}}}`.
func planBody(_ transition: String) -> String { body(#""upgradeTransition":{\#(transition)}"#) }

let S = "cluster.upgradeTransition.steps"
let A = "cluster.upgradeTransition.analysis"
let dark = #"{"mode":"CONCURRENT","holdSeconds":300,"minRequests":100}"#
let gateList = "maxErrorRatio, maxLatencyRatio or maxDivergenceRatio"

let planErrorCases: [BodyErrorCase] = [
    // steps
    BodyErrorCase(json: planBody(#""steps":5"#),
                  error: #"\#(S): must be an array of steps like {"mode":"GRADUAL","percent":10,"holdSeconds":60}"#),
    BodyErrorCase(json: planBody(#""steps":[]"#), error: "\(S): must list at least one step (for gates without steps, give analysis alone)"),
    BodyErrorCase(json: planBody(#""steps":[\#(Array(repeating: #"{"mode":"INSTANT"}"#, count: 101).joined(separator: ","))]"#),
                  error: "\(S): must list at most 100 steps"),
    BodyErrorCase(json: planBody(#""steps":[5]"#), error: "\(S)[0]: must be an object with mode, holdSeconds and minRequests"),
    BodyErrorCase(json: planBody(#""steps":[{"holdSeconds":5}]"#), error: "\(S)[0].mode: missing (CONCURRENT, GRADUAL or INSTANT)"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"SESSION"}]"#),
                  error: #"\#(S)[0].mode: unknown step mode "SESSION" (valid: CONCURRENT, GRADUAL, INSTANT)"#),
    BodyErrorCase(json: planBody(#""steps":[{"mode":7}]"#), error: "\(S)[0].mode: must be a string"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL"}]"#),
                  error: "\(S)[0].percent: required with mode GRADUAL (a number between 0 and 100)"),
    BodyErrorCase(json: planBody(#""steps":[\#(dark),{"mode":"GRADUAL","percent":5},{"mode":"GRADUAL","percent":101}]"#),
                  error: "\(S)[2].percent: must be a number between 0 and 100"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL","percent":-1}]"#), error: "\(S)[0].percent: must be a number between 0 and 100"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL","percent":"5"}]"#), error: "\(S)[0].percent: must be a number between 0 and 100"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"INSTANT","percent":100}]"#), error: "\(S)[0].percent: only allowed with mode GRADUAL, not INSTANT"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"CONCURRENT","percent":0}]"#),
                  error: "\(S)[0].percent: only allowed with mode GRADUAL, not CONCURRENT"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL","percent":5,"serve":"old"}]"#),
                  error: "\(S)[0].serve: only allowed with mode CONCURRENT, not GRADUAL"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"CONCURRENT","serve":"both"}]"#), error: #"\#(S)[0].serve: must be one of: "old", "new""#),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"INSTANT","holdSeconds":-1}]"#),
                  error: "\(S)[0].holdSeconds: must be an integer between 0 and 604800"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"INSTANT","minRequests":1.5}]"#),
                  error: "\(S)[0].minRequests: must be an integer between 0 and 1000000000"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"INSTANT","hold":5}]"#),
                  error: "\(S)[0].hold: unknown field (expected one of: holdSeconds, minRequests, mode, percent, serve)"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL","percent":50},{"mode":"GRADUAL","percent":25}]"#),
                  error: "\(S)[1].percent: must not send fewer clients to the new version than \(S)[0] (50 %): a client moved to the new version never moves back during a plan"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"INSTANT"},\#(dark)]"#),
                  error: "\(S)[1].mode: must not send fewer clients to the new version than \(S)[0] (100 %): a client moved to the new version never moves back during a plan"),
    BodyErrorCase(json: planBody(#""mode":"SESSION","steps":[\#(dark)]"#),
                  error: "\(T).mode: must be CONCURRENT (the first step's mode) or absent: the steps give the modes"),
    BodyErrorCase(json: planBody(#""mode":"FAST","steps":[\#(dark)]"#), error: "\(T).mode: unknown mode \"FAST\" (valid: \(modes))"),
    BodyErrorCase(json: planBody(#""steps":[\#(dark)],"sessionTimeout":60"#),
                  error: "\(T).sessionTimeout: not allowed with steps (a plan has no SESSION step)"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL","percent":5}],"percentageTransitionPerRequest":1"#),
                  error: "\(T).percentageTransitionPerRequest: not allowed with steps (each GRADUAL step gives its percent)"),
    BodyErrorCase(json: planBody(#""steps":[{"mode":"GRADUAL","percent":5}],"mirrorUnsafeMethods":true"#),
                  error: "\(T).mirrorUnsafeMethods: only allowed with a CONCURRENT step"),
    BodyErrorCase(json: planBody(#""steps":[\#(dark)],"retireOld":"yes""#), error: "\(T).retireOld: must be true or false"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","retireOld":true"#),
                  error: "\(T).retireOld: only allowed with steps (without steps a plan never completes)"),
    BodyErrorCase(json: planBody(#""steps":[\#(dark)],"stepz":1"#),
                  error: "\(T).stepz: unknown field (expected one of: analysis, mirrorUnsafeMethods, mode, percentageTransitionPerRequest, retireOld, sessionTimeout, steps)"),

    // analysis
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":[]"#), error: "\(A): must be an object"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{}"#), error: "\(A): must set at least one gate: \(gateList)"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"windowSeconds":10}"#), error: "\(A): must set at least one gate: \(gateList)"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxErorRatio":0.1}"#),
                  error: "\(A).maxErorRatio: unknown field (expected one of: latencyFloorMillis, latencyPercentile, maxDivergenceRatio, maxErrorRatio, maxLatencyRatio, minRequests, windowSeconds)"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxErrorRatio":1.5}"#), error: "\(A).maxErrorRatio: must be a number between 0 and 1"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxDivergenceRatio":true}"#),
                  error: "\(A).maxDivergenceRatio: must be a number between 0 and 1"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxLatencyRatio":0}"#),
                  error: "\(A).maxLatencyRatio: must be a number greater than 0 and at most 1000"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxErrorRatio":0.1,"latencyPercentile":99}"#),
                  error: "\(A).latencyPercentile: only allowed with maxLatencyRatio"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxLatencyRatio":2,"latencyPercentile":100.5}"#),
                  error: "\(A).latencyPercentile: must be a number greater than 0 and at most 100"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxErrorRatio":0.1,"windowSeconds":0}"#),
                  error: "\(A).windowSeconds: must be an integer between 1 and 3600"),
    BodyErrorCase(json: planBody(#""mode":"INSTANT","analysis":{"maxErrorRatio":0.1,"minRequests":-1}"#),
                  error: "\(A).minRequests: must be an integer between 0 and 1000000000"),
    BodyErrorCase(json: planBody(#""analysis":{"maxErrorRatio":0.1}"#),
                  error: "\(T).sessionTimeout: required with mode SESSION (seconds, a positive integer)"),

    // ignoreBodyFor
    BodyErrorCase(json: body(#""ignoreBodyFor":"/time""#), error: #"cluster.ignoreBodyFor: must be an array of path patterns like ["/time", "/random*"]"#),
    BodyErrorCase(json: body(#""ignoreBodyFor":[5]"#), error: "cluster.ignoreBodyFor[0]: must be a string"),
    BodyErrorCase(json: body(#""ignoreBodyFor":["time"]"#), error: #"cluster.ignoreBodyFor[0]: must be a path starting with / ("time")"#),
    BodyErrorCase(json: body(#""ignoreBodyFor":["*"]"#), error: #"cluster.ignoreBodyFor[0]: must be a path starting with / ("*")"#),
    BodyErrorCase(json: body(#""ignoreBodyFor":["/time","/a*b"]"#), error: #"cluster.ignoreBodyFor[1]: may hold * only as its last character ("/a*b")"#),
    BodyErrorCase(json: body(#""ignoreBodyFor":["/**"]"#), error: #"cluster.ignoreBodyFor[0]: may hold * only as its last character ("/**")"#),
    BodyErrorCase(json: body(#""ignoreBodyFor":["/a b"]"#), error: "cluster.ignoreBodyFor[0]: must be at most 1024 printable characters without spaces"),
    BodyErrorCase(json: body(#""ignoreBodyFor":["/a?x=1"]"#),
                  error: "cluster.ignoreBodyFor[0]: must be a path without a query (patterns match the path only)"),
]

@Test(arguments: planErrorCases)
func planBodyErrors(_ c: BodyErrorCase) {
    #expect(throws: ConfigError.self) { try parseBody(c.json) }
    do {
        _ = try parseBody(c.json)
    } catch {
        #expect(error.description == c.error)
    }
}

/// The plan of the README: dark launch 5 min, then 5 %, 25 %, 50 %, then INSTANT.
let readmePlan = RolloutPlan(
    steps: [RolloutStep(mode: .concurrent(serve: .old), holdSeconds: 300, minRequests: 100),
            RolloutStep(mode: .gradual(percent: 5), holdSeconds: 120, minRequests: 100),
            RolloutStep(mode: .gradual(percent: 25), holdSeconds: 120, minRequests: 100),
            RolloutStep(mode: .gradual(percent: 50), holdSeconds: 120, minRequests: 100),
            RolloutStep(mode: .instant)],
    analysis: Analysis(maxErrorRatio: 0.01, maxLatencyRatio: 1.5, latencyPercentile: 99, maxDivergenceRatio: 0.01,
                       windowSeconds: 30, minRequests: 50),
    retireOld: true)
let readmeTransition = #"""
    "steps":[{"mode":"CONCURRENT","serve":"old","holdSeconds":300,"minRequests":100},
             {"mode":"GRADUAL","percent":5,"holdSeconds":120,"minRequests":100},
             {"mode":"GRADUAL","percent":25,"holdSeconds":120,"minRequests":100},
             {"mode":"GRADUAL","percent":50,"holdSeconds":120,"minRequests":100},
             {"mode":"INSTANT"}],
    "analysis":{"maxErrorRatio":0.01,"maxLatencyRatio":1.5,"latencyPercentile":99,"maxDivergenceRatio":0.01,
                "windowSeconds":30,"minRequests":50},
    "retireOld":true
    """#

func spec(_ mode: UpgradeMode, sessionTimeout: Int? = nil, percentage: Double? = nil, mirror: Bool = false,
          plan: RolloutPlan? = nil, ignore: [String] = []) -> ClusterSpec {
    ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: mode, sessionTimeout: sessionTimeout,
                percentageTransitionPerRequest: percentage, mirrorUnsafeMethods: mirror, rollout: plan, ignoreBodyFor: ignore)
}

let planCases: [BodyCase] = [
    BodyCase(name: "a whole plan: no mode needed, the first step gives it", json: planBody(readmeTransition),
             expected: spec(.concurrent, plan: readmePlan)),
    BodyCase(name: "mode naming the first step is accepted, any case",
             json: planBody(#""mode":"gradual","steps":[{"mode":"Gradual","percent":10},{"mode":"instant"}]"#),
             expected: spec(.gradual, plan: RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 10)), RolloutStep(mode: .instant)]))),
    BodyCase(name: "serve defaults to old inside a plan; hold and count default to 0",
             json: planBody(#""steps":[{"mode":"CONCURRENT"}]"#),
             expected: spec(.concurrent, plan: RolloutPlan(steps: [RolloutStep(mode: .concurrent(serve: .old))])))
    ,
    BodyCase(name: "serve new; mirrorUnsafeMethods with a CONCURRENT step that is not the first",
             json: planBody(#""steps":[{"mode":"GRADUAL","percent":0},{"mode":"CONCURRENT","serve":"new"}],"mirrorUnsafeMethods":true"#),
             expected: spec(.gradual, mirror: true, plan: RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 0)),
                                                                             RolloutStep(mode: .concurrent(serve: .new))]))),
    BodyCase(name: "equal shares in a row are fine (GRADUAL 100 then INSTANT)",
             json: planBody(#""steps":[{"mode":"GRADUAL","percent":100},{"mode":"INSTANT"}],"retireOld":false"#),
             expected: spec(.gradual, plan: RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 100)), RolloutStep(mode: .instant)]))),
    BodyCase(name: "a 2014 mode gains gates: analysis without steps",
             json: planBody(#""mode":"SESSION","sessionTimeout":60,"analysis":{"maxErrorRatio":0.05}"#),
             expected: spec(.session, sessionTimeout: 60, plan: RolloutPlan(analysis: Analysis(maxErrorRatio: 0.05))))
    ,
    BodyCase(name: "analysis defaults: p99, 30 s window, 50 requests; the 2014 no-mode rule still holds",
             json: planBody(#""sessionTimeout":5,"analysis":{"maxLatencyRatio":2}"#),
             expected: spec(.session, sessionTimeout: 5, plan: RolloutPlan(analysis: Analysis(maxLatencyRatio: 2, latencyPercentile: 99,
                                                                                              windowSeconds: 30, minRequests: 50)))),
    BodyCase(name: "GRADUAL 2014 with a divergence gate only",
             json: planBody(#""mode":"GRADUAL","percentageTransitionPerRequest":1,"analysis":{"maxDivergenceRatio":0,"minRequests":0,"windowSeconds":5}"#),
             expected: spec(.gradual, percentage: 1, plan: RolloutPlan(analysis: Analysis(maxDivergenceRatio: 0, windowSeconds: 5, minRequests: 0)))),
    BodyCase(name: "null steps and analysis are absent", json: planBody(#""steps":null,"analysis":null,"sessionTimeout":5"#),
             expected: spec(.session, sessionTimeout: 5)),
    BodyCase(name: "ignoreBodyFor kept in order", json: body(#""ignoreBodyFor":["/time","/random*","/"]"#),
             expected: spec(.instant, ignore: ["/time", "/random*", "/"])),
    BodyCase(name: "empty ignoreBodyFor", json: body(#""ignoreBodyFor":[]"#), expected: spec(.instant)),
]

@Test(arguments: planCases)
func planBodies(_ c: BodyCase) throws {
    #expect(try parseBody(c.json) == c.expected)
}

@Test func renderPlan() {
    let s = ClusterSpec(uuid: "p", version: "2", servers: local1034, mode: .concurrent,
                        rollout: RolloutPlan(steps: [RolloutStep(mode: .concurrent(serve: .old), holdSeconds: 60, minRequests: 10),
                                                     RolloutStep(mode: .gradual(percent: 12.5)), RolloutStep(mode: .instant)],
                                             analysis: Analysis(maxErrorRatio: 0.01, maxLatencyRatio: 1.5), retireOld: true),
                        ignoreBodyFor: ["/time", "/random*"])
    let text = String(decoding: ClusterJSON.renderOne(s, failed: nil), as: UTF8.self)
    #expect(text == #"{"cluster":{"ignoreBodyFor":["/time","/random*"],"servers":[{"hostname":"127.0.0.1","port":1034}],"state":"active","upgradeTransition":{"analysis":{"latencyFloorMillis":5,"latencyPercentile":99,"maxErrorRatio":0.01,"maxLatencyRatio":1.5,"minRequests":50,"windowSeconds":30},"mirrorUnsafeMethods":false,"retireOld":true,"steps":[{"holdSeconds":60,"minRequests":10,"mode":"CONCURRENT","serve":"old"},{"holdSeconds":0,"minRequests":0,"mode":"GRADUAL","percent":12.5},{"holdSeconds":0,"minRequests":0,"mode":"INSTANT"}]},"uuid":"p","version":"2"}}"#)

    let gates = ClusterSpec(uuid: "g", version: "1", servers: local1034, mode: .session, sessionTimeout: 60,
                            rollout: RolloutPlan(analysis: Analysis(maxDivergenceRatio: 0.02, windowSeconds: 10, minRequests: 5)))
    #expect(String(decoding: ClusterJSON.renderOne(gates, failed: nil), as: UTF8.self)
        == #"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1034}],"state":"active","upgradeTransition":{"analysis":{"maxDivergenceRatio":0.02,"minRequests":5,"windowSeconds":10},"mode":"SESSION","sessionTimeout":60},"uuid":"g","version":"1"}}"#)
}

let planRoundTrips: [ClusterSpec] = [
    ClusterSpec(uuid: "readme", version: "2.0", servers: local1034, mode: .concurrent, rollout: readmePlan, ignoreBodyFor: ["/time", "/random*"]),
    ClusterSpec(uuid: "mirror", version: "2.1", servers: local1034, mode: .gradual, mirrorUnsafeMethods: true,
                rollout: RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 33.3), holdSeconds: 1, minRequests: 2),
                                             RolloutStep(mode: .concurrent(serve: .new), holdSeconds: 3, minRequests: 4)])),
    ClusterSpec(uuid: "gates", version: "3", servers: local1034, mode: .gradual, percentageTransitionPerRequest: 2,
                rollout: RolloutPlan(analysis: Analysis(maxErrorRatio: 0, maxLatencyRatio: 1.25, latencyPercentile: 99.9,
                                                        maxDivergenceRatio: 1, windowSeconds: 3600, minRequests: 0))),
    ClusterSpec(uuid: "ignore", version: "4", servers: local1034, mode: .concurrent, ignoreBodyFor: ["/x*"]),
]

@Test(arguments: planRoundTrips)
func planRendersRoundTrip(_ spec: ClusterSpec) throws {
    #expect(try ClusterJSON.parseClusterBody(ClusterJSON.renderOne(spec, failed: nil), resolve: resolve, newUUID: { "new" }) == spec)
    #expect(try ClusterJSON.parseClusterBody(ClusterJSON.renderOne(spec, failed: ("r", 1)), resolve: resolve, newUUID: { "new" }) == spec)
}

@Test("a configuration file's clusters take plans too")
func planInConfigFile() throws {
    let config = try parseFile(#"{"clusters":[{"servers":[{"port":1034}],"version":"1","uuid":"a"},"#
        + #"{"servers":[{"port":1035}],"version":"2","uuid":"b","ignoreBodyFor":["/now"],"upgradeTransition":{\#(readmeTransition)}}]}"#)
    #expect(config.clusters[1].rollout == readmePlan)
    #expect(config.clusters[1].ignoreBodyFor == ["/now"])
    #expect(config.clusters[0].rollout == nil)
}
