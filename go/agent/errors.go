package agent

import "errors"

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("agent: invalid config")
	// ErrShutdown: the agent was shut down.
	ErrShutdown = errors.New("agent: shut down")
)
