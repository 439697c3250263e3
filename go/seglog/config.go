package seglog

import (
	"errors"
	"fmt"
	"time"

	"github.com/proglog/proglog/go/segment"
)

// SyncPolicy says when appended records are fsynced to disk.
type SyncPolicy int

const (
	// SyncAlways (the default) fsyncs the store file before Append or
	// AppendBatch returns: a returned append survives a crash or power
	// loss. Records become visible to readers only after the fsync.
	SyncAlways SyncPolicy = iota
	// SyncInterval fsyncs the active store file every Config.SyncInterval
	// from a background goroutine. A crash loses at most the appends of the
	// last interval. Records are visible as soon as they are written.
	SyncInterval
	// SyncNever leaves flushing to the operating system (records survive a
	// process crash but not necessarily a power loss). Segment creation,
	// sealing, truncation and Close still fsync.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "SyncAlways"
	case SyncInterval:
		return "SyncInterval"
	case SyncNever:
		return "SyncNever"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults used by DefaultConfig and substituted by Open for zero fields.
const (
	DefaultMaxStoreBytes  = 64 << 20 // 64 MiB
	DefaultMaxIndexBytes  = 1 << 20  // 1 MiB = 87381 entries
	DefaultMaxRecordBytes = 1 << 20  // 1 MiB
	DefaultSyncInterval   = time.Second
)

// Config configures a Log. Start from DefaultConfig; Open also treats a zero
// value in Segment.MaxStoreBytes, Segment.MaxIndexBytes, MaxRecordBytes and
// SyncInterval as "use the default", so Config{} is valid.
type Config struct {
	// Segment bounds the size of each segment.
	Segment struct {
		// MaxStoreBytes is the largest a segment's store file may grow,
		// headers and record framing included (each record costs
		// segment.RecordHeaderSize = 8 bytes of framing). When the next
		// append does not fit, the log rolls over to a new segment. An
		// append larger than a whole segment (a big AppendBatch) is split
		// across segments at record boundaries. Default 64 MiB. Must be
		// at least segment.FileHeaderSize + segment.RecordHeaderSize +
		// MaxRecordBytes, so that every record fits in an empty segment.
		MaxStoreBytes uint64

		// MaxIndexBytes is the size of a segment's index file while the
		// segment is open for appending: the file is preallocated to this
		// size and memory-mapped, and trimmed to its used size on a clean
		// close. It bounds the number of records per segment to
		// (MaxIndexBytes - 24) / 12. Default 1 MiB (87381 records). Must
		// hold at least one entry and be at most 4 GiB.
		MaxIndexBytes uint64
	}

	// InitialOffset is the offset of the first record of a new, empty log.
	// It is ignored when Open finds existing segments: the log then
	// continues from what is on disk. Default 0.
	InitialOffset uint64

	// Sync chooses when appends are fsynced; see SyncPolicy. Default
	// SyncAlways.
	Sync SyncPolicy

	// SyncInterval is the period of the background fsync under
	// SyncInterval; ignored under other policies. Default 1s. Must not be
	// negative.
	SyncInterval time.Duration

	// MaxRecordBytes is the largest record Append, AppendBatch and Restore
	// accept; larger ones fail with ErrRecordTooLarge and nothing is
	// written. It also bounds the work of crash recovery. Default 1 MiB.
	// At most 4 GiB - 1 (the record length field is 32 bits).
	MaxRecordBytes uint64

	// Retention bounds what ApplyRetention keeps (and what RetentionOffset
	// computes). It removes whole, sealed segments from the front of the
	// log only; the active segment is never removed. Zero values mean
	// unlimited. Retention is applied only when the owner calls
	// ApplyRetention.
	Retention Retention
}

// Retention limits what a log keeps; zero values mean unlimited.
type Retention struct {
	// MaxBytes: remove the oldest segments while the total store size
	// (see Size) exceeds MaxBytes.
	MaxBytes uint64
	// MaxAge: remove the oldest segments whose last append (store file
	// modification time) is older than now - MaxAge. Must not be
	// negative.
	MaxAge time.Duration
}

// DefaultConfig returns the documented defaults: 64 MiB stores, 1 MiB
// indexes, 1 MiB records, SyncAlways, no retention, InitialOffset 0.
func DefaultConfig() Config {
	var c Config
	c.Segment.MaxStoreBytes = DefaultMaxStoreBytes
	c.Segment.MaxIndexBytes = DefaultMaxIndexBytes
	c.MaxRecordBytes = DefaultMaxRecordBytes
	c.Sync = SyncAlways
	c.SyncInterval = DefaultSyncInterval
	return c
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Segment.MaxStoreBytes == 0 {
		c.Segment.MaxStoreBytes = DefaultMaxStoreBytes
	}
	if c.Segment.MaxIndexBytes == 0 {
		c.Segment.MaxIndexBytes = DefaultMaxIndexBytes
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	return c
}

// maxIndexBytesLimit keeps relative offsets within 32 bits and the mapping
// size within reason.
const maxIndexBytesLimit = 4 << 30

// Validate reports every problem with c, joined (errors.Join), after
// substituting defaults for zero fields as Open does; nil if c is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	minIndex := uint64(segment.FileHeaderSize + segment.IndexEntryWidth)
	if c.Segment.MaxIndexBytes < minIndex {
		errs = append(errs, fmt.Errorf("seglog: Config.Segment.MaxIndexBytes is %d, must be at least %d (header + one entry)",
			c.Segment.MaxIndexBytes, minIndex))
	}
	if c.Segment.MaxIndexBytes > maxIndexBytesLimit {
		errs = append(errs, fmt.Errorf("seglog: Config.Segment.MaxIndexBytes is %d, must be at most %d (4 GiB)",
			c.Segment.MaxIndexBytes, uint64(maxIndexBytesLimit)))
	}
	if c.MaxRecordBytes > segment.MaxRecordLen {
		errs = append(errs, fmt.Errorf("seglog: Config.MaxRecordBytes is %d, must be at most %d (32-bit length field)",
			c.MaxRecordBytes, uint64(segment.MaxRecordLen)))
	}
	minStore := uint64(segment.FileHeaderSize+segment.RecordHeaderSize) + c.MaxRecordBytes
	if c.Segment.MaxStoreBytes < minStore {
		errs = append(errs, fmt.Errorf("seglog: Config.Segment.MaxStoreBytes is %d, must be at least %d (headers + MaxRecordBytes %d) so every record fits in an empty segment",
			c.Segment.MaxStoreBytes, minStore, c.MaxRecordBytes))
	}
	switch c.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		errs = append(errs, fmt.Errorf("seglog: Config.Sync is %v, must be SyncAlways, SyncInterval or SyncNever", c.Sync))
	}
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("seglog: Config.SyncInterval is %v, must not be negative", c.SyncInterval))
	}
	if c.Retention.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("seglog: Config.Retention.MaxAge is %v, must not be negative", c.Retention.MaxAge))
	}
	return errors.Join(errs...)
}
