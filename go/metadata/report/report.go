package report

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/metadata"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Defaults used by DefaultConfig.
const (
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// errorDomain and reasonNotLeader are go/server's ErrorInfo of a
// NOT_LEADER answer (log.proto, "Errors").
const (
	errorDomain     = "proglog"
	reasonNotLeader = "NOT_LEADER"
)

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: a Config field is not allowed; the message says
	// which.
	ErrInvalidConfig = errors.New("report: invalid config")
	// ErrRefused: the metadata leader answered the report with an error a
	// retry would not change (the status is wrapped too).
	ErrRefused = errors.New("report: refused")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("report: closed")
)

// Config configures a Client. Start from DefaultConfig and set TLS and
// Leader.
type Config struct {
	// TLS is this node's client TLS configuration: its node certificate
	// and the cluster's CA, with no ServerName (each address's host is
	// checked).
	TLS *tls.Config
	// Leader returns the API address of the metadata group's leader as
	// this node knows it, empty while none is known.
	Leader func() string
	// MinBackoff and MaxBackoff bound the wait between attempts, doubled
	// after each failed one.
	MinBackoff, MaxBackoff time.Duration
}

// DefaultConfig returns a Config with the default backoff.
func DefaultConfig() Config {
	return Config{MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff}
}

// Validate reports the first field that is not allowed.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.TLS == nil:
		return bad("TLS is required: the metadata leader takes reports from node certificates only")
	case c.Leader == nil:
		return bad("Leader is required")
	case c.MinBackoff <= 0:
		return bad("MinBackoff must be positive, got %v", c.MinBackoff)
	case c.MaxBackoff < c.MinBackoff:
		return bad("MaxBackoff (%v) must be at least MinBackoff (%v)", c.MaxBackoff, c.MinBackoff)
	}
	return nil
}

// Client sends this node's reports to the metadata leader. Its methods
// are safe for concurrent use.
type Client struct {
	cfg Config
	mu  sync.Mutex
	// cc is the connection to addr, the last address reported to.
	cc     *grpc.ClientConn
	addr   string
	closed bool
}

// New returns a Client; it connects on the first report.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg}, nil
}

// ReplicaReady reports that this node's replica of topic's partition,
// which the reassignment at epoch added, caught up (log.v1.Internal's
// ReportReplicaReady), retrying as the package documentation says until
// ctx ends.
func (c *Client) ReplicaReady(ctx context.Context, topic string, partition int, epoch uint64) error {
	req := &logv1.ReportReplicaReadyRequest{Topic: topic, Partition: uint32(partition), Epoch: epoch}
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := logv1.NewInternalClient(cc).ReportReplicaReady(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("report: replica of %s/%d ready at epoch %d: %w", topic, partition, epoch, err)
	}
	return nil
}

// ReportLeaders reports that this node leads the partitions of hints,
// each in its term (log.v1.Internal's ReportLeaders; Leader is ignored:
// the metadata leader takes this node from its certificate), retrying as
// the package documentation says until ctx ends. At most
// metadata.MaxLeaderHints entries.
func (c *Client) ReportLeaders(ctx context.Context, hints []metadata.LeaderHint) error {
	req := &logv1.ReportLeadersRequest{Leaders: make([]*logv1.PartitionLeader, len(hints))}
	for i, h := range hints {
		req.Leaders[i] = &logv1.PartitionLeader{Topic: h.Topic, Created: h.Created, Partition: uint32(h.Partition), Term: h.Term}
	}
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := logv1.NewInternalClient(cc).ReportLeaders(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("report: leaders of %d partitions: %w", len(hints), err)
	}
	return nil
}

// call runs rpc against the metadata leader until it succeeds, is refused
// or ctx ends.
func (c *Client) call(ctx context.Context, rpc func(context.Context, *grpc.ClientConn) error) error {
	backoff := c.cfg.MinBackoff
	var redirect string // the leader a NOT_LEADER answer named
	var last error
	for {
		if c.isClosed() {
			return ErrClosed
		}
		addr := redirect
		if addr == "" {
			addr = c.cfg.Leader()
		}
		redirected := redirect != ""
		redirect = ""
		if addr == "" {
			last = errors.New("no metadata leader known")
		} else {
			cc, err := c.conn(addr)
			if err != nil {
				return err
			}
			err = rpc(ctx, cc)
			if err == nil {
				return nil
			}
			st := status.Convert(err)
			switch leader, ok := notLeader(st); {
			case ok && leader != "" && leader != addr && !redirected:
				redirect = leader
				continue // at once, once in a row
			case ok, st.Code() == codes.Unavailable:
				last = fmt.Errorf("%s: %w", addr, err)
			case ctx.Err() != nil:
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			default:
				return fmt.Errorf("%w by %s: %w", ErrRefused, addr, err)
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// notLeader returns the leader address of a NOT_LEADER status, and
// whether st is one.
func notLeader(st *status.Status) (string, bool) {
	if st.Code() != codes.FailedPrecondition {
		return "", false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain && info.GetReason() == reasonNotLeader {
			return info.GetMetadata()["leader_addr"], true
		}
	}
	return "", false
}

// conn returns the connection to addr: the last one if it was to addr,
// else a new one (the old one is closed: the leader moved).
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cc != nil && c.addr == addr {
		return c.cc, nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(c.cfg.TLS)))
	if err != nil {
		return nil, fmt.Errorf("report: connect to %s: %w", addr, err)
	}
	if c.cc != nil {
		_ = c.cc.Close()
	}
	c.cc, c.addr = cc, addr
	return cc, nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the connection; later reports fail with ErrClosed.
// Idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cc == nil {
		return nil
	}
	err := c.cc.Close()
	c.cc = nil
	return err
}
