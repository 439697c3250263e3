// Package group runs the metadata Raft group (docs/architecture.md,
// "Metadata: a Raft group of its own"): one Group per node replicates
// go/metadata's State through hashicorp/raft, takes the topic proposals
// on the group's leader, and runs the controller and the consumer-group
// coordinator there. Package metadata stays the deterministic state
// machine without I/O; this package is its runtime.
//
// # Storage and transport
//
// The group's Raft traffic uses the node's one port like every other
// group: Config.StreamLayer is the stream layer replication.Transport
// gives group RaftGroup ("meta"). With Config.PeerName it is wrapped with
// the peer checks a partition's Log makes (replication.GuardStreamLayer):
// only members send Raft requests, each naming the node its connection
// proved.
//
// Config.DataDir (the broker passes <node DataDir>/meta) holds log/ (the
// Raft log: go/replication's LogStore over go/seglog, each entry fsynced
// before it counts as stored), stable (term and vote: go/replication's
// two-slot StableStore) and snapshots/ (raft's FileSnapshotStore; a
// snapshot is the encoded State). A restart restores the latest snapshot
// and replays the log after it.
//
// # Membership
//
// The node with Config.Bootstrap and no state starts the group as its
// only voter. Join and Leave implement discovery.Handler and act on the
// group's leader only (elsewhere they return *commitlog.NotLeaderError,
// which discovery logs at debug level). Join adds a node to the Raft
// configuration after it proved its identity at its address
// (Config.PeerName, replication.VerifyPeer): as a voter while the group
// has fewer than Config.ControllerVoters voters and the node may vote
// (discovery's voter tag), else as a non-voter, so every node holds the
// metadata locally. A member stays as it is, but a non-voter that may vote
// is promoted by its next Join (discovery's periodic Reconcile) while a
// voter's place is free. Join then registers the node
// (metadata.OpRegisterNode; its address is both its API and Raft address:
// one port) and, if it was leaving, brings it back (OpReturnNode: a node
// restarting within ReplacementDelay keeps its replicas). Leave marks the
// node leaving (OpLeaveNode, at the leader's clock) and removes it from
// the Raft configuration.
//
// # Proposals
//
// CreateTopic validates the topic, places it with metadata.Place against
// the current state's nodes that may take replicas, and proposes
// OpCreateTopic; DeleteTopic proposes OpDeleteTopic and refuses the
// default topic (commitlog.DefaultTopic); Reassign and ReplicaReady
// propose OpReassign and OpReplicaReady; ReportLeaders proposes a
// partition leader's hints (OpLeaders, at most metadata.MaxLeaderHints
// entries, one command, well within MaxCommandBytes; never used for
// correctness). Decisions and their proposals
// are serialised, so each is decided against the state the previous one
// left. A command larger than Config.MaxCommandBytes is refused before it
// reaches Raft (ErrCommandTooLarge; for CreateTopic also
// metadata.ErrInvalidTopic), since the leader's LogStore would fail it. Errors are metadata's sentinels, which wrap go/commitlog's
// (errors.Is(err, commitlog.ErrTopicExists) holds), and on a node that is
// not the leader a *commitlog.NotLeaderError naming the leader's ID and
// API address.
//
// # ACL rules
//
// Group implements commitlog.ACLs: CreateACLs and DeleteACLs propose
// metadata.OpCreateACLs and OpDeleteACLs on the leader (a
// *commitlog.NotLeaderError elsewhere), after checking on any node the
// number of rules (commitlog.MaxACLRulesPerRequest), their shape
// (metadata.ACLRule.Validate) and, for CreateACLs, that each action is
// one of Config.ACLActions (go/auth's, which the agent passes: the state
// machine does not check actions, see go/metadata); Rules answers from
// this node's copy. Config.OnACLs is how the node learns of the rules:
// called in Open with those of the restored snapshot, so a restarted node
// has its rules before it serves, then from one goroutine each time its
// copy's rules change (metadata.State.ACLsChanged moves).
//
// # Controller
//
// One goroutine per Group follows Raft's leadership notifications. While
// the node leads, after a barrier (every entry of earlier terms applied),
// it takes the first step the rules call for, proposes it, and repeats
// until no rule applies; then it waits for a change of the state, a
// leadership change or Config.ControllerInterval. A step that fails
// (leadership lost, a refused command) is retried at the next interval.
// The rules, in order:
//
//  1. The leader registers itself (its API and Raft address), which also
//     registers the bootstrap node.
//  2. The default topic is created if it does not exist: 1 partition
//     wanting Config.DefaultTopicReplicationFactor replicas (3), placed
//     on as many of the nodes there are (1 at bootstrap).
//  3. For each partition, topics by name, unless a replica is still being
//     added (Partition.Adding):
//     a. if a replica is on a node leaving for at least
//     Config.ReplacementDelay (Node.LeavingSince, so a new leader keeps
//     counting from the same time): if the partition has more replicas
//     than its factor, the leaving one is dropped (its replacement
//     caught up); else a replacement chosen by metadata.Replace is added
//     right after it, as Adding, so that it takes its place in the
//     preference order; the partition's leader adds it to its group and
//     reports it caught up (ReplicaReady), and the next step drops the
//     leaving one. With no node to replace it, the leaving replica is
//     dropped (unless it is the partition's only one);
//     b. else, if the partition has fewer replicas than its factor (the
//     default topic on a cluster that started small, or after a drop),
//     a replica is added on the node metadata.Replace picks.
//  4. A leaving node that holds no replica is removed (OpRemoveNode).
//
// Every step is one command that changes one replica, and every command
// names the partition's epoch, so a step decided against a state that
// changed meanwhile is refused by every replica alike and decided again.
//
// A node that is not the metadata leader reaches it over log.v1.Internal
// (go/metadata/report sends, go/server serves, go/agent wires both): its
// ReplicaReady arrives there as the leader's own proposal.
//
// # Consumer groups
//
// Group.Groups returns the Coordinator, which implements
// commitlog.Groups (go/agent passes it to go/server as Config.Groups);
// the state and its rules are go/metadata's ("Consumer groups").
//
// JoinGroup, Heartbeat, LeaveGroup and CommitOffsets need the leader
// (elsewhere a *commitlog.NotLeaderError naming it) and, once per Raft
// term, a barrier, so that a new leader answers from every entry of the
// earlier terms. Their answers are read from the leader's state after
// their own entry applied. A new member's ID is 128 random bits in hex,
// chosen here and carried in OpJoinGroup with the limits
// Config.MaxGroupMembers and Config.MaxGroups (at most
// metadata.MaxConsumerGroups); the state's own cluster-wide limits
// (go/metadata, "Size") refuse a join with a *commitlog.LimitError. A
// join whose client ID the state would refuse (not text) is refused
// without an entry. A join repeating a member's
// subscription, client ID and session timeout, and a heartbeat naming
// the generation the member acknowledged already, only renew the session:
// no Raft entry. A heartbeat naming a newer generation proposes
// OpAckGroup. FetchOffsets, ListGroups and DescribeGroup answer from this
// node's copy.
//
// Sessions are in-memory deadlines on the leader, valid for one Raft
// term: a join or heartbeat renews its member's to now plus its session
// timeout; every Config.SessionCheckInterval the leader starts a session
// (now plus the timeout) for every member it has none of, and proposes one
// OpLeaveGroup per group of the members whose deadline passed. A new
// leader (a new term) so starts every session afresh and never reads
// another node's timers; a member whose leader failed keeps at least its
// session timeout from the new leader's first check. Time is the Config
// clock, which the tests drive.
//
// A commit the leader's state refuses (metadata.State.CheckCommit: such
// refusals are final) is refused without an entry. The others go
// through one proposer: one OpCommitOffsets entry in flight,
// and the commits arriving meanwhile wait to go together into the next
// (up to 1024, or half of MaxCommandBytes by an estimate of their
// encoding). Each caller gets its own commit's result (the FSM's
// *metadata.CommitsError says which commits were refused), once the entry
// is applied on the leader, which Raft does only after a majority of the
// voters stored it: an acknowledged commit is in every later leader's
// state (TestGroupsLeaderChange; go/agent's TestConsumerGroupsOverTheCluster
// stops the leader). A caller whose context ends first gets an error that
// says the commit may still be applied.
// docs/benchmarks.md, "Consumer-group commits", measures it.
//
// Not done here: preferred-leader balancing; a node that fails without
// leaving is noticed only when discovery reaps it and calls Leave.
package group
