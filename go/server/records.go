package server

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// recordEncoding is deterministic, so that the same record always has the
// same bytes (idempotent produces checksum them).
var recordEncoding = proto.MarshalOptions{Deterministic: true}

// EncodeRecords returns the stored form of recs, the bytes the server gives
// its commitlog.Partition for a record: its protobuf encoding (Offset left
// zero, so it costs nothing).
func EncodeRecords(recs []*logv1.Record) ([][]byte, error) {
	bufs := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := recordEncoding.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode records[%d]: %w", i, err)
		}
		bufs[i] = b
	}
	return bufs, nil
}

// DecodeRecord is the record stored as b (see EncodeRecords) at offset.
func DecodeRecord(offset uint64, b []byte) (*logv1.Record, error) {
	rec := &logv1.Record{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("decode record %d: %w", offset, err)
	}
	rec.Offset = offset
	return rec, nil
}
