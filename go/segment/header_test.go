package segment

import (
	"strings"
	"testing"
)

func TestFileHeaderRoundTrip(t *testing.T) {
	for _, h := range []fileHeader{
		{magic: storeMagic, version: FormatVersion, base: 0},
		{magic: indexMagic, version: FormatVersion, flags: FlagClean, base: 1<<64 - 1},
	} {
		var b [FileHeaderSize]byte
		h.encode(b[:])
		got, reason := decodeHeader(b[:], h.magic, h.base)
		if reason != "" || got != h {
			t.Fatalf("decode(encode(%+v)) = %+v, %q", h, got, reason)
		}
		// Every single-bit flip is detected.
		for i := 0; i < FileHeaderSize*8; i++ {
			c := b
			c[i/8] ^= 1 << (i % 8)
			if _, reason := decodeHeader(c[:], h.magic, h.base); reason == "" {
				t.Fatalf("bit flip %d of %+v not detected", i, h)
			}
		}
	}
}

func TestDecodeHeaderReasons(t *testing.T) {
	enc := func(h fileHeader) []byte {
		b := make([]byte, FileHeaderSize)
		h.encode(b)
		return b
	}
	tests := []struct {
		name   string
		b      []byte
		reason string
	}{
		{"short", make([]byte, 10), "shorter"},
		{"wrong magic", enc(fileHeader{magic: indexMagic, version: FormatVersion, base: 1}), `bad magic "PLOGINDX", want "PLOGSTOR"`},
		{"version", enc(fileHeader{magic: storeMagic, version: 2, base: 1}), "unsupported format version 2"},
		{"base", enc(fileHeader{magic: storeMagic, version: FormatVersion, base: 2}), "header base offset 2 does not match file name 1"},
		{"binary magic", append([]byte{0, 1, 2, 3, 4, 5, 6, 7}, make([]byte, 16)...), `bad magic "\x00\x01\x02\x03\x04\x05\x06\x07"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reason := decodeHeader(tt.b, storeMagic, 1)
			if !strings.Contains(reason, tt.reason) {
				t.Fatalf("reason %q, want it to contain %q", reason, tt.reason)
			}
		})
	}
}
