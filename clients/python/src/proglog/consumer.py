"""The synchronous client's consumer-group member (see Client.consumer and the package README's
"Consumer groups")."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from proglog import _core, _group
from proglog._core import Halt, PartKey, log
from proglog._proto.log.v1 import log_pb2
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    NotLeaderError,
    NotOwnerError,
    OffsetOutOfRangeError,
    ProglogError,
    StaleGenerationError,
    UnavailableError,
    UnknownMemberError,
)
from proglog.records import ConsumerRecord, TopicPartition

if TYPE_CHECKING:
    from proglog.client import Client

__all__ = ["Consumer"]

# Failures a member waits out (the cluster is electing, restarting or unreachable).
_TRANSIENT = (UnavailableError, DeadlineExceededError, NotLeaderError)


class Consumer:
    """A member of a consumer group (made by :meth:`Client.consumer`): it reads the partitions
    the cluster assigns it, from the group's committed offsets, and commits its positions.
    Thread-safe; iterable (``for record in consumer``) and a context manager (``with``: closes
    it). Records are :class:`~proglog.ConsumerRecord` (topic, partition, record).

    A background thread heartbeats (every third of ``session_timeout``), takes the cluster's
    assignment, and hands over the partitions the member loses as the protocol says: it stops
    reading them, drops their buffered records, commits their positions and only then
    acknowledges the generation. A reader thread per owned partition streams it (routed as the
    client routes streams: to its followers) into a buffer of at most ``max_buffered`` records.

    Commits follow Kafka's semantics: a partition's committed offset is its position after the
    last record returned to the application. :meth:`commit` commits those positions now; with
    ``auto_commit_interval`` (seconds; None: only commit()) the background thread commits every
    interval the positions of the records the application finished with (those returned before
    its latest :meth:`poll`), as does a hand-over. :meth:`close` commits (with auto-commit) and
    leaves the group; leaving a ``with`` block through an exception commits only the records
    finished with, so the one being processed is read again. A member the cluster removed (its
    session timed out) joins again by itself and reads what it is then assigned from the
    committed offsets: records are processed at least once.

    Args (of Client.consumer):
        group: the group's name, 1 to 249 of [a-zA-Z0-9._-].
        topics: the topics to subscribe to (an iterable of names, 1 to 256; not a single str).
        session_timeout: seconds without a heartbeat after which the cluster removes the member
            (1 to 300, default 10).
        auto_commit_interval: seconds between automatic commits (default 5; None: off).
        start: where to read a partition the group committed nothing for: "earliest" (its
            lowest offset, default) or "latest" (its end: only records produced from then on).
        client_id: free text DescribeGroup shows (at most 255 bytes; default host/pid).
        max_buffered: most records read ahead and not yet returned, over all partitions
            (default 1000).
    """

    def __init__(self, client: Client, opts: _group.Options) -> None:
        self._client = client
        self._opts = opts
        self._m = _group.Member(opts)
        self._cond = threading.Condition()  # guards _m, _readers, _errors, _fatal, _closed
        self._membership = threading.Lock()  # one join, heartbeat, commit or leave at a time
        self._wake = threading.Event()  # heartbeat at once
        self._readers: dict[PartKey, Halt] = {}
        self._errors: list[ProglogError] = []  # readers' failures, raised by poll in turn
        self._fatal: ProglogError | None = None  # the membership's end, raised by every poll
        self._closed = False
        self._last_ok = time.monotonic()  # the last answer of the cluster to a heartbeat or join
        self._next_commit = self._due()
        self._delay = 0.0
        with self._membership:
            self._join()
            self._delay = self._m.interval
        self._thread = threading.Thread(target=self._run, name=f"proglog-consumer-{opts.group}", daemon=True)
        self._thread.start()

    # -- the API --------------------------------------------------------------------------------

    @property
    def group(self) -> str:
        return self._opts.group

    @property
    def member_id(self) -> str:
        """The member's id ("" while it joins again)."""
        with self._cond:
            return self._m.member_id

    @property
    def generation(self) -> int:
        """The newest generation of the group the member was sent."""
        with self._cond:
            return self._m.generation

    def assignment(self) -> set[TopicPartition]:
        """The partitions the member owns now, as (topic, partition) pairs."""
        with self._cond:
            return set(self._m.owned)

    def positions(self) -> dict[TopicPartition, int]:
        """The owned partitions' positions: the offset after the last record returned (or where
        reading starts), for those whose start is known."""
        with self._cond:
            return {p: o.position for p, o in self._m.owned.items() if o.position is not None}

    def poll(self, timeout: float | None = None) -> ConsumerRecord | None:
        """Returns the next record of the partitions the member owns, waiting up to ``timeout``
        seconds for one (None: until one comes; 0: only a buffered one); None when none came.
        The records returned before count as processed (see the class doc). Raises a reader's
        error (e.g. PermissionDeniedError), the error that ended the membership, or
        ClientClosedError once the consumer or its client is closed."""
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout}")
        deadline_at = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._m.polled()
            while True:
                self._check()
                record = self._m.take()
                if record is not None:
                    self._cond.notify_all()  # room in the buffer
                    return record
                left = _core.remaining(deadline_at)
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)

    def __iter__(self) -> Iterator[ConsumerRecord]:
        return self

    def __next__(self) -> ConsumerRecord:
        record = self.poll()
        assert record is not None  # poll without a timeout waits for one
        return record

    def commit(self) -> None:
        """Commits the positions after the last records returned, of every owned partition, and
        waits until the cluster has them. A commit the cluster refuses because the assignment
        moved on (NotOwnerError, StaleGenerationError) is made again, once, after a heartbeat,
        for the partitions still owned. Raises UnknownMemberError if the member was removed
        (its session timed out: it joins again, and the partitions' new owners read from the
        previous commit), ClientClosedError once closed."""
        with self._membership:
            with self._cond:
                self._check(errors=False)
            self._commit_owned(consumed=False, manual=True)

    def close(self) -> None:
        """Commits the positions after the last records returned (with auto-commit), leaves the
        group (its partitions go to the other members at once) and stops the readers. Calls of
        other threads in progress, and later calls, raise ClientClosedError. Failures to commit
        or leave are logged, not raised (the cluster removes the member after its session
        timeout, and the partitions are read again from the previous commit)."""
        self._close(consumed=False)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._close(consumed=exc is not None)

    # -- internals ------------------------------------------------------------------------------

    def _due(self) -> float:
        interval = self._opts.auto_commit_interval
        return float("inf") if interval is None else time.monotonic() + interval

    def _check(self, errors: bool = True) -> None:
        """Raises what poll (errors) and commit raise; self._cond is held."""
        if self._closed:
            raise ClientClosedError("the consumer is closed")
        if errors and self._errors:
            raise self._errors.pop(0)
        if self._fatal is not None:
            raise self._fatal

    def _admin(self, method: str, request: Any, timeout: float | None | Literal["default"] = "default") -> Any:
        """Calls a member RPC at the metadata leader (following NOT_LEADER)."""
        return self._client._call("admin", timeout, lambda stub, left, md: getattr(stub, method)(request, timeout=left, metadata=md))

    def _run(self) -> None:
        """The background thread: heartbeats, rejoins, auto-commits."""
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            with self._membership:
                if self._closed:
                    return
                try:
                    self._beat()
                    if time.monotonic() >= self._next_commit:
                        self._next_commit = self._due()
                        self._commit_owned(consumed=True, manual=False)
                    self._delay = self._m.interval
                except _TRANSIENT as err:
                    log.debug("group %s: %s; trying again", self._opts.group, err)
                    self._delay = min(self._client._settings.backoff[1], self._m.interval)
                except ProglogError as err:  # the membership cannot go on: poll raises it
                    if not isinstance(err, ClientClosedError):
                        log.warning("group %s: membership ended: %s", self._opts.group, err)
                    with self._cond:
                        self._fatal = err
                        self._stop(self._m.fenced())
                        self._cond.notify_all()
                    return

    def _join(self) -> None:
        """Joins as a new member and takes its assignment; self._membership is held."""
        resp = self._admin("join_group", self._opts.join_request())
        self._last_ok = time.monotonic()
        log.debug("group %s: joined as %s", self._opts.group, resp.assignment.member_id)
        self._apply(resp.assignment)

    def _beat(self) -> None:
        """Heartbeats (joining again if the member was removed) and takes the assignment;
        self._membership is held."""
        if not self._m.member_id:
            self._join()
            return
        left = self._last_ok + self._opts.session_timeout - time.monotonic()
        if left <= 0:
            self._fence("no heartbeat answered within the session timeout")
            self._join()
            return
        request = log_pb2.HeartbeatRequest(group=self._opts.group, member_id=self._m.member_id, generation=self._m.follows)
        try:
            resp = self._admin("heartbeat", request, left)
        except (UnknownMemberError, StaleGenerationError) as err:
            self._fence(str(err))
            self._join()
            return
        self._last_ok = time.monotonic()
        self._apply(resp.assignment)

    def _fence(self, why: str) -> None:
        """The member's session ended: stop reading everything (uncommitted: no longer the owner)."""
        log.info("group %s: member %s removed (%s); joining again", self._opts.group, self._m.member_id, why)
        with self._cond:
            self._stop(self._m.fenced())

    def _stop(self, lost: dict[PartKey, _group.Owned]) -> None:
        """Halts the readers of lost partitions; self._cond is held."""
        for part in lost:
            halt = self._readers.pop(part, None)
            if halt is not None:
                halt.halt()
        self._cond.notify_all()  # readers waiting for room in the buffer

    def _apply(self, msg: log_pb2.Assignment) -> None:
        """Takes an assignment: stops reading the partitions lost, commits their positions (with
        auto-commit), acknowledges the generation, starts reading the partitions gained.
        self._membership is held."""
        a = _group.Assignment.parse(msg, self._opts.session_timeout / 3)
        with self._cond:
            gained, lost = self._m.update(a)
            self._stop(lost)
            offsets = self._m.to_commit(lost, consumed=True) if self._opts.auto_commit_interval is not None else []
        if offsets:
            try:
                self._send_commits(lost, offsets)
            except UnknownMemberError as err:
                self._fence(str(err))
                return
            except ProglogError as err:  # the next owner reads from the previous commit
                log.warning("group %s: commit of the partitions handed over failed: %s", self._opts.group, err)
        with self._cond:
            self._m.follows = a.generation
            if not self._closed:
                for part, o in gained.items():
                    halt = self._readers[part] = Halt()
                    threading.Thread(target=self._read, args=(part, o, halt), name=f"proglog-consumer-{part[0]}-{part[1]}", daemon=True).start()
        if lost:
            self._wake.set()  # acknowledge now: the partitions' next owners wait for it

    def _send_commits(self, parts: dict[PartKey, _group.Owned], offsets: list[tuple[PartKey, int]]) -> None:
        for chunk in _group.chunks(offsets):
            with self._cond:
                request = self._m.commit_request(chunk)
            self._admin("commit_offsets", request)
            with self._cond:
                self._m.committed(parts, chunk)

    def _commit_owned(self, consumed: bool, manual: bool) -> None:
        """Commits the owned partitions' positions (consumed or returned); a refusal because the
        assignment moved on is followed by a heartbeat and one more try. self._membership is
        held."""
        for attempt in (1, 2):
            with self._cond:
                parts = dict(self._m.owned)
                offsets = self._m.to_commit(parts, consumed)
            if not offsets:
                return
            try:
                self._send_commits(parts, offsets)
                return
            except (NotOwnerError, StaleGenerationError) as err:
                if attempt == 2:
                    if manual:
                        raise
                    log.info("group %s: commit refused: %s", self._opts.group, err)
                    return
                log.debug("group %s: commit refused (%s); heartbeat and again", self._opts.group, err)
                self._beat()
            except UnknownMemberError as err:
                self._fence(str(err))
                if manual:
                    raise
                return

    def _read(self, part: PartKey, o: _group.Owned, halt: Halt) -> None:
        """A reader thread: streams the partition into the buffer while the member owns it."""
        try:
            with self._cond:
                start = o.position
            if start is None:
                bounds = self._client.bounds(topic=part[0], partition=part[1])
                with self._cond:
                    if not self._m.current(part, o):
                        return
                    if o.position is None:
                        o.position = o.consumed = bounds.lowest if self._opts.start == "earliest" else bounds.next
                    start = o.position
            while not halt.halted.is_set():
                try:
                    for record in self._client._stream(start, True, part, halt):
                        with self._cond:
                            while self._m.buffered >= self._opts.max_buffered and self._m.current(part, o) and not self._closed:
                                self._cond.wait()
                            if not self._m.current(part, o) or self._closed:
                                return
                            o.buffer.append(record)
                            self._m.buffered += 1
                            self._cond.notify_all()
                        start = record.offset + 1
                    return
                except OffsetOutOfRangeError as err:
                    if err.offset >= err.lowest:
                        raise
                    log.warning("group %s: %s/%d: records %d to %d were removed by retention; reading from %d",
                                self._opts.group, part[0], part[1], err.offset, err.lowest - 1, err.lowest)  # fmt: skip
                    start = err.lowest
        except ProglogError as err:
            with self._cond:
                if self._m.current(part, o) and not self._closed and not halt.halted.is_set():
                    self._errors.append(err)
                    self._cond.notify_all()

    def _close(self, consumed: bool) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._wake.set()
        with self._membership:
            with self._cond:
                self._stop(dict(self._m.owned))
            try:
                if self._m.member_id and self._fatal is None:
                    if self._opts.auto_commit_interval is not None:
                        self._commit_owned(consumed, manual=False)
                    if self._m.member_id:
                        leave = log_pb2.LeaveGroupRequest(group=self._opts.group, member_id=self._m.member_id)
                        self._admin("leave_group", leave)
            except ProglogError as err:
                log.warning("group %s: closing member %s: %s", self._opts.group, self._m.member_id, err)
            finally:
                with self._cond:
                    self._m.fenced()
        if self._thread is not threading.current_thread():
            self._thread.join()
