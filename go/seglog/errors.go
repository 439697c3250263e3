package seglog

import (
	"errors"
	"fmt"

	"github.com/proglog/proglog/go/segment"
)

// Sentinel errors returned (possibly wrapped) by Log methods. Test for them
// with errors.Is.
var (
	// ErrOffsetOutOfRange: the requested offset is below LowestOffset or at
	// or above NextOffset. The concrete error is *OffsetOutOfRangeError.
	ErrOffsetOutOfRange = errors.New("seglog: offset out of range")

	// ErrCorrupt: on-disk data failed validation (bad checksum, bad header,
	// impossible length, gap between segments). The concrete error is
	// *CorruptionError, naming the file and byte position. It is the same
	// value as segment.ErrCorrupt.
	ErrCorrupt = segment.ErrCorrupt

	// ErrClosed: the Log was closed (or removed). Wait returns it when the
	// log is closed while waiting.
	ErrClosed = errors.New("seglog: closed")

	// ErrRecordTooLarge: a record is longer than Config.MaxRecordBytes.
	// Nothing was written.
	ErrRecordTooLarge = errors.New("seglog: record too large")

	// ErrFailed: an earlier write, fsync or truncation failed, so the state
	// of the files is unknown (after a failed fsync the kernel may have
	// dropped the dirty pages). Every later Append, AppendBatch and
	// truncation fails with this error; Close and reopen the Log, which runs
	// crash recovery. A full disk (ENOSPC) that left nothing written is not
	// such a failure — a roll-over that cannot create the new segment, or
	// a store write the segment undid — and the next append tries again.
	ErrFailed = errors.New("seglog: failed after an I/O error; close and reopen")

	// ErrSnapshotInvalidated: TruncateAfter removed records that an open
	// Reader stream had promised to deliver.
	ErrSnapshotInvalidated = errors.New("seglog: snapshot invalidated by TruncateAfter")

	// ErrBadSnapshot: Restore was given a stream that is not a valid
	// snapshot (bad magic, version, checksum, sequence or count).
	ErrBadSnapshot = errors.New("seglog: bad snapshot stream")

	// ErrNotEmpty: Restore was pointed at a directory that already holds
	// log files.
	ErrNotEmpty = errors.New("seglog: directory not empty")

	// ErrLocked: another Log (in this or another process) has the
	// directory open.
	ErrLocked = errors.New("seglog: directory is locked by another Log")

	// ErrUnknownFiles: Open found files in the log directory whose names it
	// does not recognise. The concrete error lists them.
	ErrUnknownFiles = errors.New("seglog: unrecognised files in log directory")
)

// OffsetOutOfRangeError is returned by Read for an offset outside
// [Lowest, Next). errors.Is(err, ErrOffsetOutOfRange) is true.
type OffsetOutOfRangeError struct {
	Offset uint64 // the requested offset
	Lowest uint64 // LowestOffset at the time of the call
	Next   uint64 // NextOffset at the time of the call
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("seglog: offset %d out of range [%d, %d)", e.Offset, e.Lowest, e.Next)
}

// Is reports whether target is ErrOffsetOutOfRange.
func (e *OffsetOutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// CorruptionError describes on-disk corruption: the file, the byte position
// in it and what was wrong. errors.Is(err, ErrCorrupt) is true. It is the
// same type as segment.CorruptionError.
type CorruptionError = segment.CorruptionError

// UnknownFilesError lists files Open did not recognise.
// errors.Is(err, ErrUnknownFiles) is true.
type UnknownFilesError struct {
	Dir   string
	Names []string
}

func (e *UnknownFilesError) Error() string {
	return fmt.Sprintf("seglog: unrecognised files in %s: %q", e.Dir, e.Names)
}

// Is reports whether target is ErrUnknownFiles.
func (e *UnknownFilesError) Is(target error) bool { return target == ErrUnknownFiles }
