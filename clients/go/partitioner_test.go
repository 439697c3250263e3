package client

import "testing"

// The vectors are Kafka's (UtilsTest.testMurmur2, and Utils.murmur2 values
// other Kafka clients test against).
func TestMurmur2MatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"1", -1993445489},
		{"12", 126087238},
		{"123", -267702483},
		{"1234", -1614185708},
		{"12345", -1188365604},
	} {
		if got := Murmur2([]byte(tc.key)); got != tc.want {
			t.Errorf("Murmur2(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestKeyPartition(t *testing.T) {
	for _, tc := range []struct {
		key        string
		partitions int
		want       int
	}{
		// toPositive(-973932308) = 1173551340.
		{"21", 7, 1173551340 % 7},
		// toPositive(479470107) = 479470107.
		{"abc", 10, 7},
		{"abc", 1, 0},
		// An empty key hashes too (Kafka hashes any non-null key).
		{"", 3, int(uint32(Murmur2(nil))&0x7fffffff) % 3},
	} {
		if got := KeyPartition([]byte(tc.key), tc.partitions); got != tc.want {
			t.Errorf("KeyPartition(%q, %d) = %d, want %d", tc.key, tc.partitions, got, tc.want)
		}
	}
}
