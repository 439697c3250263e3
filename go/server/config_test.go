package server_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/server"
)

func validConfig(t *testing.T) server.Config {
	t.Helper()
	authz, err := auth.NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	c := server.DefaultConfig()
	c.TLS = &tls.Config{Certificates: []tls.Certificate{{}}}
	c.Authorizer = authz
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig(t).Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if c := server.DefaultConfig(); c.ID == "" || c.MaxRecordBytes != 1<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	cases := []struct {
		mutate func(*server.Config)
		want   string
	}{
		{func(c *server.Config) { c.TLS = nil }, "no plaintext mode"},
		{func(c *server.Config) { c.TLS = &tls.Config{} }, "no server certificate"},
		{func(c *server.Config) { c.Authorizer = nil }, "Authorizer is nil"},
		{func(c *server.Config) { c.ID = "" }, "ID is empty"},
		{func(c *server.Config) { c.MaxRecordBytes = 0 }, "MaxRecordBytes is 0"},
		{func(c *server.Config) { c.MaxBatchRecords = -1 }, "MaxBatchRecords is -1"},
		{func(c *server.Config) { c.MaxRecvMsgBytes = 1 << 20 }, "MaxRecvMsgBytes is 1048576, must be at least"},
		{func(c *server.Config) { c.MaxSendMsgBytes = 100 }, "MaxSendMsgBytes is 100"},
		{func(c *server.Config) { c.MaxConcurrentStreams = 0 }, "MaxConcurrentStreams is 0"},
		{func(c *server.Config) { c.MaxMetadataTopics = 0 }, "MaxMetadataTopics is 0, must be positive"},
		{func(c *server.Config) { c.MaxGroupLagSeries = 0 }, "MaxGroupLagSeries is 0, must be positive"},
		{func(c *server.Config) { c.MaxConnections = -1 }, "MaxConnections (-1) and MaxStreams (4096) must be 0 (no cap) or positive"},
		{func(c *server.Config) { c.MaxStreams = -1 }, "MaxStreams (-1) must be 0"},
		{func(c *server.Config) { c.MaxRecordHeaders = 0 }, "MaxRecordHeaders (0) and MaxRecordHeaderBytes (65536) must be positive"},
		{func(c *server.Config) { c.MaxRecordHeaderBytes = -1 }, "MaxRecordHeaderBytes (-1) must be positive"},
		{func(c *server.Config) { c.MaxConnectionAge = -1 }, "MaxConnectionAge (-1ns)"},
		{func(c *server.Config) { c.KeepaliveMinTime = 0 }, "KeepaliveMinTime"},
		{func(c *server.Config) { c.ShutdownTimeout = -1 }, "ShutdownTimeout"},
		{func(c *server.Config) { c.Logger = nil }, "Logger is nil"},
		{func(c *server.Config) { c.DefaultConsistency = 7 }, "DefaultConsistency is Consistency(7)"},
	}
	for _, tc := range cases {
		c := validConfig(t)
		tc.mutate(&c)
		err := c.Validate()
		if !errors.Is(err, server.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want ErrInvalidConfig mentioning %q", err, tc.want)
		}
	}
	// Every problem is reported, not just the first.
	c := validConfig(t)
	c.TLS, c.Authorizer = nil, nil
	if err := c.Validate(); !strings.Contains(err.Error(), "TLS") || !strings.Contains(err.Error(), "Authorizer") {
		t.Errorf("joined errors: %v", err)
	}
	if _, err := server.New(validConfig(t), nil); !errors.Is(err, server.ErrNilCluster) {
		t.Errorf("New(nil cluster): %v", err)
	}
}
