package history

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Consumer groups. A group's members process the records of a topic's
// partitions and commit, per partition, the offset of the next record the
// group has to process. The contract (proto/log/v1/log.proto, above
// JoinGroup) is at-least-once: every record is processed, none is skipped,
// a commit the cluster acknowledged is never lost nor overtaken by a lower
// one; records may be processed more than once (re-deliveries after a
// member died before committing them).

// Processed is one record a group member's Next returned, which the
// member then processed.
type Processed struct {
	Consumer int // the member's consumer instance (a new one per member added)
	// Member is the member ID the group knew it by while Next returned
	// the record ("" when it rejoined during the call: unknown).
	Member    string
	Partition uint32
	Offset    uint64
	Value     string
	At        time.Time
}

// Commit is one CommitOffsets position the cluster acknowledged.
type Commit struct {
	Member       string
	Generation   uint64
	Partition    uint32
	Offset       uint64
	Call, Return time.Time
}

// GroupRecorder collects a group's processed records and acknowledged
// commits from many goroutines. The zero value is ready to use.
type GroupRecorder struct {
	mu        sync.Mutex
	processed []Processed
	commits   []Commit
}

// AddProcessed records p. One consumer instance's records are added in
// the order its Next returned them.
func (r *GroupRecorder) AddProcessed(p Processed) {
	r.mu.Lock()
	r.processed = append(r.processed, p)
	r.mu.Unlock()
}

// AddCommit records c.
func (r *GroupRecorder) AddCommit(c Commit) {
	r.mu.Lock()
	r.commits = append(r.commits, c)
	r.mu.Unlock()
}

// Processed returns a copy of the processed records recorded so far.
func (r *GroupRecorder) Processed() []Processed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.processed)
}

// Commits returns a copy of the commits recorded so far.
func (r *GroupRecorder) Commits() []Commit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.commits)
}

// GroupPartition is what CheckGroup knows of one partition of the group's
// topic at the end of a run.
type GroupPartition struct {
	Partition uint32
	// Log is the partition's final log (the reference: every value from
	// offset 0); Acked the appends acknowledged in it (OK appends of its
	// history; the others are ignored).
	Log   []string
	Acked []Op
	// Final is the group's committed offset at the end; HasFinal false
	// when it committed nothing.
	Final    uint64
	HasFinal bool
}

// GroupResult is what CheckGroup found. The counts named "must be 0" are
// contract violations.
type GroupResult struct {
	Processed, Commits int // records processed (re-deliveries included), commits acknowledged
	// Redelivered is how many processings were of an offset processed
	// before: allowed (at least once), reported.
	Redelivered int
	// Unprocessed: acknowledged records never processed. Must be 0.
	Unprocessed int
	// Skipped: offsets of the final log, from 0 to its end, that no
	// member processed (acknowledged or not). Must be 0.
	Skipped int
	// CommitAhead: acknowledged commits of offset X made before every
	// offset below X was processed (the group would skip them if that
	// member died). Must be 0.
	CommitAhead int
	// CommitRegressed: acknowledged commits lower than one acknowledged
	// before they were sent, same partition. Must be 0.
	CommitRegressed int
	// CommitLost: partitions whose final committed offset is below an
	// acknowledged commit. Must be 0.
	CommitLost int
	// Order: a member's Next returning an offset at or below one it
	// returned before of the same partition, under the same member ID.
	// Must be 0.
	Order int
	// Dirty: processed records whose value is not the final log's at
	// their offset (or beyond its end). Must be 0.
	Dirty int
	// Problems are examples of each kind of violation.
	Problems []string
}

// OK reports whether every must-be-0 count is 0.
func (r GroupResult) OK() bool {
	return r.Unprocessed == 0 && r.Skipped == 0 && r.CommitAhead == 0 && r.CommitRegressed == 0 &&
		r.CommitLost == 0 && r.Order == 0 && r.Dirty == 0
}

// String summarises r on one line.
func (r GroupResult) String() string {
	return fmt.Sprintf("processed=%d (re-delivered %d) commits=%d; unprocessed=%d skipped=%d commit-ahead=%d commit-regressed=%d commit-lost=%d order=%d dirty=%d",
		r.Processed, r.Redelivered, r.Commits, r.Unprocessed, r.Skipped, r.CommitAhead, r.CommitRegressed, r.CommitLost, r.Order, r.Dirty)
}

// CheckGroup checks a consumer group's history (its members' processed
// records and acknowledged commits, every partition's) against its topic's
// partitions at the end of a run, after the final members drained them
// (every partition's committed offset at its end). The group read from
// offset 0 (StartEarliest on a new topic), so every offset of a final log
// must have been processed.
func CheckGroup(processed []Processed, commits []Commit, parts []GroupPartition) GroupResult {
	r := GroupResult{Processed: len(processed), Commits: len(commits)}
	problem := func(n *int, format string, args ...any) {
		*n++
		if *n <= maxProblemsPerKind {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	byPart := map[uint32][]Processed{}
	for _, p := range processed {
		byPart[p.Partition] = append(byPart[p.Partition], p)
	}
	commitsOf := map[uint32][]Commit{}
	for _, c := range commits {
		commitsOf[c.Partition] = append(commitsOf[c.Partition], c)
	}
	for _, gp := range parts {
		pid := gp.Partition
		// first[o]: when offset o was first processed (zero: never).
		first := make([]time.Time, len(gp.Log))
		type memberPart struct {
			consumer int
			member   string
		}
		last := map[memberPart]uint64{}
		for _, p := range byPart[pid] {
			if p.Offset >= uint64(len(gp.Log)) || gp.Log[p.Offset] != p.Value {
				problem(&r.Dirty, "dirty: partition %d offset %d: member %s processed %q, the log holds %s", pid, p.Offset, p.Member, p.Value, valueAt(gp.Log, p.Offset))
				continue
			}
			switch f := first[p.Offset]; {
			case f.IsZero():
				first[p.Offset] = p.At
			case p.At.Before(f):
				r.Redelivered++
				first[p.Offset] = p.At
			default:
				r.Redelivered++
			}
			if p.Member != "" {
				k := memberPart{p.Consumer, p.Member}
				if prev, ok := last[k]; ok && p.Offset <= prev {
					problem(&r.Order, "order: partition %d: member %s returned offset %d after %d", pid, p.Member, p.Offset, prev)
				}
				last[k] = p.Offset
			}
		}
		for o, f := range first {
			if f.IsZero() {
				problem(&r.Skipped, "skipped: partition %d offset %d (%q) never processed", pid, o, gp.Log[o])
			}
		}
		for _, op := range gp.Acked {
			if op.Kind != Append || op.Outcome != OK {
				continue
			}
			for i, v := range op.Values {
				if o := op.Offset + uint64(i); o >= uint64(len(first)) || first[o].IsZero() {
					problem(&r.Unprocessed, "unprocessed: partition %d offset %d (%q, acknowledged) never processed", pid, o, v)
				}
			}
		}
		// covered[x]: when every offset below x had been processed (zero:
		// not yet).
		covered := make([]time.Time, len(first)+1)
		covered[0] = time.Unix(0, 0)
		for o, f := range first {
			if covered[o].IsZero() || f.IsZero() {
				break
			}
			covered[o+1] = later(covered[o], f)
		}
		cs := commitsOf[pid]
		var maxAcked uint64
		for _, c := range cs {
			maxAcked = max(maxAcked, c.Offset)
			if c.Offset >= uint64(len(covered)) || covered[c.Offset].IsZero() || covered[c.Offset].After(c.Return) {
				problem(&r.CommitAhead, "commit ahead: partition %d: member %s committed %d (acknowledged %s) before every offset below it was processed",
					pid, c.Member, c.Offset, c.Return.Format(time.StampMicro))
			}
		}
		// Monotonic: a commit sent after another was acknowledged is
		// never lower. Walk the commits by call time, keeping the highest
		// offset acknowledged before each call.
		byReturn := slices.SortedFunc(slices.Values(cs), func(a, b Commit) int { return a.Return.Compare(b.Return) })
		byCall := slices.SortedFunc(slices.Values(cs), func(a, b Commit) int { return a.Call.Compare(b.Call) })
		var high *Commit
		j := 0
		for _, c := range byCall {
			for ; j < len(byReturn) && byReturn[j].Return.Before(c.Call); j++ {
				if high == nil || byReturn[j].Offset > high.Offset {
					high = &byReturn[j]
				}
			}
			if high != nil && c.Offset < high.Offset {
				problem(&r.CommitRegressed, "commit regressed: partition %d: member %s committed %d after member %s's commit of %d was acknowledged",
					pid, c.Member, c.Offset, high.Member, high.Offset)
			}
		}
		if len(cs) > 0 && (!gp.HasFinal || gp.Final < maxAcked) {
			problem(&r.CommitLost, "commit lost: partition %d: committed %s at the end, %d was acknowledged", pid, finalText(gp), maxAcked)
		}
	}
	return r
}

func valueAt(log []string, o uint64) string {
	if o >= uint64(len(log)) {
		return fmt.Sprintf("nothing (it ends at %d)", len(log))
	}
	return fmt.Sprintf("%q", log[o])
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func finalText(gp GroupPartition) string {
	if !gp.HasFinal {
		return "nothing"
	}
	return fmt.Sprint(gp.Final)
}
