"""Records and servers as the clients hand them out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from google.protobuf import timestamp_pb2

from proglog._proto.log.v1 import log_pb2

__all__ = ["Bounds", "PartitionInfo", "Position", "Record", "Server", "TopicConfig", "TopicInfo", "Value"]

# The topic of requests that name none: every cluster has it, with one partition.
DEFAULT_TOPIC = "log"


@dataclass(frozen=True)
class Record:
    """One entry of the log.

    Attributes:
        value: the payload.
        key: an optional application key; the server does not interpret it.
        headers: optional application (key, value) pairs, kept in order; keys may repeat.
        timestamp: the record's time, timezone-aware (a naive datetime is refused: it names no
            instant); records read back carry it in UTC. Left None when producing, the server sets
            it to its clock.
        offset: the record's position, set by the server (ignored when producing).
    """

    value: bytes
    key: bytes = b""
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    timestamp: datetime | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise TypeError(f"Record value must be bytes, not {type(self.value).__name__}")
        if not isinstance(self.key, bytes):
            raise TypeError(f"Record key must be bytes, not {type(self.key).__name__}")
        object.__setattr__(self, "headers", _headers(self.headers))
        if self.timestamp is not None:
            if not isinstance(self.timestamp, datetime):
                raise TypeError(f"Record timestamp must be a datetime, not {type(self.timestamp).__name__}")
            if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
                raise ValueError(f"Record timestamp {self.timestamp} is naive: give it a timezone (e.g. tzinfo=timezone.utc)")

    def _to_proto(self) -> log_pb2.Record:
        msg = log_pb2.Record(
            value=self.value,
            key=self.key,
            headers=[log_pb2.Header(key=k, value=v) for k, v in self.headers],
        )
        if self.timestamp is not None:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(self.timestamp.astimezone(timezone.utc))
            msg.timestamp.CopyFrom(ts)
        return msg

    @classmethod
    def _from_proto(cls, msg: log_pb2.Record) -> Record:
        timestamp = msg.timestamp.ToDatetime(tzinfo=timezone.utc) if msg.HasField("timestamp") else None
        return cls(
            value=msg.value,
            key=msg.key,
            headers=tuple((h.key, h.value) for h in msg.headers),
            timestamp=timestamp,
            offset=msg.offset,
        )


# What produce accepts: a Record, or a value (str is encoded as UTF-8).
Value = Record | bytes | str


def _headers(headers: Sequence[tuple[str, bytes]] | None) -> tuple[tuple[str, bytes], ...]:
    """Checks headers: a sequence of (str, bytes) pairs."""
    if headers is None:
        return ()
    if isinstance(headers, (str, bytes, Mapping)) or not isinstance(headers, Iterable):
        raise TypeError(f"headers must be a sequence of (str, bytes) pairs, not {type(headers).__name__}")
    out: list[tuple[str, bytes]] = []
    for i, pair in enumerate(headers):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"headers[{i}] must be a (str, bytes) pair, not {pair!r}")
        k, v = pair
        if not isinstance(k, str):
            raise TypeError(f"headers[{i}] key must be str, not {type(k).__name__}")
        if not isinstance(v, bytes):
            raise TypeError(f"headers[{i}] ({k!r}) value must be bytes, not {type(v).__name__}")
        out.append((k, v))
    return tuple(out)


def _as_record(value: Value, key: bytes | str | None = None, headers: Sequence[tuple[str, bytes]] | None = None) -> Record:
    if isinstance(value, Record):
        if key is not None or headers is not None:
            raise TypeError("key and headers are given in the Record itself")
        return value
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise TypeError(f"a record value must be bytes, str or Record, not {type(value).__name__}")
    if isinstance(key, str):
        key = key.encode()
    if key is not None and not isinstance(key, bytes):
        raise TypeError(f"key must be bytes, str or None, not {type(key).__name__}")
    return Record(value=value, key=key or b"", headers=_headers(headers))


def _as_records(values: Iterable[Value]) -> list[Record]:
    """The records of a batch: an iterable of values, not a single value."""
    if isinstance(values, (str, bytes, bytearray, Record)):
        raise TypeError(f"produce_batch takes an iterable of records (bytes, str or Record), not a single {type(values).__name__}")
    records = [_as_record(v) for v in values]
    if not records:
        raise ValueError("produce_batch needs at least one record")
    return records


def _check_offset(offset: int) -> int:
    """Checks an offset argument: an int in [0, 2**64)."""
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, not {type(offset).__name__}")
    if not 0 <= offset < 2**64:
        raise ValueError(f"offset must be in [0, 2**64), not {offset}")
    return offset


def _check_partition(partition: int) -> int:
    """Checks a partition argument: an int in [0, 2**32)."""
    if not isinstance(partition, int) or isinstance(partition, bool):
        raise TypeError(f"partition must be an int, not {type(partition).__name__}")
    if not 0 <= partition < 2**32:
        raise ValueError(f"partition must be in [0, 2**32), not {partition}")
    return partition


@dataclass(frozen=True)
class Bounds:
    """A log's readable offsets: ``range(lowest, next)``. Every record below ``next`` is committed."""

    lowest: int
    next: int


@dataclass(frozen=True)
class Server:
    """One member of the cluster serving the log."""

    id: str
    rpc_addr: str
    is_leader: bool

    @classmethod
    def _from_proto(cls, msg: log_pb2.Server) -> Server:
        return cls(id=msg.id, rpc_addr=msg.rpc_addr, is_leader=msg.is_leader)


@dataclass(frozen=True)
class ACLRule:
    """An access rule kept in the cluster's metadata: ``subject`` (a client certificate's common
    name, or a role of the servers' policy file) may perform ``action`` ("produce", "consume",
    "servers", "create", "delete", "describe", "group", "acl", "read", or "*" for every action) on
    ``object`` (a topic or group name, with "*" wildcards such as "orders-*", or "*").
    ``from_policy_file`` marks, in list_acls, a rule of the servers' policy file (which delete_acls
    cannot remove); create_acls and delete_acls ignore it."""

    subject: str
    object: str
    action: str
    from_policy_file: bool = False

    def _to_proto(self) -> log_pb2.ACLRule:
        return log_pb2.ACLRule(subject=self.subject, object=self.object, action=self.action)

    @classmethod
    def _from_proto(cls, msg: log_pb2.ListedACLRule) -> ACLRule:
        return cls(subject=msg.rule.subject, object=msg.rule.object, action=msg.rule.action, from_policy_file=msg.from_policy_file)


@dataclass(frozen=True)
class Position:
    """Where a record was written: its partition and offset."""

    partition: int
    offset: int


@dataclass(frozen=True)
class TopicConfig:
    """A topic's settings. In create_topic, zero values take the servers' defaults (one partition;
    replication factor the smaller of 3 and the number of servers; no retention bound).

    Attributes:
        partitions: number of partitions (1 to 1024).
        replication_factor: replicas of each partition (1 to 7, at most the number of servers).
        retention_bytes: each partition keeps at most this many bytes of records (0: no bound).
        retention_age: records older than this many seconds are removed (0: no bound).
    """

    partitions: int = 0
    replication_factor: int = 0
    retention_bytes: int = 0
    retention_age: float = 0.0

    def _to_proto(self) -> log_pb2.TopicConfig:
        for name in ("partitions", "replication_factor", "retention_bytes", "retention_age"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        msg = log_pb2.TopicConfig(
            partitions=self.partitions, replication_factor=self.replication_factor, retention_bytes=self.retention_bytes
        )
        if self.retention_age > 0:
            msg.retention_age.FromNanoseconds(round(self.retention_age * 1e9))
        return msg

    @classmethod
    def _from_proto(cls, msg: log_pb2.TopicConfig) -> TopicConfig:
        age = msg.retention_age.ToNanoseconds() / 1e9 if msg.HasField("retention_age") else 0.0
        return cls(msg.partitions, msg.replication_factor, msg.retention_bytes, age)


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a topic: its replicas (in preference order) and leader (as last reported,
    a hint; ``leader`` is its address, None when not known)."""

    partition: int
    leader: str | None
    leader_id: str
    replicas: tuple[Server, ...]
    epoch: int

    @classmethod
    def _from_proto(cls, msg: log_pb2.PartitionMetadata) -> PartitionInfo:
        replicas = tuple(Server._from_proto(s) for s in msg.replicas)
        leader = next((r for r in replicas if r.is_leader or (msg.leader_id and r.id == msg.leader_id)), None)
        return cls(
            partition=msg.partition,
            leader=leader.rpc_addr if leader else None,
            leader_id=leader.id if leader else msg.leader_id,
            replicas=replicas,
            epoch=msg.epoch,
        )


@dataclass(frozen=True)
class TopicInfo:
    """A topic: its settings and partitions, by number."""

    name: str
    config: TopicConfig
    partitions: tuple[PartitionInfo, ...]

    @classmethod
    def _from_proto(cls, msg: log_pb2.TopicMetadata) -> TopicInfo:
        return cls(msg.name, TopicConfig._from_proto(msg.config), tuple(PartitionInfo._from_proto(p) for p in msg.partitions))
