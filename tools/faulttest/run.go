package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/history"
	"github.com/proglog/proglog/tools/faulttest/nemesis"
	"github.com/proglog/proglog/tools/faulttest/netlab"
	"github.com/proglog/proglog/tools/faulttest/workload"
)

// RunConfig is one fault-test run: a cluster, a workload, a fault schedule.
type RunConfig struct {
	Name   string // shown in the report
	Binary string // proglog executable
	Dir    string // run directory (node data, logs, certs); kept after the run
	Net    netlab.Mode
	Nodes  int
	// Faults are run in order, Rounds times; with Duration > 0, once in
	// order and then drawn at random from the list until Duration has
	// passed.
	Faults   []string
	Rounds   int
	Duration time.Duration
	// Hold is how long each fault lasts; Quiet the fault-free time between
	// two faults.
	Hold, Quiet time.Duration
	Workload    workload.Config
	// Topics are created at the start, each partition with a workload of
	// its own (half of Workload's clients) besides the default topic's
	// partition 0, which runs Workload and whose leader the faults
	// target; the checker checks each partition on its own.
	Topics []TopicSpec
	// Group, when set, adds a consumer-group workload: its topic is
	// created (3 replicas, like ShortTopics), each partition gets a
	// producer of its own (no readers or consumers), and the group's
	// members process it while the churn kills and adds members; the
	// faults run as usual. At the end the members drain the topic and
	// history.CheckGroup checks the group.
	Group *workload.GroupConfig
	Seed  uint64
	// Sync is the nodes' --sync (empty: proglog's default, always).
	Sync string
	// DiskBytes and MinFreeBytes size the nodes' tmpfs disks and their
	// --min-free-bytes, for faults that need a disk of their own
	// (disk-full).
	DiskBytes    int64
	MinFreeBytes uint64
	// NegativeControl: the run is meant to lose data (a destructive fault
	// or a broken build); it passes when the checker catches it.
	NegativeControl bool
	Logf            func(format string, args ...any)
}

// DefaultRunConfig is a short run of every standard fault on 3 nodes.
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Name: "3 nodes, every fault", Nodes: 3, Faults: nemesis.Standard(), Rounds: 1,
		Hold: 2 * time.Second, Quiet: time.Second, Workload: workload.DefaultConfig(), Seed: 1,
		DiskBytes: 64 << 20, MinFreeBytes: 16 << 20,
	}
}

// TopicSpec is a topic a run creates.
type TopicSpec struct {
	Name                          string
	Partitions, ReplicationFactor int
}

// ShortTopics are the topics of the short and long modes' runs of the
// standard faults: 3 partitions of 3 replicas, which on 5 nodes lie on
// different replica sets, so a fault hits some partitions' leaders and
// not others.
func ShortTopics() []TopicSpec {
	return []TopicSpec{{Name: "ft.a", Partitions: 3, ReplicationFactor: 3}}
}

// Validate reports the first setting that cannot work.
func (c RunConfig) Validate() error {
	switch {
	case c.Binary == "":
		return errors.New("faulttest: the proglog binary is required")
	case c.Dir == "":
		return errors.New("faulttest: a run directory is required")
	case c.Nodes < 1:
		return fmt.Errorf("faulttest: %d nodes: need at least 1", c.Nodes)
	case len(c.Faults) == 0:
		return errors.New("faulttest: no faults to run")
	case c.Rounds < 1 && c.Duration <= 0:
		return errors.New("faulttest: need Rounds >= 1 or a Duration")
	case c.Hold <= 0:
		return errors.New("faulttest: Hold must be positive")
	}
	if c.Group != nil {
		if c.Nodes < 3 {
			return fmt.Errorf("faulttest: %d nodes: the group workload needs at least 3", c.Nodes)
		}
		if err := c.Group.Validate(); err != nil {
			return err
		}
		for _, t := range c.Topics {
			if t.Name == c.Group.Topic {
				return fmt.Errorf("faulttest: topic %q is both in Topics and the group's", t.Name)
			}
		}
	}
	for _, t := range c.topics() {
		if t.Name == "" || t.Name == commitlog.DefaultTopic || t.Partitions < 1 || t.ReplicationFactor < 1 || t.ReplicationFactor > c.Nodes {
			return fmt.Errorf("faulttest: topic %q of %d partitions and %d replicas on %d nodes: need a new name, a partition and 1 to %d replicas",
				t.Name, t.Partitions, t.ReplicationFactor, c.Nodes, c.Nodes)
		}
	}
	faults, err := nemesis.ByName(c.Faults)
	if err != nil {
		return err
	}
	for _, f := range faults {
		if c.Nodes < 3 && !f.SingleNode {
			return fmt.Errorf("faulttest: %d nodes: %s needs at least 3", c.Nodes, f.Name)
		}
		if f.Disk != faults[0].Disk {
			return fmt.Errorf("faulttest: %s needs %v disks and %s %v disks: run them separately", faults[0].Name, faults[0].Disk, f.Name, f.Disk)
		}
	}
	return c.Workload.Validate()
}

// topics are the topics the run creates: Topics and the group's.
func (c RunConfig) topics() []TopicSpec {
	ts := slices.Clone(c.Topics)
	if c.Group != nil {
		ts = append(ts, TopicSpec{Name: c.Group.Topic, Partitions: c.Group.Partitions, ReplicationFactor: 3})
	}
	return ts
}

// FaultResult is an injected fault and how long the cluster took to take
// writes again.
type FaultResult struct {
	nemesis.Event
	Err string // the nemesis could not complete the fault
	// First acknowledged produce sent after the injection / after the
	// heal, measured from that moment (-1: none).
	RecoveryFromInject, RecoveryFromHeal time.Duration
	// LowDiskRefused is how many produces sent from the injection until
	// the next fault were refused with RESOURCE_EXHAUSTED (LOW_DISK_SPACE):
	// refused, nothing written, so neither acknowledged nor lost.
	LowDiskRefused int
}

// RunResult is what a run did and what the checker found.
type RunResult struct {
	Config         RunConfig
	Mode           netlab.Mode
	FallbackReason string
	Skipped        []string // faults not run (no partitions in loopback mode)
	Started        time.Time
	Elapsed        time.Duration
	Faults         []FaultResult
	LeaderChanges  int
	Leaders        []string
	// Check is every partition's check together (counts summed, the worst
	// linearizability verdict, problems named by partition); Partitions
	// has each one's.
	Check        history.Result
	Partitions   []PartitionResult
	FinalRecords int // records in the default topic's partition 0
	// Group is the consumer-group workload's outcome (nil: none).
	Group *GroupRunResult
	Err   string // the run could not complete (the check may still have run)
}

// GroupRunResult is what the consumer-group workload did and what
// history.CheckGroup found.
type GroupRunResult struct {
	Killed, Added int // members, after the first ones
	// Failures are the members that ended on their own (their consumer
	// gave up); must be empty.
	Failures []string
	// Final are the group's committed offsets at the end, by partition.
	Final []uint64
	Check history.GroupResult
}

// OK reports whether no member gave up and the check found nothing.
func (g *GroupRunResult) OK() bool { return len(g.Failures) == 0 && g.Check.OK() }

// PartitionResult is what the checker found in one partition.
type PartitionResult struct {
	Topic     string
	Partition uint32
	Check     history.Result
	Records   int // in the final log
}

// Passed says whether the run completed and the checker found nothing —
// or, for a negative control, proved a violation (an inconclusive
// linearizability check catches nothing).
func (r *RunResult) Passed() bool {
	if r.Config.NegativeControl {
		return r.Err == "" && r.Check.Violated()
	}
	return r.Err == "" && r.Check.OK() && (r.Group == nil || r.Group.OK())
}

// Run runs one fault test. The returned result is filled as far as the run
// got; err says why it stopped early.
func Run(ctx context.Context, cfg RunConfig) (res *RunResult, err error) {
	res = &RunResult{Config: cfg, Started: time.Now()}
	defer func() {
		res.Elapsed = time.Since(res.Started)
		if err != nil {
			res.Err = err.Error()
		}
	}()
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	faults, _ := nemesis.ByName(cfg.Faults)

	lab, err := netlab.New(netlab.Config{Hosts: cfg.Nodes + 1, Mode: cfg.Net, Subnet: netlab.DefaultConfig().Subnet})
	if err != nil {
		return res, err
	}
	defer lab.Close()
	res.Mode, res.FallbackReason = lab.Mode(), lab.FallbackReason()
	if !lab.CanPartition() {
		kept := faults[:0]
		for _, f := range faults {
			if f.NeedsPartitions {
				res.Skipped = append(res.Skipped, f.Name)
			} else {
				kept = append(kept, f)
			}
		}
		faults = kept
		if len(faults) == 0 {
			return res, fmt.Errorf("faulttest: every fault needs partitions, which %s mode cannot do", lab.Mode())
		}
	}

	ccfg := cluster.DefaultConfig()
	ccfg.Binary, ccfg.Dir, ccfg.Lab, ccfg.Nodes, ccfg.Logf = cfg.Binary, cfg.Dir, lab, cfg.Nodes, logf
	ccfg.Disk, ccfg.Seed, ccfg.Sync = faults[0].Disk, cfg.Seed, cfg.Sync
	if ccfg.Disk == cluster.DiskTmpfs {
		ccfg.DiskBytes, ccfg.MinFreeBytes = cfg.DiskBytes, cfg.MinFreeBytes
	}
	c, err := cluster.New(ccfg)
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		return res, fmt.Errorf("faulttest: start cluster: %w", err)
	}
	logf("cluster of %d up in %v (%s network)", cfg.Nodes, time.Since(res.Started).Round(time.Millisecond), lab.Mode())

	if err := createTopics(ctx, c, cfg.topics()); err != nil {
		return res, err
	}
	streams := []*stream{{topic: commitlog.DefaultTopic, cfg: cfg.Workload}}
	for _, t := range cfg.topics() {
		group := cfg.Group != nil && t.Name == cfg.Group.Topic
		for p := range t.Partitions {
			wc := cfg.Workload
			wc.Topic, wc.Partition, wc.Partitions = t.Name, uint32(p), t.Partitions
			wc.Producers, wc.Readers, wc.Consumers = max(1, wc.Producers/2), wc.Readers/2, wc.Consumers/2
			if group { // one producer each (6 partitions); the group's members are the readers
				wc.Producers, wc.Readers, wc.Consumers = 1, 0, 0
			}
			wc.Seed += uint64(len(streams)) << 32
			streams = append(streams, &stream{topic: t.Name, partition: uint32(p), cfg: wc, group: group})
		}
	}
	for _, st := range streams {
		if st.w, err = workload.Start(c, &st.rec, st.cfg); err != nil {
			stopAll(streams)
			return res, err
		}
	}
	stopped := false
	stopWorkload := func() {
		if !stopped {
			stopped = true
			stopAll(streams)
		}
	}
	defer stopWorkload()
	var (
		grp  *workload.Group
		grec history.GroupRecorder
	)
	if cfg.Group != nil {
		if grp, err = workload.StartGroup(ctx, c, &grec, *cfg.Group); err != nil {
			return res, err
		}
		defer grp.Close(ctx)
	}
	leaders := watchLeaders(ctx, c)
	defer leaders.stop()

	runErr := injectAll(ctx, cfg, faults, c, lab, streams, res, logf)
	stopWorkload()
	leaders.stop()
	res.Leaders, res.LeaderChanges = leaders.result()

	// The end state: every member up, a final record acknowledged in
	// each partition, and each replica's whole log read back (follower
	// reads wait until it caught up).
	ferr := restartAll(ctx, c)
	var groupParts []history.GroupPartition
	for i, st := range streams {
		finals, err := collectFinals(ctx, c, st, logf)
		ferr = errors.Join(ferr, err)
		if len(finals) > 0 && i == 0 {
			res.FinalRecords = len(finals[0].Values)
		}
		if st.group {
			groupParts = append(groupParts, history.GroupPartition{Partition: st.partition, Log: longest(finals), Acked: st.rec.Ops()})
		}
		ops := st.rec.Ops()
		if err := writeHistory(filepath.Join(cfg.Dir, st.file("history", ".jsonl")), ops, st.rec.Sessions()); err != nil {
			logf("history not saved: %v", err)
		}
		pr := PartitionResult{Topic: st.topic, Partition: st.partition, Check: history.Check(ops, st.rec.Sessions(), finals, history.Options{
			LinearizabilityTimeout: 2 * time.Minute,
			VisualizePath:          filepath.Join(cfg.Dir, st.file("linearizability", ".html")),
		})}
		if len(finals) > 0 {
			pr.Records = len(finals[0].Values)
		}
		res.Partitions = append(res.Partitions, pr)
	}
	res.Check = mergeChecks(res.Partitions)
	if grp != nil {
		res.Group, err = finishGroup(ctx, c, grp, &grec, *cfg.Group, groupParts, logf)
		ferr = errors.Join(ferr, err)
	}
	// Recovery is read off the partition whose leader the faults target.
	ops := streams[0].rec.Ops()
	for i := range res.Faults {
		f := &res.Faults[i]
		f.RecoveryFromInject = firstAckAfter(ops, f.Injected)
		f.RecoveryFromHeal = firstAckAfter(ops, f.Healed)
		var until time.Time
		if i+1 < len(res.Faults) {
			until = res.Faults[i+1].Injected
		}
		f.LowDiskRefused = lowDiskRefused(ops, f.Injected, until)
	}
	return res, errors.Join(runErr, ferr)
}

// stream is one partition's workload and history.
type stream struct {
	topic     string
	partition uint32
	cfg       workload.Config
	rec       history.Recorder
	w         *workload.Workload
	group     bool // a partition of the group workload's topic
}

func (st *stream) String() string { return fmt.Sprintf("%s/%d", st.topic, st.partition) }

// file names a file of the stream's in the run directory: prefix+suffix
// for the default topic's partition 0 (as before topics), else with the
// topic and partition.
func (st *stream) file(prefix, suffix string) string {
	if st.topic == commitlog.DefaultTopic && st.partition == 0 {
		return prefix + suffix
	}
	return fmt.Sprintf("%s-%s-%d%s", prefix, st.topic, st.partition, suffix)
}

func stopAll(streams []*stream) {
	for _, st := range streams {
		if st.w != nil {
			st.w.Stop()
		}
	}
}

// finishGroup ends the group workload: its members drain every
// partition (the group's committed offset at the partition's end, as
// parts' final logs have it), are closed, and the group's final committed
// offsets, once every running node reports the same, are checked with its
// history.
func finishGroup(ctx context.Context, c *cluster.Cluster, g *workload.Group, rec *history.GroupRecorder, cfg workload.GroupConfig, parts []history.GroupPartition, logf func(string, ...any)) (*GroupRunResult, error) {
	res := &GroupRunResult{}
	ends := make([]uint64, cfg.Partitions)
	for _, p := range parts {
		ends[p.Partition] = uint64(len(p.Log))
	}
	err := g.Drain(ctx, ends, 60*time.Second)
	err = errors.Join(err, g.Close(ctx))
	res.Killed, res.Added = g.Killed(), g.Added()
	for _, f := range g.Failures() {
		res.Failures = append(res.Failures, f.Error())
	}
	final, ferr := groupOffsets(ctx, c, cfg, 30*time.Second)
	err = errors.Join(err, ferr)
	res.Final = make([]uint64, cfg.Partitions)
	for i := range parts {
		if o, ok := final[parts[i].Partition]; ok {
			parts[i].Final, parts[i].HasFinal = o, true
			res.Final[parts[i].Partition] = o
		}
	}
	res.Check = history.CheckGroup(rec.Processed(), rec.Commits(), parts)
	logf("group %s: %d members killed, %d added, %d gave up; %s", cfg.Group, res.Killed, res.Added, len(res.Failures), res.Check)
	return res, err
}

// groupOffsets returns the group's committed offsets of its topic, by
// partition, once every running node's copy of the metadata reports the
// same (a follower's may lag the leader's by a moment), or fails after
// timeout.
func groupOffsets(ctx context.Context, c *cluster.Cluster, cfg workload.GroupConfig, timeout time.Duration) (map[uint32]uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		var (
			agreed map[uint32]uint64
			err    error
		)
		for i, n := range c.Running() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, ferr := c.Client(n).FetchOffsets(cctx, &logv1.FetchOffsetsRequest{Group: cfg.Group})
			cancel()
			if ferr != nil {
				err = fmt.Errorf("faulttest: offsets of group %s on %s: %w", cfg.Group, n.Name, ferr)
				break
			}
			got := map[uint32]uint64{}
			for _, o := range resp.GetOffsets() {
				if o.GetTopic() == cfg.Topic && o.GetCommitted() {
					got[o.GetPartition()] = o.GetOffset()
				}
			}
			if i > 0 && !maps.Equal(got, agreed) {
				err = fmt.Errorf("faulttest: offsets of group %s: %s has %v, %v elsewhere", cfg.Group, n.Name, got, agreed)
				break
			}
			agreed = got
		}
		if err == nil {
			return agreed, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil { // let the followers apply
			return nil, err
		}
	}
}

// longest is the longest of finals' logs (the checker's reference).
func longest(finals []history.Final) []string {
	var ref []string
	for _, f := range finals {
		if len(f.Values) > len(ref) {
			ref = f.Values
		}
	}
	return ref
}

// waitAcked waits until every stream has gateAcked more produce calls
// acknowledged than when it was called: the streams are waited for
// together, not one after the other (a slow stream does not make the
// others wait longer).
func waitAcked(ctx context.Context, streams []*stream) error {
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, st := range streams {
		wg.Go(func() {
			if err := st.w.WaitAcked(ctx, gateAcked, 30*time.Second); err != nil {
				errs[i] = fmt.Errorf("%s: %w", st, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createTopics creates topics through the metadata leader, following
// NOT_LEADER answers.
func createTopics(ctx context.Context, c *cluster.Cluster, topics []TopicSpec) error {
	for _, t := range topics {
		req := &logv1.CreateTopicRequest{Name: t.Name, Config: &logv1.TopicConfig{Partitions: uint32(t.Partitions), ReplicationFactor: uint32(t.ReplicationFactor)}}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var err error
			for _, n := range c.Running() {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err = c.Client(n).CreateTopic(cctx, req)
				cancel()
				if err == nil || status.Code(err) == codes.AlreadyExists {
					err = nil
					break
				}
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("faulttest: create topic %s: %w", t.Name, err)
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil { // let an election finish
				return err
			}
		}
	}
	return nil
}

// mergeChecks sums the partitions' counts, keeps the worst
// linearizability verdict and names each problem's partition.
func mergeChecks(parts []PartitionResult) history.Result {
	var m history.Result
	m.Linearizable = porcupine.Ok
	for _, p := range parts {
		r := p.Check
		m.Ops += r.Ops
		m.Appends += r.Appends
		m.Reads += r.Reads
		m.Acked += r.Acked
		m.AckedOps += r.AckedOps
		m.UnknownPresent += r.UnknownPresent
		m.UnknownAbsent += r.UnknownAbsent
		m.Lost += r.Lost
		m.Duplicated += r.Duplicated
		m.Torn += r.Torn
		m.Divergent += r.Divergent
		m.Missing += r.Missing
		m.Phantom += r.Phantom
		m.ConsumerGaps += r.ConsumerGaps
		m.ConsumerOrder += r.ConsumerOrder
		m.ConsumerDirty += r.ConsumerDirty
		m.Deliveries += r.Deliveries
		m.StaleReads += r.StaleReads
		m.Retried += r.Retried
		m.Retries += r.Retries
		m.DuplicateAnswers += r.DuplicateAnswers
		m.LinearizabilityOps += r.LinearizabilityOps
		switch {
		case r.Linearizable == porcupine.Illegal:
			m.Linearizable = porcupine.Illegal
		case r.Linearizable == porcupine.Unknown && m.Linearizable == porcupine.Ok:
			m.Linearizable = porcupine.Unknown
		}
		for _, pr := range r.Problems {
			m.Problems = append(m.Problems, fmt.Sprintf("%s/%d: %s", p.Topic, p.Partition, pr))
		}
	}
	return m
}

// injectAll runs the fault schedule against the loaded cluster.
func injectAll(ctx context.Context, cfg RunConfig, faults []nemesis.Fault, c *cluster.Cluster, lab *netlab.Lab, streams []*stream, res *RunResult, logf func(string, ...any)) error {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6e656d))
	env := &nemesis.Env{Cluster: c, Lab: lab, Rng: rng, Hold: cfg.Hold, OnLeader: streams[0].w.SetLeader, Logf: logf}
	if err := waitAcked(ctx, streams); err != nil {
		return fmt.Errorf("faulttest: before the first fault: %w", err)
	}
	var schedule func(i int) (nemesis.Fault, bool)
	if cfg.Duration > 0 {
		end := time.Now().Add(cfg.Duration)
		// One round in order, so that every fault runs at least once,
		// then random draws.
		schedule = func(i int) (nemesis.Fault, bool) {
			if i < len(faults) {
				return faults[i], true
			}
			return faults[rng.IntN(len(faults))], time.Now().Before(end)
		}
	} else {
		schedule = func(i int) (nemesis.Fault, bool) { return faults[i%len(faults)], i < cfg.Rounds*len(faults) }
	}
	for i := 0; ; i++ {
		f, more := schedule(i)
		if !more || ctx.Err() != nil {
			return ctx.Err()
		}
		logf("fault %d: %s", i+1, f.Name)
		ev, err := f.Run(ctx, env)
		fr := FaultResult{Event: ev}
		if err != nil {
			fr.Err = err.Error()
		}
		res.Faults = append(res.Faults, fr)
		logf("fault %d: %s on %v: %s %s", i+1, f.Name, ev.Targets, ev.Detail, ev.Outcome)
		if err != nil {
			return err
		}
		if err := settle(ctx, c, streams, cfg.Quiet); err != nil {
			return fmt.Errorf("faulttest: after %s: %w", f.Name, err)
		}
	}
}

// gateAcked is how many produce calls each partition's workload must have
// acknowledged before the first fault and after each one before the run
// goes on: the history's amount of work is set by these gates, not by how
// fast a loaded machine runs for a fixed time.
const gateAcked = 50

// settle waits until the cluster takes writes again (gateAcked more
// produce calls acknowledged in every partition), every member is back
// and every replica of every partition (on 5 nodes, 3 of them) has caught
// up with what was acknowledged so far, then for the quiet time. Without
// it, faults would pile onto a cluster still repairing the last one — a
// test of its own, and one Raft makes no promise about for damaged disks
// (see docs/reliability.md).
func settle(ctx context.Context, c *cluster.Cluster, streams []*stream, quiet time.Duration) error {
	if err := waitAcked(ctx, streams); err != nil {
		return err
	}
	if err := c.WaitMembers(ctx, c.Members(), 30*time.Second); err != nil {
		return err
	}
	for _, st := range streams {
		next, err := committedEnd(ctx, c, st, 10*time.Second)
		if err != nil {
			return err
		}
		replicas, err := c.Replicas(ctx, st.topic, st.partition)
		if err != nil {
			return err
		}
		for _, n := range replicas {
			if next == 0 {
				break
			}
			if err := waitHas(ctx, c, n, st, next-1, 30*time.Second); err != nil {
				return err
			}
		}
	}
	return sleepCtx(ctx, quiet)
}

// nextOffset asks n where st's partition ends: a linearizable read past
// any acknowledged offset answers OUT_OF_RANGE with the bounds at the
// leader (NOT_LEADER elsewhere).
func nextOffset(ctx context.Context, c *cluster.Cluster, n *cluster.Node, st *stream) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.Client(n).Consume(cctx, &logv1.ConsumeRequest{Offset: 1 << 62, Consistency: logv1.Consistency_CONSISTENCY_LINEARIZABLE, Topic: st.topic, Partition: st.partition})
	st2, _ := status.FromError(err)
	for _, d := range st2.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			var next uint64
			if _, serr := fmt.Sscan(info.Metadata["next"], &next); serr == nil {
				return next, nil
			}
		}
	}
	return 0, fmt.Errorf("faulttest: end of %s on %s: %v", st, n.Name, err)
}

// waitHas waits until n holds the record at offset of st's partition (a
// follower read). A node still opening its replica (a restarted one)
// answers UNAVAILABLE: it is asked again until timeout.
func waitHas(ctx context.Context, c *cluster.Cluster, n *cluster.Node, st *stream, offset uint64, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		var stream grpc.ServerStreamingClient[logv1.ConsumeResponse]
		stream, err = c.Client(n).ConsumeStream(cctx, &logv1.ConsumeRequest{Offset: offset, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER, Topic: st.topic, Partition: st.partition}, grpc.WaitForReady(true))
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unavailable || sleepCtx(cctx, 100*time.Millisecond) != nil { // let it open the replica
			break
		}
	}
	if err != nil {
		return fmt.Errorf("faulttest: %s did not catch up to offset %d of %s within %v: %w", n.Name, offset, st, timeout, err)
	}
	return nil
}

// restartAll brings every member back and waits until the cluster lists
// them.
func restartAll(ctx context.Context, c *cluster.Cluster) error {
	var errs []error
	for _, n := range c.Members() {
		if !n.Running() {
			errs = append(errs, n.Restart())
		} else if n.Paused() {
			errs = append(errs, n.Resume())
		}
	}
	if err := c.WaitMembers(ctx, c.Members(), 60*time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// collectFinals acknowledges one last record in st's partition (nothing
// sent before it can come after it) and reads every replica's log up to
// the end of the committed log, which the leader reports linearizably
// after that acknowledgement.
func collectFinals(ctx context.Context, c *cluster.Cluster, st *stream, logf func(string, ...any)) ([]history.Final, error) {
	if err := finalRecord(ctx, c, st); err != nil {
		return nil, err
	}
	// Read up to where the committed log ends, not up to the final
	// record's acknowledged offset: a broken build (the negative control)
	// acknowledges offsets its log never reaches.
	count, err := committedEnd(ctx, c, st, 60*time.Second)
	if err != nil {
		return nil, err
	}
	replicas, err := c.Replicas(ctx, st.topic, st.partition)
	if err != nil {
		return nil, err
	}
	var (
		mu     sync.Mutex
		finals []history.Final
		errs   []error
		wg     sync.WaitGroup
	)
	for _, n := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals, err := readLog(ctx, c, n, st, count)
			mu.Lock()
			defer mu.Unlock()
			finals = append(finals, history.Final{Node: n.Name, Values: vals})
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	logf("final log of %s: %d records on each of %d replicas", st, count, len(finals))
	return finals, errors.Join(errs...)
}

// finalProcess is the history process id of the final record's producer.
const finalProcess = 1 << 20

// finalRecord produces one record in st's partition, at each replica in
// turn (only the leader takes it), retrying with new values until one is
// acknowledged, and records every attempt.
func finalRecord(ctx context.Context, c *cluster.Cluster, st *stream) error {
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		replicas, err := c.Replicas(ctx, st.topic, st.partition)
		if err != nil || len(replicas) == 0 {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		n := replicas[attempt%len(replicas)]
		op := history.Op{Process: finalProcess, Node: n.Name, Kind: history.Append, Values: []string{fmt.Sprintf("final-%d", attempt)}}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		op.Call = time.Now()
		resp, err := c.Client(n).Produce(cctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(op.Values[0])}, Topic: st.topic, Partition: st.partition})
		op.Return = time.Now()
		cancel()
		if err == nil {
			op.Outcome, op.Offset = history.OK, resp.Offset
			st.rec.Add(op)
			return nil
		}
		op.Outcome, op.Err = history.Unknown, err.Error()
		st.rec.Add(op)
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil { // let an election finish
			return err
		}
	}
	return fmt.Errorf("faulttest: no final record of %s acknowledged within 60s", st)
}

// committedEnd asks the replicas of st's partition, linearizably, where
// it ends, until its leader answers or timeout passes.
func committedEnd(ctx context.Context, c *cluster.Cluster, st *stream, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		replicas, err := c.Replicas(ctx, st.topic, st.partition)
		for _, n := range replicas {
			var next uint64
			if next, err = nextOffset(ctx, c, n, st); err == nil {
				return next, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("faulttest: no leader of %s answered within %v: %v", st, timeout, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil { // let an election finish
			return 0, err
		}
	}
}

// readLog reads offsets [0, count) of n's replica of st's partition.
func readLog(ctx context.Context, c *cluster.Cluster, n *cluster.Node, st *stream, count uint64) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	stream, err := c.Client(n).ConsumeStream(cctx, &logv1.ConsumeRequest{Offset: 0, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER, Topic: st.topic, Partition: st.partition}, grpc.WaitForReady(true))
	vals := make([]string, 0, count)
	for err == nil && uint64(len(vals)) < count {
		var resp *logv1.ConsumeResponse
		if resp, err = stream.Recv(); err == nil {
			if resp.Record.Offset != uint64(len(vals)) {
				return vals, fmt.Errorf("faulttest: %s sent offset %d of %s where %d was due", n.Name, resp.Record.Offset, st, len(vals))
			}
			vals = append(vals, string(resp.Record.Value))
		}
	}
	if err != nil {
		return vals, fmt.Errorf("faulttest: read %s's log of %s: %d of %d records: %w", n.Name, st, len(vals), count, err)
	}
	return vals, nil
}

// firstAckAfter is how long after t the first produce sent at or after t
// was acknowledged, or -1.
func firstAckAfter(ops []history.Op, t time.Time) time.Duration {
	if t.IsZero() {
		return -1
	}
	best := time.Duration(-1)
	for _, op := range ops {
		if op.Kind == history.Append && op.Outcome == history.OK && !op.Call.Before(t) {
			if d := op.Return.Sub(t); best < 0 || d < best {
				best = d
			}
		}
	}
	return best
}

// lowDiskRefused counts the produces sent in [from, until) (until zero:
// no end) refused because the node's disk was full.
func lowDiskRefused(ops []history.Op, from, until time.Time) int {
	n := 0
	for _, op := range ops {
		if op.Kind == history.Append && op.Outcome == history.Failed && strings.Contains(op.Err, "code = ResourceExhausted") &&
			!op.Call.Before(from) && (until.IsZero() || op.Call.Before(until)) {
			n++
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// leaderWatch samples who leads every 100 ms.
type leaderWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seq    []string
}

func watchLeaders(ctx context.Context, c *cluster.Cluster) *leaderWatch {
	ctx, cancel := context.WithCancel(ctx)
	lw := &leaderWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := c.Leader(ctx, 0); err == nil {
				lw.mu.Lock()
				if len(lw.seq) == 0 || lw.seq[len(lw.seq)-1] != n.Name {
					lw.seq = append(lw.seq, n.Name)
				}
				lw.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return lw
}

func (lw *leaderWatch) stop() {
	lw.cancel()
	<-lw.done
}

// result returns the sequence of leaders seen and the number of changes.
func (lw *leaderWatch) result() ([]string, int) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return append([]string(nil), lw.seq...), max(len(lw.seq)-1, 0)
}

// mkRunDir creates a fresh run directory under parent.
func mkRunDir(parent, name string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, strings.NewReplacer(" ", "-", ",", "").Replace(name)+"-")
}

// writeHistory saves the operations and consumer sessions of a run as JSON
// lines, for looking into a failure after the fact.
func writeHistory(path string, ops []history.Op, sessions []history.Session) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	for _, s := range sessions {
		if err := enc.Encode(s); err != nil {
			f.Close()
			return err
		}
	}
	return errors.Join(bw.Flush(), f.Close())
}
