import Testing
import Upgrade

let second: UInt64 = 1_000_000_000

@Suite struct UpgradeMachineTests {
    @Test func successfulUpgradeRunsToExit() {
        var m = UpgradeMachine(serial: 4, readyTimeoutNanos: 10 * second, drainNanos: 300 * second)
        #expect(m.handle(.requested(now: 100)) == [.startSuccessor(serial: 5)])
        #expect(m.isBusy)
        #expect(m.handle(.spawned(pid: 77)) == [])
        #expect(m.handle(.tick(now: 100 + 9 * second)) == [])
        #expect(m.handle(.successorReady(now: 100 + 2 * second)) == [.commit(serial: 5)])
        #expect(m.handle(.tick(now: 100 + 60 * second)) == [])
        #expect(m.handle(.drained(now: 100 + 3 * second)) == [.exit(serial: 5, readyAfterNanos: 2 * second, drainedAfterNanos: second)])
        #expect(m.state == .exited)
        #expect(m.handle(.requested(now: 100 + 4 * second)) == [.refuse(reason: "this process has handed over and is exiting")])
    }

    @Test func secondRequestIsRefusedWhileOneRuns() {
        var m = UpgradeMachine()
        _ = m.handle(.requested(now: 0))
        #expect(m.handle(.requested(now: 1)) == [.refuse(reason: "an upgrade is already in progress")])
        _ = m.handle(.successorReady(now: 2))
        #expect(m.handle(.requested(now: 3)) == [.refuse(reason: "an upgrade is already in progress")])
    }

    /// Every way the successor can fail leaves the process serving, and the next attempt
    /// gets the next serial.
    @Test(arguments: [UpgradeMachine.Event.spawnFailed(reason: "no such file"),
                      .successorRefused(reason: "bad config"),
                      .successorExited(reason: "exited with status 2")])
    func failuresGoBackToServing(_ failure: UpgradeMachine.Event) {
        var m = UpgradeMachine()
        _ = m.handle(.requested(now: 0))
        let actions = m.handle(failure)
        #expect(actions.count == 1)
        guard case .abandon(let serial, _)? = actions.first else { Issue.record("expected abandon, got \(actions)"); return }
        #expect(serial == 1)
        #expect(m.state == .serving)
        #expect(m.handle(.requested(now: 5)) == [.startSuccessor(serial: 2)])
    }

    @Test func successorNotReadyInTimeIsAbandoned() {
        var m = UpgradeMachine(readyTimeoutNanos: 10 * second)
        _ = m.handle(.requested(now: second))
        #expect(m.handle(.tick(now: 10 * second)) == [])
        #expect(m.handle(.tick(now: 11 * second)) == [.abandon(serial: 1, reason: "the new process was not ready within 10 s")])
        #expect(m.state == .serving)
        // The successor that finally says ready is ignored: the attempt is over.
        #expect(m.handle(.successorReady(now: 12 * second)) == [])
    }

    @Test func drainTimeClosesWhatRemains() {
        var m = UpgradeMachine(drainNanos: 300 * second)
        _ = m.handle(.requested(now: 0))
        _ = m.handle(.successorReady(now: second))
        #expect(m.handle(.tick(now: 300 * second)) == [])
        #expect(m.handle(.tick(now: 301 * second)) == [.closeRemaining, .exit(serial: 1, readyAfterNanos: second, drainedAfterNanos: 300 * second)])
        // A successor exiting after the commit is no longer this process's business.
        #expect(m.handle(.successorExited(reason: "late")) == [])
    }

    @Test func strayEventsWhileServingChangeNothing() {
        var m = UpgradeMachine()
        for event in [UpgradeMachine.Event.tick(now: 1), .successorReady(now: 1), .drained(now: 1), .spawned(pid: 3),
                      .successorExited(reason: "x")] {
            #expect(m.handle(event) == [])
            #expect(m.state == .serving)
        }
    }
}
