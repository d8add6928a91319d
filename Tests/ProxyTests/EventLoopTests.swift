import Glibc
import Reactor
import Syscalls
import Testing

/// The reactor driven one turn at a time with real sockets.
@Suite("Event loop")
struct EventLoopTests {
    final class Recorder: EventHandler, DeadlineHandler {
        var events: [(Int32, EpollEvents)] = []
        var sweepIndex = -1
        var deadlineChecks = 0
        func handleEvent(fd: Int32, events: EpollEvents) { self.events.append((fd, events)) }
        func checkDeadline(now: UInt64) { deadlineChecks += 1 }
    }

    @Test("a registered socket reports readability once per edge")
    func edges() throws {
        let loop = try EventLoop(id: 0)
        let pair = SocketPair()
        defer { pair.close() }
        let recorder = Recorder()
        try loop.register(pair.a, handler: recorder)
        loop.runOnce(timeoutMillis: 0)
        #expect(recorder.events.count == 1)          // writable on registration
        recorder.events.removeAll()
        put(pair.b, "x")
        loop.runOnce(timeoutMillis: 100)
        #expect(recorder.events.count == 1)
        #expect(recorder.events.first?.1.contains(.readable) == true)
        recorder.events.removeAll()
        loop.runOnce(timeoutMillis: 0)               // edge-triggered: no repeat while unread
        #expect(recorder.events.isEmpty)
    }

    @Test("a late event for a closed and reused descriptor number is dropped")
    func generations() throws {
        let loop = try EventLoop(id: 0)
        let pair = SocketPair()
        let old = Recorder()
        try loop.register(pair.a, handler: old)
        put(pair.b, "x")
        loop.unregister(pair.a)
        loop.runOnce(timeoutMillis: 0)
        #expect(old.events.isEmpty)
        pair.close()
    }

    @Test("tasks from other threads run on the loop; stop ends run()")
    func mailbox() throws {
        let loop = try EventLoop(id: 0)
        let ran = Box()
        let thread = ReactorThread.start { loop.run() }
        loop.execute { ran.value = 1; loop.stop() }
        ReactorThread.join(thread)
        #expect(ran.value == 1)
    }

    @Test("deadline handlers are swept; removal during the sweep is safe")
    func sweep() throws {
        let loop = try EventLoop(id: 0)
        let a = Recorder(), b = Recorder()
        loop.addToSweep(a)
        loop.addToSweep(b)
        #expect(loop.sweepCount == 2)
        let deadline = Clock.nanoseconds() + 3 * EventLoop.sweepInterval
        while a.deadlineChecks == 0 && Clock.nanoseconds() < deadline { loop.runOnce(timeoutMillis: 20) }
        #expect(a.deadlineChecks > 0 && b.deadlineChecks > 0)
        loop.removeFromSweep(a)
        #expect(loop.sweepCount == 1)
        #expect(a.sweepIndex == -1)
    }

    final class Box: @unchecked Sendable { var value = 0 }
}
