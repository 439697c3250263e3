package history

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// segments is how many segments split makes of the history Check would
// give porcupine.
func segments(ops []Op, finals []Final) int {
	c := &checker{ops: ops, finals: finals, dup: make(map[string]struct{}), probs: problems{count: make(map[string]int)}}
	c.pickReference()
	c.indexValues()
	c.checkFinals()
	c.checkAppends()
	c.checkReads()
	hist, open, row := c.porcupineHistory()
	return len(split(hist, open, row))
}

// corrupt returns a copy of ops with one random change that may make it
// non-linearizable: a read's result flipped or moved to another offset, an
// operation moved in time, or an Unknown append called later.
func corrupt(rng *rand.Rand, ops []Op, log []string) []Op {
	ops = append([]Op(nil), ops...)
	op := &ops[rng.IntN(len(ops))]
	shift := time.Duration(rng.IntN(4000)-2000) * time.Microsecond
	switch rng.IntN(4) {
	case 0:
		if op.Kind != Read || op.Outcome != OK {
			break
		}
		if op.Found {
			op.Found, op.Value = false, ""
		} else if op.Offset < uint64(len(log)) {
			op.Found, op.Value = true, log[op.Offset]
		}
	case 1:
		if op.Kind == Read && op.Outcome == OK {
			op.Offset = uint64(max(0, int(op.Offset)+rng.IntN(5)-2))
		}
	case 2:
		op.Call, op.Return = op.Call.Add(shift), op.Return.Add(shift)
	case 3:
		if op.Outcome == Unknown && shift > 0 {
			op.Call = op.Call.Add(shift)
			op.Return = op.Return.Add(shift)
		}
	}
	return ops
}

// TestSplitKeepsVerdicts checks split against porcupine on the whole
// history, over many small random histories, valid and corrupted, with
// ties in time and Unknown appends.
func TestSplitKeepsVerdicts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var illegal, legal, splitIllegal int
	for i := range 3000 {
		g := gen{procs: 2 + rng.IntN(3), ops: 5 + rng.IntN(40), maxBatch: 3, unknownPct: 20, gap: rng.IntN(3000), dur: 1 + rng.IntN(1000)}
		if i%3 == 0 { // times a few µs apart: many ties between calls and returns
			g.gap, g.dur = rng.IntN(3), 1+rng.IntN(3)
		}
		h := g.run(rng)
		ops := h.ops
		for range rng.IntN(3) {
			ops = corrupt(rng, ops, h.log)
		}
		finals := same(h.log...)
		whole := Check(ops, nil, finals, Options{noSplit: true})
		parts := Check(ops, nil, finals, Options{})
		n := segments(ops, finals)
		if whole.Linearizable != parts.Linearizable {
			var b strings.Builder
			for j, op := range ops {
				fmt.Fprintf(&b, "%d: p%d %s %s call=%v ret=%v off=%d found=%v value=%q values=%v\n",
					j, op.Process, op.Kind, op.Outcome, op.Call.Sub(t0), op.Return.Sub(t0), op.Offset, op.Found, op.Value, op.Values)
			}
			t.Fatalf("history %d: whole %s, split into %d segments %s; log %v\n%s", i, whole.Linearizable, n, parts.Linearizable, h.log, b.String())
		}
		switch {
		case whole.Linearizable == "Illegal" && n > 1:
			splitIllegal++
			illegal++
		case whole.Linearizable == "Illegal":
			illegal++
		default:
			legal++
		}
	}
	t.Logf("%d linearizable, %d not (%d of them split)", legal, illegal, splitIllegal)
	if legal < 500 || splitIllegal < 200 {
		t.Errorf("too few cases: %d linearizable, %d not linearizable and split", legal, splitIllegal)
	}
}
