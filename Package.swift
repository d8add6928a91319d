// swift-tools-version:6.1
// Switchyard: a zero-downtime upgrade reverse proxy on Linux epoll.
// Layers (lower never imports higher):
//   CLinux ← Syscalls ← Reactor ← Proxy ← Admin ← switchyard
//   COpenSSL (the system's OpenSSL 3) ← TLS (its one safe surface) ← Proxy
//   Store (the durable control-plane state: journal + snapshot) ← Admin
//   Fleet (etcd client, leader election, shared state of several instances) ← Admin
//   HTTP1, Routing, Observability: pure modules without sockets.
//   Upgrade (the self-upgrade hand-over protocol and state machine: pure, no dependencies) ← switchyard
//   Rollout (staged plans and analysis gates: a state machine as data, no dependencies)
//     ← Routing (a cluster's plan is part of its ClusterSpec) ← Config ← Store
import PackageDescription

/// Hot-path modules skip the run-time exclusivity checks in release builds: they showed up
/// as ~2-3 % of the proxy's CPU per request (swift_beginAccess, AccessSet::insert and TLS
/// look-ups). Debug builds, and so the test suite, keep them.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Switchyard",
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
        .executable(name: "switchyard-bench", targets: ["LoadGen"]),
    ],
    targets: [
        .target(name: "CLinux"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "TLS", dependencies: ["COpenSSL", "Syscalls"]),
        .target(name: "Locks"),
        .target(name: "Syscalls", dependencies: ["CLinux"], swiftSettings: hotPath),
        .target(name: "Reactor", dependencies: ["Syscalls", "CLinux", "Locks"], swiftSettings: hotPath),
        .target(name: "HTTP1", swiftSettings: hotPath),
        .target(name: "Rollout"),
        .target(name: "Routing", dependencies: ["Locks", "Rollout"]),
        .target(name: "Observability", swiftSettings: hotPath),
        .target(name: "Comparator", dependencies: ["Locks"]),
        .target(name: "Config", dependencies: ["Routing", "Rollout"]),
        .target(name: "Proxy", dependencies: ["Reactor", "Syscalls", "TLS", "HTTP1", "Routing", "Observability", "Comparator", "Locks"], swiftSettings: hotPath),
        .target(name: "Store", dependencies: ["Config", "Routing", "Rollout"]),
        .target(name: "Fleet", dependencies: ["Syscalls", "HTTP1", "Config", "Store", "Routing", "Rollout", "Locks", "Observability"]),
        .target(name: "Admin", dependencies: ["Fleet", "Proxy", "Config", "Store", "Comparator", "Locks", "HTTP1", "Routing", "Observability", "Syscalls", "Reactor", "Rollout", "TLS"]),
        .target(name: "Upgrade"),
        .executableTarget(name: "switchyard", dependencies: ["Fleet", "Admin", "Store", "Proxy", "Config", "Comparator", "Observability", "Routing", "HTTP1", "TLS", "Upgrade"]),
        .target(name: "BenchCore", dependencies: ["Reactor", "Syscalls", "HTTP1", "Comparator", "TLS"], path: "Benchmarks/BenchCore"),
        .executableTarget(name: "LoadGen", dependencies: ["BenchCore"], path: "Benchmarks/LoadGen"),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"], exclude: ["Corpus"]),
        .testTarget(name: "RoutingTests", dependencies: ["Routing", "Rollout"]),
        .testTarget(name: "RolloutTests", dependencies: ["Rollout"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Routing", "Rollout"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Config", "Routing", "Rollout"]),
        .testTarget(name: "AdminTests", dependencies: ["Admin", "Store", "Proxy", "Routing", "Config", "Rollout", "Observability"]),
        .testTarget(name: "FleetTests", dependencies: ["Fleet", "Store", "Config", "Routing", "Rollout"]),
        .testTarget(name: "ComparatorTests", dependencies: ["Comparator"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "Syscalls"]),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Reactor", "Syscalls"]),
        .testTarget(name: "ObservabilityTests", dependencies: ["Observability"]),
        .testTarget(name: "UpgradeTests", dependencies: ["Upgrade", "Syscalls"]),
        .testTarget(name: "BenchCoreTests", dependencies: ["BenchCore", "switchyard"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Syscalls", "switchyard"]),
        .testTarget(name: "CtlTests", dependencies: ["switchyard"]),
    ]
)
