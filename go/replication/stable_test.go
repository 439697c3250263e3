package replication

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStableStore(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stable")
	s, err := OpenStableStore(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v; raft needs the text \"not found\"", err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); v != 0 || err != nil {
		t.Fatalf("missing uint64: %d, %v", v, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 8); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	check := func(s *StableStore) {
		t.Helper()
		if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n1" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 8 {
			t.Fatalf("GetUint64 = %d, %v", v, err)
		}
		if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
			t.Fatalf("empty value = %q, %v", v, err)
		}
		if _, err := s.GetUint64([]byte("LastVoteCand")); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("GetUint64 of a 2-byte value: %v", err)
		}
	}
	check(s)
	// The returned value is a copy.
	v, _ := s.Get([]byte("LastVoteCand"))
	v[0] = 'X'
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Durable: a reopen (or a crash: nothing is buffered) sees it all.
	s2, err := OpenStableStore(p)
	if err != nil {
		t.Fatal(err)
	}
	check(s2)
}

func TestStableStoreRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stable")
	s, _ := OpenStableStore(p)
	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(p)
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 1
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenStableStore(p); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	for _, n := range []int{0, 5, len(good) - 1} {
		os.WriteFile(p, good[:n], 0o644)
		if _, err := OpenStableStore(p); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
	}
	// A crash mid-write leaves a temporary file, never a damaged store.
	os.WriteFile(p, good, 0o644)
	os.WriteFile(filepath.Join(dir, ".stable.tmp-1"), []byte("half"), 0o644)
	s, err := OpenStableStore(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.GetUint64([]byte("CurrentTerm")); v != 3 {
		t.Fatalf("term %d", v)
	}
	if _, err := os.Stat(filepath.Join(dir, ".stable.tmp-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file left behind")
	}
}
