package agent

import "time"

// SetControllerInterval shortens how often the metadata controller looks
// at the state without a change (group.Config.ControllerInterval), so that
// a test's short ReplicaReplacementDelay takes effect soon after it ends.
func SetControllerInterval(c *Config, d time.Duration) { c.controllerInterval = d }
