package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Field numbers of log.proto the codec counts on the wire.
const (
	fieldProduceRecord = 1 // ProduceRequest.record
	fieldBatchRecords  = 1 // ProduceBatchRequest.records
	fieldRecordHeaders = 4 // Record.headers
	fieldHeaderKey     = 1 // Header.key
	fieldHeaderValue   = 2 // Header.value
	fieldMetadataTopic = 1 // GetMetadataRequest.topics
	fieldJoinTopics    = 3 // JoinGroupRequest.topics
	fieldCommitOffsets = 4 // CommitOffsetsRequest.offsets
	fieldFetchTopics   = 2 // FetchOffsetsRequest.partitions
	fieldTPPartitions  = 2 // TopicPartitions.partitions (packed or not)
	fieldACLRules      = 1 // CreateACLsRequest.rules, DeleteACLsRequest.rules
)

// Reasons a request is refused before decoding, the reason label of
// proglog_rejected_requests_total.
const (
	rejectMalformed        = "malformed"
	rejectTooManyRecords   = "too_many_records"
	rejectTooManyHeaders   = "too_many_headers"
	rejectHeaderBytes      = "header_bytes"
	rejectTooManyTopics    = "too_many_topics"
	rejectTooManyOffsets   = "too_many_offsets"
	rejectTooManyParts     = "too_many_partitions"
	rejectTooManyRules     = "too_many_rules"
	rejectUnauthenticated  = "unauthenticated"
	rejectPermissionDenied = "permission_denied"
	rejectTooManyStreams   = "too_many_streams"
)

// decodeError is a request the codec refused: malformed, or over a count
// limit. Its status is what the client gets.
type decodeError struct {
	reason string
	st     *status.Status
}

func (e *decodeError) Error() string              { return e.st.Message() }
func (e *decodeError) GRPCStatus() *status.Status { return e.st }

// decodeTarget carries a request message through grpc's receive path to
// the codec and brings the codec's refusal back: grpc would answer a codec
// error with Internal.
type decodeTarget struct {
	msg any
	err *decodeError
}

// codec is the server's grpc codec: the proto codec, except that requests
// carrying records are checked on the wire — record count, header count
// and header bytes — before they are unmarshalled, and so are the
// repeated fields of GetMetadata and the group requests (topics, offsets,
// partitions), so a request never decodes to more than its limits allow,
// and malformed requests are told apart from internal errors.
type codec struct {
	encoding.CodecV2 // the proto codec, for Marshal and Name
	maxRecords       int
	maxHeaders       int
	maxHeaderBytes   int
	maxTopics        int // names in a GetMetadataRequest
	// unmarshalled counts the requests this codec unmarshalled, for tests
	// that check a request was refused before.
	unmarshalled atomic.Int64
}

func newCodec(cfg Config) *codec {
	return &codec{
		CodecV2:        encoding.GetCodecV2(grpcproto.Name),
		maxRecords:     cfg.MaxBatchRecords,
		maxHeaders:     cfg.MaxRecordHeaders,
		maxHeaderBytes: cfg.MaxRecordHeaderBytes,
		maxTopics:      cfg.MaxMetadataTopics,
	}
}

// Unmarshal implements encoding.CodecV2.
func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	t, wrapped := v.(*decodeTarget)
	if !wrapped {
		t = &decodeTarget{msg: v}
	}
	msg, ok := t.msg.(proto.Message)
	if !ok {
		return c.CodecV2.Unmarshal(data, t.msg)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	var err error
	switch msg.(type) {
	case *logv1.ProduceRequest:
		err = c.checkProduce(b)
	case *logv1.ProduceBatchRequest:
		err = c.checkBatch(b)
	case *logv1.GetMetadataRequest:
		err = c.checkMetadata(b)
	case *logv1.JoinGroupRequest:
		err = checkJoin(b)
	case *logv1.CommitOffsetsRequest:
		err = checkCommit(b)
	case *logv1.FetchOffsetsRequest:
		err = checkFetch(b)
	case *logv1.CreateACLsRequest, *logv1.DeleteACLsRequest:
		err = checkACLRules(b)
	}
	if err == nil {
		c.unmarshalled.Add(1)
		if uerr := proto.Unmarshal(b, msg); uerr != nil {
			err = malformed(uerr)
		}
	}
	// grpc answers a codec error itself, with Internal, before the handler
	// can return another status; so the refusal goes back in t, for the
	// handler to return, and grpc sees a success.
	var de *decodeError
	if wrapped && errors.As(err, &de) {
		t.err = de
		return nil
	}
	return err
}

func malformed(err error) *decodeError {
	return &decodeError{reason: rejectMalformed, st: status.Newf(codes.InvalidArgument, "malformed request: %v", err)}
}

// fields calls f with each field of the message in b, stopping at f's
// first error.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, val []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed(protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return malformed(protowire.ParseError(m))
		}
		val := b[:m]
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(val)
		}
		if err := f(num, typ, val); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// headerCount adds up a record's headers, over every occurrence of the
// record in the message (protobuf merges repeated occurrences of a singular
// field, appending their headers).
type headerCount struct {
	headers, bytes int
}

func (c *codec) addHeaders(hc *headerCount, record []byte, index int) error {
	return fields(record, func(num protowire.Number, typ protowire.Type, header []byte) error {
		if num != fieldRecordHeaders || typ != protowire.BytesType {
			return nil
		}
		if hc.headers++; hc.headers > c.maxHeaders {
			return &decodeError{reason: rejectTooManyHeaders, st: status.Newf(codes.InvalidArgument,
				"%s has more than %d headers (the limit is %d); nothing was written", recordName(index), c.maxHeaders, c.maxHeaders)}
		}
		return fields(header, func(num protowire.Number, typ protowire.Type, val []byte) error {
			if (num == fieldHeaderKey || num == fieldHeaderValue) && typ == protowire.BytesType {
				if hc.bytes += len(val); hc.bytes > c.maxHeaderBytes {
					return &decodeError{reason: rejectHeaderBytes, st: status.Newf(codes.InvalidArgument,
						"%s has more than %d bytes of header keys and values (the limit is %d); nothing was written", recordName(index), c.maxHeaderBytes, c.maxHeaderBytes)}
				}
			}
			return nil
		})
	})
}

func recordName(index int) string {
	if index < 0 {
		return "the record"
	}
	return fmt.Sprintf("record %d of the batch", index)
}

func (c *codec) checkProduce(b []byte) error {
	var hc headerCount
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte) error {
		if num == fieldProduceRecord && typ == protowire.BytesType {
			return c.addHeaders(&hc, val, -1)
		}
		return nil
	})
}

func (c *codec) checkBatch(b []byte) error {
	records := 0
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte) error {
		if num != fieldBatchRecords || typ != protowire.BytesType {
			return nil
		}
		if records++; records > c.maxRecords {
			return &decodeError{reason: rejectTooManyRecords, st: status.Newf(codes.InvalidArgument,
				"batch has more than %d records (the limit is %d); nothing was written", c.maxRecords, c.maxRecords)}
		}
		var hc headerCount
		return c.addHeaders(&hc, val, records-1)
	})
}

// checkMetadata counts a GetMetadataRequest's topic names: an empty name
// is 2 bytes on the wire and a string of its own decoded.
func (c *codec) checkMetadata(b []byte) error {
	return fields(b, countField(fieldMetadataTopic, protowire.BytesType, c.maxTopics, func() *decodeError {
		return &decodeError{reason: rejectTooManyTopics, st: status.Newf(codes.InvalidArgument,
			"the request names more than %d topics (the limit is %d); name none to describe every topic", c.maxTopics, c.maxTopics)}
	}))
}

// groupLimit is the refusal of a group request over one of go/commitlog's
// limits: INVALID_ARGUMENT with reason INVALID_GROUP (log.proto), counted
// as reason.
func groupLimit(reason, format string, args ...any) *decodeError {
	st, err := status.Newf(codes.InvalidArgument, format, args...).WithDetails(
		&errdetails.ErrorInfo{Reason: reasonInvalidGroup, Domain: ErrorDomain})
	if err != nil { // only for unmarshalable details, which these are not
		st = status.Newf(codes.InvalidArgument, format, args...)
	}
	return &decodeError{reason: reason, st: st}
}

// countField returns a fields callback counting the occurrences of field
// num (of wire type typ) and refusing the message with over() past limit.
func countField(num protowire.Number, typ protowire.Type, limit int, over func() *decodeError) func(protowire.Number, protowire.Type, []byte) error {
	n := 0
	return func(got protowire.Number, gotTyp protowire.Type, _ []byte) error {
		if got != num || gotTyp != typ {
			return nil
		}
		if n++; n > limit {
			return over()
		}
		return nil
	}
}

// checkJoin counts a JoinGroupRequest's topic names (at most
// commitlog.MaxGroupTopics).
func checkJoin(b []byte) error {
	return fields(b, countField(fieldJoinTopics, protowire.BytesType, commitlog.MaxGroupTopics, func() *decodeError {
		return groupLimit(rejectTooManyTopics, "the request subscribes to more than %d topics (the limit is %d)", commitlog.MaxGroupTopics, commitlog.MaxGroupTopics)
	}))
}

// checkCommit counts a CommitOffsetsRequest's positions (at most
// commitlog.MaxCommitOffsets).
func checkCommit(b []byte) error {
	return fields(b, countField(fieldCommitOffsets, protowire.BytesType, commitlog.MaxCommitOffsets, func() *decodeError {
		return groupLimit(rejectTooManyOffsets, "the request commits more than %d offsets (the limit is %d); nothing was committed", commitlog.MaxCommitOffsets, commitlog.MaxCommitOffsets)
	}))
}

// checkFetch counts a FetchOffsetsRequest's topics and their partitions,
// each at most commitlog.MaxCommitOffsets: a packed partition number is
// one byte on the wire and four decoded.
func checkFetch(b []byte) error {
	over := func() *decodeError {
		return groupLimit(rejectTooManyParts, "the request names more than %d partitions (the limit is %d); name none to fetch every committed offset", commitlog.MaxCommitOffsets, commitlog.MaxCommitOffsets)
	}
	topics, partitions := 0, 0
	return fields(b, func(num protowire.Number, typ protowire.Type, tp []byte) error {
		if num != fieldFetchTopics || typ != protowire.BytesType {
			return nil
		}
		if topics++; topics > commitlog.MaxCommitOffsets {
			return over()
		}
		return fields(tp, func(num protowire.Number, typ protowire.Type, val []byte) error {
			if num != fieldTPPartitions {
				return nil
			}
			switch typ {
			case protowire.VarintType:
				partitions++
			case protowire.BytesType: // packed
				for len(val) > 0 {
					_, n := protowire.ConsumeVarint(val)
					if n < 0 {
						return malformed(protowire.ParseError(n))
					}
					val = val[n:]
					partitions++
				}
			}
			if partitions > commitlog.MaxCommitOffsets {
				return over()
			}
			return nil
		})
	})
}

// checkACLRules counts the rules of a CreateACLsRequest or
// DeleteACLsRequest: at most commitlog.MaxACLRulesPerRequest.
func checkACLRules(b []byte) error {
	rules := 0
	return fields(b, func(num protowire.Number, typ protowire.Type, _ []byte) error {
		if num != fieldACLRules || typ != protowire.BytesType {
			return nil
		}
		if rules++; rules > commitlog.MaxACLRulesPerRequest {
			return &decodeError{reason: rejectTooManyRules, st: invalidACL(fmt.Sprintf(
				"the request has more than %d rules (the limit is %d); nothing was changed", commitlog.MaxACLRulesPerRequest, commitlog.MaxACLRulesPerRequest))}
		}
		return nil
	})
}

// rejected logs (rate-limited, with the peer's address) and counts a
// request refused before its handler ran, and returns its status.
func (s *Server) rejected(ctx context.Context, method, reason string, err error) error {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.RequestRejected(reason)
	}
	if ok, suppressed := s.rejectLog.Allow(); ok {
		addr := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			addr = p.Addr.String()
		}
		s.cfg.Logger.Warn("request refused", zap.String("peer", addr), zap.String("method", method),
			zap.String("reason", reason), zap.Error(err), zap.Int("suppressed", suppressed))
	}
	return err
}

// decodeDesc returns a copy of desc whose unary handlers decode through
// decodeTarget, so the codec's status reaches the client; streams get the
// same from decodeStream.
func (s *Server) decodeDesc(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		method := "/" + desc.ServiceName + "/" + m.MethodName
		h := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(v any) error {
				t := &decodeTarget{msg: v}
				err := dec(t)
				if t.err != nil {
					return s.rejected(ctx, method, t.err.reason, t.err)
				}
				return err
			}, ic)
		}
		d.Methods[i] = m
	}
	return &d
}

// decodingRegistrar registers services with decodeDesc.
type decodingRegistrar struct{ s *Server }

func (r decodingRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.s.grpc.RegisterService(r.s.decodeDesc(desc), impl)
}

// decodeStream is the stream interceptor that does for streams what
// decodeDesc does for unary calls.
func (s *Server) decodeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &decodingStream{ServerStream: ss, s: s, method: info.FullMethod})
}

type decodingStream struct {
	grpc.ServerStream
	s      *Server
	method string
}

func (d *decodingStream) RecvMsg(m any) error {
	t := &decodeTarget{msg: m}
	err := d.ServerStream.RecvMsg(t)
	if t.err != nil {
		return d.s.rejected(d.Context(), d.method, t.err.reason, t.err)
	}
	return err
}
