package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/replication"
)

// checkOwnCertificate refuses a node certificate that cannot be this node's
// (see go/auth/nodeid): it must name cfg.NodeName, allow serverAuth and
// clientAuth, and be valid for the host of the advertised address.
func checkOwnCertificate(cfg Config, serverTLS *tls.Config, advertise string) error {
	// tls.LoadX509KeyPair parses the leaf, unless GODEBUG=x509keypairleaf=0.
	cert := serverTLS.Certificates[0].Leaf
	if cert == nil {
		var err error
		if cert, err = x509.ParseCertificate(serverTLS.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("agent: parse %s: %w", cfg.TLS.CertFile, err)
		}
	}
	host, _, err := net.SplitHostPort(advertise)
	if err != nil {
		return fmt.Errorf("agent: advertised address %q: %w", advertise, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "" // no concrete address to check; go/mux refuses it
	}
	if err := nodeid.Verify(cert, cfg.NodeName, host); err != nil {
		return fmt.Errorf("agent: %s cannot be node %q's certificate: %w; issue one certificate per node "+
			"naming it in a URI SAN %s://%s%s%s (`proglog certs --node %s`)",
			cfg.TLS.CertFile, cfg.NodeName, err, nodeid.Scheme, nodeid.TrustDomain, nodeid.PathPrefix, cfg.NodeName, cfg.NodeName)
	}
	return nil
}

// peerName is replication.Config.PeerName for go/mux's Raft connections:
// the node the peer's verified certificate names.
func peerName(c net.Conn) (string, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return "", fmt.Errorf("agent: raft connection from %s is not TLS", c.RemoteAddr())
	}
	return certNode(tc.ConnectionState())
}

// authorizePeer is mux.Config.AuthorizePeer: a Raft peer's certificate must
// name a node; which nodes may take part is replication's check (Config.PeerName).
func authorizePeer(cs tls.ConnectionState) error {
	_, err := certNode(cs)
	return err
}

// certNode is the node the peer's certificate names.
func certNode(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("agent: raft peer sent no certificate: %w", nodeid.ErrNoIdentity)
	}
	return nodeid.FromCertificate(cs.PeerCertificates[0])
}

// handshakeRejection is the reason a failed Raft connection set-up
// (mux.Config.OnHandshakeFailed) is counted under.
func handshakeRejection(err error) string {
	if errors.Is(err, nodeid.ErrNoIdentity) || errors.Is(err, nodeid.ErrAmbiguous) {
		return replication.RejectNoIdentity
	}
	return replication.RejectHandshake
}
