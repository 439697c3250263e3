package client

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// recordSize is proto.Size for every shape of record the client builds,
// and the messages have no field it does not count.
func TestRecordSize(t *testing.T) {
	for msg, fields := range map[proto.Message]int{&logv1.Record{}: 5, &logv1.Header{}: 2, &timestamppb.Timestamp{}: 2} {
		if n := msg.ProtoReflect().Descriptor().Fields().Len(); n != fields {
			t.Fatalf("%s has %d fields, recordSize counts %d: update it", msg.ProtoReflect().Descriptor().FullName(), n, fields)
		}
	}
	recs := []*Record{
		{},
		{Value: []byte("v")},
		{Key: []byte("k")},
		{Value: bytes.Repeat([]byte("v"), 300), Key: bytes.Repeat([]byte("k"), 20000)},
		{Headers: []Header{{}, {Key: "k"}, {Value: []byte("v")}, {Key: strings.Repeat("k", 200), Value: bytes.Repeat([]byte("v"), 200)}}},
		{Timestamp: time.Unix(0, 1)},
		{Timestamp: time.Unix(1, 0)},
		{Timestamp: time.Unix(-62135596800, 999999999)}, // year 1: negative seconds
		{Timestamp: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		r := &Record{Value: make([]byte, rng.IntN(300)), Key: make([]byte, rng.IntN(20))}
		for range rng.IntN(4) {
			r.Headers = append(r.Headers, Header{Key: strings.Repeat("h", rng.IntN(140)), Value: make([]byte, rng.IntN(140))})
		}
		if rng.IntN(2) == 0 {
			r.Timestamp = time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9))
		}
		recs = append(recs, r)
	}
	for i, r := range recs {
		p := r.toProto()
		if got, want := recordSize(p), proto.Size(p); got != want {
			t.Errorf("record %d: recordSize %d, proto.Size %d", i, got, want)
		}
		p.Offset = uint64(i) << 50 // set by servers only, counted all the same
		if got, want := recordSize(p), proto.Size(p); got != want {
			t.Errorf("record %d with offset: recordSize %d, proto.Size %d", i, got, want)
		}
	}
}
