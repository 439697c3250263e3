package replication

import (
	"github.com/hashicorp/go-hclog"

	"github.com/proglog/proglog/go/seglog"
)

// Recovery actions (RecoveryAction.Action).
const (
	// RecoveryIndexRebuilt: a segment's index was rebuilt from its store
	// (it was not closed cleanly).
	RecoveryIndexRebuilt = "index_rebuilt"
	// RecoveryTornTailCut: a torn write was cut off the end of a log and
	// kept in a side file (segment.TornPath).
	RecoveryTornTailCut = "torn_tail_cut"
)

// Recovery is what New repaired while opening the replica's Raft log; it
// is empty after a clean shutdown. A corrupt Raft log is never repaired:
// New fails with an error wrapping seglog.ErrCorrupt, since dropping
// entries this node acknowledged could break Raft's guarantees.
type Recovery struct {
	// RaftLog lists the segments of the Raft log whose index was rebuilt
	// or whose torn tail was cut off.
	RaftLog []seglog.SegmentRecovery
}

// RecoveryAction is one repair, for logs and metrics.
type RecoveryAction struct {
	Log string // "raft"
	// RecoveryIndexRebuilt or RecoveryTornTailCut.
	Action string
	// Fields are key-value pairs describing it (segment, reason, bytes
	// cut, side file...).
	Fields []any
}

// Actions lists every repair.
func (r Recovery) Actions() []RecoveryAction {
	var out []RecoveryAction
	for _, s := range r.RaftLog {
		if s.IndexRebuilt {
			out = append(out, RecoveryAction{"raft", RecoveryIndexRebuilt,
				[]any{"base_offset", s.BaseOffset, "reason", s.IndexReason}})
		}
		if s.TruncatedBytes > 0 {
			out = append(out, RecoveryAction{"raft", RecoveryTornTailCut,
				[]any{"base_offset", s.BaseOffset, "bytes", s.TruncatedBytes, "reason", s.TruncateReason, "kept_in", s.TornPath}})
		}
	}
	return out
}

// log reports every repair at WARN.
func (r Recovery) log(lg hclog.Logger) {
	for _, a := range r.Actions() {
		lg.Warn("recovery: "+a.Action, append([]any{"log", a.Log}, a.Fields...)...)
	}
}

// Recovery returns what New repaired while opening the logs.
func (l *Log) Recovery() Recovery { return l.recovery }
