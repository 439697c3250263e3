"""What the synchronous and asyncio consumers share: their argument checks, and a group member's
state with no I/O: its generation, the partitions it owns, their positions and buffered records.

A partition's positions (offsets of the next record):

- ``position``: the next record to return to the application (after the last one returned);
- ``consumed``: the position when the application last asked for a record (polled), so every
  record before it is processed; the background commits (auto-commit, a hand-over) use it, so a
  record being processed while the member hands its partition over is read again by the next
  owner instead of skipped;
- ``committed``: the group's committed offset as this member knows it (never committed lower).
"""

from __future__ import annotations

import os
import re
import socket
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from proglog._core import PartKey
from proglog._proto.log.v1 import log_pb2
from proglog.records import ConsumerRecord, Record, TopicPartition, _check_partition

# Where a member starts reading a partition the group has committed nothing for.
Start = Literal["earliest", "latest"]

_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
MAX_TOPICS = 256
MIN_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT = 1.0, 300.0
DEFAULT_SESSION_TIMEOUT = 10.0
DEFAULT_AUTO_COMMIT_INTERVAL = 5.0
MAX_CLIENT_ID_BYTES = 255
DEFAULT_MAX_BUFFERED = 1000
MAX_COMMIT_OFFSETS = 4096


def check_group(group: str) -> str:
    """Checks a group name: 1 to 249 of [a-zA-Z0-9._-], not "." or ".." (the rule of topics)."""
    if not isinstance(group, str):
        raise TypeError(f"group must be a str, not {type(group).__name__}")
    if not _NAME.fullmatch(group) or group in (".", ".."):
        raise ValueError(f"group {group!r}: must be 1 to 249 of [a-zA-Z0-9._-], not . or ..")
    return group


def check_partitions(partitions: Iterable[TopicPartition] | None) -> list[log_pb2.TopicPartitions]:
    """Checks fetch_offsets' partitions, (topic, partition) pairs, and groups them by topic."""
    if partitions is None:
        return []
    if isinstance(partitions, (str, bytes)):
        raise TypeError(f"partitions must be an iterable of (topic, partition) pairs, not {partitions!r}")
    by_topic: dict[str, list[int]] = {}
    for pair in partitions:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise TypeError(f"partitions must hold (topic, partition) pairs, not {pair!r}")
        by_topic.setdefault(pair[0], []).append(_check_partition(pair[1]))
    return [log_pb2.TopicPartitions(topic=t, partitions=sorted(set(ps))) for t, ps in sorted(by_topic.items())]


@dataclass(frozen=True)
class Options:
    """A consumer's settings, checked (see Client.consumer)."""

    group: str
    topics: tuple[str, ...]
    session_timeout: float
    auto_commit_interval: float | None
    start: Start
    client_id: str
    max_buffered: int

    @classmethod
    def checked(
        cls,
        group: str,
        topics: Iterable[str],
        session_timeout: float,
        auto_commit_interval: float | None,
        start: Start,
        client_id: str | None,
        max_buffered: int,
    ) -> Options:
        check_group(group)
        if isinstance(topics, (str, bytes)) or not isinstance(topics, Iterable):
            raise TypeError(f"topics must be an iterable of topic names (a list, not a single {type(topics).__name__})")
        names = list(dict.fromkeys(topics))
        for t in names:
            if not isinstance(t, str) or not t:
                raise TypeError(f"topics must hold non-empty str names, not {t!r}")
        if not 1 <= len(names) <= MAX_TOPICS:
            raise ValueError(f"topics: subscribe to 1 to {MAX_TOPICS} topics, not {len(names)}")
        if isinstance(session_timeout, bool) or not isinstance(session_timeout, (int, float)):
            raise TypeError(f"session_timeout must be seconds (a number), not {type(session_timeout).__name__}")
        if not MIN_SESSION_TIMEOUT <= session_timeout <= MAX_SESSION_TIMEOUT:
            raise ValueError(f"session_timeout must be {MIN_SESSION_TIMEOUT:g} to {MAX_SESSION_TIMEOUT:g} seconds, not {session_timeout}")
        if auto_commit_interval is not None and not auto_commit_interval > 0:
            raise ValueError(f"auto_commit_interval must be positive seconds or None (commit() only), not {auto_commit_interval}")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        if client_id is None:
            client_id = f"{socket.gethostname()}/{os.getpid()}"[:MAX_CLIENT_ID_BYTES]
        if not isinstance(client_id, str) or len(client_id.encode()) > MAX_CLIENT_ID_BYTES:
            raise ValueError(f"client_id must be a str of at most {MAX_CLIENT_ID_BYTES} bytes")
        if isinstance(max_buffered, bool) or not isinstance(max_buffered, int) or max_buffered < 1:
            raise ValueError(f"max_buffered must be a positive int, not {max_buffered!r}")
        return cls(group, tuple(names), float(session_timeout), auto_commit_interval, start, client_id, max_buffered)

    def join_request(self) -> log_pb2.JoinGroupRequest:
        request = log_pb2.JoinGroupRequest(group=self.group, topics=self.topics, client_id=self.client_id)
        request.session_timeout.FromNanoseconds(round(self.session_timeout * 1e9))
        return request


class Owned:
    """A partition the member owns: its positions (see the module's doc) and buffered records. A
    new object each time the member gains the partition, so a reader of an earlier ownership sees
    that it is not the current one."""

    __slots__ = ("position", "consumed", "committed", "buffer")

    def __init__(self, committed: int | None) -> None:
        self.position = committed  # None until the reader found where to start
        self.consumed = committed
        self.committed = committed
        self.buffer: deque[Record] = deque()


@dataclass(frozen=True)
class Assignment:
    member_id: str
    generation: int
    partitions: Mapping[PartKey, int | None]  # owned, with the group's committed offset
    interval: float

    @classmethod
    def parse(cls, msg: log_pb2.Assignment, default_interval: float) -> Assignment:
        parts = {(p.topic, p.partition): (p.offset if p.committed else None) for p in msg.partitions}
        interval = msg.heartbeat_interval.ToNanoseconds() / 1e9 if msg.HasField("heartbeat_interval") else 0.0
        return cls(msg.member_id, msg.generation, parts, interval if interval > 0 else default_interval)


class Member:
    """A member's state. Not thread-safe: the consumers guard it with their lock."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.member_id = ""
        self.generation = 0  # the newest generation the cluster sent
        self.follows = 0  # the generation heartbeats acknowledge: what it lost is stopped and committed
        self.interval = opts.session_timeout / 3
        self.owned: dict[PartKey, Owned] = {}
        self.buffered = 0
        self._next = 0  # round-robin over the owned partitions

    def update(self, a: Assignment) -> tuple[dict[PartKey, Owned], dict[PartKey, Owned]]:
        """Takes an assignment: returns the partitions gained (to read) and lost (to stop, commit,
        then acknowledge the generation). A lost partition's buffered records are dropped."""
        lost = {p: o for p, o in self.owned.items() if p not in a.partitions or a.member_id != self.member_id}
        for p, o in lost.items():
            self._drop(p, o)
        gained: dict[PartKey, Owned] = {}
        for p, committed in a.partitions.items():
            if p not in self.owned:
                self.owned[p] = gained[p] = Owned(committed)
        self.member_id, self.generation, self.interval = a.member_id, a.generation, a.interval
        return gained, lost

    def fenced(self) -> dict[PartKey, Owned]:
        """The member's session ended (it left, or the cluster removed it): it owns nothing and
        must join again. Returns what it owned (to stop, not to commit: it is no longer the
        owner)."""
        lost = dict(self.owned)
        for p, o in lost.items():
            self._drop(p, o)
        self.member_id, self.generation, self.follows = "", 0, 0
        return lost

    def _drop(self, part: PartKey, o: Owned) -> None:
        del self.owned[part]
        self.buffered -= len(o.buffer)
        o.buffer.clear()

    def current(self, part: PartKey, o: Owned) -> bool:
        return self.owned.get(part) is o

    def take(self) -> ConsumerRecord | None:
        """The next buffered record, round-robin over the partitions; its partition's position
        moves past it."""
        parts = list(self.owned.items())
        for i in range(len(parts)):
            part, o = parts[(self._next + i) % len(parts)]
            if o.buffer:
                self._next = (self._next + i + 1) % len(parts)
                record = o.buffer.popleft()
                self.buffered -= 1
                o.position = record.offset + 1
                return ConsumerRecord(part[0], part[1], record)
        return None

    def polled(self) -> None:
        """The application asks for the next record: it processed those returned before."""
        for o in self.owned.values():
            o.consumed = o.position

    def to_commit(self, parts: Mapping[PartKey, Owned], consumed: bool) -> list[tuple[PartKey, int]]:
        """The positions of parts to commit (their consumed or returned position), those ahead of
        what the member committed."""
        out: list[tuple[PartKey, int]] = []
        for part, o in sorted(parts.items()):
            pos = o.consumed if consumed else o.position
            if pos is not None and (o.committed is None or pos > o.committed):
                out.append((part, pos))
        return out

    def commit_request(self, offsets: list[tuple[PartKey, int]]) -> log_pb2.CommitOffsetsRequest:
        return log_pb2.CommitOffsetsRequest(
            group=self.opts.group,
            member_id=self.member_id,
            generation=self.generation,
            offsets=[log_pb2.PartitionOffset(topic=t, partition=p, offset=off) for (t, p), off in offsets],
        )

    def committed(self, parts: Mapping[PartKey, Owned], offsets: list[tuple[PartKey, int]]) -> None:
        """The commit of offsets succeeded: those records count as processed."""
        for part, off in offsets:
            o = parts.get(part)
            if o is None:
                continue
            o.committed = off if o.committed is None else max(o.committed, off)
            o.consumed = off if o.consumed is None else max(o.consumed, off)


def chunks(offsets: list[tuple[PartKey, int]]) -> list[list[tuple[PartKey, int]]]:
    """offsets in commits of at most MAX_COMMIT_OFFSETS positions."""
    return [offsets[i : i + MAX_COMMIT_OFFSETS] for i in range(0, len(offsets), MAX_COMMIT_OFFSETS)]
