import Rollout
import Routing
import Testing

@Test("ignoreBodyFor: exact paths, and prefixes before a final *", arguments: [
    ("/time", true), ("/time/", false), ("/timer", false), ("/random", true), ("/random/7", true), ("/randomly", true),
    ("/rand", false), ("/", false), ("/api/v1/now", true), ("/api/v1/nowhere", false), ("", false),
])
func ignoreBodyFor(_ path: String, _ ignored: Bool) {
    let spec = ClusterSpec(uuid: "u", version: "2", servers: [], mode: .concurrent,
                           ignoreBodyFor: ["/time", "/random*", "/api/v1/now"])
    #expect(spec.ignoresBody(path: path[...]) == ignored)
    #expect(!ClusterSpec(uuid: "u", version: "2", servers: []).ignoresBody(path: path[...]))
}

@Test func stepModesRouteAsTheirUpgradeMode() {
    #expect(StepMode.concurrent(serve: .old).upgradeMode == .concurrent)
    #expect(StepMode.concurrent(serve: .new).upgradeMode == .concurrent)
    #expect(StepMode.gradual(percent: 5).upgradeMode == .gradual)
    #expect(StepMode.instant.upgradeMode == .instant)
}
