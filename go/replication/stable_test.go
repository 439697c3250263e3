package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/internal/testutil"
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

func TestStableStoreSurvivesDamageToOneSlot(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stable")
	s, _ := OpenStableStore(p)
	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	s.Close()
	good, _ := os.ReadFile(p)
	if len(good) != 2*StableSlotBytes {
		t.Fatalf("file is %d bytes, want two %d-byte slots", len(good), StableSlotBytes)
	}
	open := func(b []byte) (uint64, error) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStableStore(p)
		if err != nil {
			return 0, err
		}
		defer s.Close()
		return s.GetUint64([]byte("CurrentTerm"))
	}
	used := len(bytes.TrimRight(good[:StableSlotBytes], "\x00")) // the rest is padding
	for i := range used {
		for _, at := range []int{i, StableSlotBytes + i} {
			bad := bytes.Clone(good)
			bad[at] ^= 1
			if v, err := open(bad); err != nil || v != 3 {
				t.Fatalf("flipped byte %d: term %d, %v; want 3 from the other slot", at, v, err)
			}
		}
		bad := bytes.Clone(good)
		bad[i] ^= 1
		bad[StableSlotBytes+i] ^= 1
		if _, err := open(bad); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("flipped byte %d of both slots: %v", i, err)
		}
	}
	for _, n := range []int{0, 5, used - 1} {
		if _, err := open(good[:n]); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
	}
	// Cut inside the second slot (a crash creating the file cannot do
	// that: it is renamed into place whole): the first slot is enough, and
	// the file is restored to its size.
	if v, err := open(good[:StableSlotBytes+5]); err != nil || v != 3 {
		t.Fatalf("second slot cut: %d, %v", v, err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 2*StableSlotBytes {
		t.Fatalf("size %d after reopening, want %d", fi.Size(), 2*StableSlotBytes)
	}
	// A crash between the two writes of a Set: the first slot is newer.
	s, _ = OpenStableStore(p)
	s.SetUint64([]byte("CurrentTerm"), 4)
	s.Close()
	newer, _ := os.ReadFile(p)
	torn := append(bytes.Clone(newer[:StableSlotBytes]), good[StableSlotBytes:]...)
	if v, err := open(torn); err != nil || v != 4 {
		t.Fatalf("second write lost: term %d, %v; want 4", v, err)
	}
	// ... and a crash during the first write leaves the old state.
	torn = append(bytes.Clone(newer[:20]), good[20:]...)
	if v, err := open(torn); err != nil || v != 3 {
		t.Fatalf("first write torn: term %d, %v; want 3", v, err)
	}
	// A crash creating the file leaves a temporary file, never a store.
	open(good)
	os.WriteFile(filepath.Join(dir, ".stable.tmp-1"), []byte("half"), 0o644)
	if v, err := open(good); err != nil || v != 3 {
		t.Fatalf("term %d, %v", v, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".stable.tmp-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file left behind")
	}
}

// A version 1 file (the whole store, rewritten through a temporary file)
// is converted on Open.
func TestStableStoreConvertsVersion1(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stable")
	v1 := append([]byte("PLSTABLE"), 0, 1, 0, 0, 0, 1) // version 1, one key
	v1 = binary.BigEndian.AppendUint32(v1, 11)
	v1 = append(v1, "CurrentTerm"...)
	v1 = binary.BigEndian.AppendUint32(v1, 8)
	v1 = binary.BigEndian.AppendUint64(v1, 9)
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, castagnoli))
	if err := os.WriteFile(p, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // converted, then opened as version 2
		s, err := OpenStableStore(p)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
			t.Fatalf("term %d, %v; want 9", v, err)
		}
		s.Close()
		if fi, _ := os.Stat(p); fi.Size() != 2*StableSlotBytes {
			t.Fatalf("size %d, want %d", fi.Size(), 2*StableSlotBytes)
		}
	}
	v1[len(v1)-1] ^= 1
	os.WriteFile(p, v1, 0o644)
	if _, err := OpenStableStore(p); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("damaged version 1 file: %v", err)
	}
}

func TestStableStoreRejectsOversizedState(t *testing.T) {
	s, err := OpenStableStore(filepath.Join(t.TempDir(), "stable"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set([]byte("k"), make([]byte, StableSlotBytes)); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Fatalf("Set of a value larger than a slot: %v", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("the refused value is stored: %v", err)
	}
}

// Raft panics when it cannot record a new term or vote: on a full disk the
// store still takes changes, since it only overwrites its own blocks.
func TestStableStoreOnFullDisk(t *testing.T) {
	testutil.InTmpfs(t, 1<<20, func(dir string) {
		p := filepath.Join(dir, "stable")
		s, err := OpenStableStore(p)
		if err != nil {
			t.Fatal(err)
		}
		testutil.FillDisk(t, filepath.Join(dir, "filler"))
		for term := range uint64(20) {
			if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
				t.Fatalf("SetUint64 on a full disk: %v", err)
			}
			if err := s.Set([]byte("LastVoteCand"), []byte("node-1")); err != nil {
				t.Fatalf("Set on a full disk: %v", err)
			}
		}
		s.Close()
		s, err = OpenStableStore(p)
		if err != nil {
			t.Fatalf("reopen on a full disk: %v", err)
		}
		defer s.Close()
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 19 {
			t.Fatalf("term %d, %v; want 19", v, err)
		}
	})
}
