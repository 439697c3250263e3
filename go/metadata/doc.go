// Package metadata holds a proglog cluster's metadata: its nodes and its
// topics, each topic's partitions and the nodes that hold each partition's
// replicas, and the consumer groups with their committed offsets. It is the state machine of the cluster's metadata Raft group
// (docs/architecture.md, "Metadata: a Raft group of its own"), kept apart
// from the partitions' own groups and never gossiped.
//
// The package is deterministic and has no I/O: State changes only by
// Apply of a Command, and every replica that applies the same commands in
// the same order holds the same State (the tests check this by encoding
// two replicas' states). Decisions that need a choice, such as where a new
// topic's replicas go, are made by the proposer with Place before the
// command is proposed, and the command carries the result; Apply only
// validates it against the state it applies to, so a command proposed
// against a state that changed meanwhile (a node removed, a topic created
// twice) is refused as that command's result on every replica alike.
// Package go/metadata/group runs it: the Raft group, membership, the
// proposals and the controller.
//
// Errors are this package's sentinels; those that mean what a
// go/commitlog topic error means wrap it (ErrUnknownTopic,
// ErrUnknownPartition, ErrTopicExists, ErrInvalidTopic,
// ErrNotEnoughNodes), so the API server maps them without importing this
// package.
//
// # Replicas
//
// A topic is created with 1 to ReplicationFactor replicas per partition
// (fewer only when the cluster has fewer nodes: the default topic at
// bootstrap) and OpReassign changes one replica at a time, as a
// partition's Raft group changes one server at a time: it adds one node,
// removes one, or reorders, and leaves 1 to ReplicationFactor+1 replicas
// (one above while a replacement catches up). A replacement is added
// with Adding naming it; it stays in Partition.Adding until
// OpReplicaReady reports it caught up at that epoch, and only then does
// the controller drop the replica it replaces. A node marked leaving
// (OpLeaveNode, with the time) gets no new replicas; OpReturnNode undoes
// that for a node that came back, and OpRemoveNode forgets a node that
// holds no replica.
//
// # Leader hints
//
// OpLeaders records, per partition, the leader its group's leaders
// report (Partition.Leader, in Raft term Partition.LeaderTerm), so that
// every node can name the leaders of partitions it does not host. A hint
// applies only with a term above the recorded one, for the topic's
// current creation and a leader holding a replica; others are ignored, not
// refused, since reports race reassignments and deletions. Hints never
// decide anything: a request sent to a node that no longer leads is
// answered with the real leader. One command holds at most
// MaxLeaderHints entries.
//
// # ACL rules
//
// State.ACLs are the access rules created at run time (go/auth evaluates
// them beside the policy file): OpCreateACLs adds rules, all or none, and
// OpDeleteACLs removes them (rules not held are ignored). The set is kept
// sorted and without duplicates, at most commitlog.MaxACLRules rules, each
// command 1 to commitlog.MaxACLRulesPerRequest of them; a rule's subject,
// object and action are 1 to commitlog.MaxACLFieldLen bytes of UTF-8
// without control characters (ACLRule.Validate). Refusals wrap
// ErrInvalidACL. Apply does not check that the action is one go/auth
// knows: the proposer does (go/metadata/group), so that replicas running
// binaries that know different actions (a rolling upgrade) still apply
// the same commands alike. State.ACLsChanged is the index of the last
// command that changed the set, so a node can tell a change of the rules
// from any other change.
//
// # Placement
//
// Place puts the R replicas of each partition of a new topic on R distinct
// nodes. For each partition in order it picks the preferred leader (the
// first replica) as the node with the fewest preferred leaderships among
// those a least-loaded replica set may include (at most the R-th smallest
// replica count), then the other replicas as the nodes with the fewest
// replicas, preferring racks the partition does not use yet, then the
// fewest leaderships. Ties are broken by a rotation that starts at a hash
// (FNV-1a) of the topic name plus the partition number over the nodes
// sorted by ID, so that topics created on an empty cluster do not all
// start on the same node. The loads are those of the State plus the
// partitions placed so far. So when topics are created one after another
// no node holds more than one replica more than another, and with one
// replication factor no node is preferred leader of more than two
// partitions more than another (TestPlaceSpreads). Replace picks the node
// to take over a replica from a node that is leaving: not a replica yet,
// a rack the others do not use, the fewest replicas, the lowest ID.
//
// # Consumer groups
//
// State.Groups holds the consumer groups (docs/architecture.md, "Consumer
// groups (issue 18) on top"; log.proto's protocol above JoinGroup): per
// group its Generation, its members (ID, client ID, subscribed topics,
// session timeout, the generation each acknowledged, its target
// partitions), the owner of each partition (Owners: at most one member
// by construction) and the committed offsets. Sessions are not state: the
// metadata leader keeps them (go/metadata/group) and proposes removals.
//
// OpJoinGroup adds a member, its ID chosen by the proposer (random) and
// carried in the command, or replaces a member's subscription; a new
// member or a changed subscription starts a new generation, and so does
// OpLeaveGroup removing members (a leave or expired sessions, several in
// one command) and a topic deletion that drops a subscription. Every new
// generation computes new targets and then hands every partition nobody
// owns to its target. A partition someone owns stays theirs until they
// acknowledge the group's current generation (OpAckGroup; an older one is
// only recorded), which releases the partitions they own outside their
// target to those partitions' targets, or until they are removed. A member
// reads only the partitions it owns and its target holds
// (GroupAssignment), so the partitions it is to give up leave its answer
// at once, and it keeps owning them, and may commit them, until it
// acknowledges. Refusals are go/commitlog's errors: ErrUnknownMember,
// *StaleGenerationError (a generation below the member's acknowledged
// one or above the group's), *NotOwnerError, *TooManyMembersError (the
// limit is the proposer's, in the command), ErrInvalidGroup, and
// ErrUnknownTopic for a subscription to a topic that does not exist.
//
// OpCommitOffsets carries the commits of several members (the
// coordinator coalesces concurrent ones); each applies all of its offsets
// or none, fenced by membership, generation and ownership, and a refused
// one makes Apply return a *CommitsError with every commit's result.
// Deleting a topic drops it from subscriptions, targets, owners and
// offsets; a group with neither members nor offsets is forgotten.
// Bounds: topics per member commitlog.MaxGroupTopics, offsets per commit
// commitlog.MaxCommitOffsets, members per group and groups the
// proposer's limits, carried in OpJoinGroup (ErrTooManyGroups wraps
// commitlog.ErrTooManyMembers, so the API answers RESOURCE_EXHAUSTED),
// and the cluster's own (see "Size").
//
// # Assignment
//
// The assignor is deterministic and runs per topic over the members
// subscribed to it, ordered by ID. With n partitions and k members each
// gets n/k or n/k+1 (balanced: counts differ by at most one per topic);
// the n mod k extra partitions go to the members currently targeting
// the most (ties by ID). Each member keeps the lowest of its current
// targets up to its count (sticky), and the partitions left go, lowest
// first, to the members below their count, in ID order. So a member
// joining takes partitions only from members above the new balance, and
// a member leaving gives its partitions to the others without moving any
// other partition (TestGroupSticky; balance: TestGroupsProperty).
//
// # Size
//
// FSM.Restore takes snapshots of up to 64 MiB, so the state is bounded
// below that by construction: Apply refuses a command that would take it
// past a limit of the whole cluster, and every field is bounded in
// length. The limits and the encoded size of one item of each kind at
// its largest (names at their length limit, numbers at their widest,
// text of characters JSON escapes; TestStateBudget measures them):
//
//	nodes                          MaxNodes                    1024 × 1.9 KB =  1.9 MiB
//	partitions of all topics       MaxClusterPartitions        8192 × 2.1 KB = 16.4 MiB
//	ACL rules                      commitlog.MaxACLRules       4096 × 1.6 KB =  6.1 MiB
//	consumer groups                MaxConsumerGroups          10000 × 330 B  =  3.1 MiB
//	(member, topic) subscriptions  MaxGroupSubscriptions      10000 × 1.3 KB = 12.0 MiB
//	(group, topic) entries         MaxGroupTopicEntries       10000 × 510 B  =  4.9 MiB
//	(group, topic, partition)      MaxGroupPartitionEntries   32768 × 107 B  =  3.3 MiB
//	worst case                                                                 47.7 MiB
//
// That is three quarters of the restore limit: TestStateBudget fails if a
// limit is raised past it.
//
// One group alone is bounded more tightly, so that its DescribeGroup and
// FetchOffsets answers fit one 4 MiB message (there is no paging; go/server's
// TestOneGroupsAnswersFitOneMessage sizes them): at most
// commitlog.MaxGroupSubscriptions (1024) subscriptions and
// commitlog.MaxGroupPartitions (4096) partitions, counted as above.
//
// A partition is counted with a topic of its own (a topic costs more than
// its partitions), a subscription with a member of its own (each member
// subscribes to one topic at least). A (group, topic) entry is a topic a
// group subscribes to, owns a partition of or has an offset of; a (group,
// topic, partition) entry a partition a member targets, owns or the group
// committed: every partition of each subscribed topic, plus those owned
// or committed outside the subscriptions (a member that changed its
// subscription owns its old partitions until it acknowledges; offsets
// stay until their topic is deleted). Commits never add an entry, since a
// member commits only partitions it owns: only joins grow the groups'
// counts, and a join that would pass one is refused with a
// *commitlog.LimitError naming it (RESOURCE_EXHAUSTED over the API;
// ErrTooManyGroups wraps it for MaxConsumerGroups); a join that grows no
// count is never refused for one. A topic beyond MaxClusterPartitions is
// refused with ErrInvalidTopic, a node beyond MaxNodes with
// ErrTooManyNodes; a node's ID is a nodeid name, its addresses and rack
// at most MaxNodeFieldLen bytes of text (IsText: UTF-8 without control
// characters), a member ID at most MaxMemberIDLen of a topic name's
// characters and a client ID text. Each group's counts are kept until the
// group changes, so a join costs one pass over the groups.
//
// # Encoding
//
// Commands and snapshots are JSON behind a one-byte version: metadata
// changes rarely and is small (topics and nodes, not records), and JSON
// keeps it readable in a debugger and in `proglog` output. It is written
// without HTML escaping, so text takes at most twice its length. Decoding
// rejects unknown versions and unknown fields (ErrBadEncoding); maps are
// encoded with sorted keys, so equal states encode to equal bytes.
package metadata
