package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
)

// consume --group --max reads from the group's committed positions across
// the partitions, stops at their end, commits and leaves: a second run
// continues where the first stopped. groups list and describe show the
// group, its offsets and lag.
func TestConsumeGroupContinuesAndGroupsShowIt(t *testing.T) {
	tc, conn := topicDouble(t)
	tc.CreateTopic("orders", 3, 1)
	var all []string
	for p := range 3 {
		vals := []string{fmt.Sprintf("p%d-a", p), fmt.Sprintf("p%d-b", p)}
		mustRun(t, "", append([]string{"produce", "--topic", "orders", "--partition", fmt.Sprint(p), vals[0], vals[1]}, conn...)...)
		all = append(all, vals...)
	}
	consume := append([]string{"consume", "--topic", "orders", "--group", "billing"}, conn...)

	first := lines(mustRun(t, "", append(consume, "--max", "4")...))
	if len(first) != 4 {
		t.Fatalf("consume --max 4 printed %q", first)
	}
	second := lines(mustRun(t, "", append(consume, "--max", "100")...))
	got := append(slices.Clone(first), second...)
	slices.Sort(got)
	if !slices.Equal(got, all) {
		t.Fatalf("the two runs printed %q then %q: want every record once, %q", first, second, all)
	}
	// A third run finds every partition at its end: nothing, exit 0.
	if out := mustRun(t, "", consume...); out != "" {
		t.Fatalf("a third run printed %q", out)
	}
	st := tc.Group("billing")
	if len(st.Members) != 0 || st.Committed["orders/0"] != 2 || st.Committed["orders/1"] != 2 || st.Committed["orders/2"] != 2 {
		t.Fatalf("group after the runs: %+v", st)
	}

	// JSON records carry topic and partition.
	mustRun(t, "", append([]string{"produce", "--topic", "orders", "--partition", "1", "c"}, conn...)...)
	var rec struct {
		Topic     string `json:"topic"`
		Partition uint32 `json:"partition"`
		Offset    uint64 `json:"offset"`
		Value     string `json:"value"`
	}
	out := mustRun(t, "", append(consume, "--json")...)
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Topic != "orders" || rec.Partition != 1 || rec.Offset != 2 || rec.Value != "c" {
		t.Fatalf("consume --group --json printed %q (%v)", out, err)
	}

	if out := mustRun(t, "", append([]string{"groups", "list"}, conn...)...); !hasRow(out, "billing", "0") {
		t.Errorf("groups list printed %q", out)
	}
	out = mustRun(t, "", append([]string{"groups", "list", "--json"}, conn...)...)
	var g struct {
		Group      string `json:"group"`
		Generation uint64 `json:"generation"`
		Members    *int   `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.Group != "billing" || g.Generation == 0 || g.Members == nil || *g.Members != 0 {
		t.Errorf("groups list --json printed %q (%v)", out, err)
	}

	// A member that holds the partitions and committed nothing of group
	// "new": owner shown, committed and lag "-".
	cl, err := client.New(ctxT(t), conn[1], client.WithTLSFiles(tc.Certs.CACert, tc.Certs.ClientCert("root"), tc.Certs.ClientKey("root")))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cons, err := cl.Consumer(ctxT(t), "new", []string{"orders"}, client.WithAutoCommit(0), client.WithClientID("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())

	out = mustRun(t, "", append([]string{"groups", "describe", "billing"}, conn...)...)
	for _, want := range []string{"group billing: generation", "orders  0          -      2          2    0", "orders  1          -      3          3    0"} {
		if !strings.Contains(out, want) {
			t.Errorf("groups describe billing printed\n%s\nwant a line with %q", out, want)
		}
	}
	out = mustRun(t, "", append([]string{"groups", "describe", "new", "--json"}, conn...)...)
	var j struct {
		Members []struct {
			MemberID string   `json:"member_id"`
			ClientID string   `json:"client_id"`
			Owned    []string `json:"owned"`
		} `json:"members"`
		Partitions []struct {
			Topic     string  `json:"topic"`
			Partition uint32  `json:"partition"`
			Owner     string  `json:"owner"`
			Committed *uint64 `json:"committed"`
			End       uint64  `json:"end"`
			Lag       *uint64 `json:"lag"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("groups describe --json printed %q: %v", out, err)
	}
	if len(j.Members) != 1 || j.Members[0].ClientID != "test" || !slices.Equal(j.Members[0].Owned, []string{"orders/0", "orders/1", "orders/2"}) {
		t.Errorf("members %+v", j.Members)
	}
	if len(j.Partitions) != 3 || j.Partitions[1].Owner != cons.MemberID() || j.Partitions[1].Committed != nil || j.Partitions[1].Lag != nil || j.Partitions[1].End != 3 {
		t.Errorf("partitions %+v", j.Partitions)
	}
	out = mustRun(t, "", append([]string{"groups", "describe", "new"}, conn...)...)
	if want := fmt.Sprintf("orders  1          %s  -          3    -", cons.MemberID()); !strings.Contains(out, want) {
		t.Errorf("groups describe new printed\n%s\nwant a line with %q", out, want)
	}
	if _, errOut, err := proglogCmd(t, "", append([]string{"groups", "describe", "nope"}, conn...)...); err == nil || !strings.Contains(errOut, "unknown group") {
		t.Errorf("describe of an unknown group: %v, %q", err, errOut)
	}
}

func TestConsumeGroupFlags(t *testing.T) {
	for _, args := range [][]string{
		{"consume", "--group", "g", "--partition", "1"},
		{"consume", "--group", "g", "--from", "3"},
		{"consume", "--max", "-1"},
	} {
		_, errOut, err := proglogCmd(t, "", args...)
		if err == nil || !(strings.Contains(errOut, "do not apply") || strings.Contains(errOut, "must not be negative")) {
			t.Errorf("proglog %s: %v, %q", strings.Join(args, " "), err, errOut)
		}
	}
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// hasRow reports whether a line of out starts with first and ends with
// last (fields separated by blanks).
func hasRow(out, first, last string) bool {
	for _, l := range lines(out) {
		if f := strings.Fields(l); len(f) > 1 && f[0] == first && f[len(f)-1] == last {
			return true
		}
	}
	return false
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestConsumeGroupOnARealServer: consume --group --max twice against a
// "serve --dev" node continues where the first run stopped, and groups
// describe shows the commits with no lag.
func TestConsumeGroupOnARealServer(t *testing.T) {
	dataDir := t.TempDir()
	srv := startBinary(t, dataDir)
	conn := []string{"--addr", srv.addr, "--dev", dataDir}
	mustRun(t, "", append([]string{"topics", "create", "orders", "--partitions", "3"}, conn...)...)
	describeLeaders(t, "orders", conn)
	var all []string
	for p := range 3 {
		vals := []string{fmt.Sprintf("p%d-a", p), fmt.Sprintf("p%d-b", p), fmt.Sprintf("p%d-c", p)}
		mustRun(t, "", append(append([]string{"produce", "--topic", "orders", "--partition", fmt.Sprint(p)}, vals...), conn...)...)
		all = append(all, vals...)
	}
	consume := append([]string{"consume", "--topic", "orders", "--group", "billing"}, conn...)
	first := lines(mustRun(t, "", append(consume, "--max", "5")...))
	second := lines(mustRun(t, "", append(consume, "--max", "100")...))
	got := append(slices.Clone(first), second...)
	slices.Sort(got)
	if len(first) != 5 || !slices.Equal(got, all) {
		t.Fatalf("the two runs printed %q then %q: want 5, then the other 4, every record once", first, second)
	}
	out := mustRun(t, "", append([]string{"groups", "describe", "billing"}, conn...)...)
	for p := range 3 {
		if want := fmt.Sprintf("orders  %d          -      3          3    0", p); !strings.Contains(out, want) {
			t.Errorf("groups describe printed\n%s\nwant a line with %q", out, want)
		}
	}
	if out := mustRun(t, "", append([]string{"groups", "list"}, conn...)...); !hasRow(out, "billing", "0") {
		t.Errorf("groups list printed %q", out)
	}
}

// groups describe shows what it can when a partition's end cannot be
// read (no leader here; no consume permission alike): its committed
// offset, END and LAG "-", and a warning on stderr; it exits 0.
func TestGroupsDescribeWithAnUnreadableEnd(t *testing.T) {
	tc, conn := topicDouble(t)
	tc.CreateTopic("orders", 2, 1)
	for p := range 2 {
		mustRun(t, "", append([]string{"produce", "--topic", "orders", "--partition", fmt.Sprint(p), "a", "b"}, conn...)...)
	}
	mustRun(t, "", append([]string{"consume", "--topic", "orders", "--group", "billing", "--max", "4"}, conn...)...)
	tc.SetNoLeader("orders", 1)
	out, errOut, err := proglogCmd(t, "", append([]string{"groups", "describe", "billing", "--timeout", "1s"}, conn...)...)
	if err != nil {
		t.Fatalf("groups describe with orders/1 leaderless: %v\nstderr:\n%s", err, errOut)
	}
	for _, want := range []string{"orders  0          -      2          2    0", "orders  1          -      2          -    -"} {
		if !strings.Contains(out, want) {
			t.Errorf("groups describe printed\n%s\nwant a line with %q", out, want)
		}
	}
	if !strings.Contains(errOut, "proglog: warning: end of orders/1 unknown") || strings.Contains(errOut, "orders/0") {
		t.Errorf("stderr %q, want a warning of orders/1 only", errOut)
	}
}

// A client error wrapped by the CLI is printed with one "proglog: ".
func TestErrorLinePrefixedOnce(t *testing.T) {
	err := fmt.Errorf("commit to group g: %w", fmt.Errorf("%w: nobody may not group on %q", client.ErrPermissionDenied, "g"))
	if got, want := errorLine(err), `proglog: commit to group g: permission denied: nobody may not group on "g"`; got != want {
		t.Errorf("errorLine = %q, want %q", got, want)
	}
	if got := errorLine(client.ErrUnavailable); got != "proglog: unavailable" {
		t.Errorf("errorLine of a client error = %q", got)
	}
}

// consume --group --max by a member that gets no partition, because a
// member that stopped without leaving still owns them, exits 0 and tells
// on stderr which partitions that member owns.
func TestConsumeGroupTellsOfPartitionsOwnedElsewhere(t *testing.T) {
	tc, conn := topicDouble(t)
	tc.CreateTopic("orders", 2, 1)
	mustRun(t, "", append([]string{"produce", "--topic", "orders", "--partition", "0", "a"}, conn...)...)
	stopped, err := tc.JoinMember("billing", "orders")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := proglogCmd(t, "", append([]string{"consume", "--topic", "orders", "--group", "billing", "--max", "10"}, conn...)...)
	if err != nil || out != "" {
		t.Fatalf("consume while another member owns every partition: %v, printed %q\nstderr:\n%s", err, out, errOut)
	}
	if want := "orders/0, orders/1 not read: owned by member " + stopped; !strings.Contains(errOut, want) || !strings.Contains(errOut, "session ends") {
		t.Errorf("stderr %q, want %q and when they come back", errOut, want)
	}
	// Once that member's session ended the next run reads, and says nothing.
	tc.ExpireMember("billing", stopped)
	out, errOut, err = proglogCmd(t, "", append([]string{"consume", "--topic", "orders", "--group", "billing", "--max", "10"}, conn...)...)
	if err != nil || out != "a\n" || errOut != "" {
		t.Errorf("consume after the member expired: %v, printed %q, stderr %q", err, out, errOut)
	}
}
