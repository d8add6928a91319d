import Testing
import Upgrade

/// One of each message, with the descriptors it carries.
let samples: [HandoverMessage] = [
    .offer(.init(serial: 7, predecessorPID: 4242, proxyListeners: 2, adminListener: true, stateLock: true,
                 state: Array("{\"sequence\":3}".utf8), comparisons: [1, 2, 3])),
    .offer(.init(serial: 1, predecessorPID: 1, proxyListeners: 1, adminListener: false, stateLock: false, state: [])),
    .ready(pid: 99),
    .refused(reason: "config.json: clusters[0].version: missing"),
    .committed,
    .connections(clientAddresses: ["127.0.0.1", "::1", ""]),
    .finished(.init(handedOver: 12, finishedHere: 3, closedAtDeadline: 1)),
]

@Suite struct HandoverMessageTests {
    @Test(arguments: samples)
    func roundTrip(_ message: HandoverMessage) throws {
        let bytes = message.encoded()
        #expect(try HandoverMessage.decode(bytes, descriptors: message.descriptorCount) == message)
    }

    @Test func descriptorCountsFollowTheFields() {
        #expect(samples[0].descriptorCount == 4)
        #expect(samples[1].descriptorCount == 1)
        #expect(samples[5].descriptorCount == 3)
        #expect(HandoverMessage.committed.descriptorCount == 0)
    }

    @Test(arguments: samples)
    func wrongDescriptorCountIsRefused(_ message: HandoverMessage) {
        let bytes = message.encoded()
        #expect(throws: HandoverDecodeError.self) { try HandoverMessage.decode(bytes, descriptors: message.descriptorCount + 1) }
    }

    @Test func anotherProtocolVersionIsRefusedByName() {
        var bytes = HandoverMessage.ready(pid: 5).encoded()
        bytes[5] = 2
        do {
            _ = try HandoverMessage.decode(bytes, descriptors: 0)
            Issue.record("decoded a message of version 2")
        } catch {
            #expect(error.reason.contains("protocol version 2"))
            #expect(error.offset == 4)
        }
    }

    @Test(arguments: samples)
    func everyTruncationIsAnError(_ message: HandoverMessage) {
        let bytes = message.encoded()
        for cut in 0..<bytes.count {
            #expect(throws: HandoverDecodeError.self) { try HandoverMessage.decode(Array(bytes[0..<cut]), descriptors: message.descriptorCount) }
        }
        #expect(throws: HandoverDecodeError.self) { try HandoverMessage.decode(bytes + [0], descriptors: message.descriptorCount) }
    }

    @Test func oversizedFieldsAreRefused() {
        // An offer announcing a 4 GiB state blob, with nothing behind it.
        var bytes = HandoverMessage.offer(.init(serial: 1, predecessorPID: 1, proxyListeners: 1, adminListener: false,
                                                stateLock: false, state: [])).encoded()
        let stateLength = 4 + 2 + 1 + 2 + 8 + 4 + 2 + 1 + 1
        bytes.replaceSubrange(stateLength..<(stateLength + 4), with: [0xff, 0xff, 0xff, 0xff])
        #expect(throws: HandoverDecodeError.self) { try HandoverMessage.decode(bytes, descriptors: 1) }
        // A flag that is neither 0 nor 1.
        var flag = HandoverMessage.offer(.init(serial: 1, predecessorPID: 1, proxyListeners: 1, adminListener: false,
                                               stateLock: false, state: [])).encoded()
        flag[stateLength - 1] = 7
        #expect(throws: HandoverDecodeError.self) { try HandoverMessage.decode(flag, descriptors: 1) }
    }

    /// Garbage and mutated messages: every input decodes or throws, none crashes, and what
    /// decodes encodes back to the same bytes (the format has one spelling per message).
    @Test func garbageNeverCrashes() {
        var rng = SplitMix(seed: 0x5eed)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if round % 4 == 0 && bytes.count >= 4 { bytes.replaceSubrange(0..<4, with: Array("SYHO".utf8)) }
            } else {
                bytes = samples[Int(rng.next() % UInt64(samples.count))].encoded()
                for _ in 0..<(1 + Int(rng.next() % 3)) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            let descriptors = Int(rng.next() % 5)
            if let message = try? HandoverMessage.decode(bytes, descriptors: descriptors) {
                decoded += 1
                #expect(message.descriptorCount == descriptors)
                if case .refused = message { continue }  // invalid UTF-8 is repaired on decode
                if case .connections = message { continue }
                #expect(message.encoded() == bytes)
            }
        }
        #expect(decoded < 20_000)
    }
}

/// A small deterministic generator for the garbage test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ComparisonCountsTests {
    @Test func roundTripAndGarbage() throws {
        let counts = ComparisonCounts(total: 12, divergent: 2, fallbacks: 1,
                                      pairs: [.init(old: "a", new: "b", compared: 12, divergent: 2, fallbacks: 1),
                                              .init(old: "", new: "uuid with spaces", compared: 0, divergent: 0, fallbacks: 0)])
        let bytes = counts.encoded()
        #expect(try ComparisonCounts(encoded: bytes) == counts)
        #expect(try ComparisonCounts(encoded: []) == ComparisonCounts())
        for cut in 1..<bytes.count {
            #expect(throws: HandoverDecodeError.self) { try ComparisonCounts(encoded: Array(bytes[0..<cut])) }
        }
        var rng = SplitMix(seed: 7)
        for _ in 0..<5000 {
            var mutated = bytes
            mutated[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            _ = try? ComparisonCounts(encoded: mutated)
        }
    }
}
