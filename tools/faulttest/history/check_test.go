package history

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus ms milliseconds: the tests' clock.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// hist builds a synthetic history.
type hist struct{ ops []Op }

// ok records an acknowledged append of values at offset off.
func (h *hist) ok(proc, call, ret int, off uint64, values ...string) {
	h.ops = append(h.ops, Op{Process: proc, Node: "n1", Kind: Append, Call: at(call), Return: at(ret), Outcome: OK, Offset: off, Values: values})
}

// amb records an append with outcome Unknown or Failed.
func (h *hist) amb(proc, call, ret int, outcome Outcome, values ...string) {
	h.ops = append(h.ops, Op{Process: proc, Node: "n1", Kind: Append, Call: at(call), Return: at(ret), Outcome: outcome, Err: "deadline exceeded", Values: values})
}

// read records an OK read of off that found value ("" means not found).
func (h *hist) read(proc, call, ret int, off uint64, value string) {
	h.ops = append(h.ops, Op{Process: proc, Node: "n2", Kind: Read, Call: at(call), Return: at(ret), Outcome: OK, Offset: off, Found: value != "", Value: value})
}

// same gives three nodes the same final log.
func same(values ...string) []Final {
	return []Final{{"n1", values}, {"n2", values}, {"n3", values}}
}

// mentions fails unless some problem of the kind contains every word.
func mentions(t *testing.T, r Result, kind string, words ...string) {
	t.Helper()
	for _, p := range r.Problems {
		if !strings.HasPrefix(p, kind+":") {
			continue
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(p, w)
		}
		if all {
			return
		}
	}
	t.Errorf("no %s problem mentions %q; problems:\n%s", kind, words, strings.Join(r.Problems, "\n"))
}

// want compares the counts that a test cares about.
func want(t *testing.T, r Result, okWant bool, counts map[string][2]int) {
	t.Helper()
	for name, c := range counts {
		if c[0] != c[1] {
			t.Errorf("%s = %d, want %d", name, c[0], c[1])
		}
	}
	if r.OK() != okWant {
		t.Errorf("OK() = %v, want %v", r.OK(), okWant)
	}
	if t.Failed() {
		t.Logf("result: %v\nproblems:\n%s", r, strings.Join(r.Problems, "\n"))
	}
}

func TestCheckCleanConcurrentHistory(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(1, 5, 15, 1, "b0", "b1")   // overlaps a0
	h.read(2, 2, 8, 0, "a0")        // sees a0 before its append returned
	h.read(3, 3, 12, 1, "")         // concurrent with b: may miss it
	h.amb(0, 20, 30, Unknown, "u0") // took effect, at offset 3
	h.ok(1, 25, 40, 4, "c0")
	h.amb(2, 22, 50, Unknown, "x0") // did not take effect
	h.amb(3, 41, 42, Failed, "f0")
	h.read(3, 45, 47, 4, "c0")
	h.read(2, 55, 60, 3, "u0")
	h.read(4, 60, 61, 5, "")
	h.ops = append(h.ops, Op{Process: 4, Node: "n3", Kind: Read, Call: at(62), Return: at(63), Outcome: Failed, Offset: 0})
	final := []string{"a0", "b0", "b1", "u0", "c0"}
	sessions := []Session{
		{Consumer: 0, Node: "n1", From: 0, Deliveries: []Delivery{{0, "a0", at(11)}, {1, "b0", at(16)}, {2, "b1", at(16)}, {3, "u0", at(41)}, {4, "c0", at(41)}}},
		{Consumer: 1, Node: "n2", From: 2, Deliveries: []Delivery{{2, "b1", at(20)}, {3, "u0", at(31)}}},
	}

	r := Check(h.ops, sessions, same(final...), Options{})
	want(t, r, true, map[string][2]int{
		"Ops":                {r.Ops, 12},
		"Appends":            {r.Appends, 6},
		"Reads":              {r.Reads, 6},
		"Acked":              {r.Acked, 4},
		"AckedOps":           {r.AckedOps, 3},
		"UnknownPresent":     {r.UnknownPresent, 1},
		"UnknownAbsent":      {r.UnknownAbsent, 2}, // x0 and the failed f0
		"Deliveries":         {r.Deliveries, 7},
		"LinearizabilityOps": {r.LinearizabilityOps, 9}, // 3 OK appends + u0 + 5 OK reads
		"Lost":               {r.Lost, 0},
		"Phantom":            {r.Phantom, 0},
	})
	if r.Linearizable != porcupine.Ok {
		t.Errorf("Linearizable = %s, want Ok", r.Linearizable)
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems in a clean history:\n%s", strings.Join(r.Problems, "\n"))
	}
}

func TestCheckLostWhenNodesWiped(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(0, 20, 30, 1, "a1")
	h.ok(0, 40, 50, 2, "a2")
	// Two of three nodes lost their disks after a2 was committed on them:
	// the longest survivor lacks a2.
	finals := []Final{{"n1", []string{"a0"}}, {"n2", []string{"a0", "a1"}}, {"n3", []string{"a0", "a1"}}}
	r := Check(h.ops, nil, finals, Options{})
	want(t, r, false, map[string][2]int{
		"Lost":    {r.Lost, 1},
		"Missing": {r.Missing, 1}, // n1 lacks a1
		"Acked":   {r.Acked, 3},
	})
	mentions(t, r, "lost", `"a2"`, "offset 2", "n2")
	mentions(t, r, "missing", "n1", "offset 1")
}

func TestCheckLostUnderAnotherValue(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(0, 20, 30, 1, "a1")
	h.amb(1, 15, 25, Unknown, "z") // a deposed leader's entry won offset 1
	r := Check(h.ops, nil, same("a0", "z"), Options{})
	want(t, r, false, map[string][2]int{
		"Lost":           {r.Lost, 1},
		"Phantom":        {r.Phantom, 0},
		"UnknownPresent": {r.UnknownPresent, 1},
	})
	mentions(t, r, "lost", `"a1"`, "offset 1", `"z"`)
}

func TestCheckDuplicated(t *testing.T) {
	t.Run("in the log", func(t *testing.T) {
		var h hist
		h.ok(0, 0, 10, 0, "a0")
		h.ok(0, 20, 30, 1, "a1")
		r := Check(h.ops, nil, same("a0", "a1", "a0"), Options{})
		want(t, r, false, map[string][2]int{
			"Duplicated": {r.Duplicated, 1},
			"Lost":       {r.Lost, 0},
			"Phantom":    {r.Phantom, 0},
		})
		mentions(t, r, "duplicated", `"a0"`, "offsets 0 and 2")
		if r.Linearizable != porcupine.Ok {
			t.Errorf("Linearizable = %s, want Ok (the duplicate is reported, not blamed on linearizability)", r.Linearizable)
		}
	})
	t.Run("acknowledged twice", func(t *testing.T) {
		var h hist
		h.ok(0, 0, 10, 0, "a0")
		h.ok(0, 20, 30, 1, "a0")
		r := Check(h.ops, nil, same("a0", "a0"), Options{})
		want(t, r, false, map[string][2]int{"Duplicated": {r.Duplicated, 1}})
		mentions(t, r, "duplicated", "acknowledged twice", `"a0"`)
	})
}

// An idempotent producer's retried append is one operation; if the
// cluster wrote its records again (no dedupe), the value sits at two
// offsets and the run fails, whichever offset the acknowledgement named.
func TestCheckRetriedAppendWrittenTwice(t *testing.T) {
	for _, ackAt := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("acknowledged at %d", ackAt), func(t *testing.T) {
			var h hist
			h.ok(0, 0, 10, 0, "p0-0")
			h.ok(0, 20, 90, ackAt, "p0-1")
			h.ops[1].Attempts = 3
			h.ok(1, 30, 40, 3, "p1-0")
			r := Check(h.ops, nil, same("p0-0", "p0-1", "p0-1", "p1-0"), Options{})
			want(t, r, false, map[string][2]int{
				"Duplicated":       {r.Duplicated, 1},
				"Lost":             {r.Lost, 0},
				"Retried":          {r.Retried, 1},
				"Retries":          {r.Retries, 2},
				"DuplicateAnswers": {r.DuplicateAnswers, 0},
			})
			mentions(t, r, "duplicated", `"p0-1"`, "offsets 1 and 2")
			if !r.Violated() {
				t.Error("Violated() = false for a retry written twice")
			}
		})
	}
	t.Run("a retry that never was acknowledged", func(t *testing.T) {
		var h hist
		h.amb(0, 0, 90, Unknown, "p0-0", "p0-1")
		h.ops[0].Attempts = 4
		r := Check(h.ops, nil, same("p0-0", "p0-1", "p0-0", "p0-1"), Options{})
		want(t, r, false, map[string][2]int{"Duplicated": {r.Duplicated, 2}, "UnknownPresent": {r.UnknownPresent, 2}})
	})
}

// A duplicate answer must name the offsets the records were first written
// at; one naming others is a lost acknowledgement.
func TestCheckDuplicateAnswerAtTheWrongOffset(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(1, 5, 50, 0, "b0")
	h.ops[1].Attempts, h.ops[1].Duplicate = 2, true
	r := Check(h.ops, nil, same("a0", "b0"), Options{})
	want(t, r, false, map[string][2]int{"Lost": {r.Lost, 1}, "DuplicateAnswers": {r.DuplicateAnswers, 1}, "Duplicated": {r.Duplicated, 0}})
	mentions(t, r, "lost", `"b0"`, "answered as a duplicate", "offset 1 instead")

	// Right: the original offset, written once.
	h.ops[1].Offset = 1
	r = Check(h.ops, nil, same("a0", "b0"), Options{})
	want(t, r, true, map[string][2]int{"Lost": {r.Lost, 0}, "DuplicateAnswers": {r.DuplicateAnswers, 1}, "Retries": {r.Retries, 1}})
}

func TestCheckDivergent(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(0, 20, 30, 1, "a1")
	h.ok(0, 40, 50, 2, "a2")
	finals := []Final{{"n1", []string{"a0", "a1", "a2"}}, {"n2", []string{"a0", "x", "a2"}}, {"n3", []string{"a0", "a1", "a2"}}}
	r := Check(h.ops, nil, finals, Options{})
	want(t, r, false, map[string][2]int{
		"Divergent": {r.Divergent, 1},
		"Missing":   {r.Missing, 0},
		"Lost":      {r.Lost, 0},
	})
	mentions(t, r, "divergent", "offset 1", "n2", `"x"`, `"a1"`)
}

func TestCheckMissing(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(0, 20, 30, 1, "a1", "a2")
	finals := []Final{{"n1", []string{"a0", "a1", "a2"}}, {"n2", []string{"a0"}}, {"n3", []string{"a0", "a1", "a2"}}}
	r := Check(h.ops, nil, finals, Options{})
	want(t, r, false, map[string][2]int{
		"Missing":   {r.Missing, 2},
		"Divergent": {r.Divergent, 0},
		"Lost":      {r.Lost, 0},
	})
	mentions(t, r, "missing", "n2", "2 acknowledged", "offset 1")
}

func TestCheckPhantom(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.ok(0, 20, 30, 2, "a2")
	r := Check(h.ops, nil, same("a0", "ghost", "a2"), Options{})
	want(t, r, false, map[string][2]int{
		"Phantom":            {r.Phantom, 1},
		"LinearizabilityOps": {r.LinearizabilityOps, 3}, // 2 appends + 1 synthetic for the ghost
	})
	mentions(t, r, "phantom", "offset 1", `"ghost"`)
	if r.Linearizable != porcupine.Ok {
		t.Errorf("Linearizable = %s, want Ok (the phantom is reported, not blamed on linearizability)", r.Linearizable)
	}
}

func TestCheckTorn(t *testing.T) {
	for name, final := range map[string][]string{
		"partial":         {"a0", "u0"},
		"not consecutive": {"a0", "u0", "a1", "u1"},
	} {
		t.Run(name, func(t *testing.T) {
			var h hist
			h.ok(0, 0, 10, 0, "a0")
			h.amb(1, 5, 20, Unknown, "u0", "u1")
			if len(final) > 3 {
				h.ok(0, 11, 15, 2, "a1")
			}
			r := Check(h.ops, nil, same(final...), Options{})
			want(t, r, false, map[string][2]int{"Torn": {r.Torn, 1}})
			mentions(t, r, "torn", "2 records", "offsets")
		})
	}
}

func TestCheckStaleRead(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.read(1, 20, 25, 0, "") // the append was acknowledged at 10
	vis := filepath.Join(t.TempDir(), "lin.html")
	r := Check(h.ops, nil, same("a0"), Options{VisualizePath: vis})
	want(t, r, false, map[string][2]int{
		"StaleReads": {r.StaleReads, 1},
		"Lost":       {r.Lost, 0},
	})
	if r.Linearizable != porcupine.Illegal {
		t.Errorf("Linearizable = %s, want Illegal", r.Linearizable)
	}
	mentions(t, r, "stale-read", "offset 0", "not found", `"a0"`, "t=10ms")
	mentions(t, r, "linearizability", "read 0 -> not found")
	if fi, err := os.Stat(vis); err != nil || fi.Size() == 0 {
		t.Errorf("visualization not written: %v", err)
	}
}

func TestCheckStaleReadOfWrongValue(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 0, "a0")
	h.read(1, 20, 25, 0, "zz")
	r := Check(h.ops, nil, same("a0"), Options{})
	want(t, r, false, map[string][2]int{"StaleReads": {r.StaleReads, 1}})
	if r.Linearizable != porcupine.Illegal {
		t.Errorf("Linearizable = %s, want Illegal", r.Linearizable)
	}
}

// A read finds a value the reference does not hold at that offset (a
// dirty read of an entry later overwritten), with no acknowledged append
// to compare with: only the linearizability check sees it.
func TestCheckReadOfValueNotInReference(t *testing.T) {
	var h hist
	h.amb(0, 0, 100, Unknown, "u0")
	h.amb(1, 0, 100, Unknown, "w0") // a deposed leader's entry, overwritten
	h.read(2, 10, 20, 0, "w0")
	r := Check(h.ops, nil, same("u0"), Options{})
	want(t, r, false, map[string][2]int{
		"StaleReads":     {r.StaleReads, 0},
		"UnknownPresent": {r.UnknownPresent, 1},
		"UnknownAbsent":  {r.UnknownAbsent, 1},
	})
	if r.Linearizable != porcupine.Illegal {
		t.Errorf("Linearizable = %s, want Illegal", r.Linearizable)
	}
	mentions(t, r, "linearizability", `read 0 -> "w0" (not the reference's value)`)
}

// Read A finds offset 0 and a later read B does not, while the append is
// still unresolved: no acknowledged append to compare with, so only the
// linearizability check sees it.
func TestCheckNonLinearizableReadsOnly(t *testing.T) {
	var h hist
	h.amb(0, 0, 100, Unknown, "u0")
	h.read(1, 10, 20, 0, "u0")
	h.read(2, 30, 40, 0, "")
	r := Check(h.ops, nil, same("u0"), Options{})
	want(t, r, false, map[string][2]int{"StaleReads": {r.StaleReads, 0}})
	if r.Linearizable != porcupine.Illegal {
		t.Errorf("Linearizable = %s, want Illegal", r.Linearizable)
	}
	mentions(t, r, "linearizability", "read 0 -> not found", "op 2")
}

// Append X returned before append Y was called, yet X's offset is after
// Y's: the log ordered them against real time.
func TestCheckAppendsOutOfRealTimeOrder(t *testing.T) {
	var h hist
	h.ok(0, 0, 10, 1, "x")
	h.ok(1, 20, 30, 0, "y")
	r := Check(h.ops, nil, same("y", "x"), Options{})
	want(t, r, false, map[string][2]int{"Lost": {r.Lost, 0}, "StaleReads": {r.StaleReads, 0}})
	if r.Linearizable != porcupine.Illegal {
		t.Errorf("Linearizable = %s, want Illegal", r.Linearizable)
	}
}

func TestCheckConsumerSessions(t *testing.T) {
	final := []string{"a0", "a1", "a2", "a3"}
	var h hist
	h.ok(0, 0, 10, 0, final...)
	cases := []struct {
		name       string
		deliveries []Delivery
		gap, order int
		dirty      int
		kind, word string
	}{
		{"gap", []Delivery{{0, "a0", at(11)}, {1, "a1", at(11)}, {3, "a3", at(12)}}, 1, 0, 0, "consumer-gap", "expected offset 2, got 3"},
		{"order", []Delivery{{0, "a0", at(11)}, {1, "a1", at(11)}, {1, "a1", at(12)}}, 0, 1, 0, "consumer-order", "expected offset 2, got 1"},
		{"dirty", []Delivery{{0, "a0", at(11)}, {1, "bogus", at(11)}}, 0, 0, 1, "consumer-dirty", `"bogus" at offset 1`},
		{"beyond the log", []Delivery{{3, "a3", at(11)}, {4, "a4", at(11)}}, 0, 0, 1, "consumer-dirty", "holds nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.deliveries[0].Offset
			s := []Session{{Consumer: 7, Node: "n3", From: from, Deliveries: tc.deliveries}}
			r := Check(h.ops, s, same(final...), Options{})
			want(t, r, false, map[string][2]int{
				"ConsumerGaps":  {r.ConsumerGaps, tc.gap},
				"ConsumerOrder": {r.ConsumerOrder, tc.order},
				"ConsumerDirty": {r.ConsumerDirty, tc.dirty},
				"Deliveries":    {r.Deliveries, len(tc.deliveries)},
			})
			mentions(t, r, tc.kind, "consumer 7", "n3", tc.word)
		})
	}
}

func TestCheckCapsProblems(t *testing.T) {
	var h hist
	for i := range 50 {
		h.ok(0, 10*i, 10*i+5, uint64(i), fmt.Sprintf("v%d", i))
	}
	r := Check(h.ops, nil, same(), Options{})
	want(t, r, false, map[string][2]int{"Lost": {r.Lost, 50}})
	lost := 0
	for _, p := range r.Problems {
		if strings.HasPrefix(p, "lost:") {
			lost++
		}
	}
	if lost != maxProblemsPerKind+1 {
		t.Errorf("%d lost problems, want %d examples and a summary", lost, maxProblemsPerKind)
	}
	mentions(t, r, "lost", "and 30 more")
}

// gen describes a randomized history: each process issues operations
// back to back with random gaps and durations; each takes effect at a
// random point of its interval, and a sequential log applied in the order
// of those points gives the responses. So the history is linearizable by
// construction.
type gen struct {
	procs, ops int
	maxBatch   int
	unknownPct int // appends whose outcome is Unknown (two thirds of them take effect)
	gap, dur   int // maximum think time and duration of an operation, in µs
}

type genResult struct {
	ops      []Op
	log      []string
	sessions []Session
	acked    int
	present  int
	absent   int
}

func (g gen) run(rng *rand.Rand) genResult {
	type ev struct {
		op    int
		point time.Duration
	}
	var res genResult
	evs := make([]ev, g.ops)
	seq := make([]int, g.procs) // next value number per process
	// Lay out each process's operations in time.
	clock := make([]time.Duration, g.procs)
	res.ops = make([]Op, g.ops)
	for i := range res.ops {
		p := i % g.procs
		call := clock[p] + time.Duration(rng.IntN(g.gap+1))*time.Microsecond
		dur := time.Duration(1+rng.IntN(g.dur)) * time.Microsecond
		clock[p] = call + dur
		op := Op{Process: p, Node: fmt.Sprintf("n%d", rng.IntN(3)+1), Call: t0.Add(call), Return: t0.Add(call + dur)}
		if rng.IntN(2) == 0 {
			op.Kind = Append
			for range 1 + rng.IntN(g.maxBatch) {
				op.Values = append(op.Values, fmt.Sprintf("p%d-%d", p, seq[p]))
				seq[p]++
			}
		} else {
			op.Kind = Read
		}
		res.ops[i] = op
		evs[i] = ev{op: i}
		evs[i].point = call + time.Duration(rng.Int64N(int64(dur)+1))
	}
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].point < evs[b].point })
	for _, e := range evs {
		op := &res.ops[e.op]
		n := len(res.log)
		switch op.Kind {
		case Append:
			switch x := rng.IntN(100); {
			case x < g.unknownPct*2/3:
				op.Outcome, op.Err = Unknown, "deadline exceeded"
				res.log = append(res.log, op.Values...)
				res.present += len(op.Values)
			case x < g.unknownPct:
				op.Outcome, op.Err = Unknown, "connection reset"
				res.absent += len(op.Values)
			case x < g.unknownPct+2:
				op.Outcome, op.Err = Failed, "not leader"
				res.absent += len(op.Values)
			default:
				op.Outcome, op.Offset = OK, uint64(n)
				res.log = append(res.log, op.Values...)
				res.acked += len(op.Values)
			}
		case Read:
			if rng.IntN(50) == 0 {
				op.Outcome, op.Err = Failed, "unavailable"
				break
			}
			// Mostly near the tail, where staleness would show.
			o := n - 2 + rng.IntN(4)
			if n > 0 && rng.IntN(4) == 0 {
				o = rng.IntN(n)
			}
			op.Outcome, op.Offset = OK, uint64(max(o, 0))
			if int(op.Offset) < n {
				op.Found, op.Value = true, res.log[op.Offset]
			}
		}
	}
	for k := range 3 {
		from := rng.IntN(len(res.log) + 1)
		s := Session{Consumer: k, Node: "n1", From: uint64(from)}
		for o := from; o < len(res.log); o++ {
			s.Deliveries = append(s.Deliveries, Delivery{Offset: uint64(o), Value: res.log[o], At: t0})
		}
		res.sessions = append(res.sessions, s)
	}
	return res
}

func TestCheckRandomValidHistory(t *testing.T) {
	g := gen{procs: 8, ops: 5000, maxBatch: 4, unknownPct: 6, gap: 500, dur: 2000}
	h := g.run(rand.New(rand.NewPCG(1, 2)))
	start := time.Now()
	r := Check(h.ops, h.sessions, same(h.log...), Options{})
	t.Logf("%d ops, %d records: checked in %v: %v", len(h.ops), len(h.log), time.Since(start), r)
	want(t, r, true, map[string][2]int{
		"Acked":          {r.Acked, h.acked},
		"UnknownPresent": {r.UnknownPresent, h.present},
		"UnknownAbsent":  {r.UnknownAbsent, h.absent},
	})
	if r.Linearizable != porcupine.Ok {
		t.Errorf("Linearizable = %s, want Ok", r.Linearizable)
	}

	// The same history with one read made stale must fail: the generator
	// is not producing something the checker passes regardless.
	appendOf := make(map[string]int)
	for i, op := range h.ops {
		if op.Kind == Append && op.Outcome == OK {
			appendOf[op.Values[0]] = i
		}
	}
	for i := len(h.ops) - 1; i >= 0; i-- {
		op := h.ops[i]
		a, ok := appendOf[op.Value]
		if op.Kind != Read || !op.Found || !ok || !h.ops[a].Return.Before(op.Call) {
			continue
		}
		bad := append([]Op(nil), h.ops...)
		bad[i].Found, bad[i].Value = false, ""
		start := time.Now()
		r := Check(bad, h.sessions, same(h.log...), Options{})
		t.Logf("op %d made stale: checked in %v: %v", i, time.Since(start), r)
		if r.OK() || r.StaleReads != 1 || r.Linearizable != porcupine.Illegal {
			t.Errorf("op %d made stale: OK() = %v, StaleReads = %d, Linearizable = %s; want false, 1, Illegal", i, r.OK(), r.StaleReads, r.Linearizable)
		}
		return
	}
	t.Fatal("no read to make stale")
}

// TestCheckScale checks histories the size of a long fault test: 20k
// operations from 10 processes, ~100k records, a few hundred Unknown
// appends returning at infinity. "dense" issues operations back to back,
// so that something is nearly always in flight and split finds few cuts
// (the worst case for porcupine); "paced" leaves think time between them,
// as the workload does. A read made stale in the middle must be found.
func TestCheckScale(t *testing.T) {
	if testing.Short() {
		t.Skip("large histories")
	}
	for _, tc := range []struct {
		name     string
		gap, dur int
		corrupt  bool
	}{
		{"dense", 500, 2000, false},
		{"paced", 40000, 5000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gen{procs: 10, ops: 20000, maxBatch: 19, unknownPct: 4, gap: tc.gap, dur: tc.dur}
			h := g.run(rand.New(rand.NewPCG(3, 4)))
			finals := same(h.log...)
			start := time.Now()
			r := Check(h.ops, h.sessions, finals, Options{})
			t.Logf("%d ops, %d records, %d unknown records present, %d segments: checked in %v: %v",
				len(h.ops), len(h.log), h.present, segments(h.ops, finals), time.Since(start), r)
			if !r.OK() {
				t.Fatalf("valid history rejected: %v\n%s", r, strings.Join(r.Problems, "\n"))
			}
			if !tc.corrupt {
				return
			}
			for i := len(h.ops) / 2; i < len(h.ops); i++ {
				if op := h.ops[i]; op.Kind != Read || !op.Found || op.Offset+100 > uint64(len(h.log)/2) {
					continue
				}
				bad := append([]Op(nil), h.ops...)
				bad[i].Found, bad[i].Value = false, ""
				start := time.Now()
				r := Check(bad, h.sessions, finals, Options{})
				t.Logf("op %d made stale: checked in %v: %v", i, time.Since(start), r)
				if r.Linearizable != porcupine.Illegal || r.StaleReads != 1 {
					t.Errorf("Linearizable = %s, StaleReads = %d; want Illegal, 1", r.Linearizable, r.StaleReads)
				}
				mentions(t, r, "linearizability", fmt.Sprintf("op %d ", i))
				return
			}
			t.Fatal("no read to make stale")
		})
	}
}

// Violated is proof of a broken contract; an Unknown linearizability verdict
// is neither OK nor a violation.
func TestViolated(t *testing.T) {
	for _, tc := range []struct {
		name         string
		r            Result
		ok, violated bool
	}{
		{"clean", Result{Linearizable: porcupine.Ok}, true, false},
		{"timed out", Result{Linearizable: porcupine.Unknown}, false, false},
		{"illegal", Result{Linearizable: porcupine.Illegal}, false, true},
		{"lost", Result{Lost: 1, Linearizable: porcupine.Ok}, false, true},
		{"stale read, timed out", Result{StaleReads: 1, Linearizable: porcupine.Unknown}, false, true},
	} {
		if tc.r.OK() != tc.ok || tc.r.Violated() != tc.violated {
			t.Errorf("%s: OK %v Violated %v, want %v %v", tc.name, tc.r.OK(), tc.r.Violated(), tc.ok, tc.violated)
		}
	}
}
