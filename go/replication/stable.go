package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// StableStore is Raft's durable key-value store (current term, last vote) in
// one small file of two fixed-size slots, each holding the whole store.
// The file is created whole (temporary file, fsync, rename, directory
// fsync) and from then on only overwritten in place: a change is written to
// one slot and fsynced, then to the other and fsynced. Rewriting blocks the
// file already has needs no new ones, so Raft can still record a term or a
// vote when the disk is full (hashicorp/raft panics when it cannot) — on
// file systems that overwrite in place (ext4, xfs, tmpfs; not copy-on-write
// ones such as btrfs or zfs). Raft writes it only when the term or a vote
// changes, so two small writes and fsyncs per change are cheap.
//
// Recovery: a crash tears at most the slot being written, and the other
// holds the previous or the new state, both complete; so Open uses the
// valid slot with the higher sequence number. A damaged slot at rest is
// harmless too, since both hold the latest state between changes; two
// damaged slots fail with ErrBadEncoding.
//
// It replaces raft-boltdb/v2, which the design called for: v2.3.1 (the
// latest) imports github.com/hashicorp/go-metrics/compat, a package that
// go-metrics v0.7.0 — required by raft v1.8.0 and serf v0.11.0 — no longer
// has, so the two cannot be built together; the older raft-boltdb (v1)
// depends on the unmaintained boltdb/bolt. Raft needs three small values,
// which a checksummed file holds as durably.
//
// File format: two StableSlotBytes slots. A slot (big-endian): magic
// "PLSTABLE", version uint16 (2), sequence number uint64, count uint32,
// then count times (key length uint32, key, value length uint32, value),
// keys sorted, then a CRC32C of everything before it, then zeros. Version
// 1, the whole store in one file rewritten through a temporary file, is
// converted on Open. A Set whose store no longer fits in a slot fails.
type StableStore struct {
	path string
	mu   sync.Mutex
	f    *os.File
	kv   map[string][]byte
	seq  uint64 // of the latest state, in both slots
}

var _ raft.StableStore = (*StableStore)(nil)

var stableMagic = []byte("PLSTABLE")

const (
	stableVersionV1 = 1 // one file, rewritten whole
	stableVersion   = 2 // two slots, rewritten in place
	// StableSlotBytes is the size of each of the stable store file's two
	// slots: Raft's term, vote term and candidate ID take well under 200.
	StableSlotBytes = 4096
)

// OpenStableStore opens (or creates) the stable store file at path.
func OpenStableStore(path string) (*StableStore, error) {
	s := &StableStore{path: path, kv: map[string][]byte{}}
	removeTemps(path)
	b, err := os.ReadFile(path)
	rewrite := len(b) != 2*StableSlotBytes // create, convert or restore the size
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("replication: open stable store: %w", err)
	case len(b) >= len(stableMagic)+2 && binary.BigEndian.Uint16(b[len(stableMagic):]) == stableVersionV1:
		if s.kv, err = decodeStable(b); err != nil {
			return nil, fmt.Errorf("replication: stable store %s: %w", path, err)
		}
	default:
		if s.kv, s.seq, err = decodeSlots(b); err != nil {
			return nil, fmt.Errorf("replication: stable store %s: %w", path, err)
		}
	}
	if rewrite {
		slot, err := encodeSlot(s.kv, s.seq)
		if err != nil {
			return nil, fmt.Errorf("replication: stable store %s: %w", path, err)
		}
		if err := writeFileAtomic(path, append(slot, slot...)); err != nil {
			return nil, fmt.Errorf("replication: create stable store: %w", err)
		}
	}
	if s.f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("replication: open stable store: %w", err)
	}
	return s, nil
}

// decodeSlots returns the state of the valid slot with the higher sequence
// number.
func decodeSlots(b []byte) (map[string][]byte, uint64, error) {
	if len(b) < 2*StableSlotBytes {
		b = append(b, make([]byte, 2*StableSlotBytes-len(b))...)
	}
	kv0, seq0, err0 := decodeSlot(b[:StableSlotBytes])
	kv1, seq1, err1 := decodeSlot(b[StableSlotBytes : 2*StableSlotBytes])
	switch {
	case err0 != nil && err1 != nil:
		return nil, 0, fmt.Errorf("both slots damaged: %w; %w", err0, err1)
	case err1 != nil || err0 == nil && seq0 >= seq1:
		return kv0, seq0, nil
	default:
		return kv1, seq1, nil
	}
}

// decodeSlot decodes one slot of a version 2 file.
func decodeSlot(b []byte) (map[string][]byte, uint64, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadEncoding, what) }
	hdr := len(stableMagic) + 2 + 8 + 4
	if !bytes.Equal(b[:len(stableMagic)], stableMagic) {
		return nil, 0, bad("not a stable store slot")
	}
	if v := binary.BigEndian.Uint16(b[len(stableMagic):]); v != stableVersion {
		return nil, 0, bad(fmt.Sprintf("version %d, want %d", v, stableVersion))
	}
	seq := binary.BigEndian.Uint64(b[len(stableMagic)+2:])
	n := binary.BigEndian.Uint32(b[hdr-4:])
	kv, p, ok := decodeEntries(b[hdr:], n)
	if !ok {
		return nil, 0, bad("truncated entry")
	}
	end := len(b) - len(p)
	if len(p) < 4 || crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(p) {
		return nil, 0, bad("checksum mismatch")
	}
	return kv, seq, nil
}

// decodeEntries decodes n key/value pairs, each a big-endian uint32 length
// and the bytes, from the start of p, and returns the rest of p; ok is
// false if p ends inside an entry.
func decodeEntries(p []byte, n uint32) (kv map[string][]byte, rest []byte, ok bool) {
	field := func() ([]byte, bool) {
		if len(p) < 4 {
			return nil, false
		}
		l := binary.BigEndian.Uint32(p)
		if uint64(l) > uint64(len(p)-4) {
			return nil, false
		}
		v := slices.Clone(p[4 : 4+l])
		p = p[4+l:]
		return v, true
	}
	kv = make(map[string][]byte, min(n, StableSlotBytes/8))
	for range n {
		k, ok1 := field()
		v, ok2 := field()
		if !ok1 || !ok2 {
			return nil, nil, false
		}
		kv[string(k)] = v
	}
	return kv, p, true
}

// encodeSlot encodes kv as a slot with sequence number seq, padded to
// StableSlotBytes.
func encodeSlot(kv map[string][]byte, seq uint64) ([]byte, error) {
	b := make([]byte, 0, StableSlotBytes)
	b = append(b, stableMagic...)
	b = binary.BigEndian.AppendUint16(b, stableVersion)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(kv)))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(kv[k])))
		b = append(b, kv[k]...)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if len(b) > StableSlotBytes {
		return nil, fmt.Errorf("%d bytes of keys and values do not fit in a %d-byte slot", len(b), StableSlotBytes)
	}
	return b[:StableSlotBytes], nil
}

// decodeStable decodes a version 1 file.
func decodeStable(b []byte) (map[string][]byte, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadEncoding, what) }
	if len(b) < len(stableMagic)+2+4+4 || !bytes.Equal(b[:len(stableMagic)], stableMagic) {
		return nil, bad("not a stable store file")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, bad("checksum mismatch")
	}
	p := body[len(stableMagic):]
	if v := binary.BigEndian.Uint16(p); v != stableVersionV1 {
		return nil, bad(fmt.Sprintf("version %d, want %d", v, stableVersionV1))
	}
	n := binary.BigEndian.Uint32(p[2:])
	kv, p, ok := decodeEntries(p[6:], n)
	if !ok {
		return nil, bad("truncated entry")
	}
	if len(p) != 0 {
		return nil, bad("trailing bytes")
	}
	return kv, nil
}

// Set implements raft.StableStore; the value is durable when it returns.
// The new state is written over both slots in place, the first one, fsync,
// then the second one, fsync.
func (s *StableStore) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("replication: stable store: %w", os.ErrClosed)
	}
	next := maps.Clone(s.kv)
	next[string(key)] = slices.Clone(val)
	slot, err := encodeSlot(next, s.seq+1)
	if err != nil {
		return fmt.Errorf("replication: stable store: set %q: %w", key, err)
	}
	// Never reuse a sequence number, even after a failed write.
	s.seq++
	for i := range int64(2) {
		if _, err := s.f.WriteAt(slot, i*StableSlotBytes); err != nil {
			return fmt.Errorf("replication: stable store: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("replication: stable store: sync %s: %w", s.path, err)
		}
	}
	s.kv = next
	return nil
}

// Get implements raft.StableStore: ErrKeyNotFound for a missing key.
func (s *StableStore) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return slices.Clone(v), nil
}

// SetUint64 implements raft.StableStore.
func (s *StableStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore: 0 for a missing key.
func (s *StableStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if errors.Is(err, ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: value of %q is %d bytes, not a uint64", ErrBadEncoding, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close implements io.Closer: it closes the file. Every value is already
// durable.
func (s *StableStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
