import Foundation
@testable import Admin
import Config
import Proxy
import Routing
import Syscalls
import Testing

/// Backend names resolved to every address and re-resolved: the address-set diff, the
/// registry's expansion of servers into addresses, and its refresh.
@Suite("Name resolution")
struct ResolverRegistryTests {
    static func address(_ text: String) -> SocketAddress { SocketAddress(host: text, port: 80)! }

    @Test("the address-set diff ignores order and names what came and went")
    func diff() {
        let a = Self.address("10.0.0.1"), b = Self.address("10.0.0.2"), c = Self.address("10.0.0.3")
        #expect(AddressDiff(old: [a, b], new: [b, a]).isEmpty)
        #expect(AddressDiff(old: [], new: []).isEmpty)
        let d = AddressDiff(old: [a, b], new: [b, c])
        #expect(d.added == [c])
        #expect(d.removed == [a])
        #expect(!d.isEmpty)
        #expect(AddressDiff(old: [a], new: []).removed == [a])
        // Same host, other port: another backend.
        #expect(!AddressDiff(old: [a], new: [SocketAddress(host: "10.0.0.1", port: 81)!]).isEmpty)
    }

    /// A hosts file in a fresh temporary path.
    static func hostsFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hosts-\(UUID().uuidString)").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func registry(hosts: String) -> ClusterRegistry {
        ClusterRegistry(reactors: 1, policy: RollbackPolicy(), resolver: NameResolver(hostsFile: hosts))
    }

    @Test("every address of a name is a backend, mapped to its configured server")
    func expansion() throws {
        let hosts = try Self.hostsFile("10.0.0.1 a.test\n10.0.0.2 a.test\n")
        let registry = Self.registry(hosts: hosts)
        let spec = ClusterSpec(uuid: "c", version: "1", servers: [ServerAddress(hostname: "10.0.0.9", port: 80),
                                                                  ServerAddress(hostname: "a.test", port: 80)])
        let cluster = try registry.load([spec]).clusters[0]
        #expect(cluster.addresses.map(\.description) == ["10.0.0.9:80", "10.0.0.1:80", "10.0.0.2:80"])
        #expect(cluster.addressServers == [0, 1, 1])
        #expect(cluster.firstAddress(ofServer: 1)?.description == "10.0.0.1:80")
        #expect(!cluster.unresolved)
        #expect(registry.refreshAddresses() == nil)
    }

    @Test("a changed name makes a new snapshot sharing state and health; a vanished name keeps its addresses")
    func refresh() throws {
        let hosts = try Self.hostsFile("10.0.0.1 a.test\n")
        let registry = Self.registry(hosts: hosts)
        let spec = ClusterSpec(uuid: "c", version: "1", servers: [ServerAddress(hostname: "a.test", port: 80)])
        let before = try registry.load([spec])
        let old = before.clusters[0]
        try Data("10.0.0.2 a.test\n10.0.0.3 a.test\n".utf8).write(to: URL(fileURLWithPath: hosts))
        let after = try #require(registry.refreshAddresses())
        #expect(after.generation == before.generation + 1)
        let new = after.clusters[0]
        #expect(new.addresses.map(\.description) == ["10.0.0.2:80", "10.0.0.3:80"])
        #expect(new !== old)
        #expect(new.health === old.health)
        #expect(new.state === old.state)
        #expect(new.sequence == old.sequence)
        #expect(registry.refreshAddresses() == nil)
        // The name no longer resolves (not in the file, not a real name): the addresses stay.
        try Data("10.0.0.2 other.invalid\n".utf8).write(to: URL(fileURLWithPath: hosts))
        #expect(registry.refreshAddresses() == nil)
        #expect(registry.snapshot.clusters[0].addresses.count == 2)
    }

    @Test("a lazy name holds its cluster pending until it resolves; a name that is not lazy is refused")
    func lazy() throws {
        let hosts = try Self.hostsFile("")
        let registry = Self.registry(hosts: hosts)
        let lazy = ClusterSpec(uuid: "c", version: "1", servers: [ServerAddress(hostname: "later.invalid", port: 80, lazy: true)])
        let cluster = try registry.load([lazy]).clusters[0]
        #expect(cluster.unresolved)
        #expect(cluster.addresses.isEmpty)
        #expect(cluster.health.isPending)
        #expect(registry.refreshAddresses() == nil)
        try Data("10.0.0.5 later.invalid\n".utf8).write(to: URL(fileURLWithPath: hosts))
        let ready = try #require(registry.refreshAddresses()).clusters[0]
        #expect(!ready.unresolved)
        #expect(ready.addresses.map(\.description) == ["10.0.0.5:80"])
        #expect(!ready.health.isPending)

        let strict = ClusterSpec(uuid: "d", version: "2", servers: [ServerAddress(hostname: "never.invalid", port: 80)])
        #expect(throws: RegistryError.self) { try registry.put(strict) }
    }
}
