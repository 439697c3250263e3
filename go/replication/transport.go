package replication

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/netlimit"
)

// DefaultAcceptBacklog is TransportConfig.AcceptBacklog's default.
const DefaultAcceptBacklog = 64

// refuseLogInterval rate-limits the log lines of refused connections.
const refuseLogInterval = 10 * time.Second

// Reasons a Transport refuses an accepted connection, passed to
// TransportConfig.OnRefused.
const (
	// RefusedUnknownGroup: the connection's header names no group
	// registered here (yet, or any longer).
	RefusedUnknownGroup = "unknown_group"
	// RefusedBacklogFull: the group's accept backlog is full (its Raft does
	// not accept); the peer redials.
	RefusedBacklogFull = "backlog_full"
)

// Transport errors, returned wrapped; test with errors.Is.
var (
	// ErrGroupExists: Transport.Group was called for a registered group.
	ErrGroupExists = errors.New("replication: raft group already registered")
	// ErrTransportClosed: the Transport was closed, or its listener failed.
	ErrTransportClosed = errors.New("replication: transport closed")
)

// DialFunc dials the shared port at addr for a Raft group; go/mux's
// Mux.DialRaft.
type DialFunc func(addr, group string, timeout time.Duration) (net.Conn, error)

// GroupListener accepts the shared port's Raft connections with the group
// each one named; go/mux's Mux.RaftConns.
type GroupListener interface {
	// AcceptRaft returns the next connection and its group.
	AcceptRaft() (conn net.Conn, group string, err error)
	// Close stops AcceptRaft.
	Close() error
	// Addr is the address peers dial.
	Addr() net.Addr
}

// TransportConfig configures a Transport. Start from
// DefaultTransportConfig.
type TransportConfig struct {
	// AcceptBacklog bounds each group's accepted connections that its Raft
	// has not taken yet; one more is closed. Default 64.
	AcceptBacklog int
	// OnRefused, if set, is called for every accepted connection the
	// Transport closes, with a Refused* reason, for metrics (logged at most
	// once per 10s).
	OnRefused func(reason string)
	// Logger receives refusals. Default: hclog.Default() named "transport".
	Logger hclog.Logger
}

// DefaultTransportConfig returns a TransportConfig with the defaults.
func DefaultTransportConfig() TransportConfig {
	return TransportConfig{AcceptBacklog: DefaultAcceptBacklog}
}

// Validate checks c and returns an error wrapping ErrInvalidConfig that
// names the first problem.
func (c TransportConfig) Validate() error {
	if c.AcceptBacklog <= 0 {
		return fmt.Errorf("%w: TransportConfig.AcceptBacklog must be positive, got %d", ErrInvalidConfig, c.AcceptBacklog)
	}
	return nil
}

// Transport carries the Raft groups of one node over one port: each group
// gets a raft.StreamLayer (Group) whose Dial names the group to the peer
// and whose Accept returns the connections that named it. See the package
// documentation.
type Transport struct {
	dial    DialFunc
	ln      GroupListener
	backlog int
	refused func(string)
	log     hclog.Logger
	refLog  netlimit.Sometimes

	mu     sync.Mutex
	groups map[string]*groupLayer
	closed bool
}

// NewTransport routes ln's connections to the groups registered with
// Group, from now on, and dials with dial. The Transport owns ln: Close,
// or ln failing, closes it and every group.
func NewTransport(dial DialFunc, ln GroupListener, cfg TransportConfig) (*Transport, error) {
	if dial == nil || ln == nil {
		return nil, fmt.Errorf("%w: NewTransport needs a dial function and a listener", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = hclog.Default().Named("transport")
	}
	t := &Transport{
		dial:    dial,
		ln:      ln,
		backlog: cfg.AcceptBacklog,
		refused: cfg.OnRefused,
		log:     lg,
		refLog:  netlimit.Sometimes{Interval: refuseLogInterval},
		groups:  make(map[string]*groupLayer),
	}
	go t.acceptLoop()
	return t, nil
}

// Group registers the Raft group id and returns its stream layer, for
// raft.NewNetworkTransport: Dial connects to a node's port naming id,
// Accept returns the connections that named id, Addr is the node's
// advertised address (the same for every group), and Close unregisters
// the group (its queued connections are closed; the port and the other
// groups stay). A registered id is ErrGroupExists; once closed, it may be
// registered again.
func (t *Transport) Group(id string) (raft.StreamLayer, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty raft group ID", ErrInvalidConfig)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("%w: group %q", ErrTransportClosed, id)
	}
	if _, ok := t.groups[id]; ok {
		return nil, fmt.Errorf("%w: %q", ErrGroupExists, id)
	}
	g := &groupLayer{t: t, id: id, conns: make(chan net.Conn, t.backlog), done: make(chan struct{})}
	t.groups[id] = g
	return g, nil
}

func (t *Transport) acceptLoop() {
	for {
		c, id, err := t.ln.AcceptRaft()
		if err != nil {
			t.mu.Lock()
			closed := t.closed
			t.mu.Unlock()
			if !closed && !errors.Is(err, net.ErrClosed) {
				t.log.Error("raft accept failed; no more raft connections", "error", err)
			}
			t.Close()
			return
		}
		t.mu.Lock()
		g := t.groups[id]
		t.mu.Unlock()
		reason := RefusedUnknownGroup
		if g != nil {
			reason = g.offer(c)
		}
		if reason != "" {
			t.refuse(c, id, reason)
		}
	}
}

// refuse closes c, counts it and logs it, rate-limited.
func (t *Transport) refuse(c net.Conn, group, reason string) {
	_ = c.Close()
	if t.refused != nil {
		t.refused(reason)
	}
	if ok, suppressed := t.refLog.Allow(); ok {
		t.log.Warn("raft connection refused", "remote", c.RemoteAddr().String(), "group", group, "reason", reason, "suppressed", suppressed)
	}
}

// Close closes the listener and every group; their Accept fails from now
// on. Connections already accepted stay open. Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	groups := make([]*groupLayer, 0, len(t.groups))
	for _, g := range t.groups {
		groups = append(groups, g)
	}
	t.mu.Unlock()
	for _, g := range groups {
		g.Close()
	}
	if err := t.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("replication: close raft listener: %w", err)
	}
	return nil
}

// groupLayer is one group's raft.StreamLayer.
type groupLayer struct {
	t     *Transport
	id    string
	conns chan net.Conn // the accept backlog

	mu     sync.Mutex // orders offer against Close
	closed bool
	done   chan struct{}
}

// offer queues c for Accept; it returns the reason to refuse c instead, or
// "".
func (g *groupLayer) offer(c net.Conn) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return RefusedUnknownGroup
	}
	select {
	case g.conns <- c:
		return ""
	default:
		return RefusedBacklogFull
	}
}

// Dial implements raft.StreamLayer.
func (g *groupLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return g.t.dial(string(address), g.id, timeout)
}

// Accept implements net.Listener: the next connection that named this
// group. After Close it fails with an error wrapping net.ErrClosed.
func (g *groupLayer) Accept() (net.Conn, error) {
	select {
	case <-g.done:
		return nil, g.closedErr()
	default:
	}
	select {
	case c := <-g.conns:
		return c, nil
	case <-g.done:
		return nil, g.closedErr()
	}
}

func (g *groupLayer) closedErr() error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: g.Addr(), Err: fmt.Errorf("raft group %q: %w", g.id, net.ErrClosed)}
}

// Close implements net.Listener: it unregisters the group and closes the
// connections queued for it. Idempotent.
func (g *groupLayer) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.done)
		for drained := false; !drained; {
			select {
			case c := <-g.conns:
				_ = c.Close()
			default:
				drained = true
			}
		}
	}
	g.mu.Unlock()
	g.t.mu.Lock()
	if g.t.groups[g.id] == g {
		delete(g.t.groups, g.id)
	}
	g.t.mu.Unlock()
	return nil
}

// Addr implements net.Listener: the node's advertised address.
func (g *groupLayer) Addr() net.Addr { return g.t.ln.Addr() }
