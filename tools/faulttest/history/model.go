package history

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// The linearizability model: the log is one object whose state is its
// length n (an int, cheap to hash and compare). Values need not be in the
// state because the reference log is the oracle for them: Check resolves
// every read's value against it before the search, so a step is pure
// arithmetic.
//
//   - append of k records at first offset b: legal iff b == n; then n+k.
//   - read of offset o that found a value: legal iff o < n and the value is
//     the reference's at o (Consistent).
//   - read of offset o that found nothing (OUT_OF_RANGE): legal iff o >= n.
//
// Given to porcupine: OK appends whose records are all at their
// acknowledged offsets; Unknown and Failed appends whose whole batch is in
// the reference consecutively (at the offset the reference gives, returning
// after every other operation since the client never learned the outcome);
// OK reads; and one synthetic append, open from the first call to after the
// last return, per run of reference offsets none of those accounts for
// (phantom, torn or duplicated records), so that such records, already
// reported, cannot by themselves make the history non-linearizable.
// Failed and Unknown reads and appends absent from the reference had no
// effect and are left out, as are lost appends (reported as Lost).
//
// Since the appends then tile the reference exactly, each at a fixed
// offset, the history can be cut in time wherever the log's length is
// forced; split (split.go) does so, and porcupine checks the segments
// independently: far less memory and time than one 20k-operation search.

// logInput is the input of an operation on the log.
type logInput struct {
	Append bool
	Offset int // append: first offset; read: the offset read
	Count  int // append: records appended
}

// readOutput is what a read returned.
type readOutput struct {
	Found      bool
	Consistent bool   // Found and Value is the reference log's at the offset
	Value      string // for descriptions only
}

// linOp is an operation on its way to porcupine.
type linOp struct {
	op        int // index in the recorded ops; -1 for a synthetic append
	input     logInput
	output    any  // readOutput for reads, nil for appends
	openEnded bool // returns after every other operation
}

// linMeta is the porcupine metadata of an operation: for messages and the
// visualization.
type linMeta struct {
	ID      int // index in the history given to porcupine; -1 for a segment's start
	Op      int // index in the recorded ops; -1 if synthetic
	Process int
	Node    string
	Note    string // for synthetic operations
}

// step is the model's transition function.
func step(state, input, output any) (bool, any) {
	n := state.(int)
	in := input.(logInput)
	if in.Append {
		if in.Offset != n {
			return false, n
		}
		return true, n + in.Count
	}
	out := output.(readOutput)
	if out.Found {
		return out.Consistent && in.Offset < n, n
	}
	return in.Offset >= n, n
}

// logModel is the porcupine model of the log, without partitioning.
var logModel = porcupine.Model{
	Init:  func() any { return 0 },
	Step:  step,
	Equal: func(a, b any) bool { return a.(int) == b.(int) },
	Hash:  func(s any) uint64 { return uint64(s.(int)) },
	DescribeOperation: func(input, output any) string {
		in := input.(logInput)
		if in.Append {
			return fmt.Sprintf("append [%d, %d)", in.Offset, in.Offset+in.Count)
		}
		out := output.(readOutput)
		switch {
		case !out.Found:
			return fmt.Sprintf("read %d -> not found", in.Offset)
		case !out.Consistent:
			return fmt.Sprintf("read %d -> %q (not the reference's value)", in.Offset, out.Value)
		}
		return fmt.Sprintf("read %d -> %q", in.Offset, out.Value)
	},
	DescribeState: func(s any) string { return fmt.Sprintf("len %d", s.(int)) },
	DescribeOperationMetadata: func(m any) string {
		md, ok := m.(linMeta)
		switch {
		case !ok:
			return ""
		case md.Op < 0:
			return md.Note
		}
		return fmt.Sprintf("op %d, process %d, node %s", md.Op, md.Process, md.Node)
	},
}

// toInt converts an offset for the model; offsets past MaxInt cannot be in
// any log, so clamping keeps them past every state.
func toInt(o uint64) int {
	if o > math.MaxInt {
		return math.MaxInt
	}
	return int(o)
}

// checkLinearizable builds the porcupine history from c.lin, splits it and
// runs the search.
func (c *checker) checkLinearizable() {
	hist, open, startRow := c.porcupineHistory()
	c.res.LinearizabilityOps = len(hist)
	parts := [][]porcupine.Operation{hist}
	if !c.opt.noSplit {
		parts = split(hist, open, startRow)
	}
	model := logModel
	model.Partition = func([]porcupine.Operation) [][]porcupine.Operation { return parts }
	timeout := c.opt.LinearizabilityTimeout
	if timeout <= 0 {
		timeout = DefaultLinearizabilityTimeout
	}
	result, info := porcupine.CheckOperationsVerbose(model, hist, timeout)
	c.res.Linearizable = result
	switch result {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		c.probs.add("linearizability", "porcupine gave up after %v over %d operations in %d segments (result Unknown)", timeout, len(hist), len(parts))
	default:
		c.explainIllegal(parts, info)
	}
	if c.opt.VisualizePath != "" {
		if err := porcupine.VisualizePath(model, info, c.opt.VisualizePath); err != nil {
			c.probs.add("note", "writing the linearizability visualization to %s: %v", c.opt.VisualizePath, err)
		} else {
			c.probs.add("note", "linearizability visualization written to %s", c.opt.VisualizePath)
		}
	}
}

// porcupineHistory turns c.lin into porcupine operations, adding the
// synthetic appends for reference offsets none of them covers, and says
// which are open-ended. Times are nanoseconds since the earliest call;
// open-ended operations return at the latest time plus one. Processes get
// one visualization row each, open-ended operations rows of their own
// (they overlap everything after their call), and startRow is the next
// free row.
func (c *checker) porcupineHistory() (hist []porcupine.Operation, open []bool, startRow int) {
	covered := make([]bool, len(c.ref))
	kept := c.lin[:0]
	for _, l := range c.lin {
		if !l.input.Append {
			kept = append(kept, l)
			continue
		}
		clash := false
		for o := l.input.Offset; o < l.input.Offset+l.input.Count; o++ {
			clash = clash || covered[o]
		}
		if clash { // only a value acknowledged twice gets here, already reported
			c.probs.add("note", "%s claims offsets already claimed by another append; left out of the linearizability check", c.describe(l.op))
			continue
		}
		for o := l.input.Offset; o < l.input.Offset+l.input.Count; o++ {
			covered[o] = true
		}
		kept = append(kept, l)
	}
	c.lin = kept
	for o := 0; o < len(covered); {
		if covered[o] {
			o++
			continue
		}
		b := o
		for o < len(covered) && !covered[o] {
			o++
		}
		c.lin = append(c.lin, linOp{op: -1, input: logInput{Append: true, Offset: b, Count: o - b}, openEnded: true})
	}

	var end int64
	rows := make(map[int]int)
	for _, op := range c.ops {
		end = max(end, c.ns(op.Call), c.ns(op.Return))
		rows[op.Process] = 0
	}
	procs := make([]int, 0, len(rows))
	for p := range rows {
		procs = append(procs, p)
	}
	sort.Ints(procs)
	for i, p := range procs {
		rows[p] = i
	}
	nextRow := len(procs)

	hist = make([]porcupine.Operation, 0, len(c.lin))
	open = make([]bool, 0, len(c.lin))
	for id, l := range c.lin {
		var call, ret int64 = 0, end + 1
		row := 0
		meta := linMeta{ID: id, Op: -1, Note: "synthetic: reference records no checked append accounts for"}
		if l.op >= 0 {
			op := &c.ops[l.op]
			call, row = c.ns(op.Call), rows[op.Process]
			meta = linMeta{ID: id, Op: l.op, Process: op.Process, Node: op.Node}
			if !l.openEnded {
				ret = c.ns(op.Return)
			}
		}
		if l.openEnded {
			row = nextRow
			nextRow++
		}
		hist = append(hist, porcupine.Operation{ClientId: row, Input: l.input, Call: call, Output: l.output, Return: ret, Metadata: meta})
		open = append(open, l.openEnded)
	}
	return hist, open, nextRow
}

// ns is t in nanoseconds since the earliest call. (Sub uses the monotonic
// clock readings when both times have them.)
func (c *checker) ns(t time.Time) int64 {
	return t.Sub(c.base).Nanoseconds()
}

// explainIllegal names where porcupine got stuck: in the first segment it
// could not linearize, the longest partial linearization, the log length
// it reaches, and the earliest-returning operation it could not place.
func (c *checker) explainIllegal(parts [][]porcupine.Operation, info porcupine.LinearizationInfo) {
	for p, partials := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, seq := range partials {
			if len(seq) > len(longest) {
				longest = seq
			}
		}
		if len(longest) == len(parts[p]) {
			continue
		}
		// Counts leave out the segment's synthetic start (ID -1).
		placed := make(map[int]bool, len(longest))
		var state any = 0
		for _, op := range longest {
			if id := op.Metadata.(linMeta).ID; id >= 0 {
				placed[id] = true
			}
			_, state = step(state, op.Input, op.Output)
		}
		var stuck *porcupine.Operation
		size := 0
		for i := range parts[p] {
			h := &parts[p][i]
			m := h.Metadata.(linMeta)
			if m.ID < 0 {
				continue
			}
			size++
			if !placed[m.ID] && (stuck == nil || h.Return < stuck.Return) {
				stuck = h
			}
		}
		what := "nothing"
		if stuck != nil {
			what = logModel.DescribeOperation(stuck.Input, stuck.Output)
			if m := stuck.Metadata.(linMeta); m.Op >= 0 {
				what += " by " + c.describe(m.Op)
			}
		}
		c.probs.add("linearizability", "not linearizable: in segment %d of %d (%d operations), the longest linearization places %d, reaching log length %d; the earliest-returning operation it cannot place is %s",
			p+1, len(parts), size, len(placed), state.(int), what)
		return
	}
	c.probs.add("linearizability", "porcupine found the history illegal but gave no partial linearization short of a segment")
}
