import Foundation
import Reactor

/// Re-resolves backend names periodically on a thread of its own, so that a slow resolver
/// holds up neither the reactors nor the control plane; what changed is handed to `apply`
/// (which should run `ClusterRegistry.applyResolution` on the control-plane thread).
public enum AddressRefresher {
    /// Starts the thread: every `seconds`, `registry.resolveNames()`, then `apply` when some
    /// cluster's addresses changed. Runs for the life of the process.
    public static func start(every seconds: Double, registry: ClusterRegistry,
                             apply: @escaping @Sendable (AddressRefresh) -> Void) {
        _ = ReactorThread.start {
            while true {
                Thread.sleep(forTimeInterval: seconds)
                let refresh = registry.resolveNames()
                if !refresh.isEmpty { apply(refresh) }
            }
        }
    }
}
