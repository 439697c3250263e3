package discovery

import (
	"errors"
	"strings"
	"testing"
)

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{ErrInvalidConfig, ErrNilHandler, ErrJoin, ErrClosed}
	for i, a := range all {
		if !strings.HasPrefix(a.Error(), "discovery: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%q is %q", a, b)
			}
		}
	}
}
