package segment

import (
	"hash/crc32"
	"testing"
)

func TestRecordCRC(t *testing.T) {
	// The standard CRC-32C check value.
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("CRC32C check value = %08x", got)
	}
	tests := []struct {
		data []byte
		want uint32 // CRC32C of the big-endian length followed by the data
	}{
		{nil, crc32.Checksum([]byte{0, 0, 0, 0}, castagnoli)},
		{[]byte("abc"), crc32.Checksum([]byte{0, 0, 0, 3, 'a', 'b', 'c'}, castagnoli)},
	}
	for _, tt := range tests {
		if got := RecordCRC(tt.data); got != tt.want {
			t.Errorf("RecordCRC(%q) = %08x, want %08x", tt.data, got, tt.want)
		}
	}
	// The length is covered: same data, different length field, different CRC.
	if recordCRC([]byte{0, 0, 0, 3}, []byte("abc")) == recordCRC([]byte{0, 0, 1, 3}, []byte("abc")) {
		t.Fatal("length not covered by the checksum")
	}
	// An all-zero record header is never valid (zero-filled tails).
	if RecordCRC(nil) == 0 {
		t.Fatal("an empty record has checksum 0: zero-filled space would look valid")
	}
}

func TestLayoutConstants(t *testing.T) {
	if FileHeaderSize != 24 || RecordHeaderSize != 8 || IndexEntryWidth != 12 || MaxRecordLen != 1<<32-1 {
		t.Fatal("on-disk layout constants changed: bump FormatVersion")
	}
}
