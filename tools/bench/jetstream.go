package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
)

const (
	jsStream  = "BENCH"
	jsSubject = "bench"
)

// jsCluster is n in-process nats-server instances with JetStream (file
// storage, one store directory each), clustered over TLS routes on loopback
// when n > 1, one stream of n replicas, and a client connection to the
// stream leader's server (the best placement for JetStream: publishes need
// no extra hop).
type jsCluster struct {
	servers []*server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
}

// jsTLS holds the TLS configurations, from the same dev CA as proglog's:
// clients must present a certificate (mutual TLS, as for proglog), and
// routes authenticate both ways with a node certificate for both usages.
type jsTLS struct {
	server, route, client *tls.Config
}

func newJSTLS(pki certs.DevFiles) (*jsTLS, error) {
	srv, err := auth.TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CACert}.Server()
	if err != nil {
		return nil, err
	}
	cli, err := auth.TLSConfig{CertFile: pki.ClientCert("root"), KeyFile: pki.ClientKey("root"), CAFile: pki.CACert}.Client()
	if err != nil {
		return nil, err
	}
	ca, err := certs.LoadAuthority(pki.CACert, pki.CAKey)
	if err != nil {
		return nil, err
	}
	node, err := ca.Issue(certs.Request{CommonName: "nats-route", Hosts: []string{"127.0.0.1", "localhost"}, Server: true, Client: true})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(node.CertPEM, node.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	route := &tls.Config{
		MinVersion:   srv.MinVersion,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	return &jsTLS{server: srv, route: route, client: cli}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startJetStream(ctx context.Context, dir string, t *jsTLS, nodes int, durability string) (*jsCluster, error) {
	jc := &jsCluster{}
	ok := false
	defer func() {
		if !ok {
			_ = jc.Close()
		}
	}()
	var routes []*url.URL
	ports := make([]int, nodes)
	if nodes > 1 {
		for i := range ports {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			ports[i] = p
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	for i := 0; i < nodes; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("nats-%d", i)),
			NoLog:      true,
			NoSigs:     true,
			TLSConfig:  t.server,
			TLSVerify:  true,
			TLSTimeout: 5,
			// sync: fsync every write before the ack (sync_interval: always);
			// relaxed: the default, a background sync every 2 minutes.
			SyncAlways: durability == durSync,
		}
		if durability == durRelaxed {
			o.SyncInterval = relaxedSyncInterval
		}
		if nodes > 1 {
			o.Cluster = server.ClusterOpts{
				Name:       "bench",
				Host:       "127.0.0.1",
				Port:       ports[i],
				TLSConfig:  t.route,
				TLSTimeout: 5,
			}
			o.Routes = routes
		}
		s, err := server.NewServer(o)
		if err != nil {
			return nil, fmt.Errorf("nats-%d: %w", i, err)
		}
		jc.servers = append(jc.servers, s)
		go s.Start()
	}
	for _, s := range jc.servers {
		if !s.ReadyForConnections(30 * time.Second) {
			return nil, fmt.Errorf("%s not ready for connections", s.Name())
		}
	}
	urls := make([]string, len(jc.servers))
	for i, s := range jc.servers {
		urls[i] = s.ClientURL()
	}
	// Create the stream through any server, once JetStream (its meta
	// group, when clustered) is up.
	nc, js, err := jsConnect(urls[0], t)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var info *jetstream.StreamInfo
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("jetstream stream not created: %w", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
			Name:     jsStream,
			Subjects: []string{jsSubject},
			Storage:  jetstream.FileStorage,
			Replicas: nodes,
		})
		if err == nil {
			info, err = s.Info(cctx)
		}
		cancel()
		if err == nil && (nodes == 1 || (info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == nodes-1 && allCurrent(info.Cluster.Replicas))) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	leaderURL := urls[0]
	if nodes > 1 {
		for i, s := range jc.servers {
			if s.Name() == info.Cluster.Leader {
				leaderURL = urls[i]
			}
		}
	}
	if jc.nc, jc.js, err = jsConnect(leaderURL, t); err != nil {
		return nil, err
	}
	ok = true
	return jc, nil
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current {
			return false
		}
	}
	return true
}

func jsConnect(u string, t *jsTLS) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(u, nats.Secure(t.client.Clone()), nats.Name("bench"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", u, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// Produce publishes one record synchronously (waiting for its ack), or a
// batch as asynchronous publishes followed by a wait for all their acks.
func (jc *jsCluster) Produce(ctx context.Context, recs [][]byte) error {
	if len(recs) == 1 {
		_, err := jc.js.Publish(ctx, jsSubject, recs[0])
		return err
	}
	futs := make([]jetstream.PubAckFuture, 0, len(recs))
	var errs []error
	for _, r := range recs {
		f, err := jc.js.PublishAsync(jsSubject, r)
		if err != nil {
			errs = append(errs, err)
			break
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

func (jc *jsCluster) Position(ctx context.Context) (uint64, error) {
	s, err := jc.js.Stream(ctx, jsStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq + 1, nil
}

// Follow reads with an ordered consumer (ephemeral, flow-controlled pull)
// from sequence from.
func (jc *jsCluster) Follow(ctx context.Context, from uint64, fn func([]byte) bool) error {
	cons, err := jc.js.OrderedConsumer(ctx, jsStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if !fn(m.Data()) {
			return nil
		}
	}
}

func (jc *jsCluster) Close() error {
	if jc.nc != nil {
		jc.nc.Close()
	}
	for _, s := range jc.servers {
		s.Shutdown()
	}
	for _, s := range jc.servers {
		s.WaitForShutdown()
	}
	return nil
}
