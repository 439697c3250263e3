package netlimit

import (
	"sync"
	"time"
)

// Sometimes rate-limits a log line: Allow says yes at most once per
// Interval and counts the times it said no in between. Safe for concurrent
// use; the zero value allows every call.
type Sometimes struct {
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
	now        func() time.Time // test hook; time.Now if nil
}

// Allow reports whether to log now, and how many calls were suppressed
// since the last one that was allowed (to log with it).
func (s *Sometimes) Allow() (ok bool, suppressed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	t := now()
	if !s.last.IsZero() && t.Sub(s.last) < s.Interval {
		s.suppressed++
		return false, 0
	}
	s.last = t
	suppressed = s.suppressed
	s.suppressed = 0
	return true, suppressed
}
