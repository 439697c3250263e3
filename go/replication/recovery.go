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
	// RecoveryDataLogSetAside: the data log was corrupt, moved aside and
	// rebuilt from the snapshot and the Raft log.
	RecoveryDataLogSetAside = "data_log_set_aside"
	// RecoveryDivergedTailCut: the data log's tail held records of Raft
	// entries this node's Raft log and latest snapshot do not hold; it
	// was cut off and kept in a side directory (DataLogCut).
	RecoveryDivergedTailCut = "diverged_tail_cut"
)

// Recovery is what New repaired while opening the replica's logs; it is
// empty after a clean shutdown. A corrupt Raft log is never repaired: New
// fails with an error wrapping seglog.ErrCorrupt, since dropping entries this
// node acknowledged could break Raft's guarantees.
type Recovery struct {
	// RaftLog and DataLog list the segments of the Raft log and of the
	// data log whose index was rebuilt or whose torn tail was cut off.
	RaftLog, DataLog []seglog.SegmentRecovery
	// DataLogSetAside is the directory the corrupt data log was moved
	// to, or "".
	DataLogSetAside string
	// DataLogCut is the tail cut off the data log (Records 0 if none).
	DataLogCut DataLogCut
}

// RecoveryAction is one repair, for logs and metrics.
type RecoveryAction struct {
	Log string // "raft" or "data"
	// RecoveryIndexRebuilt, RecoveryTornTailCut, RecoveryDataLogSetAside
	// or RecoveryDivergedTailCut.
	Action string
	// Fields are key-value pairs describing it (segment, reason, bytes
	// cut, side file...).
	Fields []any
}

// Actions lists every repair, Raft log first.
func (r Recovery) Actions() []RecoveryAction {
	var out []RecoveryAction
	for _, lg := range []struct {
		name string
		segs []seglog.SegmentRecovery
	}{{"raft", r.RaftLog}, {"data", r.DataLog}} {
		for _, s := range lg.segs {
			if s.IndexRebuilt {
				out = append(out, RecoveryAction{lg.name, RecoveryIndexRebuilt,
					[]any{"base_offset", s.BaseOffset, "reason", s.IndexReason}})
			}
			if s.TruncatedBytes > 0 {
				out = append(out, RecoveryAction{lg.name, RecoveryTornTailCut,
					[]any{"base_offset", s.BaseOffset, "bytes", s.TruncatedBytes, "reason", s.TruncateReason, "kept_in", s.TornPath}})
			}
		}
	}
	if r.DataLogSetAside != "" {
		out = append(out, RecoveryAction{"data", RecoveryDataLogSetAside, []any{"moved_to", r.DataLogSetAside}})
	}
	if c := r.DataLogCut; c.Records > 0 {
		out = append(out, RecoveryAction{"data", RecoveryDivergedTailCut,
			[]any{"from_offset", c.From, "records", c.Records, "reason", c.Reason, "kept_in", c.KeptIn}})
	}
	return out
}

// log reports every repair at WARN (openFSM and checkedFSM report a data
// log they set aside or cut when they do so, at ERROR).
func (r Recovery) log(lg hclog.Logger) {
	for _, a := range r.Actions() {
		if a.Action != RecoveryDataLogSetAside && a.Action != RecoveryDivergedTailCut {
			lg.Warn("recovery: "+a.Action, append([]any{"log", a.Log}, a.Fields...)...)
		}
	}
}

// Recovery returns what New repaired while opening the logs.
func (l *Log) Recovery() Recovery { return l.recovery }
