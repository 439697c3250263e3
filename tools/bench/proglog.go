package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/seglog"
)

// relaxedSyncInterval matches JetStream's default sync_interval.
const relaxedSyncInterval = 2 * time.Minute

// proglogCluster is n in-process proglog agents on loopback, each with its
// own data directory, over mutual TLS with dev certificates, and the Go
// client connected to all of them.
type proglogCluster struct {
	agents []*agent.Agent
	client *client.Client
}

// startProglog starts a cluster of nodes agents in dir; tune, if any,
// adjusts each agent's configuration before it starts.
func startProglog(ctx context.Context, dir string, pki certs.DevFiles, nodes int, durability string, tune ...func(*agent.Config)) (*proglogCluster, error) {
	key, err := agent.GenerateGossipKey()
	if err != nil {
		return nil, err
	}
	pc := &proglogCluster{}
	ok := false
	defer func() {
		if !ok {
			_ = pc.Close()
		}
	}()
	var addrs []string
	for i := 0; i < nodes; i++ {
		cfg := agent.DefaultConfig()
		cfg.NodeName = fmt.Sprintf("proglog-%d", i)
		cfg.DataDir = filepath.Join(dir, cfg.NodeName)
		cfg.BindAddr = "127.0.0.1:0"
		cfg.SerfBindAddr = "127.0.0.1:0"
		cfg.GossipKey = key
		cfg.GossipProfile = discovery.ProfileLocal // what proglog serve picks on loopback
		// A node needs its own certificate, naming it.
		if _, err := certs.EnsureDev(pki.Dir, nil, cfg.NodeName); err != nil {
			return nil, err
		}
		cfg.TLS = auth.TLSConfig{CertFile: pki.NodeCert(cfg.NodeName), KeyFile: pki.NodeKey(cfg.NodeName), CAFile: pki.CACert}
		cfg.Bootstrap = i == 0
		if i > 0 {
			cfg.StartJoinAddrs = []string{pc.agents[0].SerfAddr()}
		}
		if durability == durRelaxed {
			cfg.Sync = seglog.SyncInterval
			cfg.SyncInterval = relaxedSyncInterval
		}
		cfg.Logger = zap.NewNop()
		for _, f := range tune {
			f(&cfg)
		}
		a, err := agent.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", cfg.NodeName, err)
		}
		pc.agents = append(pc.agents, a)
		addrs = append(addrs, a.Addr())
		if i == 0 {
			if err := a.WaitReady(ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", cfg.NodeName, err)
			}
		}
	}
	// Wait until the leader has every node as a voter and all are ready.
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("proglog cluster of %d did not form: %w", nodes, err)
		}
		if l := pc.leader(); l != nil {
			servers, err := l.Replica().GetServers()
			ready := err == nil && len(servers) == nodes
			for _, a := range pc.agents {
				ready = ready && a.Ready()
			}
			if ready {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	target := "proglog://" + strings.Join(addrs, ",")
	c, err := client.New(ctx, target, client.WithTLSFiles(pki.CACert, pki.ClientCert("root"), pki.ClientKey("root")))
	if err != nil {
		return nil, err
	}
	pc.client = c
	ok = true
	return pc, nil
}

func (pc *proglogCluster) leader() *agent.Agent {
	for _, a := range pc.agents {
		if a.IsLeader() {
			return a
		}
	}
	return nil
}

func (pc *proglogCluster) Produce(ctx context.Context, recs [][]byte) error {
	if len(recs) == 1 {
		_, err := pc.client.Produce(ctx, &client.Record{Value: recs[0]})
		return err
	}
	batch := make([]*client.Record, len(recs))
	for i, r := range recs {
		batch[i] = &client.Record{Value: r}
	}
	_, err := pc.client.ProduceBatch(ctx, batch)
	return err
}

func (pc *proglogCluster) Position(context.Context) (uint64, error) {
	l := pc.leader()
	if l == nil {
		return 0, errors.New("no proglog leader")
	}
	return l.Replica().NextOffset(), nil
}

func (pc *proglogCluster) Follow(ctx context.Context, from uint64, fn func([]byte) bool) error {
	for rec, err := range pc.client.Records(ctx, from) {
		if err != nil {
			return err
		}
		if !fn(rec.Value) {
			return nil
		}
	}
	return nil
}

// snapshotIndex is the highest last_snapshot_index of the nodes: it moves
// when any node takes a Raft snapshot.
func (pc *proglogCluster) snapshotIndex() uint64 {
	var hi uint64
	for _, a := range pc.agents {
		if n, err := strconv.ParseUint(a.Replica().Stats()["last_snapshot_index"], 10, 64); err == nil && n > hi {
			hi = n
		}
	}
	return hi
}

func (pc *proglogCluster) Close() error {
	var errs []error
	if pc.client != nil {
		errs = append(errs, pc.client.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Followers first, so the leader does not hand leadership around.
	for i := len(pc.agents) - 1; i >= 0; i-- {
		errs = append(errs, pc.agents[i].Shutdown(ctx))
	}
	return errors.Join(errs...)
}
