package seglog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

func TestErrorTypes(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		sentinel error
		msg      string
	}{
		{"out of range", &OffsetOutOfRangeError{Offset: 9, Lowest: 2, Next: 5}, ErrOffsetOutOfRange, "seglog: offset 9 out of range [2, 5)"},
		{"corruption", &CorruptionError{Path: "/d/x.store", Position: 77, Reason: "checksum mismatch"}, ErrCorrupt,
			"corrupt data in /d/x.store at byte 77: checksum mismatch"},
		{"unknown files", &UnknownFilesError{Dir: "/d", Names: []string{"a", "b"}}, ErrUnknownFiles, `seglog: unrecognised files in /d: ["a" "b"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wrapped := fmt.Errorf("context: %w", tt.err)
			if !errors.Is(wrapped, tt.sentinel) {
				t.Fatalf("errors.Is(%v, sentinel) = false", wrapped)
			}
			if errors.Is(wrapped, ErrClosed) {
				t.Fatal("matches an unrelated sentinel")
			}
			if tt.err.Error() != tt.msg {
				t.Fatalf("Error() = %q, want %q", tt.err.Error(), tt.msg)
			}
		})
	}
	// The log's corruption error is the segment package's.
	var ce *CorruptionError
	if !errors.As(fmt.Errorf("x: %w", &segment.CorruptionError{Path: "p"}), &ce) || ce.Path != "p" || ErrCorrupt != segment.ErrCorrupt {
		t.Fatal("CorruptionError is not segment.CorruptionError")
	}
}
