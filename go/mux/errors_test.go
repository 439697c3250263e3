package mux

import (
	"errors"
	"strings"
	"testing"
)

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{ErrInvalidConfig, ErrNilListener, ErrServing, ErrNotRaft, ErrPeerRejected, ErrBadHeader, ErrInvalidGroupID}
	for i, a := range all {
		if !strings.HasPrefix(a.Error(), "mux: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%q is %q", a, b)
			}
		}
	}
}
