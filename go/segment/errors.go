package segment

import (
	"errors"
	"fmt"
)

// Sentinel errors returned (possibly wrapped) by this package.
var (
	// ErrCorrupt: on-disk data failed validation. The concrete error is
	// *CorruptionError.
	ErrCorrupt = errors.New("corrupt data")

	// ErrClosed: the segment (or file) was closed.
	ErrClosed = errors.New("segment: closed")

	// ErrFull: the append does not fit in the segment's store or index.
	// Roll over to a new segment.
	ErrFull = errors.New("segment: full")

	// ErrReadOnly: the segment was opened (or sealed) read-only.
	ErrReadOnly = errors.New("segment: read-only")

	// ErrNotFound: the offset is not in this segment (or not yet visible).
	ErrNotFound = errors.New("segment: offset not found")

	// ErrNotWritten: Append's store write failed and was undone (the
	// store cut back to its size before the call): the segment is as it
	// was, and appending may go on. It wraps the write's error (for
	// instance syscall.ENOSPC on a full disk).
	ErrNotWritten = errors.New("segment: append not written")
)

// CorruptionError describes corrupt on-disk data: the file, the byte
// position in it and what was wrong. errors.Is(err, ErrCorrupt) is true.
type CorruptionError struct {
	Path     string // file holding the bad data
	Position int64  // byte position of the bad record or header in Path
	Reason   string // what failed, e.g. "checksum mismatch"
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("corrupt data in %s at byte %d: %s", e.Path, e.Position, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(path string, pos int64, format string, args ...any) error {
	return &CorruptionError{Path: path, Position: pos, Reason: fmt.Sprintf(format, args...)}
}
