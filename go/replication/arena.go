package replication

// arenaKeepBytes bounds the buffer an arena keeps between uses, so that a
// burst of large batches does not pin its memory.
const arenaKeepBytes = 4 << 20

// arena packs the encodings of one call (the entries of a StoreLogs) into
// one reused buffer: no allocation per entry, and none per call once the
// buffer has grown. Not safe for concurrent use; the slices it returns are
// valid until the next reset.
type arena struct {
	buf  []byte
	ends []int    // end of each encoding in buf
	out  [][]byte // the encodings, built by slices
}

func (a *arena) reset() {
	if cap(a.buf) > arenaKeepBytes {
		a.buf = nil
	}
	a.buf = a.buf[:0]
	a.ends = a.ends[:0]
	clear(a.out) // do not keep the previous call's data reachable
	a.out = a.out[:0]
}

// add records buf[previous end:] as the next encoding.
func (a *arena) add() { a.ends = append(a.ends, len(a.buf)) }

// slices returns the encodings added since reset.
func (a *arena) slices() [][]byte {
	a.out = a.out[:0]
	begin := 0
	for _, end := range a.ends {
		a.out = append(a.out, a.buf[begin:end:end])
		begin = end
	}
	return a.out
}
