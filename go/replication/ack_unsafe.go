//go:build proglog_unsafe_ack_before_commit

package replication

// ackBeforeCommit makes AppendBatch acknowledge a record as soon as the
// leader has handed it to Raft, before a quorum stored it, and with an
// offset guessed from the records handed over so far. It is wrong on
// purpose: only the fault tests' negative check builds it (see ack.go).
const ackBeforeCommit = true
