package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Defaults and bounds of the consumer options.
const (
	// DefaultAutoCommitInterval is how often a Consumer commits its
	// positions on its own (WithAutoCommit).
	DefaultAutoCommitInterval = 5 * time.Second
	// DefaultConsumerBuffer is how many records a Consumer reads ahead of
	// the application, all partitions together (WithConsumerBuffer).
	DefaultConsumerBuffer = 256
	// MinSessionTimeout and MaxSessionTimeout bound WithSessionTimeout
	// (the servers' bounds, log.proto).
	MinSessionTimeout = time.Second
	MaxSessionTimeout = 5 * time.Minute
	// MaxClientIDLen is the longest WithClientID the servers accept.
	MaxClientIDLen = 255
	// defaultSessionTimeout is the servers' default (log.proto), used to
	// bound the consumer's own calls when it names none.
	defaultSessionTimeout = 10 * time.Second
	// minHeartbeatAttempt bounds a heartbeat attempt from below when the
	// heartbeat interval is shorter (a test's), so that a loaded machine
	// does not time out answers on their way.
	minHeartbeatAttempt = 100 * time.Millisecond
	// maxCommitOffsets is the most positions of one CommitOffsets
	// (log.proto); more are committed in several.
	maxCommitOffsets = 4096
)

// StartOffset is where a Consumer starts reading a partition the group
// has committed nothing for.
type StartOffset int

const (
	// StartEarliest starts at the partition's oldest retained record.
	StartEarliest StartOffset = iota
	// StartLatest starts at the partition's end: only records produced
	// after the consumer started reading it.
	StartLatest
)

// A ConsumerOption configures Client.Consumer.
type ConsumerOption func(*consumerConfig)

type consumerConfig struct {
	sessionTimeout time.Duration // 0: the servers' default
	autoCommit     time.Duration // 0: manual
	start          StartOffset
	clientID       string
	buffer         int
	stopAtEnd      bool
	err            error
}

func defaultConsumerConfig() consumerConfig {
	return consumerConfig{autoCommit: DefaultAutoCommitInterval, buffer: DefaultConsumerBuffer}
}

func (cfg *consumerConfig) fail(err error) {
	if cfg.err == nil {
		cfg.err = err
	}
}

// WithSessionTimeout sets the member's session timeout: the group removes
// it when no heartbeat arrives for this long, and hands its partitions to
// the others (0, the default: the servers' default, 10 s; otherwise
// MinSessionTimeout to MaxSessionTimeout). The consumer heartbeats as
// often as the servers say (a third of it).
func WithSessionTimeout(d time.Duration) ConsumerOption {
	return func(cfg *consumerConfig) {
		if d != 0 && (d < MinSessionTimeout || d > MaxSessionTimeout) {
			cfg.fail(fmt.Errorf("%w: WithSessionTimeout(%v): must be 0 or between %v and %v", ErrInvalidGroup, d, MinSessionTimeout, MaxSessionTimeout))
			return
		}
		cfg.sessionTimeout = d
	}
}

// WithAutoCommit sets how often the consumer commits the positions of the
// records the application has processed (default
// DefaultAutoCommitInterval); 0 turns automatic commits off: the
// application calls Commit.
func WithAutoCommit(d time.Duration) ConsumerOption {
	return func(cfg *consumerConfig) {
		if d < 0 {
			cfg.fail(fmt.Errorf("%w: WithAutoCommit(%v): must not be negative", ErrInvalidGroup, d))
			return
		}
		cfg.autoCommit = d
	}
}

// WithStartOffset chooses where a partition the group has committed
// nothing for is read from (default StartEarliest). It also applies when
// the committed offset is below the partition's oldest retained record.
func WithStartOffset(s StartOffset) ConsumerOption {
	return func(cfg *consumerConfig) {
		if s != StartEarliest && s != StartLatest {
			cfg.fail(fmt.Errorf("%w: WithStartOffset(%d): unknown start offset", ErrInvalidGroup, int(s)))
			return
		}
		cfg.start = s
	}
}

// WithClientID sets the free text DescribeGroup shows for the member, e.g.
// host/pid (at most MaxClientIDLen bytes).
func WithClientID(id string) ConsumerOption {
	return func(cfg *consumerConfig) {
		if len(id) > MaxClientIDLen {
			cfg.fail(fmt.Errorf("%w: WithClientID: %d bytes, at most %d", ErrInvalidGroup, len(id), MaxClientIDLen))
			return
		}
		cfg.clientID = id
	}
}

// WithConsumerBuffer bounds the records the consumer reads ahead of the
// application, all partitions together (default DefaultConsumerBuffer):
// once that many wait, the partitions' streams wait for Next, so a slow
// application holds at most this many records (plus one per partition
// in the hands of its stream).
func WithConsumerBuffer(n int) ConsumerOption {
	return func(cfg *consumerConfig) {
		if n < 1 {
			cfg.fail(fmt.Errorf("%w: WithConsumerBuffer(%d): must be positive", ErrInvalidGroup, n))
			return
		}
		cfg.buffer = n
	}
}

// WithStopAtEnd makes Next return io.EOF, instead of waiting, once every
// partition the consumer owns has been read up to the end it had when the
// consumer started reading it (a partition assigned later is read to its
// end then, so a later Next may return records again).
func WithStopAtEnd() ConsumerOption {
	return func(cfg *consumerConfig) { cfg.stopAtEnd = true }
}

// Message is a record a Consumer hands to the application, with where it
// was read.
type Message struct {
	Topic     string
	Partition uint32
	Offset    uint64
	Record    *Record
}

// Consumer is a member of a consumer group: the group shares the
// partitions of the topics its members subscribe to among them and keeps
// each partition's committed offset, so that a partition is read by one
// member at a time and from where the group stopped. Next returns the
// records of the partitions this member owns; the consumer heartbeats,
// commits and hands partitions over in the background.
//
// Positions. A partition's position is the offset after the last record
// Next returned of it. A record counts as processed once the application
// calls Next again (or Commit, or Close) after it: the automatic commit
// (WithAutoCommit) commits the positions of processed records, so a
// record in the application's hands is not committed until it asks for
// the next one, as Kafka's consumer commits what earlier polls returned.
// Commit and Close commit every position. The committed offset of a
// partition is thus the offset of the next record the group has to
// process.
//
// Delivery is at least once: a record is re-delivered, to this member or
// another, when it was returned but its position not committed before
// this member lost the partition without handing it over — its process
// ended or stalled past the session timeout (the group then removes the
// member), or its commits failed. A member the group removed learns it
// from its next heartbeat or commit (ErrUnknownMember): it drops its
// partitions and the records read ahead of them, and joins again as a new
// member, reading whatever the group then assigns it from the committed
// offsets. A hand-over neither skips nor repeats records: when a
// heartbeat's answer no longer lists a partition the consumer reads, it
// stops reading it, drops the records of it not yet returned, waits until
// the application is not holding one of its records (its next call of
// Next, Commit or Close), commits its position, and only then heartbeats
// with the new generation, which lets the group give it to another member.
//
// A Consumer is safe for concurrent use, but records are handed out one
// Next at a time; call Close when done.
type Consumer struct {
	c      *Client
	group  string
	topics []string
	cfg    consumerConfig

	// recs carries records read ahead, from every partition's reader.
	recs chan delivery
	// calls serialises the member's calls (join, heartbeat, commit,
	// leave): each names the generation the ones before it learned.
	calls sync.Mutex
	// ctx is the readers' and the loop's; Close and a failure cancel it.
	ctx      context.Context
	cancel   context.CancelFunc
	loopDone chan struct{}
	readers  sync.WaitGroup
	// wake asks the loop to heartbeat now; released tells it that the
	// application released a record a hand-over waits for.
	wake, released chan struct{}

	mu         sync.Mutex
	memberID   string // empty: not a member (joining)
	generation uint64 // the newest generation learned
	following  uint64 // the generation whose assignment the member follows (heartbeats name it)
	handing    bool   // partitions of generation are being handed over
	interval   time.Duration
	parts      map[TopicPartition]*partState
	holding    *partState // the partition of the record the application holds
	awaiting   bool       // a hand-over waits for holding to be released
	failed     error
	closing    bool
	// changed is closed and replaced when Next may have something new to
	// say (records, the end, a failure, Close).
	changed chan struct{}
}

// partState is one partition the consumer reads or is handing over.
type partState struct {
	key     TopicPartition
	cancel  context.CancelFunc
	exited  chan struct{}
	revoked bool // not in the assignment any more: being handed over
	ready   bool // the reader knows where it starts: position is set
	// position is the offset after the last record Next returned of it
	// (where the reader started, until then); processed is position as of
	// the application's last call after that record.
	position, processed uint64
	committed           uint64
	hasCommitted        bool
	end                 uint64 // WithStopAtEnd: the end to read to (math.MaxUint64 until known)
}

// delivery is a record read ahead, or (rec nil) a jump of the partition's
// position to skip: records removed by retention before they were read.
type delivery struct {
	ps   *partState
	rec  *Record
	skip uint64
}

// Consumer joins group as a new member subscribed to topics and returns
// once it is a member: the partitions the group assigns it are read in
// the background from the group's committed offsets (see Consumer). The
// join goes to the cluster's metadata leader, following NOT_LEADER
// answers, and is retried like the client's other calls within ctx. A
// topic that does not exist fails with ErrUnknownTopic, a group name the
// servers refuse with ErrInvalidGroup.
func (c *Client) Consumer(ctx context.Context, group string, topics []string, opts ...ConsumerOption) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if group == "" {
		return nil, fmt.Errorf("%w: Consumer: empty group name", ErrInvalidGroup)
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("%w: Consumer of group %q: no topics", ErrInvalidGroup, group)
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	cctx, cancel := context.WithCancel(context.Background())
	cons := &Consumer{
		c: c, group: group, topics: slices.Clone(topics), cfg: cfg,
		recs: make(chan delivery, cfg.buffer), ctx: cctx, cancel: cancel, loopDone: make(chan struct{}),
		wake: make(chan struct{}, 1), released: make(chan struct{}, 1),
		parts: map[TopicPartition]*partState{}, changed: make(chan struct{}),
	}
	cons.calls.Lock()
	err := cons.join(ctx)
	cons.calls.Unlock()
	if err != nil {
		cancel()
		cons.readers.Wait()
		return nil, err
	}
	go cons.loop()
	return cons, nil
}

// MemberID returns the member's id in the group (a new one after the
// consumer joined again).
func (c *Consumer) MemberID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberID
}

// Assignment returns the partitions the consumer reads now, by topic and
// partition.
func (c *Consumer) Assignment() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []TopicPartition
	for k, ps := range c.parts {
		if !ps.revoked {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, TopicPartition.compare)
	return out
}

// Next returns the next record of the partitions the consumer owns,
// waiting for one until ctx ends. Calling it marks the record it returned
// before as processed (see Consumer). Records of one partition come in
// offset order; partitions are interleaved. With WithStopAtEnd it returns
// io.EOF once every owned partition was read to its end. After a failure
// the consumer cannot recover from (the Client closed, a permission
// refused, ...) Next returns it; after Close, ErrClosed.
func (c *Consumer) Next(ctx context.Context) (Message, error) {
	c.mu.Lock()
	c.releaseLocked()
	c.mu.Unlock()
	for {
		c.mu.Lock()
		switch {
		case c.failed != nil:
			err := c.failed
			c.mu.Unlock()
			return Message{}, err
		case c.closing:
			c.mu.Unlock()
			return Message{}, ErrClosed
		case c.cfg.stopAtEnd && c.atEndLocked():
			c.mu.Unlock()
			return Message{}, io.EOF
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case d := <-c.recs:
			c.mu.Lock()
			ps := d.ps
			switch {
			case ps.revoked || c.parts[ps.key] != ps:
				c.mu.Unlock() // read ahead of a partition handed over or dropped
				continue
			case d.rec == nil:
				if ps.position < d.skip {
					ps.position = d.skip
					if c.holding != ps {
						ps.processed = d.skip
					}
				}
				c.mu.Unlock()
				continue
			case d.rec.Offset < ps.position:
				c.mu.Unlock()
				continue
			}
			ps.position = d.rec.Offset + 1
			c.holding = ps
			c.mu.Unlock()
			return Message{Topic: ps.key.Topic, Partition: ps.key.Partition, Offset: d.rec.Offset, Record: d.rec}, nil
		case <-changed:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// atEndLocked reports whether every owned partition was read to its end
// and every record of them returned. c.mu is held.
func (c *Consumer) atEndLocked() bool {
	if c.memberID == "" {
		return false
	}
	for _, ps := range c.parts {
		if !ps.revoked && (!ps.ready || ps.position < ps.end) {
			return false
		}
	}
	return true
}

// releaseLocked marks the record the application holds as processed.
// c.mu is held.
func (c *Consumer) releaseLocked() {
	h := c.holding
	if h == nil {
		return
	}
	h.processed, c.holding = h.position, nil
	if c.awaiting {
		c.awaiting = false
		signal(c.released)
	}
}

// changedLocked wakes Next. c.mu is held.
func (c *Consumer) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Commit commits the position of every partition the consumer owns: the
// offset after the last record Next returned of it (every record returned
// counts as processed). Nothing is sent when nothing changed since the
// last commit. A commit the group refuses because the assignment changed
// (ErrNotOwner, ErrStaleGeneration) is followed by a heartbeat and
// retried once for the partitions still owned; ErrUnknownMember means the
// member was removed: its positions are lost (their records will be
// re-delivered) and it joins again.
func (c *Consumer) Commit(ctx context.Context) error {
	c.mu.Lock()
	c.releaseLocked()
	closing, failed := c.closing, c.failed
	c.mu.Unlock()
	switch {
	case failed != nil:
		return failed
	case closing:
		return ErrClosed
	}
	c.calls.Lock()
	defer c.calls.Unlock()
	if c.ctx.Err() != nil {
		return ErrClosed // closed or failed meanwhile
	}
	err := c.commitLocked(ctx, func(ps *partState) bool { return !ps.revoked })
	if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrStaleGeneration) {
		if herr := c.heartbeatLocked(ctx); herr != nil {
			return errors.Join(err, herr)
		}
		err = c.commitLocked(ctx, func(ps *partState) bool { return !ps.revoked })
	}
	if errors.Is(err, ErrUnknownMember) {
		signal(c.wake)
	}
	return err
}

// Close stops reading, commits the position of every partition the
// consumer owns (as Commit does) and leaves the group, so that its
// partitions go to the other members at once. It returns once the
// consumer's goroutines have ended, with the commit's or the leave's
// failure, if any (the member then stays in the group until its session
// times out). Later calls return ErrClosed.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closing = true
	c.releaseLocked()
	c.changedLocked()
	c.mu.Unlock()
	c.cancel()
	<-c.loopDone
	// No reader starts once c.calls is held (only member calls start them).
	c.calls.Lock()
	defer c.calls.Unlock()
	c.stopReaders(func(*partState) bool { return true })
	c.readers.Wait()
	c.mu.Lock()
	member, failed := c.memberID, c.failed
	c.mu.Unlock()
	if member == "" {
		return failed
	}
	err := c.commitLocked(ctx, func(*partState) bool { return true })
	lerr := c.c.admin(ctx, func(ctx context.Context) error {
		_, err := c.c.log.LeaveGroup(ctx, &logv1.LeaveGroupRequest{Group: c.group, MemberId: member})
		return err
	})
	return errors.Join(err, lerr)
}

// join joins the group as a new member. c.calls is held.
func (c *Consumer) join(ctx context.Context) error {
	req := &logv1.JoinGroupRequest{Group: c.group, Topics: c.topics, ClientId: c.cfg.clientID}
	if c.cfg.sessionTimeout > 0 {
		req.SessionTimeout = durationpb.New(c.cfg.sessionTimeout)
	}
	var a *logv1.Assignment
	err := c.c.admin(ctx, func(ctx context.Context) error {
		resp, err := c.c.log.JoinGroup(ctx, req)
		a = resp.GetAssignment()
		return err
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.memberID, c.following, c.handing = a.GetMemberId(), a.GetGeneration(), false
	c.applyLocked(a)
	return nil
}

// heartbeatLocked heartbeats, naming the generation the member follows,
// and applies the answer. c.calls is held. Each attempt is bounded by the
// heartbeat interval (at least minHeartbeatAttempt), so that a metadata leader that stopped answering
// costs one interval, after which the heartbeat goes to another server
// (which names the current leader) well within the session.
func (c *Consumer) heartbeatLocked(ctx context.Context) error {
	c.mu.Lock()
	req := &logv1.HeartbeatRequest{Group: c.group, MemberId: c.memberID, Generation: c.following}
	each := max(c.interval, minHeartbeatAttempt)
	c.mu.Unlock()
	var a *logv1.Assignment
	err := c.c.adminEach(ctx, each, func(ctx context.Context) error {
		resp, err := c.c.log.Heartbeat(ctx, req)
		a = resp.GetAssignment()
		if err != nil {
			c.c.cfg.logger.Debug("proglog: heartbeat failed", "group", c.group, "member", req.MemberId, "error", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.memberID == req.MemberId {
		c.applyLocked(a)
	}
	return nil
}

// applyLocked follows an assignment: partitions no longer listed are
// stopped and handed over (by the loop: handOver), those newly listed are
// read from their committed offsets. A partition being handed over is
// started again only after the hand-over, from the answer to the
// heartbeat that completes it. c.mu is held.
func (c *Consumer) applyLocked(a *logv1.Assignment) {
	c.generation = a.GetGeneration()
	c.interval = a.GetHeartbeatInterval().AsDuration()
	if c.interval <= 0 {
		c.interval = c.sessionTimeout() / 3
	}
	owned := map[TopicPartition]*logv1.PartitionOffset{}
	for _, po := range a.GetPartitions() {
		owned[TopicPartition{po.GetTopic(), po.GetPartition()}] = po
	}
	for k, ps := range c.parts {
		if _, ok := owned[k]; !ok && !ps.revoked {
			ps.revoked = true
			ps.cancel()
			c.handing = true
		}
	}
	if c.handing {
		signal(c.wake)
	} else {
		c.following = c.generation
	}
	for k, po := range owned {
		if _, ok := c.parts[k]; ok || c.ctx.Err() != nil {
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		ps := &partState{key: k, cancel: cancel, exited: make(chan struct{}), end: math.MaxUint64,
			committed: po.GetOffset(), hasCommitted: po.GetCommitted()}
		c.parts[k] = ps
		c.readers.Add(1)
		go c.read(ctx, ps, po.GetOffset(), po.GetCommitted())
	}
	c.changedLocked()
}

func (c *Consumer) sessionTimeout() time.Duration {
	if c.cfg.sessionTimeout > 0 {
		return c.cfg.sessionTimeout
	}
	return defaultSessionTimeout
}

// commitLocked commits the processed position of the partitions which
// selects, when it changed. c.calls is held.
func (c *Consumer) commitLocked(ctx context.Context, which func(*partState) bool) error {
	c.mu.Lock()
	member, gen := c.memberID, c.generation
	var pss []*partState
	var pos []uint64
	for _, ps := range c.parts {
		if ps.ready && which(ps) && (!ps.hasCommitted || ps.committed != ps.processed) {
			pss = append(pss, ps)
			pos = append(pos, ps.processed)
		}
	}
	c.mu.Unlock()
	if member == "" {
		return nil
	}
	for len(pss) > 0 {
		n := min(len(pss), maxCommitOffsets)
		req := &logv1.CommitOffsetsRequest{Group: c.group, MemberId: member, Generation: gen}
		for i, ps := range pss[:n] {
			req.Offsets = append(req.Offsets, &logv1.PartitionOffset{Topic: ps.key.Topic, Partition: ps.key.Partition, Offset: pos[i]})
		}
		err := c.c.admin(ctx, func(ctx context.Context) error {
			_, err := c.c.log.CommitOffsets(ctx, req)
			return err
		})
		if err != nil {
			return fmt.Errorf("commit to group %s: %w", c.group, err)
		}
		c.mu.Lock()
		for i, ps := range pss[:n] {
			ps.committed, ps.hasCommitted = pos[i], true
		}
		c.mu.Unlock()
		pss, pos = pss[n:], pos[n:]
	}
	return nil
}

// loop heartbeats, commits automatically, hands partitions over and joins
// again after the member was removed, until Close or a failure.
func (c *Consumer) loop() {
	defer close(c.loopDone)
	c.mu.Lock()
	hb := time.NewTimer(c.interval)
	c.mu.Unlock()
	defer hb.Stop()
	var commits <-chan time.Time
	if c.cfg.autoCommit > 0 {
		t := time.NewTicker(c.cfg.autoCommit)
		defer t.Stop()
		commits = t.C
	}
	retries := 0
	for {
		beat, commit := false, false
		select {
		case <-c.ctx.Done():
			return
		case <-hb.C:
			beat = true
		case <-c.wake:
			beat = true
		case <-c.released:
		case <-commits:
			commit = true
		}
		err := c.step(beat, commit)
		switch {
		case err == nil:
			retries = 0
		case c.ctx.Err() != nil:
			return
		case !retriable(err):
			c.fail(err)
			return
		default:
			retries++
			c.c.cfg.logger.Warn("proglog: consumer group call failed; retrying", "group", c.group, "attempt", retries, "error", err)
			if c.c.pause(c.ctx, retries, nil) != nil {
				return
			}
			signal(c.wake)
		}
		if beat {
			c.mu.Lock()
			hb.Reset(c.interval)
			c.mu.Unlock()
		}
	}
}

// step does what the loop woke for: join when not a member, complete a
// hand-over that can be, commit, heartbeat.
func (c *Consumer) step(beat, commit bool) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.sessionTimeout())
	defer cancel()
	c.calls.Lock()
	defer c.calls.Unlock()
	c.mu.Lock()
	member := c.memberID
	c.mu.Unlock()
	if member == "" {
		return c.join(ctx)
	}
	handed, err := c.handOverLocked(ctx)
	beat = beat && !handed
	if err == nil && commit {
		err = c.commitLocked(ctx, func(ps *partState) bool { return !ps.revoked })
		if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrStaleGeneration) {
			c.c.cfg.logger.Debug("proglog: commit refused; heartbeating", "group", c.group, "error", err)
			err, beat = nil, true
		}
	}
	if err == nil && beat {
		err = c.heartbeatLocked(ctx)
	}
	if errors.Is(err, ErrUnknownMember) || errors.Is(err, ErrStaleGeneration) {
		// Removed from the group (or out of step with it): drop
		// everything and join again as a new member.
		c.c.cfg.logger.Info("proglog: consumer removed from its group; joining again", "group", c.group, "member", member, "error", err)
		c.rejoinLocked()
		return c.join(ctx)
	}
	return err
}

// handOverLocked completes a hand-over once its partitions' readers have
// ended and the application holds none of their records: it commits their
// positions, drops them and heartbeats with the new generation, which it
// reports. c.calls is held.
func (c *Consumer) handOverLocked(ctx context.Context) (bool, error) {
	c.mu.Lock()
	if !c.handing {
		c.mu.Unlock()
		return false, nil
	}
	if h := c.holding; h != nil && h.revoked {
		c.awaiting = true
		c.mu.Unlock()
		return false, nil
	}
	var exits []chan struct{}
	for _, ps := range c.parts {
		if ps.revoked {
			exits = append(exits, ps.exited)
		}
	}
	c.mu.Unlock()
	for _, ch := range exits {
		<-ch // cancelled: ends at once
	}
	// A partition the member no longer owns (its topic deleted) is left
	// out of the commit, which is all or nothing, and the rest committed.
	for {
		err := c.commitLocked(ctx, func(ps *partState) bool { return ps.revoked })
		tp, ok := notOwned(err)
		if !ok && err != nil {
			return false, err
		}
		c.mu.Lock()
		ps := c.parts[tp]
		if ok && ps != nil && ps.ready {
			ps.ready = false // nothing to commit
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		break
	}
	c.mu.Lock()
	for k, ps := range c.parts {
		if ps.revoked {
			delete(c.parts, k)
		}
	}
	c.handing, c.following = false, c.generation
	c.mu.Unlock()
	return true, c.heartbeatLocked(ctx)
}

// notOwned returns the partition a NOT_OWNER refusal names.
func notOwned(err error) (TopicPartition, bool) {
	var e *Error
	if !errors.As(err, &e) || e.kind != ErrNotOwner {
		return TopicPartition{}, false
	}
	md := errorInfo(e.st).GetMetadata()
	return TopicPartition{Topic: md["topic"], Partition: uint32(parseUint(md["partition"]))}, true
}

// rejoinLocked forgets the membership and every partition (their readers
// stopped, their records read ahead dropped). c.calls is held.
func (c *Consumer) rejoinLocked() {
	c.stopReaders(func(*partState) bool { return true })
	c.mu.Lock()
	c.parts = map[TopicPartition]*partState{}
	c.memberID, c.handing, c.holding, c.awaiting = "", false, nil, false
	c.changedLocked()
	c.mu.Unlock()
}

// stopReaders stops the readers of the partitions which selects and waits
// for them to end.
func (c *Consumer) stopReaders(which func(*partState) bool) {
	c.mu.Lock()
	var exits []chan struct{}
	for _, ps := range c.parts {
		if which(ps) {
			ps.revoked = true
			ps.cancel()
			exits = append(exits, ps.exited)
		}
	}
	c.mu.Unlock()
	for _, ch := range exits {
		<-ch
	}
}

// fail ends the consumer with err (Next returns it); the loop and the
// readers stop.
func (c *Consumer) fail(err error) {
	c.mu.Lock()
	if c.failed == nil && !c.closing {
		c.failed = fmt.Errorf("consumer of group %s: %w", c.group, err)
		c.changedLocked()
	}
	c.mu.Unlock()
	c.cancel()
}

// retriable reports whether a failed group call may succeed later: the
// cluster unavailable, or the call out of time.
func retriable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotLeader) || errors.Is(err, context.DeadlineExceeded)
}

// read reads partition ps from from (the committed offset, when
// committed; otherwise where WithStartOffset says) into c.recs until ctx
// ends, the topic is gone, or (WithStopAtEnd) the partition's end.
func (c *Consumer) read(ctx context.Context, ps *partState, from uint64, committed bool) {
	defer c.readers.Done()
	defer close(ps.exited)
	p := c.c.Topic(ps.key.Topic).Partition(ps.key.Partition)
	end := uint64(math.MaxUint64)
	if !committed || c.cfg.stopAtEnd {
		b, err := p.Bounds(ctx)
		if err != nil {
			c.readFailed(ctx, ps, err)
			return
		}
		if !committed {
			from = c.startOf(b)
		}
		if c.cfg.stopAtEnd {
			end = b.Next
		}
	}
	c.mu.Lock()
	ps.ready, ps.position, ps.processed, ps.end = true, from, from, end
	c.changedLocked()
	c.mu.Unlock()
	for n := 1; from < end; n++ {
		var err error
		for rec, rerr := range p.Records(ctx, from) {
			if err = rerr; err != nil {
				break
			}
			select {
			case c.recs <- delivery{ps: ps, rec: rec}:
			case <-ctx.Done():
				return
			}
			from = rec.Offset + 1
			if from >= end {
				return
			}
		}
		var oor *OffsetOutOfRangeError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &oor) && oor.Offset < oor.Lowest:
			// Retention removed records the group had not processed.
			next := c.startOf(Bounds{Lowest: oor.Lowest, Next: oor.Next})
			c.c.cfg.logger.Warn("proglog: consumer position below the partition's oldest record; skipping ahead",
				"group", c.group, "topic", ps.key.Topic, "partition", ps.key.Partition, "offset", from, "to", next)
			select {
			case c.recs <- delivery{ps: ps, skip: next}:
			case <-ctx.Done():
				return
			}
			from = next
		case errors.Is(err, ErrUnavailable):
			if c.c.pause(ctx, n, nil) != nil {
				return
			}
		default:
			c.readFailed(ctx, ps, err)
			return
		}
	}
}

// startOf is where a partition of bounds b is read from without a usable
// committed offset.
func (c *Consumer) startOf(b Bounds) uint64 {
	if c.cfg.start == StartLatest {
		return b.Next
	}
	return b.Lowest
}

// readFailed handles the failure that ended a reader: a topic or
// partition gone is dropped quietly (the group's next generation drops it
// too), anything else ends the consumer.
func (c *Consumer) readFailed(ctx context.Context, ps *partState, err error) {
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrUnknownPartition):
		c.c.cfg.logger.Info("proglog: consumer partition gone", "group", c.group, "topic", ps.key.Topic, "partition", ps.key.Partition)
	default:
		c.fail(fmt.Errorf("read %s/%d: %w", ps.key.Topic, ps.key.Partition, err))
	}
}
