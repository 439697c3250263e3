package server_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Each (topic, partition) is a log of its own: records produced to one
// (unary, batch, stream) get its offsets and are consumed, bounded and
// streamed from it only; a request naming no topic is the default topic's
// partition 0.
func TestTopicsAndPartitionsAreIndependent(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cluster.create("orders", 2)
	c := f.client("root")
	ctx := ctxT(t)

	type tp struct {
		topic     string
		partition uint32
	}
	targets := []tp{{"", 0}, {"orders", 0}, {"orders", 1}}
	for i, at := range targets {
		// Target i gets i+1 unary records, then a batch of 2 and a stream of 1.
		for j := range i + 1 {
			resp, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: at.topic, Partition: at.partition, Record: rec(fmt.Sprint(at, "u", j))})
			if err != nil || resp.Offset != uint64(j) {
				t.Fatalf("produce %v #%d: %v %v", at, j, resp, err)
			}
		}
		b, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: at.topic, Partition: at.partition, Records: []*logv1.Record{rec(fmt.Sprint(at, "b0")), rec(fmt.Sprint(at, "b1"))}})
		if err != nil || b.FirstOffset != uint64(i+1) {
			t.Fatalf("batch %v: %v %v", at, b, err)
		}
		stream, err := c.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&logv1.ProduceRequest{Topic: at.topic, Partition: at.partition, Record: rec(fmt.Sprint(at, "s"))}); err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.Recv(); err != nil || resp.Offset != uint64(i+3) {
			t.Fatalf("stream %v: %v %v", at, resp, err)
		}
		stream.CloseSend()
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("stream %v end: %v", at, err)
		}
	}
	if next := f.storage.NextOffset(); next != 4 {
		t.Fatalf("default topic's log: next %d, want 4 (its own records only)", next)
	}
	for i, at := range targets {
		want := uint64(i + 4)
		bounds, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: at.topic, Partition: at.partition})
		if err != nil || bounds.Lowest != 0 || bounds.Next != want {
			t.Fatalf("bounds %v: %v %v, want [0, %d)", at, bounds, err, want)
		}
		got, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: at.topic, Partition: at.partition, Offset: uint64(i + 1)})
		if err != nil || string(got.Record.Value) != fmt.Sprint(at, "b0") {
			t.Fatalf("consume %v at %d: %v %v", at, i+1, got, err)
		}
		// A stream reads this partition's records, in order, and then
		// waits for this partition's next one.
		sctx, cancel := context.WithCancel(ctx)
		cs, err := c.ConsumeStream(sctx, &logv1.ConsumeRequest{Topic: at.topic, Partition: at.partition})
		if err != nil {
			t.Fatal(err)
		}
		var values []string
		for range want {
			r, err := cs.Recv()
			if err != nil {
				t.Fatalf("consume stream %v: %v", at, err)
			}
			values = append(values, string(r.Record.Value))
		}
		if !strings.HasPrefix(values[0], fmt.Sprint(at)) || values[len(values)-1] != fmt.Sprint(at, "s") {
			t.Fatalf("stream of %v: %q", at, values)
		}
		for _, v := range values {
			if !strings.HasPrefix(v, fmt.Sprint(at)) {
				t.Fatalf("stream of %v has %q", at, v)
			}
		}
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: at.topic, Partition: at.partition, Record: rec(fmt.Sprint(at, "late"))}); err != nil {
			t.Fatal(err)
		}
		if r, err := cs.Recv(); err != nil || string(r.Record.Value) != fmt.Sprint(at, "late") || r.Record.Offset != want {
			t.Fatalf("followed record of %v: %v %v", at, r, err)
		}
		cancel()
	}
}

// A topic or partition that does not exist is NOT_FOUND with the reason
// and metadata clients refresh their metadata on, for every record RPC; a
// name no topic may have is INVALID_ARGUMENT.
func TestUnknownTopicAndPartition(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cluster.create("orders", 2)
	c := f.client("root")
	ctx := ctxT(t)
	calls := map[string]func(topic string, partition uint32) error{
		"Produce": func(topic string, p uint32) error {
			_, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Partition: p, Record: rec("x")})
			return err
		},
		"ProduceBatch": func(topic string, p uint32) error {
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: topic, Partition: p, Records: []*logv1.Record{rec("x")}})
			return err
		},
		"ProduceStream": func(topic string, p uint32) error {
			s, err := c.ProduceStream(ctx)
			if err != nil {
				return err
			}
			s.Send(&logv1.ProduceRequest{Topic: topic, Partition: p, Record: rec("x")}) // io.EOF if refused already: Recv has the status
			_, err = s.Recv()
			return err
		},
		"Consume": func(topic string, p uint32) error {
			_, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, Partition: p})
			return err
		},
		"ConsumeStream": func(topic string, p uint32) error {
			s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Topic: topic, Partition: p})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
		"GetBounds": func(topic string, p uint32) error {
			_, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic, Partition: p})
			return err
		},
	}
	for name, call := range calls {
		info := errorInfo(t, call("nope", 0), codes.NotFound)
		if info.Reason != "UNKNOWN_TOPIC" || info.Domain != server.ErrorDomain || info.Metadata["topic"] != "nope" {
			t.Errorf("%s to an unknown topic: %v", name, info)
		}
		info = errorInfo(t, call("orders", 2), codes.NotFound)
		if info.Reason != "UNKNOWN_PARTITION" || info.Metadata["topic"] != "orders" || info.Metadata["partition"] != "2" {
			t.Errorf("%s to an unknown partition: %v", name, info)
		}
		info = errorInfo(t, call("", 1), codes.NotFound)
		if info.Reason != "UNKNOWN_PARTITION" || info.Metadata["topic"] != "log" || info.Metadata["partition"] != "1" {
			t.Errorf("%s to the default topic's partition 1: %v", name, info)
		}
		info = errorInfo(t, call("a/b", 0), codes.InvalidArgument)
		if info.Reason != "INVALID_TOPIC" || info.Metadata["topic"] != "a/b" {
			t.Errorf("%s to an invalid name: %v", name, info)
		}
	}
	for _, p := range []uint32{0, 1} {
		if n := partitionLog(t, f, "orders", int(p)).NextOffset(); n != 0 {
			t.Errorf("orders/%d holds %d records", p, n)
		}
	}
}

// CreateTopic, GetMetadata and DeleteTopic through the RPCs: defaults,
// the statuses of log.proto, settings checked before the cluster is asked,
// and the default topic refused by the server itself.
func TestCreateDescribeDeleteTopic(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.ID = "node-0" }})
	c := f.client("root")
	ctx := ctxT(t)

	// Zero settings: one partition, replication factor min(3, servers) = 1.
	created, err := c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders.eu"})
	if err != nil {
		t.Fatal(err)
	}
	got := created.Topic
	if got.Name != "orders.eu" || got.Config.Partitions != 1 || got.Config.ReplicationFactor != 1 || got.Config.RetentionAge != nil ||
		len(got.Partitions) != 1 || got.Partitions[0].LeaderId != "node-0" || got.Partitions[0].Replicas[0].RpcAddr != f.addr {
		t.Fatalf("created %v", got)
	}
	if _, err := c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "audit", Config: &logv1.TopicConfig{
		Partitions: 3, ReplicationFactor: 1, RetentionBytes: 1 << 30, RetentionAge: durationpb.New(time.Hour),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "audit", Partition: 2, Record: rec("a")}); err != nil {
		t.Fatalf("produce to a created topic: %v", err)
	}

	md, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tm := range md.Topics {
		names = append(names, tm.Name)
	}
	if !slices.Equal(names, []string{"audit", "log", "orders.eu"}) {
		t.Fatalf("topics %q, want every topic ordered by name", names)
	}
	audit := md.Topics[0]
	if audit.Config.Partitions != 3 || audit.Config.RetentionBytes != 1<<30 || audit.Config.RetentionAge.AsDuration() != time.Hour || len(audit.Partitions) != 3 {
		t.Fatalf("audit described as %v", audit)
	}
	for i, p := range audit.Partitions {
		if p.Partition != uint32(i) || p.Epoch != 1 || len(p.Replicas) != 1 || !p.Replicas[0].IsLeader {
			t.Fatalf("audit partition %d described as %v", i, p)
		}
	}
	if len(md.Servers) != 1 || md.Servers[0].Id != "node-0" || md.Servers[0].RpcAddr != f.addr {
		t.Fatalf("servers %v", md.Servers)
	}
	named, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"orders.eu", "log", "orders.eu"}})
	if err != nil || len(named.Topics) != 2 || named.Topics[0].Name != "log" || named.Topics[1].Name != "orders.eu" {
		t.Fatalf("named topics (one twice): %v %v", named, err)
	}
	_, err = c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"log", "zzz", "orders.eu"}})
	if info := errorInfo(t, err, codes.NotFound); info.Reason != "UNKNOWN_TOPIC" || info.Metadata["topic"] != "zzz" {
		t.Fatalf("an unknown topic among three: %v", info)
	}

	_, err = c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "audit"})
	if info := errorInfo(t, err, codes.AlreadyExists); info.Reason != "TOPIC_EXISTS" || info.Metadata["topic"] != "audit" {
		t.Fatalf("existing topic: %v", info)
	}
	_, err = c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "wide", Config: &logv1.TopicConfig{ReplicationFactor: 3}})
	if info := errorInfo(t, err, codes.FailedPrecondition); info.Reason != "NOT_ENOUGH_NODES" || info.Metadata["replication_factor"] != "3" || info.Metadata["nodes"] != "1" {
		t.Fatalf("replication factor over the nodes: %v", info)
	}
	// The message is the cause alone: clients print the kind (the reason)
	// in their own words before it.
	if msg := status.Convert(err).Message(); msg != "replication factor 3, but the cluster has 1 live nodes; create the topic with a smaller replication factor or add servers" {
		t.Errorf("NOT_ENOUGH_NODES message %q", msg)
	}

	// Settings and names log.proto does not allow never reach the cluster.
	before, _ := f.cluster.calls()
	for _, tc := range []struct {
		req  *logv1.CreateTopicRequest
		want string
	}{
		{&logv1.CreateTopicRequest{Name: ""}, "must be 1 to 249 characters"},
		{&logv1.CreateTopicRequest{Name: ".."}, "not . or .."},
		{&logv1.CreateTopicRequest{Name: "a b"}, "use letters, digits"},
		{&logv1.CreateTopicRequest{Name: strings.Repeat("x", 250)}, "1 to 249"},
		{&logv1.CreateTopicRequest{Name: "x", Config: &logv1.TopicConfig{Partitions: 1025}}, "1025 partitions, want 1 to 1024"},
		{&logv1.CreateTopicRequest{Name: "x", Config: &logv1.TopicConfig{ReplicationFactor: 8}}, "replication factor 8, want 1 to 7"},
		{&logv1.CreateTopicRequest{Name: "x", Config: &logv1.TopicConfig{RetentionBytes: 1 << 63}}, "retention bytes 9223372036854775808"},
		{&logv1.CreateTopicRequest{Name: "x", Config: &logv1.TopicConfig{RetentionAge: durationpb.New(-time.Second)}}, "retention age -1s is negative"},
		{&logv1.CreateTopicRequest{Name: "x", Config: &logv1.TopicConfig{RetentionAge: &durationpb.Duration{Seconds: 1, Nanos: -1}}}, "retention age"},
	} {
		_, err := c.CreateTopic(ctx, tc.req)
		info := errorInfo(t, err, codes.InvalidArgument)
		msg := status.Convert(err).Message()
		if info.Reason != "INVALID_TOPIC" || !strings.Contains(msg, tc.want) || strings.Contains(msg, "invalid topic") {
			t.Errorf("CreateTopic(%.40v): %v, want INVALID_TOPIC saying %q (and not the kind again)", tc.req, err, tc.want)
		}
	}
	if after, _ := f.cluster.calls(); after != before {
		t.Fatalf("%d invalid CreateTopic calls reached the cluster", after-before)
	}

	if _, err := c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders.eu"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"orders.eu"}})
	if info := errorInfo(t, err, codes.NotFound); info.Reason != "UNKNOWN_TOPIC" || info.Metadata["topic"] != "orders.eu" {
		t.Fatalf("describe a deleted topic: %v", info)
	}
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders.eu", Record: rec("x")})
	if info := errorInfo(t, err, codes.NotFound); info.Reason != "UNKNOWN_TOPIC" {
		t.Fatalf("produce to a deleted topic: %v", info)
	}
	_, err = c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders.eu"})
	if info := errorInfo(t, err, codes.NotFound); info.Reason != "UNKNOWN_TOPIC" || info.Metadata["topic"] != "orders.eu" {
		t.Fatalf("delete a deleted topic: %v", info)
	}

	_, deletes := f.cluster.calls()
	_, err = c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "log"})
	if info := errorInfo(t, err, codes.InvalidArgument); info.Reason != "INVALID_TOPIC" || info.Metadata["topic"] != "log" ||
		!strings.Contains(status.Convert(err).Message(), "the default topic") {
		t.Fatalf("delete the default topic: %v", err)
	}
	if _, after := f.cluster.calls(); after != deletes {
		t.Fatal("the default topic's deletion reached the cluster; the server must refuse it itself")
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("still here")}); err != nil {
		t.Fatalf("default topic after the refused deletion: %v", err)
	}
}

// writePolicy writes a casbin policy of lines and returns an Authorizer
// over it with the built-in model.
func writePolicy(t *testing.T, lines ...string) *auth.Authorizer {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthorizer("", policy)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The ACL's objects are topics, with keyMatch wildcards: a grant on
// orders.* covers orders.eu but not the default topic; GetMetadata lists
// only the topics the caller may describe and refuses naming another;
// create and delete are checked on the topic's name.
func TestTopicACL(t *testing.T) {
	authz := writePolicy(t,
		"p, root, *, *",
		"p, nobody, orders.*, produce",
		"p, nobody, orders.*, consume",
		"p, nobody, orders.*, describe",
		"p, nobody, orders.*, create",
	)
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	f.cluster.create("orders.eu", 1)
	f.cluster.create("orders", 1)
	f.cluster.create("billing", 1)
	c := f.client("nobody")
	ctx := ctxT(t)

	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders.eu", Record: rec("x")}); err != nil {
		t.Fatalf("produce to orders.eu: %v", err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders.eu"}); err != nil {
		t.Fatalf("consume orders.eu: %v", err)
	}
	for _, topic := range []string{"", "orders", "billing", "nope"} {
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Record: rec("x")})
		wantStatus(t, err, codes.PermissionDenied, "nobody may not produce")
		_, err = c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic})
		wantStatus(t, err, codes.PermissionDenied, "nobody may not consume")
	}
	// An unknown topic is refused as denied, not NOT_FOUND: a caller
	// learns nothing of topics it has no right on.

	md, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Name != "orders.eu" {
		t.Fatalf("metadata of every topic nobody may describe: %v %v", md, err)
	}
	_, err = c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"orders.eu", "billing"}})
	wantStatus(t, err, codes.PermissionDenied, `nobody may not describe on "billing"`)

	if _, err := c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders.us"}); err != nil {
		t.Fatalf("create orders.us: %v", err)
	}
	_, err = c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "billing.eu"})
	wantStatus(t, err, codes.PermissionDenied, `nobody may not create on "billing.eu"`)
	// nobody has no delete right anywhere: refused before its message is read.
	_, err = c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders.us"})
	wantStatus(t, err, codes.PermissionDenied, "nobody may not delete on any topic")
	if _, err := f.client("root").DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders.us"}); err != nil {
		t.Fatalf("root deletes orders.us: %v", err)
	}
}

// Producing or consuming a topic implies describing it (Kafka's rule): a
// caller with only produce on one topic and only consume on another gets
// the metadata of both, listed and named, and none of a topic it has no
// right on.
func TestGetMetadataImpliedDescribe(t *testing.T) {
	authz := writePolicy(t,
		"p, root, *, *",
		"p, nobody, orders, produce",
		"p, nobody, audit, consume",
	)
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	for _, name := range []string{"orders", "audit", "billing"} {
		f.cluster.create(name, 1)
	}
	c := f.client("nobody")
	ctx := ctxT(t)

	md, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{})
	if err != nil || len(md.Topics) != 2 || md.Topics[0].Name != "audit" || md.Topics[1].Name != "orders" {
		t.Fatalf("metadata of every topic nobody may produce or consume: %v %v", md, err)
	}
	md, err = c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"orders", "audit"}})
	if err != nil || len(md.Topics) != 2 {
		t.Fatalf("metadata of orders and audit: %v %v", md, err)
	}
	_, err = c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"orders", "billing"}})
	wantStatus(t, err, codes.PermissionDenied, `nobody may not describe on "billing"`)
}

// A ProduceStream writes to its first request's topic and partition; a
// later request naming another ends the stream with INVALID_ARGUMENT after
// the requests before it are written and acknowledged.
func TestProduceStreamMismatchedTopicRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cluster.create("orders", 2)
	s, err := f.client("root").ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, req := range []*logv1.ProduceRequest{
		{Topic: "orders", Partition: 1, Record: rec("first")},
		{Record: rec("second: names neither, so the stream's")},
		{Topic: "orders", Partition: 1, Record: rec("third: names the same")},
	} {
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
		if resp, err := s.Recv(); err != nil || resp.Offset != uint64(i) {
			t.Fatalf("ack %d: %v %v", i, resp, err)
		}
	}
	if err := s.Send(&logv1.ProduceRequest{Topic: "orders", Partition: 0, Record: rec("other partition")}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantStatus(t, err, codes.InvalidArgument, `this ProduceStream writes to topic "orders" partition 1 (its first request's); a request names topic "orders" partition 0`)
	if n := partitionLog(t, f, "orders", 1).NextOffset(); n != 3 {
		t.Fatalf("orders/1 holds %d records, want 3", n)
	}
	for _, other := range []struct {
		topic string
		p     int
	}{{"orders", 0}, {"log", 0}} {
		if n := partitionLog(t, f, other.topic, other.p).NextOffset(); n != 0 {
			t.Fatalf("%s/%d holds %d records", other.topic, other.p, n)
		}
	}

	// A stream of the default topic refuses a request for another topic
	// (partition 0 too) the same way.
	s, err = f.client("root").ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&logv1.ProduceRequest{Record: rec("default")})
	s.Send(&logv1.ProduceRequest{Topic: "orders", Record: rec("elsewhere")})
	if resp, err := s.Recv(); err != nil || resp.Offset != 0 {
		t.Fatalf("default stream's first ack: %v %v", resp, err)
	}
	_, err = s.Recv()
	wantStatus(t, err, codes.InvalidArgument, `writes to topic "log" partition 0`)
}

// The cluster's errors of reaching a leader get the statuses clients act
// on: a node holding no replica of a partition, or not the metadata leader
// a CreateTopic or DeleteTopic needs, answers NOT_LEADER with the address
// to retry at; no leader known or unavailable is UNAVAILABLE.
func TestClusterLeaderErrorsMapToStatuses(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	calls := map[string]func() error{
		"Produce": func() error {
			_, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Record: rec("x")})
			return err
		},
		"GetMetadata": func() error {
			_, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{})
			return err
		},
		"CreateTopic": func() error {
			_, err := c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders"})
			return err
		},
		"DeleteTopic": func() error {
			_, err := c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders"})
			return err
		},
	}
	for name, call := range calls {
		f.cluster.failWith(fmt.Errorf("reach the leader: %w", &commitlog.NotLeaderError{LeaderID: "n2", LeaderAddr: "10.0.0.2:8400"}))
		info := errorInfo(t, call(), codes.FailedPrecondition)
		if info.Reason != "NOT_LEADER" || info.Domain != server.ErrorDomain || info.Metadata["leader_id"] != "n2" || info.Metadata["leader_addr"] != "10.0.0.2:8400" {
			t.Errorf("%s, not the leader: %v", name, info)
		}
		f.cluster.failWith(&commitlog.NotLeaderError{})
		wantStatus(t, call(), codes.Unavailable, "no leader elected yet")
		f.cluster.failWith(fmt.Errorf("metadata: %w", commitlog.ErrUnavailable))
		wantStatus(t, call(), codes.Unavailable, "retry later")
	}
}

// A partition's own errors name its topic and partition too: a replica
// removed under a call (its topic deleted) answers like an unknown topic.
func TestPartitionErrorsNameTheirTopic(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	fail := func() error { return fmt.Errorf("replica removed: %w", commitlog.ErrUnknownTopic) }
	f.clog.fail.Store(&fail)
	_, err := f.client("root").Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("x")})
	if info := errorInfo(t, err, codes.NotFound); info.Reason != "UNKNOWN_TOPIC" || info.Metadata["topic"] != "log" || info.Metadata["partition"] != "0" {
		t.Fatalf("partition error: %v", info)
	}
}

// lister is a commitlog.ServerLister of fixed servers.
type lister struct {
	mu      sync.Mutex
	servers []commitlog.Server
}

func (l *lister) set(servers ...commitlog.Server) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.servers = servers
}

func (l *lister) Servers(context.Context) ([]commitlog.Server, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.servers), nil
}

// A partition without a leader says why: with a majority of its replicas
// on failed or leaving servers, which ones and that no leader can be
// elected (reason NO_LEADER, clients stop retrying); with fewer, that an
// election is under way. The metadata marks the replicas in sync and the
// servers' states.
func TestNoLeaderNamesTheUnreachableReplicas(t *testing.T) {
	ls := &lister{}
	f := newFixture(t, fixtureOpts{server: func(c *server.Config) { c.ID = "n0"; c.Servers = ls }})
	c := f.client("root")
	ctx := ctxT(t)
	n0 := commitlog.Server{ID: "n0", Addr: f.addr, State: commitlog.StateAlive, MetadataVoter: true}
	n1 := commitlog.Server{ID: "n1", Addr: "10.0.0.1:8400", State: commitlog.StateFailed, MetadataVoter: true}
	n2 := commitlog.Server{ID: "n2", Addr: "10.0.0.2:8400", State: commitlog.StateFailed}
	f.cluster.placeOn([]commitlog.Server{{ID: "n0", Addr: f.addr}, {ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}})
	noLeader := func() error { return &commitlog.NotLeaderError{} }
	f.clog.fail.Store(&noLeader)

	ls.set(n0, n1, n2)
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("x")})
	info := errorInfo(t, err, codes.Unavailable)
	if info.Reason != "NO_LEADER" || info.Metadata["topic"] != "log" || info.Metadata["partition"] != "0" ||
		info.Metadata["replicas"] != "3" || info.Metadata["unreachable"] != "n1,n2" {
		t.Errorf("majority failed: %v", info)
	}
	if msg, want := status.Convert(err).Message(), "partition log/0 has no leader: 2 of its 3 replicas are unreachable (n1 failed, n2 failed); a leader needs 2 of them, so none can be elected until enough are back"; msg != want {
		t.Errorf("majority failed: message %q, want %q", msg, want)
	}

	// n2 alive again but still catching up; n1 gone from the list: the
	// metadata has it leaving.
	n2.State = commitlog.StateAlive
	f.cluster.placeOn([]commitlog.Server{{ID: "n0", Addr: f.addr}, {ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}, "n2")
	ls.set(n0, n2)
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: rec("x")})
	info = errorInfo(t, err, codes.Unavailable)
	if info.Reason != "NO_LEADER" || info.Metadata["unreachable"] != "n1" {
		t.Errorf("one leaving: %v", info)
	}
	wantStatus(t, err, codes.Unavailable, "partition log/0 has no leader yet (an election is under way; 1 of its 3 replicas unreachable: n1 leaving); retry shortly")

	md, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"log"}})
	if err != nil {
		t.Fatal(err)
	}
	p := md.Topics[0].Partitions[0]
	if !slices.Equal(p.InSync, []string{"n0"}) {
		t.Errorf("in sync %q, want [n0] (n1 leaving, n2 catching up)", p.InSync)
	}
	var states []string
	for _, r := range p.Replicas {
		states = append(states, r.Id+":"+r.State.String())
	}
	if want := []string{"n0:SERVER_STATE_ALIVE", "n1:SERVER_STATE_UNSPECIFIED", "n2:SERVER_STATE_ALIVE"}; !slices.Equal(states, want) {
		t.Errorf("replica states %q, want %q", states, want)
	}
	resp, err := c.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Servers) != 2 || resp.Servers[0].State != logv1.ServerState_SERVER_STATE_ALIVE || !resp.Servers[0].MetadataVoter || resp.Servers[1].MetadataVoter {
		t.Errorf("servers %v", resp.Servers)
	}
}
