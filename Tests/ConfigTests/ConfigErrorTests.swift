import Testing
@testable import Config

@Test func errorDescriptionNamesTheField() {
    let e = ConfigError(field: "cluster.servers[1].port", message: "must be an integer between 1 and 65535")
    #expect(e.description == "cluster.servers[1].port: must be an integer between 1 and 65535")
}
