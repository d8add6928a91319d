/// Leader election among the instances of a fleet, as data: the instance that creates the
/// leader key (a transaction on `create_revision == 0`) tied to its lease leads until the
/// key goes away, which happens at once when it revokes its lease and within the lease's TTL
/// when it dies. The machine does no I/O: the fleet's session thread feeds it what it saw
/// of etcd and performs the actions it returns.
public struct Election: Equatable, Sendable {
    /// What this instance is.
    public enum Role: Equatable, Sendable {
        /// Not talking to etcd (at start, or after a failure): neither leads nor follows.
        case offline
        /// Another instance leads (nil: nobody is known to lead yet).
        case follower(leader: String?)
        /// This instance leads.
        case leader
    }

    /// What the driver must do.
    public enum Action: Equatable, Sendable {
        /// Ask etcd for a lease (none is held).
        case grantLease
        /// Try to create the leader key with the lease.
        case campaign(lease: Int64)
        /// This instance now leads: drive the rollouts.
        case lead
        /// This instance stops leading (another leads, or its lease is gone): stop driving.
        case stepDown
    }

    /// This instance's name (the leader key's value when it leads).
    public let instance: String
    public private(set) var role: Role = .offline
    /// The lease held, if any.
    public private(set) var lease: Int64?

    public init(instance: String) { self.instance = instance }

    /// etcd answered: ask for a lease when none is held.
    public mutating func connected() -> [Action] {
        if case .offline = role { role = .follower(leader: nil) }
        return lease == nil ? [.grantLease] : []
    }

    /// A lease was granted: campaign unless someone else is known to lead.
    public mutating func leaseGranted(_ id: Int64) -> [Action] {
        lease = id
        if case .follower(let leader) = role, leader == nil { return [.campaign(lease: id)] }
        return []
    }

    /// The leader key as read or watched: its holder, nil when there is none.
    public mutating func observed(leader: String?) -> [Action] {
        switch (role, leader) {
        case (.offline, _):
            return []
        case (.leader, instance?):
            return []
        case (.leader, nil):
            // Our key vanished (our lease expired): stop at once, then try again.
            role = .follower(leader: nil)
            return [.stepDown] + (lease.map { [.campaign(lease: $0)] } ?? [.grantLease])
        case (.leader, let other?):
            role = .follower(leader: other)
            return [.stepDown]
        case (.follower, nil):
            role = .follower(leader: nil)
            return lease.map { [.campaign(lease: $0)] } ?? []
        case (.follower, instance?):
            // Our own key (a campaign whose answer was lost, or read back after a restart
            // with the same lease): we lead.
            role = .leader
            return [.lead]
        case (.follower, let other?):
            role = .follower(leader: other)
            return []
        }
    }

    /// A campaign's outcome: won, or lost to `holder`.
    public mutating func campaigned(won: Bool, holder: String?) -> [Action] {
        if won { return observed(leader: instance) }
        return observed(leader: holder ?? "?")
    }

    /// The lease expired (a keep-alive found it gone): whatever was held under it is gone.
    public mutating func leaseLost() -> [Action] {
        lease = nil
        let wasLeader = role == .leader
        if case .offline = role { return [] }
        role = .follower(leader: nil)
        return (wasLeader ? [.stepDown] : []) + [.grantLease]
    }

    /// etcd cannot be reached: stop leading at once (the lease may expire unseen; another
    /// instance may lead within its TTL) and keep the lease id to try again.
    public mutating func disconnected() -> [Action] {
        let wasLeader = role == .leader
        role = .offline
        return wasLeader ? [.stepDown] : []
    }
}
