// Package nodeid names proglog nodes in their certificates.
//
// A node's certificate carries its identity as a URI subject alternative
// name
//
//	spiffe://proglog/node/<name>
//
// where <name> is the node's name (agent.Config.NodeName, the Raft server
// ID and Serf member name): 1 to 128 characters of letters, digits, '.',
// '_' and '-', starting with a letter or digit. A node certificate holds
// exactly one such URI, both the serverAuth and clientAuth extended key
// usages (a node serves gRPC and Raft and dials Raft peers with the same
// certificate), and DNS or IP SANs for the address the node advertises.
// `proglog certs --node NAME` issues such certificates.
//
// A certificate without a node URI (a client certificate, or the shared
// server.pem of older setups) names no node: nodes refuse to start with it,
// and Raft peers presenting it are rejected.
//
// URI formats the identity, FromCertificate reads it back, and Verify checks
// that a certificate is fit to be node name's own at a host.
package nodeid
