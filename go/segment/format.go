package segment

import (
	"encoding/binary"
	"hash/crc32"
)

// On-disk layout constants. All integers are big-endian.
//
// Both files start with a FileHeaderSize-byte header:
//
//	[0:8)   magic       "PLOGSTOR" (store) or "PLOGINDX" (index)
//	[8:10)  version     FormatVersion
//	[10:12) flags       index only: FlagClean (see index.go); 0 in stores
//	[12:16) header CRC  CRC32C of bytes [0:12) and [16:24)
//	[16:24) base offset the absolute offset of the segment's first record
//
// Store records follow the header back to back:
//
//	[0:4)   length n of the data (uint32)
//	[4:8)   CRC32C (Castagnoli) of the 4 length bytes followed by the data
//	[8:8+n) data
//
// Index entries follow the header back to back, IndexEntryWidth bytes each:
//
//	[0:4)   relative offset (uint32): absolute offset - base offset
//	[4:12)  position (uint64) of the record in the store file
const (
	// FileHeaderSize is the size of the header of store and index files.
	FileHeaderSize = 24
	// FormatVersion is the version written to and required in headers.
	FormatVersion = 1

	// RecordHeaderSize is the per-record overhead in the store: length and
	// checksum.
	RecordHeaderSize = lenWidth + crcWidth
	lenWidth         = 4
	crcWidth         = 4

	// IndexEntryWidth is the size of one index entry.
	IndexEntryWidth = relOffWidth + posWidth
	relOffWidth     = 4
	posWidth        = 8

	// MaxRecordLen is the largest record length the format can express.
	MaxRecordLen = 1<<32 - 1

	// FlagClean, set in an index header, means the index was trimmed and
	// synced by a clean close and matches its store.
	FlagClean = 1 << 0
)

var (
	storeMagic = [8]byte{'P', 'L', 'O', 'G', 'S', 'T', 'O', 'R'}
	indexMagic = [8]byte{'P', 'L', 'O', 'G', 'I', 'N', 'D', 'X'}
	enc        = binary.BigEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// recordCRC returns the checksum stored in a record header: CRC32C over the
// 4 length bytes followed by the data.
func recordCRC(lenBytes []byte, data []byte) uint32 {
	return crc32.Update(crc32.Checksum(lenBytes, castagnoli), castagnoli, data)
}

// RecordCRC is recordCRC for callers that do not have the length bytes at
// hand (the snapshot stream uses the same checksum).
func RecordCRC(data []byte) uint32 {
	var l [lenWidth]byte
	enc.PutUint32(l[:], uint32(len(data)))
	return recordCRC(l[:], data)
}
