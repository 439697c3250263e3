"""Coalescing of concurrent produces into ProduceBatch requests, shared by both clients.

Each client has one sender (a thread for Client, a task for AsyncClient), started by the first
record. It sends the queued records at once as one request and, while that request is in flight,
lets new records queue: they form the next request. Batches so grow with the load and a lone
record goes out at once (after ``linger``, if set), as a plain Produce. A batch takes at most
``max_batch_records`` records and ``max_batch_bytes`` encoded bytes (a larger record goes alone);
the server's own limits are checked at construction.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from proglog._core import Metadata
from proglog._proto.log.v1 import log_pb2

# The server's defaults (go/server): records per ProduceBatch, and bytes per message.
SERVER_MAX_BATCH_RECORDS = 10_000
SERVER_MAX_MESSAGE_BYTES = 4 << 20
DEFAULT_MAX_BATCH_RECORDS = 1000
DEFAULT_MAX_BATCH_BYTES = 1 << 20

class _Future(Protocol):
    def done(self) -> bool: ...


_F = TypeVar("_F", bound=_Future)  # concurrent.futures.Future or asyncio.Future


@dataclass(frozen=True)
class Limits:
    """The batching knobs both clients take (see Client for their meaning)."""

    linger: float = 0.0
    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        if not self.linger >= 0:
            raise ValueError(f"linger must be >= 0 seconds, not {self.linger}")
        if not 1 <= self.max_batch_records <= SERVER_MAX_BATCH_RECORDS:
            raise ValueError(f"max_batch_records must be in [1, {SERVER_MAX_BATCH_RECORDS}] (the server's limit), not {self.max_batch_records}")
        if not 1 <= self.max_batch_bytes <= SERVER_MAX_MESSAGE_BYTES:
            raise ValueError(f"max_batch_bytes must be in [1, {SERVER_MAX_MESSAGE_BYTES}] (the server's message limit), not {self.max_batch_bytes}")


def _varint_len(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


@dataclass
class Item(Generic[_F]):
    """One queued record and the future its caller waits on."""

    record: log_pb2.Record
    future: _F
    deadline_at: float | None
    metadata: Metadata
    seq: int
    queued_at: float = field(default_factory=time.monotonic)
    size: int = 0

    def __post_init__(self) -> None:
        n = self.record.ByteSize()
        self.size = 1 + _varint_len(n) + n  # as a repeated field of ProduceBatchRequest


class Queue(Generic[_F]):
    """The records waiting for the sender, in order. Not locked: the owner serializes access."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.items: deque[Item[_F]] = deque()
        self.seq = 0  # of the last record queued
        self.flush_to = 0  # records up to this seq skip the linger

    def push(self, record: log_pb2.Record, future: _F, deadline_at: float | None, metadata: Metadata) -> None:
        self.seq += 1
        self.items.append(Item(record, future, deadline_at, metadata, self.seq))

    def drop_done(self) -> None:
        """Forgets the records whose future is already done (cancelled by its caller)."""
        if any(i.future.done() for i in self.items):
            self.items = deque(i for i in self.items if not i.future.done())

    def linger_left(self) -> float:
        """Seconds the oldest record still has to wait before it is sent (0: send now)."""
        if not self.items or self.items[0].seq <= self.flush_to:
            return 0.0
        if self.full():
            return 0.0
        return max(0.0, self.items[0].queued_at + self.limits.linger - time.monotonic())

    def full(self) -> bool:
        if len(self.items) >= self.limits.max_batch_records:
            return True
        return sum(i.size for i in self.items) >= self.limits.max_batch_bytes

    def take(self) -> list[Item[_F]]:
        """Removes and returns the next batch: at least one record, within the limits."""
        batch: list[Item[_F]] = []
        size = 0
        while self.items and len(batch) < self.limits.max_batch_records:
            item = self.items[0]
            if batch and size + item.size > self.limits.max_batch_bytes:
                break
            batch.append(self.items.popleft())
            size += item.size
        return batch


def batch_timeout(batch: list[Item[_F]], now: float) -> float | None:
    """The timeout of a batch's request: what is left of the earliest deadline in it."""
    deadlines = [i.deadline_at for i in batch if i.deadline_at is not None]
    return None if not deadlines else min(deadlines) - now
