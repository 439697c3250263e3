package replication

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// namedConn is a connection whose peer "proved" to be node name.
type namedConn struct {
	net.Conn
	name string
}

func nameOf(c net.Conn) (string, error) {
	if nc, ok := c.(namedConn); ok && nc.name != "" {
		return nc.name, nil
	}
	return "", errors.New("no identity")
}

// fakeStream hands out accepted connections from accept and dials with dial.
type fakeStream struct {
	accept chan net.Conn
	dial   func(raft.ServerAddress) (net.Conn, error)
}

func (f *fakeStream) Accept() (net.Conn, error) {
	c, ok := <-f.accept
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (f *fakeStream) Close() error   { return nil }
func (f *fakeStream) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (f *fakeStream) Dial(a raft.ServerAddress, _ time.Duration) (net.Conn, error) {
	return f.dial(a)
}

// guardFixture is a peerGuard over fakeStream with a settable configuration
// and the rejections it reported.
type guardFixture struct {
	g      *peerGuard
	stream *fakeStream
	mu     sync.Mutex
	conf   []raft.Server
	reject []string
}

func newGuardFixture(t *testing.T, servers ...raft.Server) *guardFixture {
	f := &guardFixture{stream: &fakeStream{accept: make(chan net.Conn, 1)}, conf: servers}
	f.g = &peerGuard{
		StreamLayer: f.stream,
		name:        nameOf,
		self:        "n0", // this node
		lg:          hclog.NewNullLogger(),
		onReject: func(reason string) {
			f.mu.Lock()
			f.reject = append(f.reject, reason)
			f.mu.Unlock()
		},
		servers: func() ([]raft.Server, bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.conf, true
		},
	}
	return f
}

func (f *guardFixture) rejections() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reject...)
}

// accept makes a connection from peer name and returns the client end and
// the end Raft reads, through the guard.
func (f *guardFixture) accept(t *testing.T, name string) (client, server net.Conn) {
	t.Helper()
	client, s := net.Pipe()
	t.Cleanup(func() { client.Close(); s.Close() })
	f.stream.accept <- namedConn{Conn: s, name: name}
	server, err := f.g.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// encodeRPC encodes a request as raft's NetworkTransport sends it.
func encodeRPC(t *testing.T, typ uint8, req any, trailing []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(typ)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(req); err != nil {
		t.Fatal(err)
	}
	buf.Write(trailing)
	return buf.Bytes()
}

func header(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:7000")}
}

func TestCheckedConnPassesMembersRequestsUnchanged(t *testing.T) {
	f := newGuardFixture(t, raft.Server{ID: "n1", Address: "127.0.0.1:7000"}, raft.Server{ID: "n0", Address: "127.0.0.1:7001"})
	client, server := f.accept(t, "n1")
	snapshot := bytes.Repeat([]byte{rpcAppendEntries, 0xff, 0x00}, 5000) // looks like requests; must pass unread
	var want []byte
	want = append(want, encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header("n1"), Term: 3,
		Entries: []*raft.Log{{Index: 1, Term: 3, Data: bytes.Repeat([]byte("x"), 70000)}}}, nil)...)
	want = append(want, encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header("n1"), Term: 3}, nil)...)
	want = append(want, encodeRPC(t, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: header("n1"), Term: 3,
		Size: int64(len(snapshot))}, snapshot)...)
	want = append(want, encodeRPC(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: header("n1"), Term: 4}, nil)...)
	want = append(want, encodeRPC(t, rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: header("n1"), Term: 5}, nil)...)
	want = append(want, encodeRPC(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: header("n1")}, nil)...)
	go func() { client.Write(want); client.Close() }() // pipelined: all at once
	got, err := io.ReadAll(server)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Raft read %d bytes, want the %d sent", len(got), len(want))
	}
	if r := f.rejections(); len(r) != 0 {
		t.Fatalf("rejections %v", r)
	}
}

func TestCheckedConnRejects(t *testing.T) {
	for _, tc := range []struct {
		what   string
		peer   string
		id     string
		reason string
	}{
		{"a request under another server ID", "n1", "n0", RejectIDMismatch},
		{"a node outside the configuration", "evil", "evil", RejectNotMember},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			f := newGuardFixture(t, raft.Server{ID: "n1", Address: "127.0.0.1:7000"}, raft.Server{ID: "n0", Address: "127.0.0.1:7001"})
			client, server := f.accept(t, tc.peer)
			ok := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header(tc.peer), Term: 3}, nil)
			if tc.reason == RejectNotMember {
				ok = nil
			}
			bad := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header(tc.id), Term: 99}, nil)
			go func() { client.Write(append(append([]byte(nil), ok...), bad...)) }()
			// Raft reads the end of the connection (io.EOF, which it does
			// not log): the rejection is logged and counted by the guard.
			got, err := io.ReadAll(server)
			if err != nil {
				t.Fatalf("read error %v, want the end of the connection", err)
			}
			if !bytes.Equal(got, ok) {
				t.Fatalf("Raft read %d bytes, want only the %d of the valid request", len(got), len(ok))
			}
			if r := f.rejections(); len(r) != 1 || r[0] != tc.reason {
				t.Fatalf("rejections %v, want [%s]", r, tc.reason)
			}
		})
	}
}

func TestFreshNodeAcceptsAnyNode(t *testing.T) {
	f := newGuardFixture(t) // empty configuration: not yet in a cluster
	client, server := f.accept(t, "n0")
	req := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header("n0"), Term: 1}, nil)
	go client.Write(req)
	got := make([]byte, len(req))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, req) {
		t.Fatalf("read %v, %v", got, err)
	}
}

// A node being added replays the leader's log from its start, through
// configurations from before it, which need not hold the leader (here n2,
// added after n0 bootstrapped). It used to reject that leader once the first
// configuration entry arrived, and never caught up (found on a real
// Kubernetes node: scaling up after leadership had moved from proglog-0).
// Once its configuration holds it, non-members are rejected again.
func TestNodeBeingAddedAcceptsTheLeader(t *testing.T) {
	f := newGuardFixture(t, raft.Server{ID: "n1", Address: "127.0.0.1:7001"}) // n0 not in it yet
	client, server := f.accept(t, "n2")
	req := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header("n2"), Term: 5}, nil)
	go client.Write(req)
	got := make([]byte, len(req))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, req) {
		t.Fatalf("read %v, %v", got, err)
	}
	if r := f.rejections(); len(r) != 0 {
		t.Fatalf("rejections %v", r)
	}

	f = newGuardFixture(t, raft.Server{ID: "n1", Address: "127.0.0.1:7001"}, raft.Server{ID: "n0", Address: "127.0.0.1:7000"})
	client, server = f.accept(t, "n2")
	go client.Write(encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header("n2"), Term: 5}, nil))
	if got, err := io.ReadAll(server); err != nil || len(got) != 0 {
		t.Fatalf("Raft read %d bytes (%v) from a non-member, want none", len(got), err)
	}
	if r := f.rejections(); len(r) != 1 || r[0] != RejectNotMember {
		t.Fatalf("rejections %v, want [%s]", r, RejectNotMember)
	}
}

func TestAcceptSkipsConnectionsWithoutIdentity(t *testing.T) {
	f := newGuardFixture(t)
	anon, _ := net.Pipe()
	f.stream.accept <- namedConn{Conn: anon}
	go func() {
		_, s := net.Pipe()
		f.stream.accept <- namedConn{Conn: s, name: "n1"}
	}()
	c, err := f.g.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if cc, ok := c.(*checkedConn); !ok || cc.peer != "n1" {
		t.Fatalf("accepted %#v, want n1's connection", c)
	}
	if r := f.rejections(); len(r) != 1 || r[0] != RejectNoIdentity {
		t.Fatalf("rejections %v", r)
	}
}

func TestDialRequiresTheConfiguredServer(t *testing.T) {
	f := newGuardFixture(t, raft.Server{ID: "n1", Address: "127.0.0.1:7000"})
	answer := "n1"
	f.stream.dial = func(raft.ServerAddress) (net.Conn, error) {
		c, _ := net.Pipe()
		return namedConn{Conn: c, name: answer}, nil
	}
	c, err := f.g.Dial("127.0.0.1:7000", time.Second)
	if err != nil {
		t.Fatalf("dial n1: %v", err)
	}
	c.Close()
	answer = "n2" // another node answers at n1's address
	if _, err := f.g.Dial("127.0.0.1:7000", time.Second); !errors.Is(err, errPeer) {
		t.Fatalf("dial reaching n2: %v, want a rejection", err)
	}
	if r := f.rejections(); len(r) != 1 || r[0] != RejectWrongPeer {
		t.Fatalf("rejections %v", r)
	}
}

func TestRequestsBeforeRaftStartsAreNotRejections(t *testing.T) {
	f := newGuardFixture(t)
	f.g.servers = func() ([]raft.Server, bool) { return nil, false }
	client, server := f.accept(t, "n1")
	go client.Write(encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: header("n1"), Term: 1}, nil))
	got, err := io.ReadAll(server)
	if !errors.Is(err, errStarting) || len(got) != 0 {
		t.Fatalf("read %d bytes, %v; want nothing and errStarting", len(got), err)
	}
	if r := f.rejections(); len(r) != 0 {
		t.Fatalf("rejections %v, want none", r)
	}
}

func TestNonMemberRequestIsNotDecoded(t *testing.T) {
	f := newGuardFixture(t, raft.Server{ID: "n1", Address: "127.0.0.1:7000"}, raft.Server{ID: "n0", Address: "127.0.0.1:7001"})
	client, server := f.accept(t, "evil")
	// A type byte and then bytes that are no request at all: the member
	// check comes first.
	go client.Write([]byte{rpcAppendEntries, 0xc1, 0xc1, 0xc1})
	if got, err := io.ReadAll(server); err != nil || len(got) != 0 {
		t.Fatalf("read %d bytes, %v; want nothing but the end of the connection", len(got), err)
	}
	if r := f.rejections(); len(r) != 1 || r[0] != RejectNotMember {
		t.Fatalf("rejections %v, want [%s]", r, RejectNotMember)
	}
}
