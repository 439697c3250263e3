package history

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
)

// DefaultLinearizabilityTimeout bounds the porcupine search when
// Options.LinearizabilityTimeout is zero.
const DefaultLinearizabilityTimeout = 60 * time.Second

// maxProblemsPerKind caps the examples Check gives of each kind of
// violation: enough to debug, not so many that a broken run floods the log.
const maxProblemsPerKind = 20

// Final is what a node holds at the end of a run: the value of every record
// from offset 0 in order.
type Final struct {
	Node   string
	Values []string
}

// Options tunes Check.
type Options struct {
	// LinearizabilityTimeout bounds the porcupine search (it is NP-hard
	// in general). When it expires, Result.Linearizable is
	// porcupine.Unknown. Zero means DefaultLinearizabilityTimeout.
	LinearizabilityTimeout time.Duration

	// VisualizePath, if set, is where porcupine's HTML visualization of
	// the history is written when it is not found linearizable.
	VisualizePath string

	// noSplit gives porcupine the history whole, for tests that check
	// that splitting it changes no verdict.
	noSplit bool
}

// Result is what Check found. The counts named "must be 0" are contract
// violations; OK reports whether all of them are zero and the history is
// linearizable.
type Result struct {
	Ops, Appends, Reads int // operations recorded (Failed ones included)
	Acked               int // records acknowledged: the sum over OK appends of len(Values)
	AckedOps            int // OK appends

	// Records of Unknown or Failed appends found / not found in the
	// reference log.
	UnknownPresent, UnknownAbsent int

	// Lost: acknowledged records not at their acknowledged offset in the
	// reference log (absent, or another value there). Must be 0.
	Lost int
	// Duplicated: distinct values at more than one offset in some node's
	// log, or acknowledged by more than one append. Must be 0.
	Duplicated int
	// Torn: Unknown or Failed batches only partly in the reference log, or
	// not at consecutive offsets (a batch is all-or-nothing). Must be 0.
	Torn int
	// Divergent: offsets where some node's final differs from the
	// reference's (compared over the node's length). Must be 0.
	Divergent int
	// Missing: over the non-reference nodes, acknowledged records the
	// reference holds (at their acknowledged offsets) that lie beyond
	// the node's final length. Must be 0.
	Missing int
	// Phantom: records in the reference log that no client ever sent.
	// Must be 0.
	Phantom int

	// Consumer sessions: a delivery jumping forward past the next
	// expected offset (gap), one at or before an offset already delivered
	// (order), and deliveries whose (Offset, Value) is not the reference
	// log's (dirty, including offsets beyond it). Must be 0.
	ConsumerGaps, ConsumerOrder, ConsumerDirty int
	Deliveries                                 int

	// StaleReads: OK reads contradicting an append acknowledged before
	// the read was called (not found, or another value). Counted per read,
	// independently of porcupine. Must be 0.
	StaleReads int

	// Appends sent more than once (an idempotent producer's retries), the
	// resends in all, and the OK appends acknowledged as duplicates (the
	// server had written them at an earlier attempt). Not judged: a
	// duplicate answer whose offsets do not hold the values counts as
	// Lost, a retry written again as Duplicated.
	Retried, Retries, DuplicateAnswers int

	// Linearizable is porcupine's verdict: Ok, Illegal, or Unknown (the
	// search timed out). Must be Ok.
	Linearizable porcupine.CheckResult
	// LinearizabilityOps is the number of operations given to porcupine,
	// including one synthetic append per run of reference records that no
	// checked append accounts for.
	LinearizabilityOps int

	// Problems are human-readable examples of each kind of violation,
	// capped at maxProblemsPerKind per kind, then notes.
	Problems []string
}

// OK reports whether the run kept the contract: every must-be-0 count is
// zero and porcupine found the history linearizable.
func (r Result) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Torn == 0 && r.Divergent == 0 &&
		r.Missing == 0 && r.Phantom == 0 && r.ConsumerGaps == 0 && r.ConsumerOrder == 0 &&
		r.ConsumerDirty == 0 && r.StaleReads == 0 && r.Linearizable == porcupine.Ok
}

// Violated reports whether the check proved the contract broken: some
// must-be-0 count is not zero, or porcupine found the history Illegal. An
// Unknown verdict (porcupine's search timed out) proves nothing, so a
// result can be neither OK nor Violated; a negative control is caught only
// by a violation.
func (r Result) Violated() bool {
	return r.Lost != 0 || r.Duplicated != 0 || r.Torn != 0 || r.Divergent != 0 ||
		r.Missing != 0 || r.Phantom != 0 || r.ConsumerGaps != 0 || r.ConsumerOrder != 0 ||
		r.ConsumerDirty != 0 || r.StaleReads != 0 || r.Linearizable == porcupine.Illegal
}

// String summarises r on one line.
func (r Result) String() string {
	return fmt.Sprintf("ops=%d (appends=%d reads=%d) acked=%d records in %d appends, unknown present=%d absent=%d; "+
		"retried=%d appends (%d resends), duplicate answers=%d; "+
		"lost=%d duplicated=%d torn=%d divergent=%d missing=%d phantom=%d; consumers: deliveries=%d gaps=%d order=%d dirty=%d; "+
		"stale reads=%d; linearizable=%s over %d ops",
		r.Ops, r.Appends, r.Reads, r.Acked, r.AckedOps, r.UnknownPresent, r.UnknownAbsent,
		r.Retried, r.Retries, r.DuplicateAnswers,
		r.Lost, r.Duplicated, r.Torn, r.Divergent, r.Missing, r.Phantom,
		r.Deliveries, r.ConsumerGaps, r.ConsumerOrder, r.ConsumerDirty,
		r.StaleReads, r.Linearizable, r.LinearizabilityOps)
}

// Check checks a run's history against the logs its nodes hold at the end.
//
// The reference log is the longest final (the first on a tie); every other
// node must agree with it over its own length. Values are unique per run,
// so a value identifies a record: an OK append of k values at offset b
// claims reference[b+j] == Values[j]. Unknown and Failed appends may or may
// not have taken effect; the reference says which, and a batch must be in
// it entirely, consecutively, or not at all.
//
// Linearizability is checked with porcupine against a model whose state is
// the log's length, with the reference as the oracle for values (see
// model.go). Check takes time roughly linear in the records and operations,
// plus the porcupine search, which Options bounds.
func Check(ops []Op, sessions []Session, finals []Final, opt Options) Result {
	c := &checker{
		ops:    ops,
		finals: finals,
		opt:    opt,
		dup:    make(map[string]struct{}),
		probs:  problems{count: make(map[string]int)},
	}
	c.pickReference()
	c.indexValues()
	c.checkFinals()
	c.checkAppends()
	c.checkReads()
	c.checkSessions(sessions)
	c.checkLinearizable()
	c.res.Duplicated = len(c.dup)
	c.res.Problems = c.probs.finish()
	return c.res
}

// checker holds the indexes Check builds once and shares between checks.
type checker struct {
	ops    []Op
	finals []Final
	opt    Options
	res    Result
	probs  problems

	refIdx int      // index in finals of the reference, -1 if none
	ref    []string // the reference log
	base   time.Time

	owner  map[string]int      // value -> the append op that sent it (OK appends first)
	shared map[int]bool        // non-OK appends that share a value with another op
	refPos map[string]int      // value -> its first offset in the reference
	dup    map[string]struct{} // values duplicated (in a log, or acknowledged twice)

	lin []linOp // operations for porcupine, gathered by the checks
}

// pickReference chooses the longest final and the time origin.
func (c *checker) pickReference() {
	c.refIdx = -1
	for i, f := range c.finals {
		if c.refIdx < 0 || len(f.Values) > len(c.ref) {
			c.refIdx, c.ref = i, f.Values
		}
	}
	if c.refIdx < 0 && len(c.ops) > 0 {
		c.probs.add("note", "no final logs given: every acknowledged record counts as lost")
	}
	for i, op := range c.ops {
		if i == 0 || op.Call.Before(c.base) {
			c.base = op.Call
		}
	}
}

// refNode names the reference node for messages.
func (c *checker) refNode() string {
	if c.refIdx < 0 {
		return "(none)"
	}
	return c.finals[c.refIdx].Node
}

// indexValues counts operations and maps every value sent to the append
// that sent it. OK appends take ownership first so that a value both
// acknowledged and sent ambiguously elsewhere is judged by the
// acknowledgement.
func (c *checker) indexValues() {
	c.res.Ops = len(c.ops)
	c.owner = make(map[string]int)
	c.shared = make(map[int]bool)
	for i, op := range c.ops {
		switch op.Kind {
		case Append:
			c.res.Appends++
			if op.Attempts > 1 {
				c.res.Retried++
				c.res.Retries += op.Attempts - 1
			}
		case Read:
			c.res.Reads++
		}
		if op.Kind != Append || op.Outcome != OK {
			continue
		}
		c.res.AckedOps++
		c.res.Acked += len(op.Values)
		if op.Duplicate {
			c.res.DuplicateAnswers++
		}
		for _, v := range op.Values {
			if j, ok := c.owner[v]; ok {
				c.dup[v] = struct{}{}
				c.probs.add("duplicated", "value %q acknowledged twice: by %s and by %s", v, c.describe(j), c.describe(i))
				continue
			}
			c.owner[v] = i
		}
	}
	for i, op := range c.ops {
		if op.Kind != Append || op.Outcome == OK {
			continue
		}
		for _, v := range op.Values {
			if j, ok := c.owner[v]; ok {
				c.shared[i] = true
				c.probs.add("note", "value %q sent by both %s and %s: the workload must send unique values; the latter is left out of the linearizability check",
					v, c.describe(j), c.describe(i))
				continue
			}
			c.owner[v] = i
		}
	}
}

// checkFinals finds duplicates in each node's log, offsets where nodes
// diverge from the reference, and records no client sent.
func (c *checker) checkFinals() {
	c.refPos = make(map[string]int, len(c.ref))
	divergent := make([]bool, len(c.ref))
	for fi, f := range c.finals {
		pos := c.refPos
		if fi != c.refIdx {
			pos = make(map[string]int, len(f.Values))
		}
		for o, v := range f.Values {
			if p, ok := pos[v]; ok {
				c.dup[v] = struct{}{}
				c.probs.add("duplicated", "node %s holds value %q at offsets %d and %d", f.Node, v, p, o)
				continue
			}
			pos[v] = o
		}
		if fi == c.refIdx {
			continue
		}
		for o, v := range f.Values { // len(f.Values) <= len(c.ref)
			if v == c.ref[o] {
				continue
			}
			if !divergent[o] {
				divergent[o] = true
				c.res.Divergent++
			}
			c.probs.add("divergent", "offset %d: node %s holds %q, reference node %s holds %q", o, f.Node, v, c.refNode(), c.ref[o])
		}
	}
	for o, v := range c.ref {
		if _, ok := c.owner[v]; !ok {
			c.res.Phantom++
			c.probs.add("phantom", "offset %d on reference node %s holds %q, which no client sent", o, c.refNode(), v)
		}
	}
}

// checkAppends judges every append against the reference: acknowledged
// records must be at their offsets (else lost) and on every node (else
// missing); ambiguous ones are counted and must be whole batches.
func (c *checker) checkAppends() {
	// ackedAt[o]: acknowledged records the reference holds at offset o,
	// to count Missing per node without a scan per node.
	ackedAt := make([]int, len(c.ref)+1)
	for i, op := range c.ops {
		if op.Kind != Append || len(op.Values) == 0 {
			continue
		}
		if op.Outcome == OK {
			lost := false
			for j, v := range op.Values {
				o := op.Offset + uint64(j)
				if o < uint64(len(c.ref)) && c.ref[o] == v {
					ackedAt[o]++
					continue
				}
				lost = true
				c.res.Lost++
				c.probs.add("lost", "%s", c.lostText(i, o, v))
			}
			if !lost {
				c.lin = append(c.lin, linOp{op: i, input: logInput{Append: true, Offset: toInt(op.Offset), Count: len(op.Values)}})
			}
			continue
		}
		c.checkAmbiguousAppend(i)
	}

	suffix := make([]int, len(c.ref)+2) // suffix[o] = acked records at offsets >= o
	for o := len(c.ref); o >= 0; o-- {
		suffix[o] = suffix[o+1] + ackedAt[o]
	}
	for fi, f := range c.finals {
		n := len(f.Values)
		if fi == c.refIdx || suffix[n] == 0 {
			continue
		}
		c.res.Missing += suffix[n]
		first := n
		for ackedAt[first] == 0 {
			first++
		}
		c.probs.add("missing", "node %s holds %d records but %d acknowledged records lie beyond, the first at offset %d (%q); reference node %s holds %d",
			f.Node, n, suffix[n], first, c.ref[first], c.refNode(), len(c.ref))
	}
}

// lostText explains where an acknowledged record went.
func (c *checker) lostText(i int, o uint64, v string) string {
	there := "nothing (beyond the end)"
	if o < uint64(len(c.ref)) {
		there = fmt.Sprintf("%q", c.ref[o])
	}
	where := "is nowhere in it"
	if p, ok := c.refPos[v]; ok {
		where = fmt.Sprintf("is at offset %d instead", p)
	}
	answer := ""
	if c.ops[i].Duplicate {
		answer = " (answered as a duplicate of an earlier write: the original offset must be where the value is)"
	}
	return fmt.Sprintf("value %q acknowledged at offset %d by %s%s: reference node %s (%d records) holds %s there, and the value %s",
		v, o, c.describe(i), answer, c.refNode(), len(c.ref), there, where)
}

// checkAmbiguousAppend counts the records of an Unknown or Failed append
// found in the reference and, if the whole batch is there consecutively,
// gives it to porcupine with an unknown return time.
func (c *checker) checkAmbiguousAppend(i int) {
	op := &c.ops[i]
	present := 0
	for _, v := range op.Values {
		if _, ok := c.refPos[v]; ok {
			present++
		}
	}
	c.res.UnknownPresent += present
	c.res.UnknownAbsent += len(op.Values) - present
	if present == 0 || c.shared[i] {
		return
	}
	b := c.refPos[op.Values[0]]
	whole := present == len(op.Values)
	for j, v := range op.Values {
		if b+j >= len(c.ref) || c.ref[b+j] != v {
			whole = false
			break
		}
	}
	if !whole {
		c.res.Torn++
		c.probs.add("torn", "%s: %d of %d records are in the reference log, at offsets %v (a batch is all-or-nothing and consecutive)",
			c.describe(i), present, len(op.Values), c.offsetsOf(op.Values))
		return
	}
	if op.Outcome == Failed {
		c.probs.add("note", "%s failed (%s), which should prove nothing was written, yet its records are at offsets %d..%d",
			c.describe(i), op.Err, b, b+len(op.Values)-1)
	}
	c.lin = append(c.lin, linOp{op: i, input: logInput{Append: true, Offset: b, Count: len(op.Values)}, openEnded: true})
}

// offsetsOf lists where values are in the reference (-1: absent).
func (c *checker) offsetsOf(values []string) []int {
	out := make([]int, len(values))
	for j, v := range values {
		out[j] = -1
		if p, ok := c.refPos[v]; ok {
			out[j] = p
		}
	}
	return out
}

// checkReads gives OK reads to porcupine and counts stale ones: a read
// that misses a record whose append was acknowledged before the read was
// called.
func (c *checker) checkReads() {
	type claim struct {
		value string
		op    int
	}
	readAt := make(map[uint64]struct{})
	for _, op := range c.ops {
		if op.Kind == Read && op.Outcome == OK {
			readAt[op.Offset] = struct{}{}
		}
	}
	// Only offsets someone read matter; a batch claims consecutive ones.
	claims := make(map[uint64][]claim)
	for i, op := range c.ops {
		if op.Kind != Append || op.Outcome != OK {
			continue
		}
		for j, v := range op.Values {
			o := op.Offset + uint64(j)
			if _, ok := readAt[o]; ok {
				claims[o] = append(claims[o], claim{v, i})
			}
		}
	}
	for i, op := range c.ops {
		if op.Kind != Read || op.Outcome != OK {
			continue
		}
		o := toInt(op.Offset)
		consistent := op.Found && o < len(c.ref) && c.ref[o] == op.Value
		c.lin = append(c.lin, linOp{op: i, input: logInput{Offset: o}, output: readOutput{Found: op.Found, Consistent: consistent, Value: op.Value}})
		for _, cl := range claims[op.Offset] {
			a := &c.ops[cl.op]
			if !a.Return.Before(op.Call) || (op.Found && op.Value == cl.value) {
				continue
			}
			c.res.StaleReads++
			got := "not found"
			if op.Found {
				got = fmt.Sprintf("%q", op.Value)
			}
			c.probs.add("stale-read", "%s of offset %d returned %s, but %s had acknowledged %q there at %s",
				c.describe(i), op.Offset, got, c.describe(cl.op), cl.value, c.at(a.Return))
			break
		}
	}
}

// checkSessions checks that each consumer session delivered the reference
// log's records contiguously from its starting offset.
func (c *checker) checkSessions(sessions []Session) {
	for _, s := range sessions {
		next := s.From
		for _, d := range s.Deliveries {
			c.res.Deliveries++
			name := fmt.Sprintf("consumer %d on node %s from offset %d", s.Consumer, s.Node, s.From)
			switch {
			case d.Offset > next:
				c.res.ConsumerGaps++
				c.probs.add("consumer-gap", "%s: expected offset %d, got %d at %s", name, next, d.Offset, c.at(d.At))
				next = d.Offset + 1
			case d.Offset < next:
				c.res.ConsumerOrder++
				c.probs.add("consumer-order", "%s: expected offset %d, got %d again or backwards at %s", name, next, d.Offset, c.at(d.At))
			default:
				next++
			}
			if d.Offset >= uint64(len(c.ref)) || c.ref[d.Offset] != d.Value {
				c.res.ConsumerDirty++
				want := "nothing"
				if d.Offset < uint64(len(c.ref)) {
					want = fmt.Sprintf("%q", c.ref[d.Offset])
				}
				c.probs.add("consumer-dirty", "%s: got %q at offset %d at %s; reference node %s holds %s there",
					name, d.Value, d.Offset, c.at(d.At), c.refNode(), want)
			}
		}
	}
}

// at formats a time relative to the earliest call.
func (c *checker) at(t time.Time) string {
	return "t=" + t.Sub(c.base).Round(time.Microsecond).String()
}

// describe names op i for a message: index, kind, outcome, process, node
// and interval.
func (c *checker) describe(i int) string {
	op := &c.ops[i]
	what := op.Kind.String()
	switch {
	case op.Kind == Append && op.Outcome == OK:
		what = fmt.Sprintf("append of %d at offset %d", len(op.Values), op.Offset)
	case op.Kind == Append:
		what = fmt.Sprintf("append of %d", len(op.Values))
	case op.Kind == Read:
		what = "read"
	}
	sends := ""
	if op.Attempts > 1 {
		sends = fmt.Sprintf(", sent %d times", op.Attempts)
	}
	return fmt.Sprintf("op %d (%s %s by process %d via %s, %s..%s%s)",
		i, op.Outcome, what, op.Process, op.Node, c.at(op.Call), c.at(op.Return), sends)
}

// problems collects examples of violations, capped per kind.
type problems struct {
	list  []string
	count map[string]int
	kinds []string // in order of first appearance
}

func (p *problems) add(kind, format string, args ...any) {
	if p.count[kind] == 0 {
		p.kinds = append(p.kinds, kind)
	}
	p.count[kind]++
	if p.count[kind] <= maxProblemsPerKind {
		p.list = append(p.list, kind+": "+fmt.Sprintf(format, args...))
	}
}

// finish returns the examples and says how many of each kind were left out.
func (p *problems) finish() []string {
	for _, k := range p.kinds {
		if n := p.count[k]; n > maxProblemsPerKind {
			p.list = append(p.list, fmt.Sprintf("%s: ... and %d more", k, n-maxProblemsPerKind))
		}
	}
	return p.list
}
