// Package broker hosts the partition replicas the cluster's metadata
// assigns to a node, and serves them to the API server as a
// commitlog.Cluster (docs/architecture.md, "Many partitions").
//
// A Broker takes the node's ID and data directory, the metadata group
// (Metadata: the local copy of go/metadata's state with View and Changed,
// and the proposals CreateTopic, DeleteTopic and ReplicaReady that go
// through the group's leader), the per-group stream layers of the node's
// one port (StreamLayers), and a replication.Config template for every
// replica (timings, limits, sync, producers, disk watermark, PeerName,
// logger).
//
// # Reconciling
//
// One goroutine keeps the set of open replicas equal to what the local
// metadata assigns to this node: at New and whenever the metadata changes
// (and every RetryInterval while a replica fails to open) it closes the
// replicas no longer assigned — topic deleted, replica moved away — and
// deletes their data, then opens the newly assigned ones with
// replication.New. A partition at its creation assignment (epoch 0) is
// bootstrapped by each of its replicas with the identical configuration,
// every replica of the assignment as a voter (replication.Config's
// InitialServers); a replica added later (epoch above 0) starts empty and
// waits for the partition's leader to add it. A topic's retention
// (metadata.Retention), where set, replaces the template's
// Retention for its partitions.
//
// A replica being closed because it moved away, on the node that leads its
// partition, first adds the replicas now listed to the group, then closes:
// Close hands leadership to another voter, whose broker removes this node.
// Directories of topics deleted while no replica of them was open (the
// node was down) are removed too, but only when the local metadata has
// applied the topic's creation and no topic of that name has its creation
// index: a directory of a live topic not assigned here is left alone, since
// a lagging copy of the metadata (a node restarting) may not list its
// assignment yet.
//
// # Membership
//
// A second goroutine, on every metadata change, whenever a local replica
// becomes leader or opens, and every RetryInterval, reconciles the Raft
// configuration of each partition this node leads with the metadata's
// replica list: it adds the listed replicas that are not voters
// (replication.Log.Join; with PeerName a node is added only once it proved
// its identity on that group's stream layer, that is once it has the
// replica open), and once every listed replica is a voter removes the
// servers not listed (replication.Log.Leave). It never removes this node,
// so never the last server or the leader itself; see above for how a
// leader moves away. This is how the default topic grows to three
// replicas as nodes join, and how replicas move.
//
// A replica a reassignment added to take over from another
// (metadata.Partition.Adding) reports itself caught up with
// Metadata.ReplicaReady once it has applied every entry up to the
// configuration that made it a voter (it notes its last log index when it
// first sees itself a voter and waits until it has applied that far); the
// controller drops the replica it replaces only then. Reports run in the
// background, one at a time per replica, and are made again by a later
// pass until one succeeds; Metadata.ReplicaReady reaches the metadata
// leader wherever it is (go/agent: proposed here on the leader, else sent
// over log.v1.Internal by go/metadata/report).
//
// # Preferred leaders
//
// With a positive PreferredLeaderDelay, a third goroutine moves leadership
// back to each partition's preferred replica (the first of the metadata's
// replica list; placement spreads them over the nodes), as Kafka's auto
// leader rebalance does, with no RPC of its own. Every RetryInterval it
// looks at the partitions this node leads whose preferred replica is
// another node. Once that node is not leaving (nor gone from the
// metadata), its replica is a voter of the group at its metadata address
// and answers this leader's heartbeats (replication.Log.Reachable: a node
// down or restarting does not), and all of that has held for
// PreferredLeaderDelay, it calls replication.Log.TransferLeadership, which
// brings the replica's log up to date first and fails, leaving this node
// leader, if it does not catch up and win within an election timeout. The
// delay starts again whenever a condition stops holding, so a restarted
// node is handed leadership only after it has been back for the delay.
// Transfers run one at a time per node, in that goroutine; a failed one is
// tried again after PreferredLeaderDelay. PreferredLeaderDelay 0 turns
// this off: leadership stays where elections put it.
//
// # Serving
//
// Broker implements commitlog.Cluster. Partition returns the local replica
// (a replication.CommitLog), or commitlog.ErrUnknownTopic,
// commitlog.ErrUnknownPartition, commitlog.ErrUnavailable while the replica
// assigned here is not open yet, or a *commitlog.NotLeaderError naming the
// partition's first (preferred leader) replica and its API address when
// this node holds none. Topics describes topics from the local metadata
// with the replicas' API addresses and leader hints: this node's replica's
// view of the leader where it hosts one, else the metadata's hint
// (metadata.Partition.Leader). Every LeaderReportInterval a node reports
// the partitions it leads whose hint names another node or none, with its
// Raft term, in one Metadata.ReportLeaders call of at most
// metadata.MaxLeaderHints partitions (so at most one report per node per
// interval, whatever the number of leadership changes); a failed report
// is made again at the next interval. Hints never decide correctness: a
// request sent to a node that no longer leads is answered with the real
// leader.
// CreateTopic and DeleteTopic go through the metadata group (the default
// topic cannot be deleted). Replica returns a hosted replica and Hosted
// lists them (for operations and per-partition metrics); Ready reports
// whether every replica assigned here is open.
//
// # On disk
//
//	DataDir/meta/                                the metadata group (go/metadata)
//	DataDir/topics/<topic>/<created>/<partition>/ one partition replica (go/replication)
//
// created is the metadata index of the command that created the topic, so
// a topic deleted and created again under the same name gets a new
// directory and a new Raft group. Each path component stays within the
// 255-byte file name limit (topic names are at most 249 bytes); a
// <topic>-<created> component would not. CheckLayout, called by New,
// refuses a data directory of the single-log layout (raft/ and data/ at
// its top) with ErrOldLayout and a message naming the way out:
// `proglog consume --from 0 | proglog produce` into a new cluster.
//
// # Group IDs
//
// A partition's Raft group is named "t/<topic>/<created>/<partition>"
// (GroupID): at most 2 + 249 + 1 + 20 + 1 + 4 = 277 bytes, within the
// transport's MaxGroupIDLen of 512 (TestGroupIDFitsTransportBound).
package broker
