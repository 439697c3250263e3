"""Records and servers as the clients hand them out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from google.protobuf import timestamp_pb2

from proglog._proto.log.v1 import log_pb2

__all__ = ["Record", "Server", "Value"]


@dataclass(frozen=True)
class Record:
    """One entry of the log.

    Attributes:
        value: the payload.
        key: an optional application key; the server does not interpret it.
        headers: optional application (key, value) pairs, kept in order; keys may repeat.
        timestamp: the record's time (timezone-aware, UTC). Left None when producing, the server
            sets it to its clock.
        offset: the record's position, set by the server (ignored when producing).
    """

    value: bytes
    key: bytes = b""
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    timestamp: datetime | None = None
    offset: int = 0

    def _to_proto(self) -> log_pb2.Record:
        msg = log_pb2.Record(
            value=self.value,
            key=self.key,
            headers=[log_pb2.Header(key=k, value=v) for k, v in self.headers],
        )
        if self.timestamp is not None:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(self.timestamp.astimezone(timezone.utc) if self.timestamp.tzinfo else self.timestamp)
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
    return Record(value=value, key=key or b"", headers=tuple(headers or ()))


@dataclass(frozen=True)
class Server:
    """One member of the cluster serving the log."""

    id: str
    rpc_addr: str
    is_leader: bool

    @classmethod
    def _from_proto(cls, msg: log_pb2.Server) -> Server:
        return cls(id=msg.id, rpc_addr=msg.rpc_addr, is_leader=msg.is_leader)
