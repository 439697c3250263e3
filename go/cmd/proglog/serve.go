package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/log"
	"github.com/proglog/proglog/go/server"
	"github.com/proglog/proglog/go/telemetry"
)

// serveOptions are the flags of serve (and of the bare root command).
type serveOptions struct {
	dataDir, addr, metricsAddr string
	id, advertiseAddr          string
	dev                        bool
	tlsCert, tlsKey, tlsCA     string
	aclModel, aclPolicy        string
	logName                    string
	maxRecordBytes             int
	traceExporter              string
	traceEndpoint, traceFile   string
	logLevel                   string
	shutdownTimeout            time.Duration
}

func defaultServeOptions() *serveOptions {
	return &serveOptions{
		dataDir:         "./proglog-data",
		addr:            "127.0.0.1:8400",
		metricsAddr:     "127.0.0.1:8401",
		logName:         server.DefaultLogName,
		maxRecordBytes:  server.DefaultMaxRecordBytes,
		traceExporter:   telemetry.ExporterNone,
		logLevel:        "info",
		shutdownTimeout: server.DefaultShutdownTimeout,
	}
}

func (o *serveOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", o.dataDir, "directory for the log (<data-dir>/log) and, with --dev, certificates (<data-dir>/certs)")
	fs.StringVar(&o.addr, "addr", o.addr, "gRPC listen address (port 0 picks one)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", o.metricsAddr, "HTTP listen address for Prometheus /metrics")
	fs.StringVar(&o.id, "id", "", "node ID reported by GetServers (default: host name)")
	fs.StringVar(&o.advertiseAddr, "advertise-addr", "", "rpc_addr reported by GetServers (default: the listen address)")
	fs.BoolVar(&o.dev, "dev", false, "create development certificates in <data-dir>/certs if missing and use them")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate (PEM)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "CA certificates that verify client certificates (PEM)")
	fs.StringVar(&o.aclModel, "acl-model", "", "casbin model file (default: built-in)")
	fs.StringVar(&o.aclPolicy, "acl-policy", "", "casbin policy file (default: built-in, root may do everything)")
	fs.StringVar(&o.logName, "log-name", o.logName, "name of the log, the ACL object")
	fs.IntVar(&o.maxRecordBytes, "max-record-bytes", o.maxRecordBytes, "largest accepted record, encoded (value, key, headers, timestamp)")
	fs.StringVar(&o.traceExporter, "trace-exporter", o.traceExporter, "where spans go: none, otlp or file")
	fs.StringVar(&o.traceEndpoint, "trace-endpoint", "", "OTLP/gRPC collector for --trace-exporter=otlp (host:port, http:// or https:// URL)")
	fs.StringVar(&o.traceFile, "trace-file", "", "JSON-lines span file for --trace-exporter=file")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", o.shutdownTimeout, "how long running calls may finish after SIGINT/SIGTERM")
}

// validate checks flag combinations that the packages' own Validate methods
// cannot see.
func (o *serveOptions) validate() error {
	var errs []error
	anyTLS := o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != ""
	switch {
	case o.dev && anyTLS:
		errs = append(errs, errors.New("--dev and --tls-cert/--tls-key/--tls-ca are exclusive"))
	case !o.dev && (o.tlsCert == "" || o.tlsKey == "" || o.tlsCA == ""):
		errs = append(errs, errors.New("TLS is required: give --tls-cert, --tls-key and --tls-ca, or --dev for generated development certificates"))
	}
	if o.dataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty"))
	}
	if o.maxRecordBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-record-bytes is %d, must be positive", o.maxRecordBytes))
	}
	return errors.Join(errs...)
}

// serve runs the server until ctx is done, then shuts it down.
func serve(ctx context.Context, o *serveOptions, stdout io.Writer) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	traceCfg := telemetry.TraceConfig{
		Exporter: o.traceExporter, Endpoint: o.traceEndpoint, File: o.traceFile,
		ServiceName: "proglog", ServiceVersion: version,
	}
	if err := traceCfg.Validate(); err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(o.logLevel)
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // stderr sync fails on terminals

	tlsFiles := auth.TLSConfig{CertFile: o.tlsCert, KeyFile: o.tlsKey, CAFile: o.tlsCA}
	if o.dev {
		files, err := certs.EnsureDev(filepath.Join(o.dataDir, "certs"), devHosts(o.addr))
		if err != nil {
			return fmt.Errorf("dev certificates: %w", err)
		}
		printDevFiles(stdout, files)
		tlsFiles = auth.TLSConfig{CertFile: files.ServerCert, KeyFile: files.ServerKey, CAFile: files.CACert}
	}
	tlsCfg, err := tlsFiles.Server()
	if err != nil {
		return err
	}
	authz, err := auth.NewAuthorizer(o.aclModel, o.aclPolicy)
	if err != nil {
		return err
	}

	scfg := server.DefaultConfig()
	if o.id != "" {
		scfg.ID = o.id
	}
	scfg.AdvertiseAddr = o.advertiseAddr
	scfg.LogName = o.logName
	scfg.TLS = tlsCfg
	scfg.Authorizer = authz
	scfg.MaxRecordBytes = o.maxRecordBytes
	// Room for a maximal record plus framing, and at least the default.
	scfg.MaxRecvMsgBytes = max(server.DefaultMaxRecvMsgBytes, o.maxRecordBytes+1<<16)
	scfg.MaxSendMsgBytes = scfg.MaxRecvMsgBytes
	scfg.ShutdownTimeout = o.shutdownTimeout
	scfg.Logger = logger

	lcfg := log.DefaultConfig()
	// The server checks the same bound on the same encoded bytes first, so
	// the engine's own check never fires for a valid request.
	lcfg.MaxRecordBytes = uint64(o.maxRecordBytes)
	lcfg.Segment.MaxStoreBytes = max(lcfg.Segment.MaxStoreBytes, 2*lcfg.MaxRecordBytes)
	logDir := filepath.Join(o.dataDir, "log")
	storage, err := log.Open(logDir, lcfg)
	if err != nil {
		return fmt.Errorf("open log %s: %w", logDir, err)
	}
	defer func() {
		if cerr := storage.Close(); cerr != nil && !errors.Is(cerr, log.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("close log: %w", cerr))
		}
	}()

	tracing, err := telemetry.NewTracing(ctx, traceCfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tracing.Shutdown(sctx))
	}()
	if o.traceExporter != telemetry.ExporterNone {
		scfg.TracerProvider = tracing.Provider
	}

	reg := telemetry.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		return err
	}
	if err := metrics.RegisterLogStats(func() telemetry.LogStats {
		size, segs := storage.Size()
		return telemetry.LogStats{SizeBytes: size, Segments: segs, LowestOffset: storage.LowestOffset(), NextOffset: storage.NextOffset()}
	}); err != nil {
		return err
	}
	scfg.Metrics = metrics

	srv, err := server.New(scfg, server.NewStorageLog(storage))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	ms, err := telemetry.ListenMetrics(o.metricsAddr, reg)
	if err != nil {
		lis.Close()
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, ms.Shutdown(sctx))
	}()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	logger.Info("serving", zap.String("addr", lis.Addr().String()), zap.String("metrics", ms.Addr()),
		zap.String("data_dir", o.dataDir), zap.String("version", version), zap.Uint64("next_offset", storage.NextOffset()))
	fmt.Fprintf(stdout, "proglog %s serving on %s (metrics: http://%s/metrics)\n", version, lis.Addr(), ms.Addr())

	select {
	case err := <-served:
		// Serve only returns early on a listener failure.
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", zap.Duration("timeout", o.shutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("forced shutdown", zap.Error(err))
	}
	if err := <-served; err != nil {
		return err
	}
	fmt.Fprintln(stdout, "proglog stopped")
	return nil
}

// devHosts returns the extra names the dev server certificate needs for
// addr: its host if specific, the machine's name if it listens everywhere.
func devHosts(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil {
			return []string{name}
		}
		return nil
	}
	return []string{host}
}
