package replication

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Reasons a Raft peer is rejected, passed to Config.OnPeerRejected.
const (
	// RejectNoIdentity: Config.PeerName found no node identity.
	RejectNoIdentity = "no_identity"
	// RejectNotMember: an accepted peer names a node that is not in this
	// node's Raft configuration (one that holds this node).
	RejectNotMember = "not_member"
	// RejectIDMismatch: a request's RPC header names another server than
	// the peer's identity, or cannot be decoded.
	RejectIDMismatch = "id_mismatch"
	// RejectWrongPeer: a dialed peer is not the server the configuration
	// has at the dialed address.
	RejectWrongPeer = "wrong_peer"
	// RejectHandshake: the Raft connection's set-up failed before any
	// request (TLS handshake, a certificate that is not a node's of the
	// CA; go/mux), other than for RejectNoIdentity.
	RejectHandshake = "handshake"
)

// The rpc type bytes of hashicorp/raft's NetworkTransport (net_transport.go).
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

const (
	// peerLogInterval is how often peerGuard logs rejections at most.
	peerLogInterval = time.Second
	// maxRetainedRequestBytes caps the buffer a checkedConn keeps between
	// requests.
	maxRetainedRequestBytes = 1 << 20
)

var (
	// errPeer marks the errors of a rejected Raft peer.
	errPeer = errors.New("replication: raft peer rejected")
	// errStarting: a request came before Raft started (the node is
	// opening); the peer retries. Neither logged as a rejection nor counted.
	errStarting = errors.New("replication: raft is not running yet")
)

// peerGuard wraps the Raft stream layer to authorize peers by the node their
// connection proves (Config.PeerName); see the package documentation.
type peerGuard struct {
	raft.StreamLayer
	name     func(net.Conn) (string, error)
	self     string // this node's server ID (Config.LocalID)
	onReject func(reason string)
	lg       hclog.Logger
	// servers returns the latest Raft configuration (including entries
	// not yet committed), and false before Raft has started.
	servers func() ([]raft.Server, bool)

	logMu   sync.Mutex
	logNext time.Time
	dropped int
}

// latestServers is peerGuard.servers for the Raft instance r will hold.
func latestServers(r *atomic.Pointer[raft.Raft]) func() ([]raft.Server, bool) {
	return func() ([]raft.Server, bool) {
		rr := r.Load()
		if rr == nil {
			return nil, false
		}
		f := rr.GetConfiguration() // a copy of the latest configuration; never blocks
		if f.Error() != nil {
			return nil, false
		}
		return f.Configuration().Servers, true
	}
}

// member reports whether node may send this node Raft requests: it is in
// the configuration, or the configuration does not hold this node. The
// latter is a node the leader is adding: empty at first, then replaying the
// leader's log from its start, through the configurations from before it
// was added, which need not hold the leader (a member added later); it
// must accept that leader until it reaches the entry that adds itself.
func (g *peerGuard) member(node string) error {
	servers, ok := g.servers()
	if !ok {
		return errStarting
	}
	if !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == g.self }) {
		return nil
	}
	for _, s := range servers {
		if string(s.ID) == node {
			return nil
		}
	}
	return fmt.Errorf("%w: node %q is not in the raft configuration", errPeer, node)
}

// Dial implements raft.StreamLayer: the peer must prove to be the server
// the configuration has at address.
func (g *peerGuard) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := g.StreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	node, err := g.name(c)
	reason := RejectNoIdentity
	if err == nil {
		reason = RejectWrongPeer
		servers, _ := g.servers()
		err = fmt.Errorf("%w: node %q answered at %s, where the raft configuration has no server of that name", errPeer, node, address)
		for _, s := range servers {
			if s.Address == address && string(s.ID) == node {
				err = nil
			}
		}
	}
	if err != nil {
		_ = c.Close()
		g.reject(c, node, reason, err)
		return nil, fmt.Errorf("replication: dial raft peer %s: %w", address, err)
	}
	return c, nil
}

// Accept implements raft.StreamLayer: it returns connections whose peer
// proved a node identity, checking every request they carry (checkedConn).
func (g *peerGuard) Accept() (net.Conn, error) {
	for {
		c, err := g.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		node, err := g.name(c)
		if err != nil {
			_ = c.Close()
			g.reject(c, "", RejectNoIdentity, err)
			continue
		}
		cc := &checkedConn{Conn: c, g: g, peer: node, br: bufio.NewReader(c)}
		cc.dec = codec.NewDecoder(recorder{cc}, &codec.MsgpackHandle{})
		return cc, nil
	}
}

// reject counts a rejection and logs it, at most once per peerLogInterval.
func (g *peerGuard) reject(c net.Conn, node, reason string, err error) {
	if g.onReject != nil {
		g.onReject(reason)
	}
	g.logMu.Lock()
	now := time.Now()
	if now.Before(g.logNext) {
		g.dropped++
		g.logMu.Unlock()
		return
	}
	dropped := g.dropped
	g.logNext, g.dropped = now.Add(peerLogInterval), 0
	g.logMu.Unlock()
	g.lg.Warn("raft peer rejected", "remote", c.RemoteAddr().String(), "peer_node", node, "reason", reason,
		"error", err, "rejections_not_logged", dropped)
}

// checkedConn is an accepted Raft connection whose requests are checked
// before Raft reads them: the peer must be a member (peerGuard.member; a
// non-member's request is not decoded at all), and each request is decoded
// (with Raft's own codec) from the connection and its RPC header's ID must
// be the peer's node, or the connection fails. The checked
// bytes are then handed to Raft unchanged; an InstallSnapshot's trailing
// data passes through unread. Writes (responses) are not touched.
type checkedConn struct {
	net.Conn
	g    *peerGuard
	peer string
	br   *bufio.Reader
	dec  *codec.Decoder // reads br through recorder, which copies into pending

	pending     bytes.Buffer // checked bytes Raft has not read yet
	passthrough int64        // snapshot bytes to pass unchecked
	err         error        // sticky: the connection was rejected or broke
}

// recorder reads from the connection's buffered reader and records what it
// reads into pending. It is an io.ByteScanner, so the decoder's look-ahead
// goes back to br rather than being lost.
type recorder struct{ c *checkedConn }

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.c.br.Read(p)
	r.c.pending.Write(p[:n])
	return n, err
}

func (r recorder) ReadByte() (byte, error) {
	b, err := r.c.br.ReadByte()
	if err == nil {
		r.c.pending.WriteByte(b)
	}
	return b, err
}

func (r recorder) UnreadByte() error {
	if err := r.c.br.UnreadByte(); err != nil {
		return err
	}
	r.c.pending.Truncate(r.c.pending.Len() - 1)
	return nil
}

func (c *checkedConn) Read(p []byte) (int, error) {
	for c.pending.Len() == 0 && c.passthrough == 0 {
		if errors.Is(c.err, errPeer) {
			// Rejected, logged and counted already: Raft takes the end
			// of the connection quietly (it logs any other error).
			return 0, io.EOF
		}
		if c.err != nil {
			return 0, c.err
		}
		c.err = c.next()
	}
	if c.pending.Len() > 0 {
		n, err := c.pending.Read(p)
		if c.pending.Len() == 0 && c.pending.Cap() > maxRetainedRequestBytes {
			c.pending = bytes.Buffer{} // do not hold on to a large entry's memory
		}
		return n, err
	}
	if int64(len(p)) > c.passthrough {
		p = p[:c.passthrough]
	}
	n, err := c.br.Read(p)
	c.passthrough -= int64(n)
	return n, err
}

// next reads and checks the next request into pending.
func (c *checkedConn) next() error {
	typ, err := recorder{c}.ReadByte()
	if err != nil {
		return err
	}
	// Membership first: a non-member's request is not even decoded.
	if err := c.g.member(c.peer); err != nil {
		if errors.Is(err, errStarting) {
			c.pending.Reset()
			_ = c.Conn.Close()
			return err
		}
		return c.fail(RejectNotMember, err)
	}
	switch typ {
	case rpcAppendEntries, rpcRequestVote, rpcInstallSnapshot, rpcTimeoutNow, rpcRequestPreVote:
	default:
		return c.fail(RejectIDMismatch, fmt.Errorf("%w: unknown rpc type %d", errPeer, typ))
	}
	// Only the header (and an InstallSnapshot's size) is read: Raft encodes
	// every request as a map with its RPCHeader inlined, and the codec
	// skips the other fields (entries included) without keeping them;
	// Raft decodes the request itself from the same bytes.
	var req struct {
		raft.RPCHeader
		Size int64 // InstallSnapshotRequest: the snapshot bytes that follow
	}
	if err := c.dec.Decode(&req); err != nil {
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) {
			return err // the connection broke, not the peer's request
		}
		return c.fail(RejectIDMismatch, fmt.Errorf("%w: decode rpc type %d: %v", errPeer, typ, err))
	}
	if id := string(req.ID); id != c.peer {
		return c.fail(RejectIDMismatch, fmt.Errorf("%w: rpc type %d claims server ID %q, the certificate names node %q", errPeer, typ, id, c.peer))
	}
	if typ == rpcInstallSnapshot {
		c.passthrough = max(req.Size, 0)
	}
	return nil
}

// fail rejects the connection: nothing of the offending request reaches
// Raft, and Raft's next read gets io.EOF (it then closes the connection
// without logging: reject logged and counted it).
func (c *checkedConn) fail(reason string, err error) error {
	c.pending.Reset()
	_ = c.Conn.Close()
	c.g.reject(c.Conn, c.peer, reason, err)
	return err
}

// verifyMember reports whether the server at addr proves to be node id: it
// dials addr through the stream layer (mutual TLS for go/mux) and checks the
// identity the connection proved (Config.PeerName). Without PeerName every
// member is taken at its word. A member that fails is logged the first time
// and remembered in unverified; one that passes is forgotten there.
func (l *Log) verifyMember(id, addr string) bool {
	if l.cfg.PeerName == nil {
		return true
	}
	err := VerifyPeer(l.cfg.StreamLayer, l.cfg.PeerName, id, addr, l.cfg.JoinVerifyTimeout)
	l.unverifiedMu.Lock()
	defer l.unverifiedMu.Unlock()
	if err == nil {
		delete(l.unverified, id)
		return true
	}
	if _, seen := l.unverified[id]; !seen {
		l.lg.Warn("gossip member did not prove its identity; not adding it to raft until it does", "member", id, "rpc_addr", addr, "error", err)
	} else {
		l.lg.Debug("gossip member still unverified", "member", id, "rpc_addr", addr, "error", err)
	}
	if l.unverified == nil {
		l.unverified = map[string]bool{}
	}
	l.unverified[id] = true
	return false
}

// VerifyPeer reports an error unless the server at addr proves to be node
// id: it dials addr through stream within timeout and asks name (as
// Config.PeerName) which node the connection proved. Join uses it before
// adding a member, and so does the metadata group's (go/metadata/group).
func VerifyPeer(stream raft.StreamLayer, name func(net.Conn) (string, error), id, addr string, timeout time.Duration) error {
	c, err := stream.Dial(raft.ServerAddress(addr), timeout)
	if err != nil {
		return err
	}
	node, err := name(c)
	_ = c.Close()
	if err == nil && node != id {
		err = fmt.Errorf("node %q answered at %s", node, addr)
	}
	return err
}

func (l *Log) forgetUnverified(id string) {
	l.unverifiedMu.Lock()
	delete(l.unverified, id)
	l.unverifiedMu.Unlock()
}

// UnverifiedMembers returns the names of the members Join refused to add
// because they did not prove their identity, sorted. It reflects the Joins
// this node made as the leader.
func (l *Log) UnverifiedMembers() []string {
	l.unverifiedMu.Lock()
	defer l.unverifiedMu.Unlock()
	return slices.Sorted(maps.Keys(l.unverified))
}
