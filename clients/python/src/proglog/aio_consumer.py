"""The asyncio client's consumer-group member (see AsyncClient.consumer and proglog.Consumer)."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from proglog import _core, _group
from proglog._core import PartKey, log
from proglog._proto.log.v1 import log_pb2
from proglog.consumer import _TRANSIENT
from proglog.errors import (
    ClientClosedError,
    NotOwnerError,
    OffsetOutOfRangeError,
    ProglogError,
    StaleGenerationError,
    UnknownMemberError,
)
from proglog.records import ConsumerRecord, TopicPartition

if TYPE_CHECKING:
    from proglog.aio import AsyncClient

__all__ = ["AsyncConsumer"]


class AsyncConsumer:
    """The asyncio twin of :class:`proglog.Consumer` (made by :meth:`AsyncClient.consumer`,
    same arguments and semantics): ``async for record in consumer``, ``await consumer.poll()``,
    ``await consumer.commit()``, ``async with`` (closes it). It joins the group on first use
    (``async with``, :meth:`start`, the first poll); a background task heartbeats and a task per
    owned partition reads it. Use it from one event loop. Closing it makes the calls of other
    tasks in progress raise ClientClosedError (a task cancelled by its caller still raises
    CancelledError)."""

    def __init__(self, client: AsyncClient, opts: _group.Options) -> None:
        self._client = client
        self._opts = opts
        self._m = _group.Member(opts)
        self._cond = asyncio.Condition()  # readers and poll wait on it for records and room
        self._membership = asyncio.Lock()  # one join, heartbeat, commit or leave at a time
        self._wake = asyncio.Event()  # heartbeat at once
        self._readers: dict[PartKey, asyncio.Task[None]] = {}
        self._errors: list[ProglogError] = []
        self._fatal: ProglogError | None = None
        self._closed = False
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._last_ok = time.monotonic()
        self._next_commit = self._due()
        self._delay = 0.0

    # -- the API --------------------------------------------------------------------------------

    @property
    def group(self) -> str:
        return self._opts.group

    @property
    def member_id(self) -> str:
        return self._m.member_id

    @property
    def generation(self) -> int:
        return self._m.generation

    def assignment(self) -> set[TopicPartition]:
        return set(self._m.owned)

    def positions(self) -> dict[TopicPartition, int]:
        return {p: o.position for p, o in self._m.owned.items() if o.position is not None}

    async def start(self) -> None:
        """Joins the group (once; the other methods call it). Raises what Client.consumer does."""
        async with self._membership:
            if self._closed:
                raise ClientClosedError("the consumer is closed")
            if self._started:
                return
            await self._join()
            self._started = True
            self._delay = self._m.interval
            self._task = asyncio.create_task(self._run())

    async def poll(self, timeout: float | None = None) -> ConsumerRecord | None:
        """Returns the next record, waiting up to ``timeout`` seconds (see Consumer.poll)."""
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout}")
        deadline_at = None if timeout is None else time.monotonic() + timeout
        if not self._started:
            await self.start()
        self._m.polled()
        async with self._cond:
            while True:
                self._check()
                record = self._m.take()
                if record is not None:
                    self._cond.notify_all()
                    return record
                left = _core.remaining(deadline_at)
                if left is not None and left <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._cond.wait(), left)
                except asyncio.TimeoutError:
                    pass

    def __aiter__(self) -> AsyncConsumer:
        return self

    async def __anext__(self) -> ConsumerRecord:
        record = await self.poll()
        assert record is not None
        return record

    async def commit(self) -> None:
        """Commits the positions after the last records returned (see Consumer.commit)."""
        if not self._started:
            await self.start()
        async with self._membership:
            self._check(errors=False)
            await self._commit_owned(consumed=False, manual=True)

    async def close(self) -> None:
        """Commits (with auto-commit), leaves the group and stops reading (see Consumer.close)."""
        await self._close(consumed=False)

    async def __aenter__(self) -> AsyncConsumer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._close(consumed=exc is not None)

    # -- internals (see Consumer's) -------------------------------------------------------------

    def _due(self) -> float:
        interval = self._opts.auto_commit_interval
        return float("inf") if interval is None else time.monotonic() + interval

    def _check(self, errors: bool = True) -> None:
        if self._closed:
            raise ClientClosedError("the consumer is closed")
        if errors and self._errors:
            raise self._errors.pop(0)
        if self._fatal is not None:
            raise self._fatal

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _admin(self, method: str, request: Any, timeout: float | None | Literal["default"] = "default") -> Any:
        async def call(stub: Any, left: float | None, md: Any) -> Any:
            return await getattr(stub, method)(request, timeout=left, metadata=md)

        return await self._client._call("admin", timeout, call)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._delay)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            async with self._membership:
                if self._closed:
                    return
                try:
                    await self._beat()
                    if time.monotonic() >= self._next_commit:
                        self._next_commit = self._due()
                        await self._commit_owned(consumed=True, manual=False)
                    self._delay = self._m.interval
                except _TRANSIENT as err:
                    log.debug("group %s: %s; trying again", self._opts.group, err)
                    self._delay = min(self._client._settings.backoff[1], self._m.interval)
                except ProglogError as err:
                    if not isinstance(err, ClientClosedError):
                        log.warning("group %s: membership ended: %s", self._opts.group, err)
                    self._fatal = err
                    self._stop(self._m.fenced())
                    await self._notify()
                    return

    async def _join(self) -> None:
        resp = await self._admin("join_group", self._opts.join_request())
        self._last_ok = time.monotonic()
        log.debug("group %s: joined as %s", self._opts.group, resp.assignment.member_id)
        await self._apply(resp.assignment)

    async def _beat(self) -> None:
        if not self._m.member_id:
            await self._join()
            return
        left = self._last_ok + self._opts.session_timeout - time.monotonic()
        if left <= 0:
            await self._fence("no heartbeat answered within the session timeout")
            await self._join()
            return
        request = log_pb2.HeartbeatRequest(group=self._opts.group, member_id=self._m.member_id, generation=self._m.follows)
        try:
            resp = await self._admin("heartbeat", request, left)
        except (UnknownMemberError, StaleGenerationError) as err:
            await self._fence(str(err))
            await self._join()
            return
        self._last_ok = time.monotonic()
        await self._apply(resp.assignment)

    async def _fence(self, why: str) -> None:
        log.info("group %s: member %s removed (%s); joining again", self._opts.group, self._m.member_id, why)
        self._stop(self._m.fenced())
        await self._notify()

    def _stop(self, lost: dict[PartKey, _group.Owned]) -> None:
        for part in lost:
            task = self._readers.pop(part, None)
            if task is not None:
                task.cancel()

    async def _apply(self, msg: log_pb2.Assignment) -> None:
        a = _group.Assignment.parse(msg, self._opts.session_timeout / 3)
        gained, lost = self._m.update(a)
        self._stop(lost)
        await self._notify()
        offsets = self._m.to_commit(lost, consumed=True) if self._opts.auto_commit_interval is not None else []
        if offsets:
            try:
                await self._send_commits(lost, offsets)
            except UnknownMemberError as err:
                await self._fence(str(err))
                return
            except ProglogError as err:
                log.warning("group %s: commit of the partitions handed over failed: %s", self._opts.group, err)
        self._m.follows = a.generation
        if not self._closed:
            for part, o in gained.items():
                self._readers[part] = asyncio.create_task(self._read(part, o))
        if lost:
            self._wake.set()

    async def _send_commits(self, parts: dict[PartKey, _group.Owned], offsets: list[tuple[PartKey, int]]) -> None:
        for chunk in _group.chunks(offsets):
            await self._admin("commit_offsets", self._m.commit_request(chunk))
            self._m.committed(parts, chunk)

    async def _commit_owned(self, consumed: bool, manual: bool) -> None:
        for attempt in (1, 2):
            parts = dict(self._m.owned)
            offsets = self._m.to_commit(parts, consumed)
            if not offsets:
                return
            try:
                await self._send_commits(parts, offsets)
                return
            except (NotOwnerError, StaleGenerationError) as err:
                if attempt == 2:
                    if manual:
                        raise
                    log.info("group %s: commit refused: %s", self._opts.group, err)
                    return
                log.debug("group %s: commit refused (%s); heartbeat and again", self._opts.group, err)
                await self._beat()
            except UnknownMemberError as err:
                await self._fence(str(err))
                if manual:
                    raise
                return

    async def _read(self, part: PartKey, o: _group.Owned) -> None:
        try:
            start = o.position
            if start is None:
                bounds = await self._client.bounds(topic=part[0], partition=part[1])
                if not self._m.current(part, o):
                    return
                if o.position is None:
                    o.position = o.consumed = bounds.lowest if self._opts.start == "earliest" else bounds.next
                start = o.position
            while True:
                try:
                    async for record in self._client.stream(start, follow=True, topic=part[0], partition=part[1]):
                        async with self._cond:
                            while self._m.buffered >= self._opts.max_buffered and self._m.current(part, o) and not self._closed:
                                await self._cond.wait()
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
            if self._m.current(part, o) and not self._closed:
                self._errors.append(err)
                await self._notify()

    async def _close(self, consumed: bool) -> None:
        if self._closed:
            return
        self._closed = True
        await self._notify()
        self._wake.set()
        async with self._membership:
            readers = list(self._readers.values())
            self._stop(dict(self._m.owned))
            try:
                if self._m.member_id and self._fatal is None:
                    if self._opts.auto_commit_interval is not None:
                        await self._commit_owned(consumed, manual=False)
                    if self._m.member_id:
                        leave = log_pb2.LeaveGroupRequest(group=self._opts.group, member_id=self._m.member_id)
                        await self._admin("leave_group", leave)
            except ProglogError as err:
                log.warning("group %s: closing member %s: %s", self._opts.group, self._m.member_id, err)
            finally:
                self._m.fenced()
        if readers:
            await asyncio.gather(*readers, return_exceptions=True)
        if self._task is not None and self._task is not asyncio.current_task():
            await self._task
