package segment

import (
	"errors"
	"fmt"
	"testing"
)

func TestCorruptionError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", corruptf("/d/1.store", 42, "bad %s", "thing"))
	var ce *CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%v is not a corruption error", err)
	}
	if *ce != (CorruptionError{Path: "/d/1.store", Position: 42, Reason: "bad thing"}) {
		t.Fatalf("got %+v", *ce)
	}
	if got, want := ce.Error(), "corrupt data in /d/1.store at byte 42: bad thing"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	for _, other := range []error{ErrClosed, ErrFull, ErrReadOnly, ErrNotFound} {
		if errors.Is(err, other) {
			t.Fatalf("corruption error matches %v", other)
		}
	}
}
