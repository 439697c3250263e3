package server_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

const testMaxRecord = 1024

// sized returns a record whose encoded size, as stored, is exactly n bytes.
// The timestamp is set so the server does not add one.
func sized(t *testing.T, n int) *logv1.Record {
	t.Helper()
	r := &logv1.Record{
		Key:       []byte("key"),
		Headers:   []*logv1.Header{{Key: "h", Value: []byte("v")}},
		Timestamp: timestamppb.New(time.Unix(1700000000, 0)),
	}
	for v := 0; v <= n; v++ {
		r.Value = bytes.Repeat([]byte{'x'}, v)
		if proto.Size(r) == n {
			return r
		}
	}
	t.Fatalf("no value length gives an encoded size of %d", n)
	return nil
}

func tooLarge(t *testing.T, err error, index string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.Reason != "RECORD_TOO_LARGE" || info.Metadata["limit"] != "1024" || info.Metadata["size"] != "1025" || info.Metadata["index"] != index {
				t.Fatalf("ErrorInfo = %v", info)
			}
			return
		}
	}
	t.Fatalf("no ErrorInfo in %v", st.Details())
}

func TestRecordSizeLimit(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) {
		c.MaxRecordBytes = testMaxRecord
		c.MaxBatchRecords = 10
		c.MaxRecvMsgBytes = 16 << 10
		c.MaxSendMsgBytes = 16 << 10
	}})
	c := f.client("root")
	ctx := ctxT(t)

	// Exactly at the limit is fine, and key and headers count toward it.
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: sized(t, testMaxRecord)}); err != nil {
		t.Fatalf("record of exactly the limit: %v", err)
	}
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: sized(t, testMaxRecord+1)})
	tooLarge(t, err, "")

	// One bad record sinks the whole batch, wherever it is.
	batch := []*logv1.Record{rec("a"), rec("b"), sized(t, testMaxRecord+1), rec("d")}
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: batch})
	tooLarge(t, err, "2")

	// A stream writes what came before the bad record, not it nor after.
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps.Send(&logv1.ProduceRequest{Record: rec("ok")})
	ps.Send(&logv1.ProduceRequest{Record: sized(t, testMaxRecord+1)})
	ps.Send(&logv1.ProduceRequest{Record: rec("after")})
	if resp, err := ps.Recv(); err != nil || resp.Offset != 1 {
		t.Fatalf("first stream record: %v %v", resp, err)
	}
	_, err = ps.Recv()
	tooLarge(t, err, "")

	if next := f.storage.NextOffset(); next != 2 {
		t.Fatalf("next offset %d, want 2 (the limit record and the stream's first)", next)
	}
}

func TestRequestShapeLimits(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) {
		c.MaxRecordBytes = testMaxRecord
		c.MaxBatchRecords = 10
		c.MaxRecvMsgBytes = 4 << 10
		c.MaxSendMsgBytes = 4 << 10
	}})
	c := f.client("root")
	ctx := ctxT(t)
	cases := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"missing record", func() error { _, err := c.Produce(ctx, &logv1.ProduceRequest{}); return err }, codes.InvalidArgument, "record is required"},
		{"empty batch", func() error { _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{}); return err }, codes.InvalidArgument, "empty"},
		{"too many records", func() error {
			recs := make([]*logv1.Record, 11)
			for i := range recs {
				recs[i] = rec("r")
			}
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs})
			return err
		}, codes.InvalidArgument, "limit is 10"},
		{"message over the gRPC limit", func() error {
			recs := make([]*logv1.Record, 8) // 8 × ~1 KiB > 4 KiB message limit
			for i := range recs {
				recs[i] = sized(t, 1000)
			}
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs})
			return err
		}, codes.ResourceExhausted, "larger than max"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	if next := f.storage.NextOffset(); next != 0 {
		t.Fatalf("rejected requests wrote records: next offset %d", next)
	}
}
