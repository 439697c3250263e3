package replication

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
)

// Encodings. Every encoded form starts with a version (or type) byte so
// that it can evolve; decoders reject what they do not know with
// ErrBadEncoding. Integers are unsigned varints (encoding/binary) unless
// noted.
//
// Raft entry, stored in the Raft log store at offset == index:
//
//	byte     entryVersion (1)
//	uvarint  index
//	uvarint  term
//	byte     type (raft.LogType)
//	uvarint  len(data), data
//	uvarint  len(extensions), extensions
//	varint   appended_at, Unix nanoseconds (0 = zero time)
//
// Command, the data of a raft.LogCommand entry: a batch of records, always
// applied whole (the proposer decided everything before raft.Apply),
//
//	byte     command type: cmdRecords (5)
//	uvarint  first: the offset of the first record, the end offset of the
//	         previous records command (a check: see fsm.ApplyBatch)
//	uvarint  term: the leader term the proposer proposed it in
//	byte     producer: 0 none, 1 the next six fields follow
//	[8]byte  producer ID, big-endian (not 0)
//	uvarint  sequence of the first record
//	[4]byte  checksum of the records as the client sent them, big-endian
//	uvarint  producer limits: expiry (ns), evict after (ns), max producers
//	uvarint  n, the number of records (at least 1)
//	n times: uvarint len(record), record
//
// or a retention command (the new lowest offset agreed by the cluster):
//
//	byte     command type: cmdRetain (2)
//	uvarint  lowest: every replica drops the records below it
//
// The command types 1, 3 and 4 of the single-log layout (records without
// offsets, applied into a separate data log) are not decoded: New refuses
// that layout (ErrOldLayout).
//
// Snapshot (the FSM's small state, see fsm.go):
//
//	[8]byte  magic "PLREPSNP"
//	[2]byte  version (5), big-endian
//	[2]byte  reserved (0)
//	[4]byte  CRC32C of bytes [0:12) and [16:56), big-endian
//	[8]byte  applied: the last Raft index applied, big-endian
//	[8]byte  next: the offset the next record gets, big-endian
//	[8]byte  lowest: the agreed lowest offset, big-endian
//	[8]byte  first entry: the Raft index of the first entry the stream
//	         carries (0: none), big-endian
//	[8]byte  the term of entry applied, big-endian: 0 in a snapshot
//	         this node took (its own log holds everything before it)
//	         the producer table section
//	         with a first entry: the Raft entries [first entry, applied]
//	         as a go/seglog snapshot stream (go/seglog's snapshot.go: a
//	         header, then per entry its offset, length, CRC32C and
//	         encoding) — in a snapshot sent to a follower (see
//	         snapshots.go); one this node took has none.
//
// The producer table section (the idempotent producers' state as of the
// snapshot's applied index, see go/producer) is:
//
//	[4]byte  length of the table, big-endian
//	         the table, go/producer's encoding
//	[4]byte  CRC32C of the table, big-endian
const (
	entryVersion    = 1
	cmdRetain       = 2
	cmdRecords      = 5
	snapshotVersion = 5

	snapshotHeaderSize = 56
	// maxEntryOverhead bounds the bytes an entry encoding adds to its data
	// (with empty extensions).
	maxEntryOverhead = 2 + 6*binary.MaxVarintLen64
	// maxCommandOverhead bounds the bytes a records command adds to its
	// records, apart from each record's length prefix.
	maxCommandOverhead = 1 + 1 + 8 + 4 + 6*binary.MaxVarintLen64
)

var (
	snapshotMagic = [8]byte{'P', 'L', 'R', 'E', 'P', 'S', 'N', 'P'}
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
)

// encodeEntry encodes a raft entry.
func encodeEntry(l *raft.Log) []byte {
	return appendEntry(make([]byte, 0, maxEntryOverhead+len(l.Data)+len(l.Extensions)), l)
}

// appendEntry appends the encoding of a raft entry to b.
func appendEntry(b []byte, l *raft.Log) []byte {
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	return b
}

// decoder reads the fields of an encoding, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEncoding, what)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed field, aliasing the input (nil if empty).
func (d *decoder) bytes(what string) []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail(what + " length") // built only on failure: this is the hot path
		return nil
	}
	d.b = d.b[k:]
	if n > uint64(len(d.b)) {
		d.fail(what + " longer than the encoding")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return v
}

func (d *decoder) end(what string) {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes after %s", len(d.b), what))
	}
}

// decodeEntry decodes a raft entry into l; Data and Extensions alias b.
func decodeEntry(b []byte, l *raft.Log) error {
	d := decoder{b: b}
	if v := d.byte("entry version"); d.err == nil && v != entryVersion {
		return fmt.Errorf("%w: raft entry version %d, want %d", ErrBadEncoding, v, entryVersion)
	}
	l.Index = d.uvarint("index")
	l.Term = d.uvarint("term")
	l.Type = raft.LogType(d.byte("type"))
	l.Data = d.bytes("data")
	l.Extensions = d.bytes("extensions")
	at := d.varint("appended_at")
	d.end("raft entry")
	if d.err != nil {
		return d.err
	}
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	return nil
}

// Producer makes an append idempotent (log.proto's Producer): ID 0 is no
// producer.
type Producer struct {
	ID       uint64
	Sequence uint64
	// Checksum is go/producer's Checksum of the records as the client
	// sent them (go/server computes it before stamping timestamps): a
	// retry at a retained sequence is a duplicate only if it matches.
	Checksum uint32
}

// recordsCommand is a records command. recs is nil when only the header
// was decoded (decodeCommandHeader); lim is zero without a producer.
type recordsCommand struct {
	first, term, count uint64
	p                  Producer
	lim                producer.Config
	recs               [][]byte
}

// commandSize is the encoded size of a records command of records.
func commandSize(records [][]byte) int {
	n := maxCommandOverhead
	for _, r := range records {
		n += binary.MaxVarintLen64 + len(r)
	}
	return n
}

// encodeRecords encodes a records command: records at offsets from first,
// proposed in term, from producer p (ID 0: none) decided with limits lim.
func encodeRecords(first, term uint64, p Producer, lim producer.Config, records [][]byte) []byte {
	b := make([]byte, 0, commandSize(records))
	b = append(b, cmdRecords)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, term)
	if p.ID == 0 {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, p.ID)
		b = binary.AppendUvarint(b, p.Sequence)
		b = binary.BigEndian.AppendUint32(b, p.Checksum)
		b = binary.AppendUvarint(b, uint64(lim.Expiry))
		b = binary.AppendUvarint(b, uint64(lim.EvictAfter))
		b = binary.AppendUvarint(b, uint64(lim.MaxProducers))
	}
	b = binary.AppendUvarint(b, uint64(len(records)))
	for _, r := range records {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// isRecords reports whether command b is a records command.
func isRecords(b []byte) bool { return len(b) > 0 && b[0] == cmdRecords }

// decodeCommandHeader decodes a records command up to its record count;
// d is left at the first record.
func decodeCommandHeader(b []byte) (recordsCommand, decoder, error) {
	d := decoder{b: b}
	if t := d.byte("command type"); d.err == nil && t != cmdRecords {
		return recordsCommand{}, d, fmt.Errorf("%w: command type %d is not a records command", ErrBadEncoding, t)
	}
	var c recordsCommand
	c.first = d.uvarint("first offset")
	c.term = d.uvarint("term")
	switch has := d.byte("producer flag"); {
	case d.err != nil:
	case has > 1:
		d.fail(fmt.Sprintf("producer flag %d", has))
	case has == 1:
		if len(d.b) < 8 {
			d.fail("producer ID")
			break
		}
		c.p.ID = binary.BigEndian.Uint64(d.b)
		d.b = d.b[8:]
		if c.p.ID == 0 {
			d.fail("producer ID 0")
		}
		c.p.Sequence = d.uvarint("sequence")
		if d.err == nil && len(d.b) < 4 {
			d.fail("checksum")
		}
		if d.err == nil {
			c.p.Checksum = binary.BigEndian.Uint32(d.b)
			d.b = d.b[4:]
		}
		exp, evict, maxp := d.uvarint("expiry"), d.uvarint("evict after"), d.uvarint("max producers")
		if d.err == nil && (exp > math.MaxInt64 || evict > math.MaxInt64 || maxp > producer.MaxMaxProducers) {
			d.fail("producer limits")
		}
		if d.err == nil {
			c.lim = producer.Config{Expiry: time.Duration(exp), EvictAfter: time.Duration(evict), MaxProducers: int(maxp)}
			if err := c.lim.Validate(); err != nil {
				d.fail(fmt.Sprintf("producer limits (%v)", err))
			}
		}
	}
	c.count = d.uvarint("record count")
	switch {
	case d.err != nil:
	case c.count == 0 || c.count > uint64(len(d.b)):
		d.fail(fmt.Sprintf("record count %d", c.count))
	case c.first > ^uint64(0)-c.count:
		d.fail(fmt.Sprintf("first offset %d of %d records overflows", c.first, c.count))
	case c.p.Sequence > ^uint64(0)-c.count:
		d.fail(fmt.Sprintf("sequence %d of %d records overflows", c.p.Sequence, c.count))
	}
	if d.err != nil {
		return recordsCommand{}, d, d.err
	}
	return c, d, nil
}

// commandRecord returns record pos of records command b (aliasing b).
func commandRecord(b []byte, pos uint64) ([]byte, error) {
	c, d, err := decodeCommandHeader(b)
	if err != nil {
		return nil, err
	}
	if pos >= c.count {
		return nil, fmt.Errorf("%w: record %d of a command of %d", ErrBadEncoding, pos, c.count)
	}
	var r []byte
	for range pos + 1 {
		r = d.bytes("record")
	}
	if d.err != nil {
		return nil, d.err
	}
	if r == nil {
		r = []byte{}
	}
	return r, nil
}

// encodeRetain encodes a retention command.
func encodeRetain(lowest uint64) []byte {
	return binary.AppendUvarint([]byte{cmdRetain}, lowest)
}

// isRetain reports whether command b is a retention command.
func isRetain(b []byte) bool { return len(b) > 0 && b[0] == cmdRetain }

// decodeRetain decodes a retention command.
func decodeRetain(b []byte) (lowest uint64, err error) {
	d := decoder{b: b}
	if t := d.byte("command type"); d.err == nil && t != cmdRetain {
		return 0, fmt.Errorf("%w: command type %d is not a retention command", ErrBadEncoding, t)
	}
	lowest = d.uvarint("lowest offset")
	d.end("retention command")
	return lowest, d.err
}

// snapshotHeader is the FSM's small state as a snapshot holds it;
// firstEntry is the first Raft entry the stream carries (0: none).
type snapshotHeader struct {
	applied, next, lowest, firstEntry, appliedTerm uint64
}

func snapshotHeaderCRC(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[0:12], castagnoli), castagnoli, b[16:])
}

// encodeSnapshot encodes a snapshot's header and producer table section
// (the entries, if any, follow).
func encodeSnapshot(h snapshotHeader, table []byte) []byte {
	b := make([]byte, snapshotHeaderSize, snapshotHeaderSize+tableSectionOverhead+len(table))
	copy(b[0:8], snapshotMagic[:])
	binary.BigEndian.PutUint16(b[8:10], snapshotVersion)
	binary.BigEndian.PutUint64(b[16:24], h.applied)
	binary.BigEndian.PutUint64(b[24:32], h.next)
	binary.BigEndian.PutUint64(b[32:40], h.lowest)
	binary.BigEndian.PutUint64(b[40:48], h.firstEntry)
	binary.BigEndian.PutUint64(b[48:56], h.appliedTerm)
	binary.BigEndian.PutUint32(b[12:16], snapshotHeaderCRC(b))
	return appendTableSection(b, table)
}

// decodeSnapshotHeader decodes a snapshot's snapshotHeaderSize-byte header.
func decodeSnapshotHeader(b []byte) (snapshotHeader, error) {
	if len(b) != snapshotHeaderSize || [8]byte(b[0:8]) != snapshotMagic {
		return snapshotHeader{}, fmt.Errorf("%w: not a replication snapshot", ErrBadEncoding)
	}
	if v := binary.BigEndian.Uint16(b[8:10]); v != snapshotVersion {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot version %d, want %d (snapshots of the single-log layout are not read)", ErrBadEncoding, v, snapshotVersion)
	}
	if binary.BigEndian.Uint32(b[12:16]) != snapshotHeaderCRC(b) {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot header checksum mismatch", ErrBadEncoding)
	}
	h := snapshotHeader{
		applied:     binary.BigEndian.Uint64(b[16:24]),
		next:        binary.BigEndian.Uint64(b[24:32]),
		lowest:      binary.BigEndian.Uint64(b[32:40]),
		firstEntry:  binary.BigEndian.Uint64(b[40:48]),
		appliedTerm: binary.BigEndian.Uint64(b[48:56]),
	}
	if h.lowest > h.next || (h.firstEntry != 0 && h.firstEntry > h.applied) {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot of offsets [%d, %d), entries from %d to %d", ErrBadEncoding, h.lowest, h.next, h.firstEntry, h.applied)
	}
	return h, nil
}

// tableSectionOverhead is what a producer table section adds to the table.
const tableSectionOverhead = 8

// appendTableSection appends a producer table section holding table to b.
func appendTableSection(b, table []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(table)))
	b = append(b, table...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(table, castagnoli))
}

// readTableSection reads a producer table section from r and returns the
// table, refusing (before reading it) one longer than any valid producer
// limits allow (go/producer's MaxEncodedSize: the limits are the leader's,
// not this node's).
func readTableSection(r io.Reader) ([]byte, error) {
	const limit = producer.MaxEncodedSize
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("producer table length: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if uint64(size) > limit {
		return nil, fmt.Errorf("%w: producer table of %d bytes, at most %d", ErrBadEncoding, size, limit)
	}
	b := make([]byte, int(size)+4)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("producer table: %w", err)
	}
	table := b[:size]
	if binary.BigEndian.Uint32(b[size:]) != crc32.Checksum(table, castagnoli) {
		return nil, fmt.Errorf("%w: producer table checksum mismatch", ErrBadEncoding)
	}
	return table, nil
}
