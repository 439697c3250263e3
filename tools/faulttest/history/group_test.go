package history

import (
	"strings"
	"testing"
)

// groupRun is a synthetic consumer-group history of one partition holding
// a, b, c, d (a and b acknowledged together, c acknowledged, d's produce
// unknown but present): member m1 processes a and b and commits 2, then
// dies; m2 re-processes b (re-delivered: m1's commit of 2 was
// acknowledged after m2 read from 1), processes c and d, commits 4, which
// the group holds at the end.
func groupRun() ([]Processed, []Commit, []GroupPartition) {
	processed := []Processed{
		{Consumer: 0, Member: "m1", Offset: 0, Value: "a", At: at(10)},
		{Consumer: 0, Member: "m1", Offset: 1, Value: "b", At: at(20)},
		{Consumer: 1, Member: "m2", Offset: 1, Value: "b", At: at(25)},
		{Consumer: 1, Member: "m2", Offset: 2, Value: "c", At: at(40)},
		{Consumer: 1, Member: "m2", Offset: 3, Value: "d", At: at(50)},
	}
	commits := []Commit{
		{Member: "m1", Offset: 1, Call: at(15), Return: at(18)},
		{Member: "m1", Offset: 2, Call: at(22), Return: at(30)},
		{Member: "m2", Offset: 4, Call: at(55), Return: at(60)},
	}
	parts := []GroupPartition{{
		Log: []string{"a", "b", "c", "d"},
		Acked: []Op{
			{Kind: Append, Outcome: OK, Offset: 0, Values: []string{"a", "b"}},
			{Kind: Append, Outcome: OK, Offset: 2, Values: []string{"c"}},
			{Kind: Append, Outcome: Unknown, Values: []string{"d"}},
		},
		Final: 4, HasFinal: true,
	}}
	return processed, commits, parts
}

func TestCheckGroupClean(t *testing.T) {
	r := CheckGroup(groupRun())
	if !r.OK() {
		t.Fatalf("clean history: %s\n%s", r, strings.Join(r.Problems, "\n"))
	}
	if r.Processed != 5 || r.Commits != 3 || r.Redelivered != 1 {
		t.Errorf("processed %d, commits %d, re-delivered %d; want 5, 3, 1", r.Processed, r.Commits, r.Redelivered)
	}
}

// Each negative control breaks the clean history one way; the checker
// must count exactly that violation.
func TestCheckGroupViolations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition)
		count  func(GroupResult) int
		want   string
	}{
		{
			name: "skipped offset",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				return append(p[:3:3], p[4]), c, g // c (offset 2) never processed, d is, and 4 committed
			},
			count: func(r GroupResult) int { return r.Skipped },
			want:  "skipped: partition 0 offset 2",
		},
		{
			name: "acknowledged record unprocessed",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				return append(p[:3:3], p[4]), c, g
			},
			count: func(r GroupResult) int { return r.Unprocessed },
			want:  `unprocessed: partition 0 offset 2 ("c", acknowledged)`,
		},
		{
			name: "commit before the records below it were processed",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				p[4].At = at(70) // d processed after the commit of 4 was acknowledged
				return p, c, g
			},
			count: func(r GroupResult) int { return r.CommitAhead },
			want:  "commit ahead: partition 0: member m2 committed 4",
		},
		{
			name: "regressing commit",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				// m1's stale commit of 1, sent after m2's 4 was acknowledged.
				return p, append(c, Commit{Member: "m1", Offset: 1, Call: at(61), Return: at(62)}), g
			},
			count: func(r GroupResult) int { return r.CommitRegressed },
			want:  "commit regressed: partition 0: member m1 committed 1 after member m2's commit of 4 was acknowledged",
		},
		{
			name: "acknowledged commit lost",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				g[0].Final = 2
				return p, c, g
			},
			count: func(r GroupResult) int { return r.CommitLost },
			want:  "commit lost: partition 0: committed 2 at the end, 4 was acknowledged",
		},
		{
			name: "nothing committed at the end",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				g[0].Final, g[0].HasFinal = 0, false
				return p, c, g
			},
			count: func(r GroupResult) int { return r.CommitLost },
			want:  "commit lost: partition 0: committed nothing at the end",
		},
		{
			name: "member going backwards",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				return append(p, Processed{Consumer: 1, Member: "m2", Offset: 2, Value: "c", At: at(52)}), c, g
			},
			count: func(r GroupResult) int { return r.Order },
			want:  "order: partition 0: member m2 returned offset 2 after 3",
		},
		{
			name: "dirty record",
			mutate: func(p []Processed, c []Commit, g []GroupPartition) ([]Processed, []Commit, []GroupPartition) {
				p[3].Value = "x"
				return p, c, g
			},
			count: func(r GroupResult) int { return r.Dirty },
			want:  `dirty: partition 0 offset 2: member m2 processed "x", the log holds "c"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckGroup(tc.mutate(groupRun()))
			if r.OK() || tc.count(r) == 0 {
				t.Fatalf("not caught: %s", r)
			}
			if !slicesContainPrefix(r.Problems, tc.want) {
				t.Errorf("problems %q, want one starting %q", r.Problems, tc.want)
			}
		})
	}
}

// A re-processed record does not change a commit's verdict: commit ahead
// looks at when an offset was first processed.
func TestCheckGroupRedeliveryIsNotAViolation(t *testing.T) {
	p, c, g := groupRun()
	p = append(p, Processed{Consumer: 2, Member: "m3", Offset: 0, Value: "a", At: at(100)})
	r := CheckGroup(p, c, g)
	if !r.OK() || r.Redelivered != 2 {
		t.Errorf("re-delivered %d (want 2), OK %v: %s", r.Redelivered, r.OK(), r)
	}
}

func slicesContainPrefix(ss []string, prefix string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
