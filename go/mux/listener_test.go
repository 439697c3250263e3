package mux

import (
	"errors"
	"net"
	"testing"
)

func TestClosingGRPCListenerKeepsRaft(t *testing.T) {
	m := startMux(t, plainConfig(t))
	if err := m.GRPCListener().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GRPCListener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
	echoRaft(t, m, m, "g", "still here")
}

func TestClosingRaftConnsKeepsGRPC(t *testing.T) {
	m := startMux(t, plainConfig(t))
	startHealth(t, m)
	if err := m.RaftConns().Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.RaftConns().AcceptRaft(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("AcceptRaft after Close = %v", err)
	}
	checkHealth(t, m.Addr().String())
	if m.GRPCListener().Addr().String() != m.Addr().String() {
		t.Fatalf("sub-listener Addr %v != %v", m.GRPCListener().Addr(), m.Addr())
	}
}

func TestClosedSubListenerDropsConnections(t *testing.T) {
	m := startMux(t, plainConfig(t))
	m.GRPCListener().Close()
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PRI")); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil {
		t.Fatal("connection to a closed sub-listener was not closed")
	}
}
