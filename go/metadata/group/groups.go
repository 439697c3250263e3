package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

// maxCommitBatch bounds the commits of one OpCommitOffsets entry.
const maxCommitBatch = 1024

// Coordinator coordinates the consumer groups (commitlog.Groups) on the
// metadata leader: see "Consumer groups" in the package documentation.
// Group.Groups returns it.
type Coordinator struct {
	g *Group

	// mu guards the sessions: the deadline of every member's session on
	// this leader, valid in Raft term sessionsTerm only.
	mu           sync.Mutex
	sessions     map[sessionKey]time.Time
	sessionsTerm uint64
	// readyTerm is the term in which a barrier applied every entry of the
	// earlier terms, so that this leader's state is the group's.
	readyTerm atomic.Uint64

	commits chan *commitCall
	// proposals and committed count the commit entries and the commits
	// they carried (the benchmark's entries per commit).
	proposals, committed atomic.Uint64
}

type sessionKey struct{ group, member string }

// commitCall is one CommitOffsets waiting for its entry.
type commitCall struct {
	c    metadata.GroupCommit
	size int
	done chan error
}

var _ commitlog.Groups = (*Coordinator)(nil)

func newCoordinator(g *Group) *Coordinator {
	return &Coordinator{g: g, sessions: map[sessionKey]time.Time{}, commits: make(chan *commitCall, maxCommitBatch)}
}

// Groups returns the group's consumer-group coordinator.
func (g *Group) Groups() *Coordinator { return g.coord }

// start runs the session checks and the commit proposer until the Group
// closes.
func (c *Coordinator) start() {
	g := c.g
	g.wg.Add(2)
	go c.runCommits()
	go func() {
		defer g.wg.Done()
		tick := g.cfg.sessionTick
		if tick == nil {
			t := time.NewTicker(g.cfg.SessionCheckInterval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-g.done:
				return
			case <-tick:
				c.expire()
			}
		}
	}()
}

// leader returns nil if this node leads the group and has applied every
// entry of the earlier terms (a barrier, once per term), else the error.
func (c *Coordinator) leader() error {
	g := c.g
	if g.closed() {
		return ErrClosed
	}
	if !g.IsLeader() {
		return g.notLeader()
	}
	term := g.raft.CurrentTerm()
	if c.readyTerm.Load() == term {
		return nil
	}
	if err := g.raft.Barrier(g.cfg.ApplyTimeout).Error(); err != nil {
		return g.mapRaftErr(err)
	}
	c.readyTerm.Store(term)
	return nil
}

// sessionsLocked drops the sessions of an earlier term (c.mu held): a new
// leader starts every session afresh.
func (c *Coordinator) sessionsLocked() {
	if term := c.g.raft.CurrentTerm(); term != c.sessionsTerm {
		clear(c.sessions)
		c.sessionsTerm = term
	}
}

// touch starts or renews member's session.
func (c *Coordinator) touch(group, member string, timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessionsLocked()
	c.sessions[sessionKey{group, member}] = c.g.cfg.clock().Add(timeout)
}

// expire proposes the removal of every member whose session ended; a
// member this leader has no session of yet starts one now.
func (c *Coordinator) expire() {
	g := c.g
	if !g.IsLeader() {
		c.mu.Lock()
		clear(c.sessions)
		c.mu.Unlock()
		return
	}
	now := g.cfg.clock()
	expired := map[string][]string{}
	var order []string
	c.mu.Lock()
	c.sessionsLocked()
	seen := make(map[sessionKey]bool, len(c.sessions))
	g.fsm.View(func(s *metadata.State) {
		s.GroupSessions(func(group, member string, timeout time.Duration) {
			k := sessionKey{group, member}
			seen[k] = true
			deadline, ok := c.sessions[k]
			switch {
			case !ok:
				c.sessions[k] = now.Add(timeout)
			case !now.Before(deadline):
				if len(expired[group]) == 0 {
					order = append(order, group)
				}
				expired[group] = append(expired[group], member)
			}
		})
	})
	for k := range c.sessions {
		if !seen[k] {
			delete(c.sessions, k)
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ApplyTimeout)
	defer cancel()
	for _, group := range order {
		if _, err := g.propose(ctx, metadata.Command{Op: metadata.OpLeaveGroup, Group: group, Members: expired[group]}); err != nil {
			g.lg.Warn("removing expired group members failed; trying again", "group", group, "members", expired[group], "error", err)
			continue
		}
		g.lg.Info("group members' sessions expired", "group", group, "members", expired[group])
	}
}

// JoinGroup implements commitlog.Groups.
func (c *Coordinator) JoinGroup(ctx context.Context, req commitlog.JoinRequest) (commitlog.Assignment, error) {
	if err := validateMember(req.Group, req.MemberID, req.MemberID != ""); err != nil {
		return commitlog.Assignment{}, err
	}
	topics := slices.Compact(slices.Sorted(slices.Values(req.Topics)))
	if len(req.Topics) == 0 || len(req.Topics) > commitlog.MaxGroupTopics {
		return commitlog.Assignment{}, fmt.Errorf("%w: %d topics, want 1 to %d", commitlog.ErrInvalidGroup, len(req.Topics), commitlog.MaxGroupTopics)
	}
	for _, t := range topics {
		if err := commitlog.ValidateTopicName(t); err != nil {
			return commitlog.Assignment{}, fmt.Errorf("%w: topic: %w", commitlog.ErrInvalidGroup, err)
		}
	}
	timeout := req.SessionTimeout
	if timeout == 0 {
		timeout = commitlog.DefaultSessionTimeout
	}
	if timeout < commitlog.MinSessionTimeout || timeout > commitlog.MaxSessionTimeout {
		return commitlog.Assignment{}, fmt.Errorf("%w: session timeout %v, want %v to %v", commitlog.ErrInvalidGroup, timeout, commitlog.MinSessionTimeout, commitlog.MaxSessionTimeout)
	}
	if len(req.ClientID) > commitlog.MaxClientIDLen || !metadata.IsText(req.ClientID) {
		return commitlog.Assignment{}, fmt.Errorf("%w: client id must be at most %d bytes of UTF-8 without control characters", commitlog.ErrInvalidGroup, commitlog.MaxClientIDLen)
	}
	if err := c.leader(); err != nil {
		return commitlog.Assignment{}, err
	}
	id := req.MemberID
	if id != "" {
		unchanged := false
		c.g.fsm.View(func(s *metadata.State) {
			if g := s.Groups[req.Group]; g != nil {
				m := g.Members[id]
				unchanged = m != nil && slices.Equal(m.Topics, topics) && m.ClientID == req.ClientID && m.SessionTimeout == timeout
			}
		})
		if unchanged {
			c.touch(req.Group, id, timeout)
			return c.assignment(req.Group, id)
		}
	} else {
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		id = hex.EncodeToString(b[:])
	}
	_, err := c.g.propose(ctx, metadata.Command{Op: metadata.OpJoinGroup, Group: req.Group, Join: &metadata.GroupJoin{
		MemberID: id, ClientID: req.ClientID, Topics: topics, SessionTimeout: timeout,
		New: req.MemberID == "", MaxMembers: c.g.cfg.MaxGroupMembers, MaxGroups: c.g.cfg.MaxGroups,
	}})
	if err != nil {
		return commitlog.Assignment{}, err
	}
	c.touch(req.Group, id, timeout)
	return c.assignment(req.Group, id)
}

// Heartbeat implements commitlog.Groups.
func (c *Coordinator) Heartbeat(ctx context.Context, group, memberID string, generation uint64) (commitlog.Assignment, error) {
	if err := validateMember(group, memberID, true); err != nil {
		return commitlog.Assignment{}, err
	}
	if err := c.leader(); err != nil {
		return commitlog.Assignment{}, err
	}
	var m metadata.GroupMember
	var current uint64
	var err error
	c.g.fsm.View(func(s *metadata.State) {
		if g := s.Groups[group]; g != nil && g.Members[memberID] != nil {
			m, current = *g.Members[memberID], g.Generation
			return
		}
		err = fmt.Errorf("%w: group %q member %q", commitlog.ErrUnknownMember, group, memberID)
	})
	if err != nil {
		return commitlog.Assignment{}, err
	}
	if generation < m.Acked || generation > current {
		return commitlog.Assignment{}, &commitlog.StaleGenerationError{Group: group, MemberID: memberID, Generation: generation, Current: current}
	}
	c.touch(group, memberID, m.SessionTimeout)
	if generation > m.Acked {
		if _, err := c.g.propose(ctx, metadata.Command{Op: metadata.OpAckGroup, Group: group, MemberID: memberID, Generation: generation}); err != nil {
			return commitlog.Assignment{}, err
		}
	}
	return c.assignment(group, memberID)
}

// LeaveGroup implements commitlog.Groups.
func (c *Coordinator) LeaveGroup(ctx context.Context, group, memberID string) error {
	if err := validateMember(group, memberID, true); err != nil {
		return err
	}
	if err := c.leader(); err != nil {
		return err
	}
	if _, err := c.g.propose(ctx, metadata.Command{Op: metadata.OpLeaveGroup, Group: group, Members: []string{memberID}}); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.sessions, sessionKey{group, memberID})
	c.mu.Unlock()
	return nil
}

// CommitOffsets implements commitlog.Groups: a commit the leader's state
// refuses is refused at once; the others wait for the proposer, which
// puts the commits that arrived while the previous entry was in flight
// into one entry.
func (c *Coordinator) CommitOffsets(ctx context.Context, group, memberID string, generation uint64, offsets []commitlog.PartitionOffset) error {
	if err := validateMember(group, memberID, true); err != nil {
		return err
	}
	if len(offsets) == 0 || len(offsets) > commitlog.MaxCommitOffsets {
		return fmt.Errorf("%w: %d offsets, want 1 to %d", commitlog.ErrInvalidGroup, len(offsets), commitlog.MaxCommitOffsets)
	}
	call := &commitCall{c: metadata.GroupCommit{Group: group, MemberID: memberID, Generation: generation, Offsets: make([]metadata.GroupOffset, len(offsets))}, done: make(chan error, 1)}
	call.size = len(group) + len(memberID) + 64
	seen := make(map[commitlog.TopicPartition]bool, len(offsets))
	for i, o := range offsets {
		if err := commitlog.ValidateTopicName(o.Topic); err != nil || o.Partition < 0 {
			return fmt.Errorf("%w: offset of %q partition %d", commitlog.ErrInvalidGroup, o.Topic, o.Partition)
		}
		if seen[o.TopicPartition] {
			return fmt.Errorf("%w: %s/%d named twice", commitlog.ErrInvalidGroup, o.Topic, o.Partition)
		}
		seen[o.TopicPartition] = true
		call.c.Offsets[i] = metadata.GroupOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
		call.size += len(o.Topic) + 64
	}
	if err := c.leader(); err != nil {
		return err
	}
	// A commit refused by this state would be refused by the FSM too.
	var err error
	c.g.fsm.View(func(s *metadata.State) { err = s.CheckCommit(call.c) })
	if err != nil {
		return err
	}
	select {
	case c.commits <- call:
	case <-ctx.Done():
		return fmt.Errorf("metadata group: commit offsets: %w", ctx.Err())
	case <-c.g.done:
		return ErrClosed
	}
	select {
	case err := <-call.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("metadata group: commit offsets: %w (it may still be applied)", ctx.Err())
	case <-c.g.done:
		return ErrClosed
	}
}

// runCommits proposes the waiting commits, one entry at a time: each entry
// takes every commit waiting (up to maxCommitBatch, and half of
// MaxCommandBytes by an estimate of their encoding), and each caller gets
// its own commit's result.
func (c *Coordinator) runCommits() {
	g := c.g
	defer g.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	limit := int(g.cfg.MaxCommandBytes / 2)
	var carry *commitCall
	for {
		batch := []*commitCall{carry}
		if carry == nil {
			select {
			case <-g.done:
				return
			case batch[0] = <-c.commits:
			}
		}
		carry = nil
		size := batch[0].size
	fill:
		for len(batch) < maxCommitBatch {
			select {
			case call := <-c.commits:
				if size+call.size > limit {
					carry = call
					break fill
				}
				batch = append(batch, call)
				size += call.size
			default:
				break fill
			}
		}
		cmd := metadata.Command{Op: metadata.OpCommitOffsets, Commits: make([]metadata.GroupCommit, len(batch))}
		for i, call := range batch {
			cmd.Commits[i] = call.c
		}
		if g.cfg.commitGate != nil {
			g.cfg.commitGate()
		}
		_, err := g.propose(ctx, cmd)
		c.proposals.Add(1)
		c.committed.Add(uint64(len(batch)))
		var ce *metadata.CommitsError
		for i, call := range batch {
			if errors.As(err, &ce) {
				call.done <- ce.Errs[i]
			} else {
				call.done <- err
			}
		}
	}
}

// FetchOffsets implements commitlog.Groups from this node's copy.
func (c *Coordinator) FetchOffsets(ctx context.Context, group string, partitions []commitlog.TopicPartition) (out []commitlog.PartitionOffset, err error) {
	if err := commitlog.ValidateGroupName(group); err != nil {
		return nil, err
	}
	if len(partitions) > commitlog.MaxCommitOffsets {
		return nil, fmt.Errorf("%w: %d partitions, at most %d", commitlog.ErrInvalidGroup, len(partitions), commitlog.MaxCommitOffsets)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.g.fsm.View(func(s *metadata.State) { out, err = s.FetchOffsets(group, partitions) })
	return out, err
}

// ListGroups implements commitlog.Groups from this node's copy.
func (c *Coordinator) ListGroups(ctx context.Context) (out []commitlog.GroupSummary, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.g.fsm.View(func(s *metadata.State) { out = s.GroupSummaries() })
	return out, nil
}

// DescribeGroup implements commitlog.Groups from this node's copy.
func (c *Coordinator) DescribeGroup(ctx context.Context, group string) (info commitlog.GroupInfo, err error) {
	if err := commitlog.ValidateGroupName(group); err != nil {
		return commitlog.GroupInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return commitlog.GroupInfo{}, err
	}
	c.g.fsm.View(func(s *metadata.State) { info, err = s.DescribeGroup(group) })
	return info, err
}

// assignment is member's answer from this node's state (the leader's,
// after the member's change applied).
func (c *Coordinator) assignment(group, member string) (a commitlog.Assignment, err error) {
	c.g.fsm.View(func(s *metadata.State) { a, err = s.GroupAssignment(group, member) })
	return a, err
}

// validateMember checks a group name and, if required, a member ID.
func validateMember(group, memberID string, required bool) error {
	if err := commitlog.ValidateGroupName(group); err != nil {
		return err
	}
	if required && (memberID == "" || len(memberID) > commitlog.MaxClientIDLen) {
		return fmt.Errorf("%w: member id must be 1 to %d bytes", commitlog.ErrInvalidGroup, commitlog.MaxClientIDLen)
	}
	return nil
}
