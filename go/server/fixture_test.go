package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	"github.com/proglog/proglog/go/telemetry"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// fixture is one server over real TLS on loopback, with a dev PKI in a
// temporary directory.
type fixture struct {
	t       testing.TB
	certs   certs.DevFiles
	ca      *certs.Authority
	storage *seglog.Log  // the default topic's partition 0
	clog    *countingLog // over storage
	cluster *cluster
	srv     *server.Server
	addr    string
	reg     *prometheus.Registry
	served  chan error
}

type fixtureOpts struct {
	gate    chan struct{}              // see countingLog.gate
	reads   chan commitlog.Consistency // see countingLog.reads
	server  func(*server.Config)
	storage func(*seglog.Config)
	tls     auth.TLSConfig // CertFile etc. are filled in; flags are kept
}

func newFixture(t testing.TB, opts fixtureOpts) *fixture {
	t.Helper()
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadAuthority(files.CACert, files.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	tlsFiles := opts.tls
	tlsFiles.CertFile, tlsFiles.KeyFile, tlsFiles.CAFile = files.ServerCert, files.ServerKey, files.CACert
	tlsCfg, err := tlsFiles.Server()
	if err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}

	cfg := server.DefaultConfig()
	cfg.TLS = tlsCfg
	cfg.Authorizer = authz
	cfg.Metrics = metrics
	cfg.ShutdownTimeout = 5 * time.Second
	if opts.server != nil {
		opts.server(&cfg)
	}

	lcfg := seglog.DefaultConfig()
	lcfg.Sync = seglog.SyncNever // durability is the engine's tests' business
	lcfg.MaxRecordBytes = uint64(cfg.MaxRecordBytes)
	if opts.storage != nil {
		opts.storage(&lcfg)
	}
	storage, err := seglog.Open(filepath.Join(dir, "log"), lcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterLogStats(func() telemetry.LogStats {
		size, segs := storage.Size()
		return telemetry.LogStats{SizeBytes: size, Segments: segs, LowestOffset: storage.LowestOffset(), NextOffset: storage.NextOffset()}
	}); err != nil {
		t.Fatal(err)
	}
	clog := &countingLog{Partition: server.NewStorageLog(storage), gate: opts.gate, reads: opts.reads}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := newCluster(t, filepath.Join(dir, "topics"), lcfg, commitlog.Server{ID: cfg.ID, Addr: lis.Addr().String(), IsLeader: true}, clog)
	srv, err := server.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, certs: files, ca: ca, storage: storage, clog: clog, cluster: cl, srv: srv, addr: lis.Addr().String(), reg: reg, served: make(chan error, 1)}
	go func() { f.served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-f.served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := storage.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
			t.Errorf("close log: %v", err)
		}
	})
	return f
}

// clientTLS is a client configuration trusting the fixture's CA and
// presenting the dev certificate of name ("" for none).
func (f *fixture) clientTLS(name string) *tls.Config {
	f.t.Helper()
	c := auth.TLSConfig{CAFile: f.certs.CACert, ServerName: "localhost"}
	if name != "" {
		c.CertFile, c.KeyFile = f.certs.ClientCert(name), f.certs.ClientKey(name)
	}
	cfg, err := c.Client()
	if err != nil {
		f.t.Fatal(err)
	}
	return cfg
}

// tlsWithPair is clientTLS presenting an arbitrary key pair — always, as a
// hostile client would; a plain Certificates list would be withheld when its
// issuer is not among the CAs the server asks for.
func (f *fixture) tlsWithPair(kp *certs.KeyPair) *tls.Config {
	f.t.Helper()
	cfg := f.clientTLS("")
	pair, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		f.t.Fatal(err)
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	return cfg
}

func (f *fixture) conn(cfg *tls.Config, opts ...grpc.DialOption) *grpc.ClientConn {
	f.t.Helper()
	conn, err := grpc.NewClient(f.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return conn
}

// client returns a Log client authenticated as the dev identity name.
func (f *fixture) client(name string) logv1.LogClient {
	return logv1.NewLogClient(f.conn(f.clientTLS(name)))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// countingLog tracks Wait calls in flight so tests can see a stream handler
// leave the server.
type countingLog struct {
	commitlog.Partition
	waiting atomic.Int64
	writes  atomic.Int64 // Append calls
	// gate, if set, is received from before each write: tests hold writes
	// back to let requests queue up.
	gate chan struct{}
	// fail, if set, is called by Append; a non-nil result is returned
	// instead of appending. It may panic.
	fail atomic.Pointer[func() error]
	// reads receives the consistency of every Read, if set.
	reads chan commitlog.Consistency
}

func (c *countingLog) Read(ctx context.Context, off uint64, cons commitlog.Consistency) ([]byte, error) {
	if c.reads != nil {
		c.reads <- cons
	}
	return c.Partition.Read(ctx, off, cons)
}

func (c *countingLog) Append(ctx context.Context, recs [][]byte) (uint64, error) {
	c.writes.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	if fail := c.fail.Load(); fail != nil {
		if err := (*fail)(); err != nil {
			return 0, err
		}
	}
	return c.Partition.Append(ctx, recs)
}

func (c *countingLog) Wait(ctx context.Context, off uint64) error {
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	return c.Partition.Wait(ctx, off)
}

// eventually polls cond every few milliseconds for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type serverConfig = server.Config

// handshakeAlert connects with cfg as gRPC would (ALPN h2) and returns the
// error that ends the connection: under TLS 1.3 the server's verdict on the
// client certificate arrives after the client's handshake, on first read.
func (f *fixture) handshakeAlert(cfg *tls.Config) error {
	f.t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", f.addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// The HTTP/2 preface makes the server read, and so finish verifying.
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}
