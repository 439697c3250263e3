// Package certs issues X.509 certificates for proglog with the standard
// library only: a self-signed certificate authority and leaf certificates for
// servers (with DNS/IP subject alternative names) and for clients (whose
// subject common name is the principal that proglog authorizes).
//
// All keys are ECDSA P-256, written as PKCS#8 PEM files with mode 0600;
// certificates are PEM with mode 0644.
//
// Node certificates (IssueNode) name their node with the URI of
// go/auth/nodeid, carry both the serverAuth and clientAuth usages, and cover
// the node's hosts: one per node, never shared.
//
// EnsureDev lays out a development directory — ca.pem, ca-key.pem, server.pem,
// server-key.pem, one NAME.pem/NAME-key.pem pair per requested node and per
// client in DevClients —
// creating only what is missing, expired, not signed by the directory's CA, or
// (for the server) not covering every requested host. EnsureDevClients adds
// client certificates of other subjects (NAME.pem, common name NAME: what the
// ACLs check; `proglog certs --client NAME`) to such a directory, refusing the
// names of its other files (ErrReservedName). Both are meant for
// `proglog serve --dev` and tests; production deployments bring their own PKI.
package certs
