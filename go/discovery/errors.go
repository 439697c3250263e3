package discovery

import "errors"

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("discovery: invalid config")
	// ErrNilHandler: New was given no Handler.
	ErrNilHandler = errors.New("discovery: nil handler")
	// ErrJoin: no node but this one could be joined through the addresses
	// (unreachable, the cluster uses another encryption key, or they name
	// only this node).
	ErrJoin = errors.New("discovery: join failed")
	// ErrClosed: the Membership was closed.
	ErrClosed = errors.New("discovery: closed")
)
