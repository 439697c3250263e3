package discovery

import "errors"

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("discovery: invalid config")
	// ErrNilHandler: New was given no Handler.
	ErrNilHandler = errors.New("discovery: nil handler")
	// ErrJoin: none of the addresses could be joined (unreachable, or the
	// cluster uses another encryption key).
	ErrJoin = errors.New("discovery: join failed")
	// ErrClosed: the Membership was closed.
	ErrClosed = errors.New("discovery: closed")
)
