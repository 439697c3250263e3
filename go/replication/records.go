package replication

import (
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// recordTable maps a record log's offsets to its entries. It is sparse and
// filled as it is used: one chunk per segment of the Raft log at open (any
// index range works; appends extend the last chunk), each known by its
// first records entry (read at open: segments are self-describing) and
// loaded — one 24-byte point per records entry of the chunk — the first
// time a lookup needs it. The last chunk is loaded at open, and stays
// loaded, for appends. Entries whose command was proposed in another term
// than the entry's (refused by every FSM, see fsm.ApplyBatch) or that do
// not follow the previous point's records (the FSM stops at them) get no
// point. Its methods are safe for concurrent use; scan, which reads the
// log, is called with mu held, so the store never calls the table while
// holding the lock its reads take.
type recordTable struct {
	mu     sync.Mutex
	chunks []recordChunk
	// last is the newest point (hasLast false if none).
	last    recordPoint
	hasLast bool
	// scan returns the points of the entries [from, to) (to 0: to the end),
	// read from the log.
	scan func(from, to uint64) ([]recordPoint, error)
}

// recordChunk covers the entries from base to the next chunk's base (the
// last one: to the end). pts holds every point once loaded, else at most
// the first one. from is the first offset held at or after base, in this
// chunk or a later one (the end of the records if none): non-decreasing
// along the chunks, for binary search.
type recordChunk struct {
	base   uint64
	loaded bool
	pts    []recordPoint
	from   uint64
}

// recordPoint: entry index holds the records [first, first+count).
type recordPoint struct {
	index, first, count uint64
}

func (p recordPoint) end() uint64 { return p.first + p.count }

// pointOf returns e's point if it is a records command of its own term.
func pointOf(e *raft.Log) (recordPoint, bool) {
	if e.Type != raft.LogCommand || !isRecords(e.Data) {
		return recordPoint{}, false
	}
	c, _, err := decodeCommandHeader(e.Data)
	if err != nil || c.term != e.Term {
		return recordPoint{}, false
	}
	return recordPoint{index: e.Index, first: c.first, count: c.count}, true
}

// reset makes the table that of a log whose chunks start at bases (the
// first one at the log's first index), reading each chunk's first point
// and the last chunk whole.
func (t *recordTable) reset(bases []uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.chunks, t.hasLast = nil, false
	for i, base := range bases {
		c := recordChunk{base: base}
		if i == len(bases)-1 {
			pts, err := t.scan(base, 0)
			if err != nil {
				return err
			}
			c.pts, c.loaded = pts, true
		} else if err := t.readFirst(&c, bases[i+1]); err != nil {
			return err
		}
		t.chunks = append(t.chunks, c)
	}
	return t.settle()
}

// readFirst sets the first point of unloaded chunk c, which ends before
// next: the first records entry from its base on.
func (t *recordTable) readFirst(c *recordChunk, next uint64) error {
	// Scanning the chunk stops at nothing short of its end; a chunk's
	// first records entry is normally its first entry, so read in steps.
	for from := c.base; from < next; {
		to := min(next, from+16)
		pts, err := t.scan(from, to)
		if err != nil {
			return err
		}
		if len(pts) > 0 {
			c.pts = pts[:1:1]
			return nil
		}
		from = to
	}
	c.pts = nil
	return nil
}

// settle recomputes from and last after the chunks changed. Callers hold
// mu.
func (t *recordTable) settle() error {
	t.hasLast = false
	for i := len(t.chunks) - 1; i >= 0 && !t.hasLast; i-- {
		if len(t.chunks[i].pts) == 0 {
			continue
		}
		if err := t.load(i); err != nil {
			return err
		}
		t.last, t.hasLast = t.chunks[i].pts[len(t.chunks[i].pts)-1], true
	}
	from := uint64(0)
	if t.hasLast {
		from = t.last.end()
	}
	for i := len(t.chunks) - 1; i >= 0; i-- {
		if len(t.chunks[i].pts) > 0 {
			from = t.chunks[i].pts[0].first
		}
		t.chunks[i].from = from
	}
	return nil
}

// load reads chunk i whole if it is not yet. Callers hold mu.
func (t *recordTable) load(i int) error {
	c := &t.chunks[i]
	if c.loaded {
		return nil
	}
	to := uint64(0)
	if i+1 < len(t.chunks) {
		to = t.chunks[i+1].base
	}
	pts, err := t.scan(c.base, to)
	if err != nil {
		return err
	}
	c.pts, c.loaded = pts, true
	return nil
}

// add notes entry e, just stored after every other, if it is a records
// command that follows the table's last one (or the first one: after the
// log was reset or compacted, an entry's first offset says where the
// records start).
func (t *recordTable) add(e *raft.Log) {
	p, ok := pointOf(e)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hasLast && (p.index <= t.last.index || p.first != t.last.end()) {
		return
	}
	if len(t.chunks) == 0 {
		t.chunks = []recordChunk{{base: p.index, loaded: true}}
	}
	c := &t.chunks[len(t.chunks)-1]
	c.pts = append(c.pts, p)
	t.last, t.hasLast = p, true
	if len(c.pts) == 1 {
		// The first point of the last chunk: the empty chunks before it
		// now lead to it. Nothing to load (the last chunk is loaded).
		_ = t.settle()
	}
}

// chunkOf returns the last chunk whose records start at or below offset,
// -1 if none. Callers hold mu.
func (t *recordTable) chunkOf(offset uint64) int {
	return sort.Search(len(t.chunks), func(i int) bool { return t.chunks[i].from > offset }) - 1
}

// lookup returns the entry holding offset and the record's position in it.
func (t *recordTable) lookup(offset uint64) (index, pos uint64, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.chunkOf(offset)
	if i < 0 {
		return 0, 0, false, nil
	}
	if err := t.load(i); err != nil {
		return 0, 0, false, err
	}
	pts := t.chunks[i].pts
	j := sort.Search(len(pts), func(j int) bool { return pts[j].end() > offset })
	if j == len(pts) || pts[j].first > offset {
		return 0, 0, false, nil
	}
	return pts[j].index, offset - pts[j].first, true, nil
}

// holding returns the first entry holding a record at or above offset.
func (t *recordTable) holding(offset uint64) (index uint64, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := max(t.chunkOf(offset), 0); i < len(t.chunks); i++ {
		if len(t.chunks[i].pts) == 0 {
			continue
		}
		if t.chunks[i].pts[0].end() > offset {
			return t.chunks[i].pts[0].index, true, nil
		}
		if err := t.load(i); err != nil {
			return 0, false, err
		}
		pts := t.chunks[i].pts
		if j := sort.Search(len(pts), func(j int) bool { return pts[j].end() > offset }); j < len(pts) {
			return pts[j].index, true, nil
		}
	}
	return 0, false, nil
}

// firstFrom returns the first offset held by an entry at or above index.
func (t *recordTable) firstFrom(index uint64) (offset uint64, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.chunks), func(i int) bool { return t.chunks[i].base > index }) - 1
	for i = max(i, 0); i < len(t.chunks); i++ {
		if len(t.chunks[i].pts) == 0 {
			continue
		}
		if t.chunks[i].pts[0].index >= index {
			return t.chunks[i].pts[0].first, true, nil
		}
		if err := t.load(i); err != nil {
			return 0, false, err
		}
		pts := t.chunks[i].pts
		if j := sort.Search(len(pts), func(j int) bool { return pts[j].index >= index }); j < len(pts) {
			return pts[j].first, true, nil
		}
	}
	return 0, false, nil
}

// cutFrom forgets the entries at or above index.
func (t *recordTable) cutFrom(index uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.chunks), func(i int) bool { return t.chunks[i].base >= index })
	t.chunks = t.chunks[:i]
	if i > 0 {
		if err := t.load(i - 1); err != nil {
			return err
		}
		c := &t.chunks[i-1]
		c.pts = c.pts[:sort.Search(len(c.pts), func(j int) bool { return c.pts[j].index >= index })]
	}
	return t.settle()
}

// cutBelow forgets the entries below index.
func (t *recordTable) cutBelow(index uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The chunk holding index, or the first after it.
	i := sort.Search(len(t.chunks), func(i int) bool { return t.chunks[i].base > index }) - 1
	if i < 0 {
		return nil
	}
	if err := t.load(i); err != nil {
		return err
	}
	c := &t.chunks[i]
	c.pts = slices.Delete(c.pts, 0, sort.Search(len(c.pts), func(j int) bool { return c.pts[j].index >= index }))
	c.base = index
	t.chunks = slices.Delete(t.chunks, 0, i)
	return t.settle()
}
