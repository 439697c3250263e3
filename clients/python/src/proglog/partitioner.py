"""Kafka's default partitioner: where a keyed record goes.

A record with a key goes to partition ``toPositive(murmur2(key)) % partitions``, exactly as
Kafka's producer computes it (``org.apache.kafka.common.utils.Utils.murmur2``, seed
``0x9747b28c``, ``toPositive(h) = h & 0x7fffffff``), so a key lands where a Kafka user expects
for the same number of partitions.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data``, as the signed 32-bit int Kafka returns."""
    n = len(data)
    h = (_SEED ^ n) & _MASK
    end = n & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = n & 3
    if tail == 3:
        h ^= data[end + 2] << 16
    if tail >= 2:
        h ^= data[end + 1] << 8
    if tail >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def key_partition(key: bytes | str, partitions: int) -> int:
    """The partition of a topic with ``partitions`` partitions that a record with ``key`` goes
    to: ``toPositive(murmur2(key)) % partitions`` (a ``str`` key is hashed as UTF-8)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if isinstance(key, str):
        key = key.encode()
    return (murmur2(key) & 0x7FFFFFFF) % partitions
