package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("err = %v, want %v containing %q", err, code, msg)
	}
}

// A caller who may not produce is refused when the call's headers arrive,
// before its message is read: a batch of a million empty records, which
// decodes to ~100 MB, costs the server no decoding.
func TestUnauthorizedBatchIsNotDecoded(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.MaxBatchRecords = 2_000_000 }})
	const records = 1_000_000 // 2 bytes each on the wire: a 2 MB message
	recs := make([]*logv1.Record, records)
	for i := range recs {
		recs[i] = &logv1.Record{}
	}
	req := &logv1.ProduceBatchRequest{Records: recs}
	c := f.client("nobody")
	ctx := ctxT(t)
	if _, err := c.GetServers(ctx, &logv1.GetServersRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("warm-up call: %v", err) // connection set up outside the measurement
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.ProduceBatch(ctx, req)
	runtime.ReadMemStats(&after)
	wantStatus(t, err, codes.PermissionDenied, "nobody may not produce")
	// The client's encoding and the transport's buffers are a few MB;
	// decoding would be ~100 MB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Fatalf("the refused call allocated %d MB in the test process", alloc>>20)
	}
	if n := server.Unmarshalled(f.srv); n != 0 {
		t.Fatalf("the server unmarshalled %d requests of a caller it refuses", n)
	}
	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "permission_denied"}); got != 2 {
		t.Fatalf("proglog_rejected_requests_total{reason=permission_denied} = %v, want 2", got)
	}
}

// With topics the object of a call is in its message, so the check when
// its headers arrive is whether the caller has the method's action on any
// topic: a caller with none is still refused before a byte is decoded, for
// the record RPCs and the topic RPCs alike. A caller with the action on
// some other topic is let through and refused by the handler, once the
// message is decoded (bounded by the codec's limits) and before any work.
// GetMetadata's actions are describe, produce and consume (either implies
// describing).
func TestTopicCallsRefusedBeforeDecodingWithoutTheActionAnywhere(t *testing.T) {
	authz := writePolicy(t, "p, root, *, *", "p, nobody, orders.*, group")
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	_, err := f.client("nobody").GetMetadata(ctxT(t), &logv1.GetMetadataRequest{Topics: []string{"log"}})
	wantStatus(t, err, codes.PermissionDenied, "nobody may not describe on any topic")
	if n := server.Unmarshalled(f.srv); n != 0 {
		t.Fatalf("the server unmarshalled %d requests of calls refused on any topic", n)
	}

	authz = writePolicy(t, "p, root, *, *", "p, nobody, orders.*, produce")
	f = newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	c := f.client("nobody")
	ctx := ctxT(t)
	big := make([]*logv1.Record, server.DefaultMaxBatchRecords)
	for i := range big {
		big[i] = &logv1.Record{}
	}
	_, err = c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders.x"})
	wantStatus(t, err, codes.PermissionDenied, "nobody may not create on any topic")
	_, err = c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "log"})
	wantStatus(t, err, codes.PermissionDenied, "nobody may not delete on any topic")
	if n := server.Unmarshalled(f.srv); n != 0 {
		t.Fatalf("the server unmarshalled %d requests of calls refused on any topic", n)
	}
	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "permission_denied"}); got != 2 {
		t.Fatalf("proglog_rejected_requests_total{reason=permission_denied} = %v, want 2", got)
	}

	// produce on orders.* admits the call; the handler refuses the default
	// topic after decoding, and nothing is written.
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: big})
	wantStatus(t, err, codes.PermissionDenied, `nobody may not produce on "log"`)
	if n := server.Unmarshalled(f.srv); n != 1 {
		t.Fatalf("unmarshalled %d requests, want the one admitted", n)
	}
	if n := f.storage.NextOffset(); n != 0 {
		t.Fatalf("%d records written", n)
	}
}

// A GetMetadata naming more than MaxMetadataTopics topics is refused by
// counting the names on the wire, before it is unmarshalled: empty names
// cost 2 bytes each to send and a string each decoded.
func TestMetadataTopicsOverLimitRefusedBeforeUnmarshal(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.MaxMetadataTopics = 3 }})
	c := f.client("root")
	ctx := ctxT(t)
	if _, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"log", "log", "log"}}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	before := server.Unmarshalled(f.srv)
	_, err := c.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: make([]string, 4)})
	wantStatus(t, err, codes.InvalidArgument, "the request names more than 3 topics")
	if n := server.Unmarshalled(f.srv); n != before {
		t.Fatalf("the refused request was unmarshalled")
	}
	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "too_many_topics"}); got != 1 {
		t.Fatalf("proglog_rejected_requests_total{reason=too_many_topics} = %v, want 1", got)
	}
}

// Over MaxBatchRecords a batch is refused by counting records on the wire,
// before it is unmarshalled.
func TestBatchOverLimitRefusedBeforeUnmarshal(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.MaxBatchRecords = 100 }})
	c := f.client("root")
	ctx := ctxT(t)
	recs := make([]*logv1.Record, 101)
	for i := range recs {
		recs[i] = &logv1.Record{}
	}
	_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs})
	wantStatus(t, err, codes.InvalidArgument, "batch has more than 100 records (the limit is 100)")
	if n := server.Unmarshalled(f.srv); n != 0 {
		t.Fatalf("the server unmarshalled %d requests; the batch should have been refused before", n)
	}
	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "too_many_records"}); got != 1 {
		t.Fatalf("proglog_rejected_requests_total{reason=too_many_records} = %v, want 1", got)
	}
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs[:100]}); err != nil {
		t.Fatalf("batch of exactly the limit: %v", err)
	}
}

func withHeaders(n, valueBytes int) *logv1.Record {
	r := rec("h")
	for range n {
		r.Headers = append(r.Headers, &logv1.Header{Key: "k", Value: make([]byte, valueBytes)})
	}
	return r
}

func TestHeaderLimits(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) {
		c.MaxRecordHeaders = 4
		c.MaxRecordHeaderBytes = 100
	}})
	c := f.client("root")
	ctx := ctxT(t)

	// At the limits: 4 headers of 1+24 bytes.
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: withHeaders(4, 24)}); err != nil {
		t.Fatalf("record at the limits: %v", err)
	}
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: withHeaders(5, 0)})
	wantStatus(t, err, codes.InvalidArgument, "the record has more than 4 headers (the limit is 4)")
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: withHeaders(1, 100)})
	wantStatus(t, err, codes.InvalidArgument, "more than 100 bytes of header keys and values (the limit is 100)")
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("a"), withHeaders(5, 0)}})
	wantStatus(t, err, codes.InvalidArgument, "record 1 of the batch has more than 4 headers")

	// A stream ends at the bad record.
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&logv1.ProduceRequest{Record: withHeaders(5, 0)}); err != nil {
		t.Fatal(err)
	}
	_, err = ps.Recv()
	wantStatus(t, err, codes.InvalidArgument, "more than 4 headers")

	// A singular field sent twice is merged, headers appended: counted
	// together.
	one, err := protoMarshal(&logv1.ProduceRequest{Record: withHeaders(3, 0)})
	if err != nil {
		t.Fatal(err)
	}
	err = f.conn(f.clientTLS("root")).Invoke(ctx, logv1.Log_Produce_FullMethodName, rawRequest(append(one, one...)), new(logv1.ProduceResponse), grpc.ForceCodecV2(rawCodec{}))
	wantStatus(t, err, codes.InvalidArgument, "more than 4 headers")

	if next := f.storage.NextOffset(); next != 1 {
		t.Fatalf("refused records were written: next offset %d, want 1", next)
	}
}

// rawRequest is a request already encoded, sent as is by rawCodec.
type rawRequest []byte

// rawCodec sends rawRequests as they are and decodes responses as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(r)}, nil
	}
	return encoding.GetCodecV2(grpcproto.Name).Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(grpcproto.Name).Unmarshal(data, v)
}

func (rawCodec) Name() string { return grpcproto.Name }

func protoMarshal(m *logv1.ProduceRequest) ([]byte, error) {
	data, err := encoding.GetCodecV2(grpcproto.Name).Marshal(m)
	if err != nil {
		return nil, err
	}
	return data.Materialize(), nil
}

// A malformed request is the client's fault: InvalidArgument, logged with
// the peer's address and counted, not Internal.
func TestMalformedRequest(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Logger = zap.New(core) }})
	conn := f.conn(f.clientTLS("root"))
	ctx := ctxT(t)
	// Field 1 (record), length 10, then only 2 bytes.
	bad := protowire.AppendTag(nil, 1, protowire.BytesType)
	bad = append(protowire.AppendVarint(bad, 10), 'x', 'y')
	for _, method := range []string{logv1.Log_Produce_FullMethodName, logv1.Log_Consume_FullMethodName} {
		err := conn.Invoke(ctx, method, rawRequest(bad), new(logv1.ProduceResponse), grpc.ForceCodecV2(rawCodec{}))
		wantStatus(t, err, codes.InvalidArgument, "malformed request")
	}
	// And on a stream.
	desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
	cs, err := conn.NewStream(ctx, desc, logv1.Log_ProduceStream_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(rawRequest(bad)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, cs.RecvMsg(new(logv1.ProduceResponse)), codes.InvalidArgument, "malformed request")

	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "malformed"}); got != 3 {
		t.Fatalf("proglog_rejected_requests_total{reason=malformed} = %v, want 3", got)
	}
	// Logged once (rate-limited), with the peer's address.
	refused := logs.FilterMessage("request refused").All()
	if len(refused) != 1 {
		t.Fatalf("%d log lines for 3 malformed requests, want 1 (rate-limited): %v", len(refused), refused)
	}
	if peer := refused[0].ContextMap()["peer"]; !strings.HasPrefix(peer.(string), "127.0.0.1:") {
		t.Fatalf("log line without the peer's address: %v", refused[0].ContextMap())
	}
}

// Calls over MaxStreams, across connections, get ResourceExhausted.
func TestMaxStreams(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.MaxStreams = 2 }})
	seed(t, f)
	ctx := ctxT(t)
	// Two ConsumeStreams on two connections, each known to be running
	// once it delivered the seed record.
	var cancels []context.CancelFunc
	for range 2 {
		sctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		s, err := f.client("root").ConsumeStream(sctx, &logv1.ConsumeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	c := f.client("root")
	_, err := c.Consume(ctx, &logv1.ConsumeRequest{})
	wantStatus(t, err, codes.ResourceExhausted, "limit")
	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "too_many_streams"}); got != 1 {
		t.Fatalf("proglog_rejected_requests_total{reason=too_many_streams} = %v, want 1", got)
	}
	// A stream that ends frees its slot.
	cancels[0]()
	eventually(t, 5*time.Second, "a free stream slot", func() bool {
		_, err := c.Consume(ctx, &logv1.ConsumeRequest{})
		return err == nil
	})
	cancels[1]()
}

// Over MaxConnections a connection is closed at once; the ones within keep
// working.
func TestMaxConnections(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.MaxConnections = 1 }})
	c := f.client("root")
	ctx := ctxT(t)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("a")}); err != nil {
		t.Fatal(err) // the connection within the cap
	}
	// Closed before its TLS handshake completes (it would complete within
	// the cap).
	cfg := f.clientTLS("root")
	cfg.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if over, err := tls.DialWithDialer(d, "tcp", f.addr, cfg); err == nil {
		over.Close()
		t.Fatal("a connection over the cap completed its TLS handshake")
	}
	if got := counter(t, f.reg, "proglog_rejected_connections_total", map[string]string{"listener": "api"}); got != 1 {
		t.Fatalf("proglog_rejected_connections_total{listener=api} = %v, want 1", got)
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("b")}); err != nil {
		t.Fatalf("the connection within the cap: %v", err)
	}
}

// Failed TLS handshakes are counted by reason and logged with the peer.
func TestTLSHandshakeFailuresCounted(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Logger = zap.New(core) }})
	other, err := certs.NewAuthority("someone else's CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.IssueClient("root")
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-72 * time.Hour)
	expired, err := f.ca.Issue(certs.Request{CommonName: "root", Client: true, NotBefore: past, NotAfter: past.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	failures := func(reason string) float64 {
		return counter(t, f.reg, "proglog_tls_handshake_failures_total", map[string]string{"reason": reason})
	}
	for _, tc := range []struct {
		reason  string
		attempt func()
	}{
		{"no_certificate", func() { f.handshakeAlert(f.clientTLS("")) }},
		{"unknown_authority", func() { f.handshakeAlert(f.tlsWithPair(foreign)) }},
		{"expired", func() { f.handshakeAlert(f.tlsWithPair(expired)) }},
		{"not_tls", func() {
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c) // until the server closes it
		}},
	} {
		tc.attempt()
		eventually(t, 5*time.Second, tc.reason+" counted", func() bool { return failures(tc.reason) == 1 })
	}
	entries := logs.FilterMessage("TLS handshake failed").All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines for 4 failed handshakes, want 1 (rate-limited)", len(entries))
	}
	if m := entries[0].ContextMap(); !strings.HasPrefix(m["peer"].(string), "127.0.0.1:") || m["reason"] != "no_certificate" {
		t.Fatalf("log line %v, want the peer's address and the reason", m)
	}
}

// A connection without calls for MaxConnectionIdle is sent away (GOAWAY):
// the client's channel leaves READY.
func TestIdleConnectionClosed(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.MaxConnectionIdle = 50 * time.Millisecond }})
	conn := f.conn(f.clientTLS("root"))
	ctx := ctxT(t)
	if _, err := logv1.NewLogClient(conn).GetServers(ctx, &logv1.GetServersRequest{}); err != nil {
		t.Fatal(err)
	}
	for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			t.Fatalf("connection still %v: idle connections are not closed", st)
		}
	}
}
