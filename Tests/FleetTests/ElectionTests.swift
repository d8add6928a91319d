import Testing
@testable import Fleet

/// Leader election as data: events in, actions out, no etcd.
@Suite struct ElectionTests {
    @Test func firstInstanceGetsALeaseCampaignsAndLeads() {
        var e = Election(instance: "a")
        #expect(e.role == .offline)
        #expect(e.connected() == [.grantLease])
        #expect(e.leaseGranted(7) == [.campaign(lease: 7)])
        #expect(e.campaigned(won: true, holder: "a") == [.lead])
        #expect(e.role == .leader)
        // Reading our own key back changes nothing.
        #expect(e.observed(leader: "a") == [])
        #expect(e.connected() == [])
    }

    @Test func anInstanceThatLosesTheCampaignFollowsAndTakesOverWhenTheKeyGoes() {
        var e = Election(instance: "b")
        _ = e.connected()
        #expect(e.leaseGranted(8) == [.campaign(lease: 8)])
        #expect(e.campaigned(won: false, holder: "a") == [])
        #expect(e.role == .follower(leader: "a"))
        #expect(e.observed(leader: "a") == [])
        // The leader died: its lease expired and took the key with it.
        #expect(e.observed(leader: nil) == [.campaign(lease: 8)])
        #expect(e.campaigned(won: true, holder: "b") == [.lead])
        #expect(e.role == .leader)
    }

    @Test func aFollowerThatKnowsTheLeaderDoesNotCampaignOnItsLease() {
        var e = Election(instance: "b")
        _ = e.connected()
        #expect(e.observed(leader: "a") == [])
        #expect(e.leaseGranted(9) == [])
        #expect(e.role == .follower(leader: "a"))
    }

    @Test func aLeaderWhoseLeaseExpiresStepsDownAndStartsOver() {
        var e = Election(instance: "a")
        _ = e.connected()
        _ = e.leaseGranted(7)
        _ = e.campaigned(won: true, holder: "a")
        #expect(e.leaseLost() == [.stepDown, .grantLease])
        #expect(e.lease == nil)
        #expect(e.role == .follower(leader: nil))
        #expect(e.leaseGranted(10) == [.campaign(lease: 10)])
    }

    @Test func aLeaderThatSeesAnotherHolderStepsDown() {
        var e = Election(instance: "a")
        _ = e.connected()
        _ = e.leaseGranted(7)
        _ = e.campaigned(won: true, holder: "a")
        #expect(e.observed(leader: "c") == [.stepDown])
        #expect(e.role == .follower(leader: "c"))
        // Its key vanishing while it leads: step down, then campaign again with its lease.
        var f = Election(instance: "a")
        _ = f.connected(); _ = f.leaseGranted(7); _ = f.campaigned(won: true, holder: "a")
        #expect(f.observed(leader: nil) == [.stepDown, .campaign(lease: 7)])
    }

    @Test func losingEtcdStopsLeadingAtOnceAndReconnectingReadsTheKeyAgain() {
        var e = Election(instance: "a")
        _ = e.connected(); _ = e.leaseGranted(7); _ = e.campaigned(won: true, holder: "a")
        #expect(e.disconnected() == [.stepDown])
        #expect(e.role == .offline)
        #expect(e.observed(leader: "a") == [])   // offline: nothing is decided
        #expect(e.disconnected() == [])
        // Back: the lease is kept; our key survived the outage, so we lead again.
        #expect(e.connected() == [])
        #expect(e.observed(leader: "a") == [.lead])
    }
}
