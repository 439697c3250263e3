package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/netlimit"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/telemetry"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// LivenessService is a grpc.health.v1 service name that is SERVING from New
// until Shutdown or Stop, whatever SetServing and the log say: a liveness
// check (the process answers gRPC) that a node waiting for a leader, or one
// whose log failed, still passes. Readiness is the overall service ("") or
// log.v1.Log.
const LivenessService = "liveness"

// streamWorkersPerCPU sizes the gRPC server's pool of worker goroutines
// (grpc.NumStreamWorkers): enough for the concurrent unary calls of many
// clients; long-lived streams take a worker each too, and past the pool
// calls get a goroutine of their own, as without a pool.
const streamWorkersPerCPU = 16

// refusedLogInterval rate-limits the logs of refused connections, TLS
// handshakes and requests: one line per kind per interval, with the number
// suppressed.
const refusedLogInterval = 10 * time.Second

// Server serves log.v1.Log and grpc.health.v1.Health over a
// commitlog.Cluster.
type Server struct {
	logv1.UnimplementedLogServer

	cfg     Config
	cluster commitlog.Cluster
	grpc    *grpc.Server
	health  *health.Server
	lister  commitlog.ServerLister

	// stopping is cancelled by Shutdown to end long-lived streams, which
	// GracefulStop would otherwise wait on for ever.
	stopping context.Context
	stop     context.CancelFunc

	streams streamLimit // Config.MaxStreams' semaphore; nil without a cap
	codec   *codec      // checks requests before decoding them
	// rejectLog, connLog and handshakeLog rate-limit the logs of refused
	// requests, connections and TLS handshakes, lagLog those of failed
	// reads of the consumer lag metric.
	rejectLog, connLog, handshakeLog, lagLog netlimit.Sometimes

	addr        atomic.Pointer[string]
	healthMu    sync.Mutex // orders health updates
	notReady    bool       // SetServing(false) is in force; under healthMu
	unavailable atomic.Bool
	shutdown    sync.Once
	shutdownErr error
}

var _ logv1.LogServer = (*Server)(nil)

// New builds a Server for cluster; call Serve to accept connections. The
// cluster's partitions must be open: the health service starts as SERVING.
// With Config.Groups and Config.Metrics it registers the consumer lag
// gauges with the Metrics, which therefore serve one Server.
func New(cfg Config, cluster commitlog.Cluster) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cluster == nil {
		return nil, ErrNilCluster
	}
	s := &Server{cfg: cfg, cluster: cluster, health: health.NewServer(), codec: newCodec(cfg)}
	s.rejectLog.Interval = refusedLogInterval
	s.connLog.Interval = refusedLogInterval
	s.handshakeLog.Interval = refusedLogInterval
	s.lagLog.Interval = refusedLogInterval
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.lister = cfg.Servers
	if s.lister == nil {
		s.lister = selfLister{id: cfg.ID, addr: s.advertised}
	}
	if cfg.Metrics != nil && cfg.Groups != nil {
		if err := cfg.Metrics.RegisterGroupLag(s.groupLag); err != nil {
			return nil, err
		}
	}

	// Order matters: logging and metrics outermost so they see calls the
	// inner interceptors reject; recovery before authn so a panic anywhere
	// below becomes Internal instead of killing the process.
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	lu, ls := telemetry.LoggingInterceptors(cfg.Logger, peerSubject)
	unary, stream = append(unary, lu), append(stream, ls)
	if cfg.Metrics != nil {
		unary = append(unary, cfg.Metrics.UnaryServerInterceptor())
		stream = append(stream, cfg.Metrics.StreamServerInterceptor())
	}
	if cfg.MaxStreams > 0 {
		s.streams = make(streamLimit, cfg.MaxStreams)
		unary, stream = append(unary, s.limitUnary), append(stream, s.limitStream)
	}
	unary = append(unary, s.recoverUnary, auth.UnaryServerInterceptor())
	stream = append(stream, s.decodeStream, s.recoverStream, auth.StreamServerInterceptor())

	opts := []grpc.ServerOption{
		grpc.Creds(handshakeCreds{TransportCredentials: credentials.NewTLS(cfg.TLS), failed: s.handshakeFailed}),
		grpc.InTapHandle(s.admit),
		grpc.ForceServerCodecV2(s.codec),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.ConnectionTimeout(cfg.HandshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: cfg.KeepaliveMinTime,
			// ConsumeStream clients may idle between records; their pings
			// are legitimate.
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  cfg.KeepaliveTime,
			Timeout:               cfg.KeepaliveTimeout,
			MaxConnectionIdle:     cfg.MaxConnectionIdle,
			MaxConnectionAge:      cfg.MaxConnectionAge,
			MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
		}),
		// Calls run on long-lived worker goroutines (a new goroutine only
		// when all are busy): a fresh goroutine per call grew its stack
		// through the interceptor chain every time, 5% of all CPU in a
		// profile of unbatched produces (see docs/benchmarks.md).
		grpc.NumStreamWorkers(uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0))),
	}
	if cfg.TracerProvider != nil {
		opts = append(opts, grpc.StatsHandler(telemetry.ServerStatsHandler(cfg.TracerProvider)))
	}
	s.grpc = grpc.NewServer(opts...)
	logv1.RegisterLogServer(decodingRegistrar{s}, s)
	if cfg.Internal != nil {
		logv1.RegisterInternalServer(decodingRegistrar{s}, internalService{s: s})
	}
	s.RegisterHealthService(decodingRegistrar{s})
	reflection.Register(s.grpc) // authorized in admit, like the log's methods
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	s.SetServing(true)
	return s, nil
}

// RegisterHealthService registers this server's grpc.health.v1.Health
// service on r too: the same statuses (SetServing, LivenessService, NOT_SERVING
// from Shutdown on) and Watch streams that Shutdown ends. New registers it
// on the server's own gRPC server; the agent also registers it, alone, on a
// plaintext server for probes that cannot do mutual TLS.
func (s *Server) RegisterHealthService(r grpc.ServiceRegistrar) {
	healthpb.RegisterHealthServer(r, &healthService{Server: s.health, srv: s})
}

// peerSubject names the caller for logs from the connection itself, since
// the logging interceptor runs before authentication.
func peerSubject(ctx context.Context) string {
	sub, err := auth.SubjectFromPeer(ctx)
	if err != nil {
		return ""
	}
	return sub
}

// SetServing reports whether the node is ready to serve — for a cluster
// member, whether it knows a leader. The health service (overall and
// log.v1.Log) is SERVING while the node is ready and its log has not
// failed (a failed log keeps it NOT_SERVING for good, as does Shutdown).
// A new Server is ready; call SetServing(false) before Serve to start
// NOT_SERVING. LivenessService does not follow SetServing.
func (s *Server) SetServing(ready bool) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.notReady = !ready
	s.updateHealth()
}

// updateHealth publishes the health status; healthMu must be held.
func (s *Server) updateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if !s.notReady && !s.unavailable.Load() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(logv1.Log_ServiceDesc.ServiceName, st)
}

// GRPCServer exposes the underlying server so other services (e.g. Raft
// transport, reflection) can be registered before Serve.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// Serve accepts connections on lis until Shutdown or Stop; it returns nil
// after a shutdown.
func (s *Server) Serve(lis net.Listener) error {
	addr := lis.Addr().String()
	s.addr.CompareAndSwap(nil, &addr)
	if err := s.grpc.Serve(s.limitListener(lis)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("server: serve on %s: %w", addr, err)
	}
	return nil
}

func (s *Server) advertised() string {
	if s.cfg.AdvertiseAddr != "" {
		return s.cfg.AdvertiseAddr
	}
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Shutdown stops the server gracefully: health goes NOT_SERVING, streams
// end with Unavailable, new calls are refused, and running unary calls may
// finish until ctx is done or Config.ShutdownTimeout passes, whichever is
// first; then the remaining connections are closed and ErrForcedStop is
// returned. It does not close the Partition. Later calls return the first
// call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		s.health.Shutdown()
		s.stop()
		ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
			s.shutdownErr = fmt.Errorf("%w (%v)", ErrForcedStop, context.Cause(ctx))
		}
	})
	return s.shutdownErr
}

// Stop closes every connection at once.
func (s *Server) Stop() {
	s.health.Shutdown()
	s.stop()
	s.grpc.Stop()
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer s.recoverPanic(ctx, info.FullMethod, &err)
	return handler(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer s.recoverPanic(ss.Context(), info.FullMethod, &err)
	return handler(srv, ss)
}

func (s *Server) recoverPanic(ctx context.Context, method string, err *error) {
	if r := recover(); r != nil {
		s.cfg.Logger.Error("panic in handler", zap.String("method", method), zap.String("principal", peerSubject(ctx)),
			zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

// authorize checks the caller may perform action on object (a topic's
// name, or auth.DefaultObject for servers).
func (s *Server) authorize(ctx context.Context, object, action string) error {
	subject, ok := auth.Subject(ctx)
	if !ok {
		// Only reachable if the authn interceptor was bypassed; deny.
		return status.Error(codes.Unauthenticated, "no authenticated principal")
	}
	if err := s.cfg.Authorizer.Authorize(subject, object, action); err != nil {
		return status.Errorf(codes.PermissionDenied, "%s may not %s on %q", subject, action, object)
	}
	return nil
}

// target is the partition a record RPC works on, resolved once per call
// or stream.
type target struct {
	topic     string
	partition uint32
	log       commitlog.Partition
}

// resolve checks the request's topic name (empty is
// commitlog.DefaultTopic), authorizes action on it, and finds its
// partition in the cluster; errors are statuses. The name is checked
// first, so a name the cluster could not hold costs no ACL evaluation
// (nor a place in the authorizer's decision cache).
func (s *Server) resolve(ctx context.Context, action, topic string, partition uint32) (target, error) {
	if topic == "" {
		topic = commitlog.DefaultTopic
	}
	if err := commitlog.ValidateTopicName(topic); err != nil {
		return target{}, s.statusError(ctx, onTopic(err, topic))
	}
	if err := s.authorize(ctx, topic, action); err != nil {
		return target{}, err
	}
	p, err := s.cluster.Partition(topic, int(partition))
	if err != nil {
		return target{}, s.statusError(ctx, onPartition(err, topic, partition))
	}
	return target{topic: topic, partition: partition, log: p}, nil
}

// about marks err (if not nil), an error of t's partition, with its topic
// and partition, for statusError (a partition deleted under a call may
// answer ErrUnknownTopic).
func (t target) about(err error) error { return onPartition(err, t.topic, t.partition) }

// prepare normalizes rec for storage — server-assigned offset, timestamp if
// unset — and checks its encoded size. index is its position in a batch or -1.
func (s *Server) prepare(rec *logv1.Record, index int, now *timestamppb.Timestamp) (int, error) {
	if rec == nil {
		if index >= 0 {
			return 0, status.Errorf(codes.InvalidArgument, "records[%d] is missing", index)
		}
		return 0, status.Error(codes.InvalidArgument, "record is required")
	}
	rec.Offset = 0
	if rec.Timestamp == nil {
		rec.Timestamp = now
	}
	size := proto.Size(rec)
	if size > s.cfg.MaxRecordBytes {
		return 0, recordTooLarge(index, size, s.cfg.MaxRecordBytes)
	}
	return size, nil
}

func (s *Server) observeAppend(records, bytes int) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ObserveAppend(records, bytes)
	}
}

// Produce implements logv1.LogServer.
func (s *Server) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	t, err := s.resolve(ctx, auth.ActionProduce, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	p, err := producerOf(req.GetProducer(), 1)
	if err != nil {
		return nil, err
	}
	rec := req.GetRecord()
	if p.ID != 0 {
		if p.Checksum, err = sentChecksum([]*logv1.Record{rec}); err != nil {
			return nil, err
		}
	}
	size, err := s.prepare(rec, -1, timestamppb.Now())
	if err != nil {
		return nil, err
	}
	a, err := s.appendRecords(ctx, t, p, []*logv1.Record{rec}, size)
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: a.First, Duplicate: a.Duplicate}, nil
}

// producerOf validates the producer of a request of n records: none, or
// one of ID 0 and sequence 0, makes a plain (not idempotent) produce.
func producerOf(p *logv1.Producer, n int) (commitlog.Producer, error) {
	switch {
	case p == nil:
		return commitlog.Producer{}, nil
	case p.GetId() == 0 && p.GetSequence() != 0:
		return commitlog.Producer{}, status.Errorf(codes.InvalidArgument, "producer.sequence is %d but producer.id is 0: an idempotent produce needs a non-zero producer id", p.GetSequence())
	case p.GetSequence() > math.MaxUint64-uint64(n):
		return commitlog.Producer{}, status.Errorf(codes.InvalidArgument, "producer.sequence %d plus %d records overflows the sequence numbers", p.GetSequence(), n)
	}
	return commitlog.Producer{ID: p.GetId(), Sequence: p.GetSequence()}, nil
}

// sentChecksum is go/producer's Checksum of recs as the client sent them,
// before prepare stamps missing timestamps, so that a retry matches its
// original batch (nil records are left to prepare to refuse).
func sentChecksum(recs []*logv1.Record) (uint32, error) {
	bufs, err := sentEncodings(recs)
	return producer.Checksum(bufs), err
}

// sentEncodings returns the encodings of recs as sent (EncodeRecords before
// prepare), an encoding failure as InvalidArgument.
func sentEncodings(recs []*logv1.Record) ([][]byte, error) {
	bufs, err := EncodeRecords(recs)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "records cannot be encoded: %v", err)
	}
	return bufs, nil
}

// appendRecords encodes recs, prepared and of size encoded bytes in all,
// appends them to t for producer p (a plain append if p.ID is 0), and
// returns the Partition's answer or the error as a gRPC status.
func (s *Server) appendRecords(ctx context.Context, t target, p commitlog.Producer, recs []*logv1.Record, size int) (commitlog.Appended, error) {
	bufs, err := EncodeRecords(recs)
	if err != nil {
		return commitlog.Appended{}, s.statusError(ctx, err)
	}
	var a commitlog.Appended
	if p.ID != 0 {
		a, err = t.log.AppendIdempotent(ctx, p, bufs)
	} else {
		a.First, err = t.log.Append(ctx, bufs)
	}
	var se *producer.SequenceError
	switch {
	case err != nil:
		if s.cfg.Metrics != nil && errors.As(err, &se) {
			s.cfg.Metrics.ObserveSequenceRefused(sequenceReason(se))
		}
		return commitlog.Appended{}, s.statusError(ctx, t.about(err))
	case a.Duplicate:
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.ObserveDuplicate(len(recs))
		}
	default:
		s.observeAppend(len(recs), size)
	}
	return a, nil
}

// ProduceBatch implements logv1.LogServer.
func (s *Server) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	t, err := s.resolve(ctx, auth.ActionProduce, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	recs := req.GetRecords()
	// The codec refused batches over MaxBatchRecords before decoding them.
	if len(recs) == 0 {
		return nil, status.Error(codes.InvalidArgument, "records is empty")
	}
	p, err := producerOf(req.GetProducer(), len(recs))
	if err != nil {
		return nil, err
	}
	if p.ID != 0 {
		if p.Checksum, err = sentChecksum(recs); err != nil {
			return nil, err
		}
	}
	// Check every record before writing any: a batch is all or nothing.
	now := timestamppb.Now()
	total := 0
	for i, rec := range recs {
		size, err := s.prepare(rec, i, now)
		if err != nil {
			return nil, err
		}
		total += size
	}
	a, err := s.appendRecords(ctx, t, p, recs, total)
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceBatchResponse{FirstOffset: a.First, Count: uint64(len(recs)), Duplicate: a.Duplicate}, nil
}

// Consume implements logv1.LogServer.
func (s *Server) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	t, err := s.resolve(ctx, auth.ActionConsume, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	c, err := s.consistency(req.GetConsistency())
	if err != nil {
		return nil, err
	}
	rec, err := read(ctx, t.log, req.GetOffset(), c)
	if err != nil {
		return nil, s.statusError(ctx, t.about(err))
	}
	return &logv1.ConsumeResponse{Record: rec}, nil
}

// read reads the record at offset of log with consistency c and decodes it.
func read(ctx context.Context, log commitlog.Partition, offset uint64, c commitlog.Consistency) (*logv1.Record, error) {
	b, err := log.Read(ctx, offset, c)
	if err != nil {
		return nil, err
	}
	return DecodeRecord(offset, b)
}

// streamContext returns a context for a stream handler that also ends when
// the server shuts down.
func (s *Server) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stopAfter := context.AfterFunc(s.stopping, func() { cancel(errShuttingDown) })
	return ctx, func() {
		stopAfter()
		cancel(nil)
	}
}

// errShuttingDown is the cancellation cause of streams ended by Shutdown.
var errShuttingDown = status.Error(codes.Unavailable, "server shutting down")

// streamEnd maps the error that ended a stream, telling a shutdown apart
// from a client that went away.
func (s *Server) streamEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), errShuttingDown) {
		return errShuttingDown
	}
	return s.statusError(ctx, err)
}

// ConsumeStream implements logv1.LogServer.
func (s *Server) ConsumeStream(req *logv1.ConsumeRequest, stream logv1.Log_ConsumeStreamServer) error {
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	t, err := s.resolve(ctx, auth.ActionConsume, req.GetTopic(), req.GetPartition())
	if err != nil {
		return err
	}
	// Checked for a clear error, then not used: a stream waits for each
	// record in this node's log and reads it there (see the package doc).
	if _, err := s.consistency(req.GetConsistency()); err != nil {
		return err
	}
	off := req.GetOffset()
	if lowest := t.log.LowestOffset(); off < lowest {
		return outOfRange(off, lowest, t.log.NextOffset())
	}
	for ; ; off++ {
		if err := t.log.Wait(ctx, off); err != nil {
			return s.streamEnd(ctx, t.about(err))
		}
		rec, err := read(ctx, t.log, off, commitlog.ConsistencyFollower)
		if err != nil {
			// Typically retention removed records this consumer lagged
			// behind on: OutOfRange tells it where the log now starts.
			return s.streamEnd(ctx, t.about(err))
		}
		if err := stream.Send(&logv1.ConsumeResponse{Record: rec}); err != nil {
			return err
		}
	}
}

// healthService ends Watch streams on shutdown, like the Log streams;
// grpc's health server would hold GracefulStop until the deadline.
type healthService struct {
	*health.Server
	srv *Server
}

func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := h.srv.streamContext(stream.Context())
	defer cancel()
	err := h.Server.Watch(req, &watchStream{Health_WatchServer: stream, ctx: ctx})
	if errors.Is(context.Cause(ctx), errShuttingDown) {
		return errShuttingDown
	}
	return err
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w *watchStream) Context() context.Context { return w.ctx }

// GetBounds implements logv1.LogServer.
func (s *Server) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	t, err := s.resolve(ctx, auth.ActionConsume, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	c, err := s.consistency(req.GetConsistency())
	if err != nil {
		return nil, err
	}
	lowest, next, err := t.log.Bounds(ctx, c)
	if err != nil {
		return nil, s.statusError(ctx, t.about(err))
	}
	return &logv1.GetBoundsResponse{Lowest: lowest, Next: next}, nil
}

// GetServers implements logv1.LogServer.
func (s *Server) GetServers(ctx context.Context, _ *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	if err := s.authorize(ctx, auth.DefaultObject, auth.ActionServers); err != nil {
		return nil, err
	}
	servers, err := s.servers(ctx)
	if err != nil {
		return nil, err
	}
	return &logv1.GetServersResponse{Servers: servers}, nil
}

// servers lists the cluster's servers (Config.Servers) as a status on error.
func (s *Server) servers(ctx context.Context) ([]*logv1.Server, error) {
	servers, err := s.lister.Servers(ctx)
	if err != nil {
		return nil, s.statusError(ctx, err)
	}
	return protoServers(servers), nil
}

func protoServers(servers []commitlog.Server) []*logv1.Server {
	out := make([]*logv1.Server, len(servers))
	for i, sv := range servers {
		out[i] = &logv1.Server{Id: sv.ID, RpcAddr: sv.Addr, IsLeader: sv.IsLeader}
	}
	return out
}
