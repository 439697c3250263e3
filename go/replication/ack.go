//go:build !proglog_unsafe_ack_before_commit

package replication

// ackBeforeCommit is false in every real build. The fault tests
// (tools/faulttest) build a variant with the tag
// proglog_unsafe_ack_before_commit, in which it is true (ack_unsafe.go),
// to prove that their checker catches a server that acknowledges a produce
// before Raft commits it.
const ackBeforeCommit = false
