package seglog

import (
	"os"
	"testing"
	"time"

	"github.com/proglog/proglog/go/segment"
)

func TestApplyRetention(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		maxBytes func(total, segBytes uint64) uint64
		maxAge   time.Duration
		ages     []time.Duration // age of each segment's last append, oldest first (5 segments)
		want     int
	}{
		{"unlimited", nil, 0, nil, 0},
		{"bytes: under the limit", func(total, _ uint64) uint64 { return total }, 0, nil, 0},
		{"bytes: one byte over removes the oldest", func(total, _ uint64) uint64 { return total - 1 }, 0, nil, 1},
		{"bytes: two segments' worth", func(total, seg uint64) uint64 { return total - 2*seg }, 0, nil, 2},
		{"bytes: never the active segment", func(_, _ uint64) uint64 { return 1 }, 0, nil, 4},
		{"age: none old", nil, time.Hour, []time.Duration{10, 9, 8, 7, 6}, 0},
		{"age: two old", nil, time.Hour, []time.Duration{3 * time.Hour, 2 * time.Hour, 30 * time.Minute, 0, 0}, 2},
		{"age: all old, active kept", nil, time.Hour, []time.Duration{5 * time.Hour, 4 * time.Hour, 3 * time.Hour, 2 * time.Hour, 2 * time.Hour}, 4},
		{"age: only a prefix is removed", nil, time.Hour, []time.Duration{5 * time.Hour, 0, 5 * time.Hour, 0, 0}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := testConfig()
			l := openLog(t, dir, c)
			bases := fillSegments(t, l, 5)
			if len(bases) != 5 {
				t.Fatalf("%d segments", len(bases))
			}
			total, _ := l.Size()
			if tt.maxBytes != nil {
				c.Retention.MaxBytes = tt.maxBytes(total, c.Segment.MaxStoreBytes-200)
			}
			c.Retention.MaxAge = tt.maxAge
			// Age is the store's modification time after a reopen.
			for i, age := range tt.ages {
				mt := now.Add(-age)
				if err := os.Chtimes(segment.StorePath(dir, bases[i]), mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			next := l.NextOffset()
			l.Close()
			l = openLog(t, dir, c)
			if got, err := l.RetentionOffset(c.Retention, now); err != nil || got != bases[tt.want] {
				t.Fatalf("RetentionOffset = %d, %v; want %d", got, err, bases[tt.want])
			}
			if got := segmentBases(t, dir); len(got) != 5 {
				t.Fatalf("RetentionOffset removed segments: %d left", len(got))
			}
			removed, err := l.ApplyRetention(now)
			if err != nil || removed != tt.want {
				t.Fatalf("ApplyRetention = %d, %v; want %d", removed, err, tt.want)
			}
			wantLowest := bases[tt.want]
			checkLog(t, l, wantLowest, next)
			if got := segmentBases(t, dir); len(got) != 5-tt.want {
				t.Fatalf("%d segments on disk, want %d", len(got), 5-tt.want)
			}
			if tt.maxBytes != nil && tt.want < 4 {
				if size, _ := l.Size(); size > c.Retention.MaxBytes {
					t.Fatalf("Size %d still above MaxBytes %d", size, c.Retention.MaxBytes)
				}
			}
			// Idempotent.
			if removed, err := l.ApplyRetention(now); err != nil || removed != 0 {
				t.Fatalf("second ApplyRetention = %d, %v", removed, err)
			}
		})
	}
}

func TestRetentionAgeUsesLastAppend(t *testing.T) {
	c := testConfig()
	c.Retention.MaxAge = time.Hour
	l := openLog(t, t.TempDir(), c)
	fillSegments(t, l, 3)
	if n, _ := l.ApplyRetention(time.Now()); n != 0 {
		t.Fatalf("fresh segments removed: %d", n)
	}
	if n, _ := l.ApplyRetention(time.Now().Add(2 * time.Hour)); n != 2 {
		t.Fatalf("segments last appended 2h ago: removed %d, want 2", n)
	}
}
