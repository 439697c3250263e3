package client

// Murmur2 is Kafka's murmur2 hash of data (org.apache.kafka.common.utils.
// Utils.murmur2: seed 0x9747b28c), as the signed 32-bit value Kafka
// computes. KeyPartition builds on it.
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition is the partition of a topic of partitions partitions that a
// record with key goes to: toPositive(murmur2(key)) mod partitions, Kafka's
// default partitioner, so a key lands on the partition a Kafka producer
// would choose for the same number of partitions. partitions must be
// positive. A keyless record has no fixed partition (see Topic.Produce).
func KeyPartition(key []byte, partitions int) int {
	return int(uint32(Murmur2(key))&0x7fffffff) % partitions
}
