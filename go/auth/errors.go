package auth

import "errors"

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrNoPeer: the context has no gRPC peer (not called from a server).
	ErrNoPeer = errors.New("auth: no peer in context")
	// ErrNotTLS: the connection carries no TLS state.
	ErrNotTLS = errors.New("auth: connection is not TLS")
	// ErrNoVerifiedChain: the client sent no certificate, so the handshake
	// verified none.
	ErrNoVerifiedChain = errors.New("auth: no verified client certificate")
	// ErrEmptyCommonName: the verified certificate names no principal.
	ErrEmptyCommonName = errors.New("auth: client certificate has an empty subject common name")
	// ErrPermissionDenied: the ACL does not allow the action.
	ErrPermissionDenied = errors.New("auth: permission denied")

	errReadOnly = errors.New("auth: ACL policy is read-only at run time")
)
