import Glibc
import Syscalls
import Testing
import Upgrade

/// Real descriptors over a real SOCK_SEQPACKET pair: what arrives is a working copy.
@Suite struct DescriptorChannelTests {
    @Test func descriptorsArriveAndWork() throws {
        let (a, b) = try DescriptorChannel.pair()
        defer { close(a); close(b) }
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        let message = HandoverMessage.connections(clientAddresses: ["127.0.0.1"])
        try DescriptorChannel.send(a, bytes: message.encoded(), descriptors: [pipeFDs[1]])
        close(pipeFDs[1])
        let received = try #require(try DescriptorChannel.receive(b))
        #expect(received.descriptors.count == 1)
        #expect(try HandoverMessage.decode(received.bytes, descriptors: received.descriptors.count) == message)
        // The received copy writes into the same pipe.
        let copy = received.descriptors[0]
        #expect(fcntl(copy, F_GETFD) & FD_CLOEXEC != 0)
        var byte: UInt8 = 42
        #expect(write(copy, &byte, 1) == 1)
        close(copy)
        var got: UInt8 = 0
        #expect(read(pipeFDs[0], &got, 1) == 1)
        #expect(got == 42)
        close(pipeFDs[0])
    }

    @Test func manyDescriptorsInOneMessageAndEndOfStream() throws {
        let (a, b) = try DescriptorChannel.pair()
        defer { close(b) }
        let fds = (0..<200).map { _ in dup(0) }
        try DescriptorChannel.send(a, bytes: [1, 2, 3], descriptors: fds)
        for fd in fds { close(fd) }
        close(a)
        #expect(DescriptorChannel.waitReadable(b, timeoutMillis: 1000))
        let received = try #require(try DescriptorChannel.receive(b))
        #expect(received.bytes == [1, 2, 3])
        #expect(received.descriptors.count == 200)
        for fd in received.descriptors { close(fd) }
        #expect(try DescriptorChannel.receive(b) == nil)
    }

    @Test func listeningSocketsAreRecognised() throws {
        let address = try #require(SocketAddress(host: "127.0.0.1", port: 0))
        let listener = try Socket.listen(address, reusePort: true)
        defer { close(listener) }
        #expect(DescriptorChannel.isListeningSocket(listener))
        #expect(!DescriptorChannel.isListeningSocket(0))
    }

    @Test func waitReadableTimesOut() throws {
        let (a, b) = try DescriptorChannel.pair()
        defer { close(a); close(b) }
        #expect(!DescriptorChannel.waitReadable(b, timeoutMillis: 10))
    }
}
