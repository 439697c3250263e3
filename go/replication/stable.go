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
// one small file, rewritten atomically on every change (temporary file,
// fsync, rename, directory fsync). Raft writes it only when the term or a
// vote changes, so rewriting the whole file is cheap.
//
// It replaces raft-boltdb/v2, which the design called for: v2.3.1 (the
// latest) imports github.com/hashicorp/go-metrics/compat, a package that
// go-metrics v0.7.0 — required by raft v1.8.0 and serf v0.11.0 — no longer
// has, so the two cannot be built together; the older raft-boltdb (v1)
// depends on the unmaintained boltdb/bolt. Raft needs three small values,
// which a checksummed file holds as durably.
//
// File format (big-endian): magic "PLSTABLE", version uint16 (1), count
// uint32, then count times (key length uint32, key, value length uint32,
// value), keys sorted, then a CRC32C of everything before it.
type StableStore struct {
	path string
	mu   sync.Mutex
	kv   map[string][]byte
}

var _ raft.StableStore = (*StableStore)(nil)

var stableMagic = []byte("PLSTABLE")

const stableVersion = 1

// OpenStableStore opens (or creates) the stable store file at path.
func OpenStableStore(path string) (*StableStore, error) {
	s := &StableStore{path: path, kv: map[string][]byte{}}
	removeTemps(path)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication: open stable store: %w", err)
	}
	if s.kv, err = decodeStable(b); err != nil {
		return nil, fmt.Errorf("replication: stable store %s: %w", path, err)
	}
	return s, nil
}

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
	if v := binary.BigEndian.Uint16(p); v != stableVersion {
		return nil, bad(fmt.Sprintf("version %d, want %d", v, stableVersion))
	}
	n := binary.BigEndian.Uint32(p[2:])
	p = p[6:]
	kv := make(map[string][]byte, n)
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
	for range n {
		k, ok1 := field()
		v, ok2 := field()
		if !ok1 || !ok2 {
			return nil, bad("truncated entry")
		}
		kv[string(k)] = v
	}
	if len(p) != 0 {
		return nil, bad("trailing bytes")
	}
	return kv, nil
}

func encodeStable(kv map[string][]byte) []byte {
	b := slices.Clone(stableMagic)
	b = binary.BigEndian.AppendUint16(b, stableVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(kv)))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(kv[k])))
		b = append(b, kv[k]...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Set implements raft.StableStore; the value is durable when it returns.
func (s *StableStore) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.kv)
	next[string(key)] = slices.Clone(val)
	if err := writeFileAtomic(s.path, encodeStable(next)); err != nil {
		return fmt.Errorf("replication: stable store: %w", err)
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

// Close implements io.Closer; every value is already durable.
func (s *StableStore) Close() error { return nil }
