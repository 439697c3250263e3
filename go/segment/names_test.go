package segment

import (
	"path/filepath"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	if got := StoreName(42); got != "00000000000000000042.store" {
		t.Fatalf("StoreName(42) = %q", got)
	}
	if got := IndexName(1<<64 - 1); got != "18446744073709551615.index" {
		t.Fatalf("IndexName(max) = %q", got)
	}
	tests := []struct {
		name    string
		base    uint64
		isStore bool
		ok      bool
	}{
		{"00000000000000000042.store", 42, true, true},
		{"00000000000000000042.index", 42, false, true},
		{"18446744073709551615.store", 1<<64 - 1, true, true},
		{"18446744073709551616.store", 0, false, false}, // overflows uint64
		{"42.store", 0, false, false},
		{"000000000000000000042.store", 0, false, false},
		{"0000000000000000004x.store", 0, false, false},
		{"00000000000000000042.log", 0, false, false},
		{"00000000000000000042.store.tmp", 0, false, false},
		{"+0000000000000000042.store", 0, false, false},
		{"", 0, false, false},
	}
	for _, tt := range tests {
		base, isStore, ok := ParseName(tt.name)
		if base != tt.base || isStore != tt.isStore || ok != tt.ok {
			t.Errorf("ParseName(%q) = %d, %v, %v; want %d, %v, %v", tt.name, base, isStore, ok, tt.base, tt.isStore, tt.ok)
		}
	}
}

func TestTornNames(t *testing.T) {
	p := TornPath("/d/00000000000000000042.store", time.Unix(0, 1733500000000000000))
	if p != "/d/00000000000000000042.store.torn.1733500000000000000" {
		t.Fatalf("TornPath = %q", p)
	}
	for name, want := range map[string]bool{
		filepath.Base(p):                    true,
		"00000000000000000042.index.torn.1": false,
		"00000000000000000042.store.torn.":  false,
		"00000000000000000042.store.torn.x": false,
		"42.store.torn.1":                   false,
		"00000000000000000042.store":        false,
	} {
		if got := IsTornName(name); got != want {
			t.Errorf("IsTornName(%q) = %v, want %v", name, got, want)
		}
	}
}
