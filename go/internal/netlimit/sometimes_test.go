package netlimit

import (
	"testing"
	"time"
)

func TestSometimes(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := &Sometimes{Interval: time.Second, now: func() time.Time { return now }}
	type result struct {
		ok         bool
		suppressed int
	}
	allow := func() result {
		ok, n := s.Allow()
		return result{ok, n}
	}
	if r := allow(); r != (result{true, 0}) {
		t.Fatalf("first Allow = %+v", r)
	}
	for range 1000 {
		if r := allow(); r.ok {
			t.Fatal("allowed twice within the interval")
		}
	}
	now = now.Add(time.Second)
	if r := allow(); r != (result{true, 1000}) {
		t.Fatalf("Allow after the interval = %+v, want ok with 1000 suppressed", r)
	}
}
