package replication

import (
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// recordTable maps a record log's offsets to its entries: one point per
// records command entry stored (24 bytes each), in index and offset order.
// Entries whose command was proposed in another term than the entry's
// (refused by every FSM, see fsm.ApplyBatch) or that do not follow the
// previous point's records (the FSM stops at them) hold no records and get
// no point. Its methods are safe for concurrent use.
type recordTable struct {
	mu  sync.RWMutex
	pts []recordPoint
}

// recordPoint: entry index holds the records [first, first+count).
type recordPoint struct {
	index, first, count uint64
}

// add notes entry e if it is a records command that follows the table's
// last one (or the first one: after the log was reset or compacted, an
// entry's first offset says where the records start).
func (t *recordTable) add(e *raft.Log) {
	if e.Type != raft.LogCommand || !isRecords(e.Data) {
		return
	}
	c, _, err := decodeCommandHeader(e.Data)
	if err != nil || c.term != e.Term {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.pts); n > 0 {
		if p := t.pts[n-1]; e.Index <= p.index || c.first != p.first+p.count {
			return
		}
	}
	t.pts = append(t.pts, recordPoint{index: e.Index, first: c.first, count: c.count})
}

// lookup returns the entry holding offset and the record's position in it.
func (t *recordTable) lookup(offset uint64) (index, pos uint64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	i := sort.Search(len(t.pts), func(i int) bool { return t.pts[i].first+t.pts[i].count > offset })
	if i == len(t.pts) || t.pts[i].first > offset {
		return 0, 0, false
	}
	return t.pts[i].index, offset - t.pts[i].first, true
}

// holding returns the first entry holding a record at or above offset.
func (t *recordTable) holding(offset uint64) (index uint64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	i := sort.Search(len(t.pts), func(i int) bool { return t.pts[i].first+t.pts[i].count > offset })
	if i == len(t.pts) {
		return 0, false
	}
	return t.pts[i].index, true
}

// firstFrom returns the first offset held by an entry at or above index.
func (t *recordTable) firstFrom(index uint64) (offset uint64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	i := sort.Search(len(t.pts), func(i int) bool { return t.pts[i].index >= index })
	if i == len(t.pts) {
		return 0, false
	}
	return t.pts[i].first, true
}

// cutFrom forgets the entries at or above index.
func (t *recordTable) cutFrom(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.pts), func(i int) bool { return t.pts[i].index >= index })
	t.pts = t.pts[:i]
}

// cutBelow forgets the entries below index.
func (t *recordTable) cutBelow(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.pts), func(i int) bool { return t.pts[i].index >= index })
	t.pts = slices.Delete(t.pts, 0, i)
}
