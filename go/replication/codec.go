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
// Command, the data of a raft.LogCommand entry:
//
//	byte     command type: cmdAppend (1)
//	uvarint  n, the number of records (at least 1)
//	n times: uvarint len(record), record
//
// or a retention command (the new lowest offset agreed by the cluster):
//
//	byte     command type: cmdRetain (2)
//	uvarint  lowest: every replica drops the records below it
//
// or an idempotent append (log.proto's Producer; cmdAppend is the append
// of a request without a producer), carrying the leader's producer limits
// (go/producer's Config, valid) with which every replica decides it:
//
//	byte     command type: cmdAppendLimited (4)
//	[8]byte  producer ID, big-endian (not 0)
//	uvarint  sequence of the first record
//	[4]byte  checksum of the records as the client sent them, big-endian
//	uvarint  limits: expiry, nanoseconds
//	uvarint  limits: evict after, nanoseconds
//	uvarint  limits: max producers
//	uvarint  n, the number of records (at least 1)
//	n times: uvarint len(record), record
//
// cmdAppendIdempotent (3), written before the limits were replicated, is
// the same without the checksum and the three limits: decoded only, it is
// decided with the limits the producer table holds (those of the last
// command that carried some, or of the snapshot's table, or go/producer's
// defaults), which are the same on every replica, and its batch has no
// checksum (a retry of it matches on its record count alone).
//
// Data record envelope, each record of the data log:
//
//	byte     envelopeVersion (2)
//	uvarint  raft index of the entry that produced the record
//	uvarint  raft term of that entry
//	uvarint  position of the record in that entry's batch
//	uvarint  number of records in that batch
//	rest     the record as the client sent it
//
// Version 1 envelopes (written before the term was recorded) lack the term
// field; they still decode, with term 0 ("unknown"), so existing data logs
// keep working. The FSM cannot check such a record's entry against the Raft
// log beyond its index (see fsm.checkSkip).
//
// Snapshot header, before the data log's snapshot stream (big-endian) in a
// full snapshot (sent to a follower, and kept by it):
//
//	[0:8)   magic "PLREPSNP"
//	[8:10)  snapshotVersion (3; 1 before producer tables, decoded only)
//	[10:12) reserved, zero
//	[12:16) CRC32C of [0:12) and [16:32)
//	[16:24) applied: the last raft index the FSM had applied
//	[24:32) last command: the raft index of the last command in the data
//	then, in version 3, a producer table section (below), then the data
//
// A reference snapshot (what FSM.Snapshot persists; see the package
// documentation) is a header alone, refSnapshotSize = 48 bytes:
//
//	[0:8)   magic "PLREPSNP"
//	[8:10)  refSnapshotVersion (4; 2 before producer tables, decoded only)
//	[10:12) reserved, zero
//	[12:16) CRC32C of [0:12) and [16:48)
//	[16:24) applied
//	[24:32) last command
//	[32:40) lowest: the data log's agreed lowest offset
//	[40:48) next: the data log's next offset (the records end there)
//	then, in version 4, a producer table section
//
// A producer table section (the idempotent producers' state as of the
// snapshot's applied index, see go/producer) is:
//
//	[4]byte  length of the table, big-endian
//	         the table, go/producer's encoding
//	[4]byte  CRC32C of the table, big-endian
//
// A version 1 or 2 snapshot has none: its table is empty.
const (
	entryVersion        = 1
	cmdAppend           = 1
	cmdRetain           = 2
	cmdAppendIdempotent = 3 // decoded only
	cmdAppendLimited    = 4
	envelopeVersion     = 2
	// envelopeV1 is the envelope version without a term: decoded only.
	envelopeV1 = 1
	// snapshotV1 and refSnapshotV2 are the snapshot versions without a
	// producer table section: decoded only.
	snapshotV1      = 1
	refSnapshotV2   = 2
	snapshotVersion = 3
	// refSnapshotVersion marks a reference snapshot.
	refSnapshotVersion = 4

	snapshotHeaderSize = 32
	refSnapshotSize    = 48
	// maxEnvelopeOverhead bounds the bytes an envelope adds to a record.
	maxEnvelopeOverhead = 1 + 4*binary.MaxVarintLen64
	// maxEntryOverhead bounds the bytes an entry encoding adds to its data
	// (with empty extensions).
	maxEntryOverhead = 2 + 6*binary.MaxVarintLen64
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

// encodeAppend encodes an append command of records.
func encodeAppend(records [][]byte) []byte {
	return encodeAppendAs(Producer{}, producer.Config{}, records)
}

// encodeAppendAs encodes an append command of records from producer p,
// decided with limits lim: an idempotent one unless p.ID is 0 (then lim is
// not used).
func encodeAppendAs(p Producer, lim producer.Config, records [][]byte) []byte {
	n := 1 + 8 + 4 + 5*binary.MaxVarintLen64
	for _, r := range records {
		n += binary.MaxVarintLen64 + len(r)
	}
	b := make([]byte, 0, n)
	if p.ID == 0 {
		b = append(b, cmdAppend)
	} else {
		b = append(b, cmdAppendLimited)
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

// appendCommand is a decoded append command. lim is the producer limits
// it carries; zero (MaxProducers 0) in a cmdAppend or cmdAppendIdempotent.
type appendCommand struct {
	recs [][]byte
	p    Producer
	lim  producer.Config
}

// decodeCommand decodes an append command; the records alias b.
func decodeCommand(b []byte) (appendCommand, error) { return decodeCommandInto(nil, b) }

// decodeCommandInto is decodeCommand reusing recs' storage for the result.
func decodeCommandInto(recs [][]byte, b []byte) (appendCommand, error) {
	d := decoder{b: b}
	t := d.byte("command type")
	if d.err == nil && t != cmdAppend && t != cmdAppendIdempotent && t != cmdAppendLimited {
		return appendCommand{}, fmt.Errorf("%w: unknown command type %d", ErrBadEncoding, t)
	}
	var c appendCommand
	if t == cmdAppendIdempotent || t == cmdAppendLimited {
		if d.err == nil && len(d.b) < 8 {
			d.fail("producer ID")
		}
		if d.err == nil {
			c.p.ID = binary.BigEndian.Uint64(d.b)
			d.b = d.b[8:]
			if c.p.ID == 0 {
				d.fail("producer ID 0")
			}
		}
		c.p.Sequence = d.uvarint("sequence")
	}
	if t == cmdAppendLimited {
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
	n := d.uvarint("record count")
	if d.err == nil && (n == 0 || n > uint64(len(d.b))) {
		d.fail(fmt.Sprintf("record count %d", n))
	}
	if d.err == nil && c.p.Sequence > ^uint64(0)-n {
		d.fail(fmt.Sprintf("sequence %d of %d records overflows", c.p.Sequence, n))
	}
	if d.err != nil {
		return appendCommand{}, d.err
	}
	if uint64(cap(recs)) >= n {
		recs = recs[:n]
	} else {
		recs = make([][]byte, n)
	}
	for i := range recs {
		recs[i] = d.bytes("record")
		if recs[i] == nil {
			recs[i] = []byte{}
		}
	}
	d.end("command")
	if d.err != nil {
		return appendCommand{}, d.err
	}
	c.recs = recs
	return c, nil
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

// envelope is the provenance of a data record: the Raft entry (index and
// term; term 0 if unknown, from a version 1 envelope) and the record's
// position in the entry's batch of count records.
type envelope struct {
	index, term, pos, count uint64
}

// encodeEnvelope returns the data record for payload.
func encodeEnvelope(e envelope, payload []byte) []byte {
	return appendEnvelope(make([]byte, 0, maxEnvelopeOverhead+len(payload)), e, payload)
}

// appendEnvelope appends the data record for payload to b.
func appendEnvelope(b []byte, e envelope, payload []byte) []byte {
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, e.index)
	b = binary.AppendUvarint(b, e.term)
	b = binary.AppendUvarint(b, e.pos)
	b = binary.AppendUvarint(b, e.count)
	return append(b, payload...)
}

// decodeEnvelope splits a data record; the payload aliases b.
func decodeEnvelope(b []byte) (envelope, []byte, error) {
	d := decoder{b: b}
	v := d.byte("envelope version")
	if d.err == nil && v != envelopeVersion && v != envelopeV1 {
		return envelope{}, nil, fmt.Errorf("%w: data envelope version %d, want %d or %d", ErrBadEncoding, v, envelopeV1, envelopeVersion)
	}
	var e envelope
	e.index = d.uvarint("raft index")
	if v == envelopeVersion {
		e.term = d.uvarint("raft term")
	}
	e.pos, e.count = d.uvarint("position"), d.uvarint("count")
	if d.err == nil && (e.count == 0 || e.pos >= e.count) {
		d.fail(fmt.Sprintf("position %d of %d", e.pos, e.count))
	}
	if d.err != nil {
		return envelope{}, nil, d.err
	}
	return e, d.b, nil
}

// snapshotHeader is what an FSM snapshot records before the data (lowest
// and next only in a reference snapshot); table: a producer table section
// follows the header (versions 3 and 4).
type snapshotHeader struct {
	applied     uint64
	lastCommand uint64
	lowest      uint64
	next        uint64
	table       bool
}

// encodeSnapshotHeader encodes a full snapshot's header and its producer
// table section (the data follows).
func encodeSnapshotHeader(h snapshotHeader, table []byte) []byte {
	return appendTableSection(encodeHeader(h, snapshotVersion, snapshotHeaderSize), table)
}

func snapshotHeaderCRC(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[0:12], castagnoli), castagnoli, b[16:])
}

// encodeRefSnapshot encodes a reference snapshot with the producer table
// (go/producer's encoding).
func encodeRefSnapshot(h snapshotHeader, table []byte) []byte {
	return appendTableSection(encodeHeader(h, refSnapshotVersion, refSnapshotSize), table)
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

// encodeHeader encodes h as a snapshot header of version and size bytes:
// [32:48), the offset range, only in a reference snapshot's 48.
func encodeHeader(h snapshotHeader, version uint16, size int) []byte {
	b := make([]byte, size)
	copy(b[0:8], snapshotMagic[:])
	binary.BigEndian.PutUint16(b[8:10], version)
	binary.BigEndian.PutUint64(b[16:24], h.applied)
	binary.BigEndian.PutUint64(b[24:32], h.lastCommand)
	if size == refSnapshotSize {
		binary.BigEndian.PutUint64(b[32:40], h.lowest)
		binary.BigEndian.PutUint64(b[40:48], h.next)
	}
	binary.BigEndian.PutUint32(b[12:16], snapshotHeaderCRC(b))
	return b
}

// isRefSnapshot reports whether b, the first snapshotHeaderSize bytes of a
// snapshot, starts a reference snapshot (decodeRefSnapshot checks it).
func isRefSnapshot(b []byte) bool {
	if len(b) < 10 || [8]byte(b[0:8]) != snapshotMagic {
		return false
	}
	v := binary.BigEndian.Uint16(b[8:10])
	return v == refSnapshotVersion || v == refSnapshotV2
}

// decodeRefSnapshot decodes a reference snapshot's refSnapshotSize-byte
// header (its producer table section follows if h.table).
func decodeRefSnapshot(b []byte) (snapshotHeader, error) {
	switch {
	case len(b) != refSnapshotSize || !isRefSnapshot(b):
		return snapshotHeader{}, fmt.Errorf("%w: not a reference snapshot", ErrBadEncoding)
	case binary.BigEndian.Uint32(b[12:16]) != snapshotHeaderCRC(b):
		return snapshotHeader{}, fmt.Errorf("%w: snapshot header checksum mismatch", ErrBadEncoding)
	}
	h := snapshotHeader{
		applied:     binary.BigEndian.Uint64(b[16:24]),
		lastCommand: binary.BigEndian.Uint64(b[24:32]),
		lowest:      binary.BigEndian.Uint64(b[32:40]),
		next:        binary.BigEndian.Uint64(b[40:48]),
		table:       binary.BigEndian.Uint16(b[8:10]) == refSnapshotVersion,
	}
	if h.lowest > h.next {
		return snapshotHeader{}, fmt.Errorf("%w: reference snapshot of offsets [%d, %d)", ErrBadEncoding, h.lowest, h.next)
	}
	return h, nil
}

func decodeSnapshotHeader(b []byte) (snapshotHeader, error) {
	if len(b) != snapshotHeaderSize || [8]byte(b[0:8]) != snapshotMagic {
		return snapshotHeader{}, fmt.Errorf("%w: not a replication snapshot", ErrBadEncoding)
	}
	v := binary.BigEndian.Uint16(b[8:10])
	if v != snapshotVersion && v != snapshotV1 {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot version %d, want %d or %d", ErrBadEncoding, v, snapshotV1, snapshotVersion)
	}
	if binary.BigEndian.Uint32(b[12:16]) != snapshotHeaderCRC(b) {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot header checksum mismatch", ErrBadEncoding)
	}
	return snapshotHeader{
		applied:     binary.BigEndian.Uint64(b[16:24]),
		lastCommand: binary.BigEndian.Uint64(b[24:32]),
		table:       v == snapshotVersion,
	}, nil
}
