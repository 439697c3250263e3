package discovery

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Tags every proglog node sets.
const (
	// TagRPCAddr is the host:port of the node's gRPC (and Raft) port.
	TagRPCAddr = "rpc_addr"
	// TagVoter is "true" if the node should be a Raft voter, anything else
	// for a non-voter.
	TagVoter = "voter"
)

// Profile chooses gossip timings.
type Profile int

const (
	// ProfileLAN (the default) uses memberlist's LAN timings: failure
	// detection in a few seconds, little traffic.
	ProfileLAN Profile = iota
	// ProfileLocal uses faster timings meant for loopback clusters (tests,
	// one-host demos).
	ProfileLocal
)

// Defaults used by DefaultConfig.
const (
	DefaultBindAddr         = "0.0.0.0:8401"
	DefaultReconnectTimeout = 24 * time.Hour
	DefaultReapInterval     = 15 * time.Second
	DefaultTombstoneTimeout = 24 * time.Hour
	// DefaultReconcileInterval: see Config.ReconcileInterval.
	DefaultReconcileInterval = 10 * time.Second
)

// Config configures a Membership. Start from DefaultConfig; NodeName, Tags
// and EncryptKey (or AllowInsecureGossip) must be set.
type Config struct {
	// NodeName identifies the node in the cluster; it must be unique and is
	// also the node's Raft server ID.
	NodeName string
	// BindAddr is the host:port gossip listens on (TCP and UDP). Port 0
	// picks a free port; Addr reports it.
	BindAddr string
	// AdvertiseAddr is the host:port other nodes reach gossip at, if not
	// BindAddr (required when BindAddr is a wildcard and the host has
	// several addresses). Optional.
	AdvertiseAddr string
	// Tags are gossiped to every node: set TagRPCAddr and TagVoter.
	Tags map[string]string
	// StartJoinAddrs are gossip addresses of existing nodes; New joins
	// through them and fails if none answers. Empty for the first node.
	StartJoinAddrs []string

	// EncryptKey is the gossip key: 16, 24 or 32 bytes (AES-128/192/256),
	// identical on every node. Required unless AllowInsecureGossip.
	EncryptKey []byte
	// AllowInsecureGossip runs gossip unencrypted and unauthenticated:
	// anyone who can reach the port can join the cluster, and through the
	// Handler its Raft configuration. FOR TESTS ONLY.
	AllowInsecureGossip bool

	// Profile chooses gossip timings. Default ProfileLAN.
	Profile Profile
	// ReconnectTimeout is how long a failed member is kept before it is
	// reaped and handed to Handler.Leave. Default 24h.
	ReconnectTimeout time.Duration
	// TombstoneTimeout is how long a member that left is remembered (and
	// handed to the Handler again by Reconcile). Default 24h.
	TombstoneTimeout time.Duration
	// ReapInterval is how often failed and left members are checked
	// against those timeouts. Default 15s.
	ReapInterval time.Duration
	// ReconcileInterval is how often every member is handed to the
	// handler again (Reconcile), so that a change the handler could not
	// make when its event came (no quorum, leadership lost midway, two
	// members briefly sharing an address) is made later. Default 10s.
	ReconcileInterval time.Duration

	// Logger receives Serf's, memberlist's and the handler's messages.
	// Default: hclog.Default() named "discovery".
	Logger hclog.Logger
}

// DefaultConfig returns a Config with the default address and timings.
func DefaultConfig() Config {
	return Config{
		BindAddr:          DefaultBindAddr,
		Profile:           ProfileLAN,
		ReconnectTimeout:  DefaultReconnectTimeout,
		ReapInterval:      DefaultReapInterval,
		TombstoneTimeout:  DefaultTombstoneTimeout,
		ReconcileInterval: DefaultReconcileInterval,
	}
}

// Validate checks c and returns an error wrapping ErrInvalidConfig that
// names the first problem.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.NodeName == "" {
		return bad("NodeName is required")
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return bad("BindAddr %q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		}
	}
	switch len(c.EncryptKey) {
	case 0:
		if !c.AllowInsecureGossip {
			return bad("EncryptKey is required (16, 24 or 32 bytes); AllowInsecureGossip is for tests only")
		}
	case 16, 24, 32:
		if c.AllowInsecureGossip {
			return bad("EncryptKey and AllowInsecureGossip are both set; choose one")
		}
	default:
		return bad("EncryptKey must be 16, 24 or 32 bytes, got %d", len(c.EncryptKey))
	}
	if c.Profile != ProfileLAN && c.Profile != ProfileLocal {
		return bad("unknown Profile %d", c.Profile)
	}
	if c.ReconnectTimeout <= 0 || c.TombstoneTimeout <= 0 || c.ReapInterval <= 0 || c.ReconcileInterval <= 0 {
		return bad("ReconnectTimeout, TombstoneTimeout, ReapInterval and ReconcileInterval must be positive")
	}
	if v, ok := c.Tags[TagVoter]; ok && v != "true" && v != "false" {
		return bad("tag %s must be \"true\" or \"false\", got %q", TagVoter, v)
	}
	return nil
}

// splitHostPort parses a host:port with a numeric port.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

func (c Config) logger() hclog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return hclog.Default().Named("discovery")
}
