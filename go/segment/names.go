package segment

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File name suffixes. Segment files are named by their zero-padded base
// offset: "%020d.store" and "%020d.index".
const (
	StoreSuffix = ".store"
	IndexSuffix = ".index"
	nameDigits  = 20
	// TornInfix joins a store's name and a Unix time in nanoseconds to
	// name the side file that keeps the bytes recovery cut off that store:
	// "00000000000000000042.store.torn.1733500000000000000".
	TornInfix = ".torn."
)

// StoreName returns the file name of the store of the segment with base
// offset base, e.g. "00000000000000000042.store".
func StoreName(base uint64) string { return fmt.Sprintf("%020d%s", base, StoreSuffix) }

// IndexName returns the file name of the index of the segment with base
// offset base.
func IndexName(base uint64) string { return fmt.Sprintf("%020d%s", base, IndexSuffix) }

// StorePath is filepath.Join(dir, StoreName(base)).
func StorePath(dir string, base uint64) string { return filepath.Join(dir, StoreName(base)) }

// IndexPath is filepath.Join(dir, IndexName(base)).
func IndexPath(dir string, base uint64) string { return filepath.Join(dir, IndexName(base)) }

// ParseName parses a segment file name. It accepts exactly the names
// StoreName and IndexName produce and reports which kind it is.
func ParseName(name string) (base uint64, isStore bool, ok bool) {
	var stem string
	switch {
	case strings.HasSuffix(name, StoreSuffix):
		stem, isStore = strings.TrimSuffix(name, StoreSuffix), true
	case strings.HasSuffix(name, IndexSuffix):
		stem = strings.TrimSuffix(name, IndexSuffix)
	default:
		return 0, false, false
	}
	if len(stem) != nameDigits {
		return 0, false, false
	}
	for _, c := range stem {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	base, err := strconv.ParseUint(stem, 10, 64)
	if err != nil {
		return 0, false, false // above MaxUint64
	}
	return base, isStore, true
}

// TornPath returns the path of the side file that keeps the bytes cut off
// the store at storePath at time t (see TornInfix).
func TornPath(storePath string, t time.Time) string {
	return storePath + TornInfix + strconv.FormatInt(t.UnixNano(), 10)
}

// IsTornName reports whether name is the name of a torn-tail side file
// (TornPath) of a segment store.
func IsTornName(name string) bool {
	store, nanos, ok := strings.Cut(name, TornInfix)
	if !ok || nanos == "" || strings.Trim(nanos, "0123456789") != "" {
		return false
	}
	_, isStore, ok := ParseName(store)
	return ok && isStore
}
