package broker

import "errors"

// Sentinel errors, returned wrapped with the detail; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names
	// it.
	ErrInvalidConfig = errors.New("broker: invalid config")
	// ErrOldLayout: the data directory holds the single-log layout of
	// proglog before topics; the message says how to move its records.
	ErrOldLayout = errors.New("broker: data directory has the single-log layout")
	// ErrClosed: the Broker was closed.
	ErrClosed = errors.New("broker: closed")
)
