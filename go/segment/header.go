package segment

import (
	"bytes"
	"hash/crc32"
)

// fileHeader is the decoded header of a store or index file; see format.go.
type fileHeader struct {
	magic   [8]byte
	version uint16
	flags   uint16
	base    uint64
}

// encode writes h into b[:FileHeaderSize], including the header checksum.
func (h fileHeader) encode(b []byte) {
	copy(b[0:8], h.magic[:])
	enc.PutUint16(b[8:10], h.version)
	enc.PutUint16(b[10:12], h.flags)
	enc.PutUint64(b[16:24], h.base)
	enc.PutUint32(b[12:16], headerCRC(b))
}

func headerCRC(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[0:12], castagnoli), castagnoli, b[16:24])
}

// decodeHeader parses and validates b as a header with the given magic and
// base offset. The returned reason is empty when the header is valid.
func decodeHeader(b []byte, magic [8]byte, base uint64) (h fileHeader, reason string) {
	if len(b) < FileHeaderSize {
		return h, "file shorter than its header"
	}
	copy(h.magic[:], b[0:8])
	h.version = enc.Uint16(b[8:10])
	h.flags = enc.Uint16(b[10:12])
	h.base = enc.Uint64(b[16:24])
	switch {
	case h.magic != magic:
		return h, "bad magic " + quoteBytes(b[0:8]) + ", want " + quoteBytes(magic[:])
	case enc.Uint32(b[12:16]) != headerCRC(b):
		return h, "header checksum mismatch"
	case h.version != FormatVersion:
		return h, "unsupported format version " + itoa(uint64(h.version))
	case h.base != base:
		return h, "header base offset " + itoa(h.base) + " does not match file name " + itoa(base)
	}
	return h, ""
}

func quoteBytes(b []byte) string {
	var buf bytes.Buffer
	buf.WriteByte('"')
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			buf.WriteByte(c)
		} else {
			const hex = "0123456789abcdef"
			buf.WriteString(`\x`)
			buf.WriteByte(hex[c>>4])
			buf.WriteByte(hex[c&15])
		}
	}
	buf.WriteByte('"')
	return buf.String()
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
