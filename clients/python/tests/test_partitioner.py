"""The partitioner matches Kafka's (and the Go client's)."""

import pytest

from proglog import key_partition, murmur2

# Kafka's UtilsTest.testMurmur2, and Utils.murmur2 values other Kafka clients test against.
KAFKA_VECTORS = [
    ("21", -973932308),
    ("foobar", -790332482),
    ("a-little-bit-long-string", -985981536),
    ("a-little-bit-longer-string", -1486304829),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    ("abc", 479470107),
    ("1", -1993445489),
    ("12", 126087238),
    ("123", -267702483),
    ("1234", -1614185708),
    ("12345", -1188365604),
]


@pytest.mark.parametrize(("key", "want"), KAFKA_VECTORS)
def test_murmur2_matches_kafka(key: str, want: int) -> None:
    assert murmur2(key.encode()) == want


def test_key_partition() -> None:
    assert key_partition("21", 7) == 1173551340 % 7  # toPositive(-973932308)
    assert key_partition(b"abc", 10) == 7
    assert key_partition("abc", 1) == 0
    with pytest.raises(ValueError):
        key_partition("abc", 0)
