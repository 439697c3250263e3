"""The asyncio client, on grpc.aio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Literal, TypeVar

import grpc
import grpc.aio

from proglog import _batch, _core, _producer
from proglog._core import PEM, Attempts, Consistency, Metadata, Router, Settings
from proglog._proto.log.v1 import log_pb2
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    ProglogError,
    TLSError,
    UnavailableError,
    from_status,
)
from proglog.records import Bounds, Record, Server, Value, _as_record, _as_records, _check_offset

__all__ = ["AsyncClient"]

_T = TypeVar("_T")
_SERVICE = "/log.v1.Log/"
_CONSISTENCY = {"follower": log_pb2.CONSISTENCY_FOLLOWER, "linearizable": log_pb2.CONSISTENCY_LINEARIZABLE}


class _Stub:
    """Typed method handles of log.v1.Log on one aio channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.produce = channel.unary_unary(
            _SERVICE + "Produce", log_pb2.ProduceRequest.SerializeToString, log_pb2.ProduceResponse.FromString
        )
        self.produce_batch = channel.unary_unary(
            _SERVICE + "ProduceBatch", log_pb2.ProduceBatchRequest.SerializeToString, log_pb2.ProduceBatchResponse.FromString
        )
        self.consume = channel.unary_unary(
            _SERVICE + "Consume", log_pb2.ConsumeRequest.SerializeToString, log_pb2.ConsumeResponse.FromString
        )
        self.consume_stream = channel.unary_stream(
            _SERVICE + "ConsumeStream", log_pb2.ConsumeRequest.SerializeToString, log_pb2.ConsumeResponse.FromString
        )
        self.get_servers = channel.unary_unary(
            _SERVICE + "GetServers", log_pb2.GetServersRequest.SerializeToString, log_pb2.GetServersResponse.FromString
        )
        self.get_bounds = channel.unary_unary(
            _SERVICE + "GetBounds", log_pb2.GetBoundsRequest.SerializeToString, log_pb2.GetBoundsResponse.FromString
        )


class AsyncClient:
    """The asyncio twin of :class:`proglog.Client`: the same arguments, routing, retries and errors,
    with coroutine methods and an async iterator for streams::

        async with AsyncClient("localhost:8400", ca=..., cert=..., key=...) as client:
            offset = await client.produce(b"hello")
            async for record in client.stream(offset):
                ...

    Concurrent produces (tasks) are coalesced as in Client; :meth:`produce_async` returns an
    asyncio Future. Use it from one event loop. :meth:`close` makes the calls in progress raise ClientClosedError
    (a task cancelled by its caller still raises CancelledError).
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        ca: PEM | None = None,
        cert: PEM | None = None,
        key: PEM | None = None,
        server_name: str | None = None,
        timeout: float | None = 30.0,
        retries: int | None = None,
        produce_retries: int | None = None,
        backoff: tuple[float, float] = (0.05, 1.0),
        consistency: Consistency = "follower",
        discovery_interval: float = 10.0,
        linger: float = 0.0,
        max_batch_records: int = _batch.DEFAULT_MAX_BATCH_RECORDS,
        max_batch_bytes: int = _batch.DEFAULT_MAX_BATCH_BYTES,
        idempotent: bool = True,
    ) -> None:
        self._settings = Settings(timeout, retries, produce_retries, backoff, consistency, discovery_interval)
        self._producers = _producer.Producers(idempotent)
        self._queue: _batch.Queue[asyncio.Future[int]] = _batch.Queue(_batch.Limits(linger, max_batch_records, max_batch_bytes))
        self._wake: asyncio.Event | None = None
        self._in_flight: list[asyncio.Future[int]] = []
        self._sender: asyncio.Task[None] | None = None
        self._router = Router(_core.parse_target(target), discovery_interval)
        self._credentials = _core.credentials(ca, cert, key)
        self._has_cert = cert is not None
        self._options = _core.channel_options(server_name)
        self._channels: dict[str, tuple[grpc.aio.Channel, _Stub]] = {}
        self._discovery: asyncio.Lock | None = None
        self._closed = False

    async def close(self) -> None:
        """Closes every connection. Calls in progress, records not yet acknowledged and later calls
        raise ClientClosedError."""
        self._closed = True
        for item in self._queue.items:
            if not item.future.done():
                item.future.set_exception(ClientClosedError("the client is closed"))
        self._queue.items.clear()
        if self._wake is not None:
            self._wake.set()
        channels, self._channels = list(self._channels.values()), {}
        for channel, _ in channels:
            await channel.close()
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def produce(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
    ) -> int:
        """Appends one record and returns its offset (see Client.produce); records produced by
        concurrent tasks are sent together."""
        return await self.produce_async(value, key=key, headers=headers, timeout=timeout)

    def produce_async(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
    ) -> asyncio.Future[int]:
        """Queues one record and returns a Future of its offset, without waiting (see
        Client.produce_async). Call it from the client's event loop. Cancelling the Future
        before its record is sent drops the record; after, the record may be written."""
        record = _as_record(value, key, headers)._to_proto()
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        if self._closed:
            raise ClientClosedError("the client is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.push(record, future, deadline_at, _core.call_metadata())
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())
        self._wake.set()
        return future

    async def flush(self) -> None:
        """Sends the queued records without waiting for ``linger`` and waits until every record
        queued before the call is acknowledged or failed."""
        pending = [i.future for i in self._queue.items] + self._in_flight
        self._queue.flush_to = self._queue.seq
        if self._wake is not None:
            self._wake.set()
        if pending:
            await asyncio.wait(pending)

    async def produce_batch(self, values: Iterable[Value], *, timeout: float | None | Literal["default"] = "default") -> range:
        """Appends records atomically and returns their offsets (see Client.produce_batch)."""
        request = log_pb2.ProduceBatchRequest(records=[r._to_proto() for r in _as_records(values)])
        with self._producers.request(len(request.records)) as req:

            async def call(stub: _Stub, t: float | None, md: Metadata) -> range:
                if req is not None:
                    request.producer.CopyFrom(req.field())
                resp = await stub.produce_batch(request, timeout=t, metadata=md)
                _producer.answered(resp.duplicate, req)
                return range(resp.first_offset, resp.first_offset + resp.count)

            return await self._call("produce", timeout, call, req)

    async def consume(self, offset: int, *, timeout: float | None | Literal["default"] = "default") -> Record:
        """Reads the record at ``offset`` (see Client.consume)."""
        request = log_pb2.ConsumeRequest(offset=_check_offset(offset), consistency=_CONSISTENCY[self._settings.consistency])

        async def call(stub: _Stub, t: float | None, md: Metadata) -> Record:
            return Record._from_proto((await stub.consume(request, timeout=t, metadata=md)).record)

        return await self._call("read", timeout, call)

    async def servers(self, *, timeout: float | None | Literal["default"] = "default") -> list[Server]:
        """Lists the cluster's servers, the leader marked."""

        async def call(stub: _Stub, t: float | None, md: Metadata) -> list[Server]:
            resp = await stub.get_servers(log_pb2.GetServersRequest(), timeout=t, metadata=md)
            return [Server._from_proto(s) for s in resp.servers]

        return await self._call("servers", timeout, call)

    async def bounds(self, *, timeout: float | None | Literal["default"] = "default") -> Bounds:
        """Asks the leader for the log's bounds (see Client.bounds)."""
        request = log_pb2.GetBoundsRequest(consistency=log_pb2.CONSISTENCY_LINEARIZABLE)

        async def call(stub: _Stub, t: float | None, md: Metadata) -> Bounds:
            resp = await stub.get_bounds(request, timeout=t, metadata=md)
            return Bounds(lowest=resp.lowest, next=resp.next)

        return await self._call("bounds", timeout, call)

    async def stream(self, offset: int = 0, *, follow: bool = True) -> AsyncIterator[Record]:
        """Yields the records from ``offset`` on (see Client.stream)."""
        _check_offset(offset)
        end: int | None = None
        if not follow:
            end = (await self.bounds()).next
            if offset >= end:
                return
        timeout = None if follow else self._settings.timeout
        deadline_at = _core.deadline(timeout)
        attempts = Attempts(self._settings, self._router, "stream")
        request = log_pb2.ConsumeRequest(offset=offset)
        while True:
            role: str | None = None
            addr = ""
            call = None
            try:
                addr, role, stub = await self._pick(attempts, deadline_at)
                call = stub.consume_stream(request, metadata=_core.call_metadata())
                async for resp in call:
                    record = Record._from_proto(resp.record)
                    attempts.progress()
                    deadline_at = _core.deadline(timeout)
                    request = log_pb2.ConsumeRequest(offset=record.offset + 1)
                    yield record
                    if end is not None and record.offset + 1 >= end:
                        return
                raise UnavailableError("the stream ended", grpc.StatusCode.UNAVAILABLE)
            except grpc.aio.AioRpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except ProglogError as perr:
                err = perr
            except asyncio.CancelledError:
                self._raise_if_closed()
                raise
            finally:
                if call is not None:
                    call.cancel()
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            await asyncio.sleep(delay)

    async def _send_loop(self) -> None:
        assert self._wake is not None
        while not self._closed:
            self._queue.drop_done()  # Futures cancelled while queued
            if not self._queue.items:
                self._wake.clear()
                await self._wake.wait()
                continue
            left = self._queue.linger_left()
            if left > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    pass
                continue
            batch = self._queue.take()
            self._in_flight = [i.future for i in batch]
            await self._send(batch)
            self._in_flight = []

    async def _send(self, batch: list[_batch.Item[asyncio.Future[int]]]) -> None:
        now = time.monotonic()
        for item in batch:
            if item.deadline_at is not None and item.deadline_at <= now:
                item.future.set_exception(DeadlineExceededError("timed out waiting to be sent", grpc.StatusCode.DEADLINE_EXCEEDED))
        batch = [i for i in batch if not i.future.done()]
        if not batch:
            return
        timeout = _batch.batch_timeout(batch, now)
        metadata = batch[0].metadata
        single = log_pb2.ProduceRequest(record=batch[0].record)
        request = log_pb2.ProduceBatchRequest(records=[i.record for i in batch]) if len(batch) > 1 else None
        try:
            with self._producers.request(len(batch)) as req:

                async def call(stub: _Stub, t: float | None, _: Metadata) -> int:
                    if request is None:
                        if req is not None:
                            single.producer.CopyFrom(req.field())
                        resp = await stub.produce(single, timeout=t, metadata=metadata)
                        _producer.answered(resp.duplicate, req)
                        return resp.offset
                    if req is not None:
                        request.producer.CopyFrom(req.field())
                    batch_resp = await stub.produce_batch(request, timeout=t, metadata=metadata)
                    _producer.answered(batch_resp.duplicate, req)
                    return batch_resp.first_offset

                first = await self._call("produce", timeout, call, req)
        except Exception as err:  # every caller gets the failure, and the sender goes on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        for n, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result(first + n)

    def _error(self, err: grpc.aio.AioRpcError, addr: str) -> ProglogError:
        if self._closed:
            return ClientClosedError("the client is closed")
        return _core.handshake_error(from_status(err.code(), err.details() or "", err.trailing_metadata()), addr, self._has_cert)

    def _raise_if_closed(self) -> None:
        """Called on CancelledError: grpc.aio cancels the calls of a closed channel. Raises
        ClientClosedError for those, unless the task itself is being cancelled (then the caller's
        CancelledError goes on)."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if self._closed and not (cancelling is not None and cancelling()):
            raise ClientClosedError("the client is closed") from None

    def _stub(self, addr: str) -> _Stub:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if addr not in self._channels:
            channel = grpc.aio.secure_channel(addr, self._credentials, self._options)
            self._channels[addr] = (channel, _Stub(channel))
        return self._channels[addr][1]

    async def _discover(self, deadline_at: float | None) -> None:
        if self._discovery is None:
            self._discovery = asyncio.Lock()
        async with self._discovery:
            if not self._router.needs_refresh():
                return
            errors: list[str] = []
            tls: TLSError | None = None
            for addr in self._router.candidates():
                try:
                    resp = await self._stub(addr).get_servers(
                        log_pb2.GetServersRequest(), timeout=_core.discovery_timeout(deadline_at), metadata=_core.call_metadata()
                    )
                except grpc.aio.AioRpcError as rpc_err:
                    err = self._error(rpc_err, addr)
                    if isinstance(err, ClientClosedError):
                        raise err from None
                    if _core.discovery_refused(err):
                        self._router.set_static()
                        return
                    tls = tls or (err if isinstance(err, TLSError) else None)
                    errors.append(f"{addr}: {err}")
                    continue
                servers = [Server._from_proto(s) for s in resp.servers]
                if servers:
                    self._router.update(servers)
                    return
                errors.append(f"{addr}: listed no servers")
            if tls is not None:  # no server answered, and TLS is why for some: say so
                raise tls
            raise UnavailableError("no server answered: " + "; ".join(errors), grpc.StatusCode.UNAVAILABLE)

    async def _pick(self, attempts: Attempts, deadline_at: float | None) -> tuple[str, str, _Stub]:
        if self._router.needs_refresh():
            await self._discover(deadline_at)
        picked = self._router.pick(attempts.route)
        if picked is None:
            raise _core.no_server(attempts.route)
        addr, role = picked
        return addr, role, self._stub(addr)

    async def _call(
        self,
        op: Literal["produce", "read", "servers", "bounds"],
        timeout: float | None | Literal["default"],
        fn: Callable[[_Stub, float | None, Metadata], Awaitable[_T]],
        req: _producer.Request | None = None,
    ) -> _T:
        """Awaits fn until it succeeds or a failure is final (see Client._call)."""
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        attempts = Attempts(self._settings, self._router, op)
        metadata = _core.call_metadata()
        while True:
            role: str | None = None
            addr = ""
            sent = False
            try:
                addr, role, stub = await self._pick(attempts, deadline_at)
                left = _core.remaining(deadline_at)
                if left is not None and left <= 0:
                    raise DeadlineExceededError("timed out", grpc.StatusCode.DEADLINE_EXCEEDED)
                sent = True
                return await fn(stub, left, metadata)
            except grpc.aio.AioRpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except UnavailableError as unavailable:
                err, role = unavailable, None
            except asyncio.CancelledError:
                self._raise_if_closed()
                raise
            if req is not None:
                again = req.after(err, sent)
                if again is None:
                    continue
                err = again
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            await asyncio.sleep(delay)
