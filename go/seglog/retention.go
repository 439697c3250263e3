package seglog

import (
	"fmt"
	"time"
)

// ApplyRetention removes the oldest segments that Config.Retention no
// longer allows and returns how many it removed. A segment is removed if
// the total store size (see Size) exceeds Retention.MaxBytes, or if its
// last append (its store file's modification time after a reopen) is older
// than now - Retention.MaxAge. Only whole segments from the front of the
// log are removed, so removal stops at the first segment that is kept, and
// the active segment is never removed. Zero limits are unlimited.
//
// Retention runs only when the owner calls ApplyRetention (for example from
// a ticker); removal is as durable as Truncate's.
func (l *Log) ApplyRetention(now time.Time) (removed int, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.check(); err != nil {
		return 0, err
	}
	n := l.expired(l.config.Retention, now)
	if err := l.removeFront(n); err != nil {
		return 0, fmt.Errorf("seglog: apply retention: %w", err)
	}
	return n, nil
}

// RetentionOffset returns the lowest offset that retention r keeps, at
// segment granularity, without removing anything: the base offset of the
// oldest segment that ApplyRetention with r would keep (the rules are
// ApplyRetention's), at most the active segment's base offset. A
// replicated log computes it on its leader and has every replica Truncate
// at it. It fails with ErrClosed or ErrFailed as appends do.
func (l *Log) RetentionOffset(r Retention, now time.Time) (uint64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.check(); err != nil {
		return 0, err
	}
	return l.segments[l.expired(r, now)].BaseOffset(), nil
}

// expired returns how many segments from the front retention r removes.
// Callers hold wmu.
func (l *Log) expired(r Retention, now time.Time) int {
	var total uint64
	for _, s := range l.segments {
		total += s.Size()
	}
	n := 0
	for ; n < len(l.segments)-1; n++ {
		s := l.segments[n]
		tooBig := r.MaxBytes > 0 && total > r.MaxBytes
		tooOld := r.MaxAge > 0 && now.Sub(s.LastAppend()) > r.MaxAge
		if !tooBig && !tooOld {
			break
		}
		total -= s.Size()
	}
	return n
}
