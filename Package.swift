// swift-tools-version:6.1
// Switchyard: a zero-downtime upgrade reverse proxy on Linux epoll.
// Layers (lower never imports higher):
//   CLinux ← Syscalls ← Reactor ← Proxy ← Admin ← switchyard
//   HTTP1, Routing, Observability: pure modules without sockets.
import PackageDescription

let package = Package(
    name: "Switchyard",
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
        .executable(name: "switchyard-bench", targets: ["LoadGen"]),
    ],
    targets: [
        .target(name: "CLinux"),
        .target(name: "Syscalls", dependencies: ["CLinux"]),
        .target(name: "Reactor", dependencies: ["Syscalls", "CLinux"]),
        .target(name: "HTTP1"),
        .target(name: "Routing"),
        .target(name: "Observability"),
        .target(name: "Comparator"),
        .target(name: "Config", dependencies: ["Routing"]),
        .target(name: "Proxy", dependencies: ["Reactor", "Syscalls", "HTTP1", "Routing", "Observability", "Comparator"]),
        .target(name: "Admin", dependencies: ["Proxy", "Config", "Comparator", "HTTP1", "Routing", "Observability", "Syscalls", "Reactor"]),
        .executableTarget(name: "switchyard", dependencies: ["Admin", "Proxy", "Config", "Comparator", "Observability", "Routing"]),
        .target(name: "BenchCore", dependencies: ["Reactor", "Syscalls", "HTTP1"], path: "Benchmarks/BenchCore"),
        .executableTarget(name: "LoadGen", dependencies: ["BenchCore"], path: "Benchmarks/LoadGen"),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"], exclude: ["Corpus"]),
        .testTarget(name: "RoutingTests", dependencies: ["Routing"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Routing"]),
        .testTarget(name: "ComparatorTests", dependencies: ["Comparator"]),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Reactor", "Syscalls"]),
        .testTarget(name: "BenchCoreTests", dependencies: ["BenchCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Syscalls", "switchyard"]),
    ]
)
