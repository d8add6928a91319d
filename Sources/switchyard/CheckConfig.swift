extension Launcher {
    /// `switchyard --check-config FILE [--no-resolve]`: validates the configuration as a start
    /// would (every field, and each host name resolved unless `resolve` is false). Prints one
    /// line and returns 0 when valid, 2 with the error otherwise.
    static func checkConfig(_ path: String, resolve: Bool) -> Int32 {
        do {
            let config = try loadConfig(path, resolve: resolve)
            let servers = config.clusters.reduce(0) { $0 + $1.servers.count }
            printOut("\(path): valid (\(config.clusters.count) cluster\(config.clusters.count == 1 ? "" : "s"), \(servers) server\(servers == 1 ? "" : "s")\(resolve ? "" : ", names not resolved"))")
            return 0
        } catch {
            printError("switchyard: \(path): \(error.description)")
            return 2
        }
    }
}
