package history

import (
	"math"
	"sort"

	"github.com/anishathalye/porcupine"
)

// split cuts a porcupine history of the log model into segments in time
// that are linearizable each from its own start if and only if the whole
// is linearizable, so that porcupine searches many small histories instead
// of one large one.
//
// It relies on what Check gives porcupine: appends that tile the offsets
// [0, L) exactly, each at a fixed offset, so the log's length is a function
// of which appends have taken effect. At a time T where
//
//  1. no finite operation is in flight (each returned before T or is
//     called after it), and
//  2. the append at offset s (if any) is called after T, where s is the end
//     of the furthest finite append that returned before T,
//
// the length is forced to be s in every linearization: at least s by the
// append that returned, at most s since the append at s has not started.
// A segment holds the finite operations between two such cuts and the
// open-ended appends whose offset lies in its range of lengths [s, s'),
// which every linearization applies between those cuts. Conversely,
// linearizations of the segments concatenate into one of the whole: an
// open-ended append placed after every finite operation of its segment
// must have been called before the next cut, or the finite append ending
// at s' (in the same segment, after it in the log) would have returned
// before it was called, which porcupine rejects within the segment.
// Likewise an append below s called after a cut cannot be placed in its
// segment, just as in the whole.
//
// A segment starting at s > 0 begins with a synthetic append [0, s) that
// returns before anything else in it is called (and every other append in
// it is illegal at length 0), so it is forced first and the model needs no
// per-segment initial state.
//
// open[i] says hist[i] returns after everything else; startRow is the
// visualization row for the synthetic starts. If the appends do not tile
// (they always do, unless Check has a bug), split returns hist whole.
func split(hist []porcupine.Operation, open []bool, startRow int) [][]porcupine.Operation {
	type app struct {
		b, e int
		call int64
	}
	var apps []app
	var finite []int
	for i, h := range hist {
		if in := h.Input.(logInput); in.Append {
			apps = append(apps, app{in.Offset, in.Offset + in.Count, h.Call})
		}
		if !open[i] {
			finite = append(finite, i)
		}
	}
	whole := [][]porcupine.Operation{hist}
	sort.Slice(apps, func(i, j int) bool { return apps[i].b < apps[j].b })
	// callAt[s]: when the append at offset s was called (none at L).
	callAt := make(map[int]int64, len(apps))
	end := 0
	for _, a := range apps {
		if a.b != end || a.e <= a.b {
			return whole
		}
		callAt[a.b], end = a.call, a.e
	}

	sort.Slice(finite, func(i, j int) bool {
		a, b := &hist[finite[i]], &hist[finite[j]]
		return a.Call < b.Call || (a.Call == b.Call && a.Return < b.Return)
	})
	type cut struct {
		k int   // index in finite of the first operation after the cut
		s int   // the log's length at the cut
		t int64 // the latest return before the cut
	}
	var cuts []cut
	maxRet, s := int64(math.MinInt64), 0
	for k, i := range finite {
		h := &hist[i]
		maxRet = max(maxRet, h.Return)
		if in := h.Input.(logInput); in.Append {
			s = max(s, in.Offset+in.Count)
		}
		if k+1 == len(finite) || hist[finite[k+1]].Call <= maxRet {
			continue // 1: something is in flight
		}
		if call, ok := callAt[s]; ok && call <= maxRet {
			continue // 2: the append at s may have taken effect
		}
		cuts = append(cuts, cut{k + 1, s, maxRet})
	}
	if len(cuts) == 0 {
		return whole
	}

	segs := make([][]porcupine.Operation, len(cuts)+1)
	from := 0
	for j := range segs {
		to := len(finite)
		if j < len(cuts) {
			to = cuts[j].k
		}
		if j > 0 && cuts[j-1].s > 0 {
			c := cuts[j-1]
			segs[j] = append(segs[j], porcupine.Operation{
				ClientId: startRow,
				Input:    logInput{Append: true, Offset: 0, Count: c.s},
				Call:     c.t,
				Return:   c.t,
				Metadata: linMeta{ID: -1, Op: -1, Note: "synthetic: the log's length where this segment starts"},
			})
		}
		for _, i := range finite[from:to] {
			segs[j] = append(segs[j], hist[i])
		}
		from = to
	}
	for i, h := range hist {
		if !open[i] {
			continue
		}
		b := h.Input.(logInput).Offset
		// Segment j starts at cuts[j-1].s: the last one starting at or
		// below b (cuts' lengths never decrease).
		j := sort.Search(len(cuts), func(x int) bool { return cuts[x].s > b })
		segs[j] = append(segs[j], h)
	}
	return segs
}
