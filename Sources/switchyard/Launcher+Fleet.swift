import Admin
import Config
import Fleet
import Observability

extension Launcher {
    /// The fleet's store for `"state": {"store": "etcd", …}` (endpoints were checked when
    /// the configuration was read).
    static func makeFleetStore(_ etcd: EtcdStateConfig) -> FleetStore {
        FleetStore(settings: FleetSettings(endpoints: etcd.endpoints.compactMap(EtcdEndpoint.init(url:)), prefix: etcd.prefix,
                                           instance: etcd.instance, leaseSeconds: etcd.leaseSeconds))
    }

    /// Logs where a fleet member's start-up state came from.
    static func logFleetStart(_ fleet: FleetStore, report: StartReport) {
        Log.notice("state_loaded", ["source": report.source == "state" ? "etcd" : "configuration file (etcd held no state yet)",
                                    "endpoints": fleet.settings.endpoints.map(\.description).joined(separator: ","),
                                    "prefix": fleet.settings.prefix, "instance": fleet.settings.instance,
                                    "revision": String(fleet.status.revision), "clusters": String(report.snapshot.clusters.count)])
    }
}
