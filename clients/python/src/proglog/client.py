"""The synchronous client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, wait
from types import TracebackType
from typing import Callable, Literal, TypeVar

import grpc

from proglog import _batch, _core, _producer
from proglog._core import PEM, Attempts, Consistency, Metadata, Router, Settings
from proglog._proto.log.v1 import log_pb2
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    ProglogError,
    TLSError,
    UnavailableError,
    from_rpc_error,
)
from proglog.records import Bounds, Record, Server, Value, _as_record, _as_records, _check_offset

__all__ = ["Client"]

_T = TypeVar("_T")
_SERVICE = "/log.v1.Log/"
_CONSISTENCY = {"follower": log_pb2.CONSISTENCY_FOLLOWER, "linearizable": log_pb2.CONSISTENCY_LINEARIZABLE}


class _Stub:
    """Typed method handles of log.v1.Log on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
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


class Client:
    """A connection to a proglog cluster. Thread-safe; create one per cluster and share it.

    ``target`` names one or more servers ("host:port", "h1:p1,h2:p2", "proglog://h1:p1,h2:p2" or a
    list); the rest of the cluster is discovered with GetServers, which is asked again every
    ``discovery_interval`` seconds and whenever a server fails or says it is not the leader.
    Produce calls go to the leader; consume and stream calls go round-robin to the followers (the
    leader when there are none), or with ``consistency="linearizable"`` consume calls go to the
    leader. Connections are made lazily, at the first call.

    Args:
        target: the seed servers.
        ca: CA certificates that verify the servers: PEM bytes, or a path (None: system roots).
        cert: the client certificate (PEM bytes or a path); its common name is the identity the
            server's ACL checks.
        key: the client's private key (PEM bytes or a path), unencrypted. The constructor raises
            TLSError if ca, cert or key is not what it should be or the key does not match cert;
            a call whose TLS handshake fails raises TLSError naming the likely cause, unretried.
        server_name: the TLS name to verify servers as, when it differs from their address host.
        timeout: default bound, in seconds, of each call including its retries (None: none).
            A ``follow=False`` stream may go this long without a record while it retries; a
            following stream is not bounded.
        retries: how many times a call is retried after a retriable failure (the server is not
            the leader, unreachable or shutting down, or no leader is elected). None (default):
            with backoff until the call's timeout ends, and for a following stream until it is
            closed; 0 never.
        idempotent: whether produces are idempotent (default True): each request carries a
            producer ID and sequence number, so a retry of a request the cluster already wrote
            returns the original offsets instead of writing the records again (exactly-once
            retries). False sends none (at-least-once: a retry may write the records twice).
            See :meth:`produce_batch` for the errors only idempotent produces raise.
        produce_retries: bounds the retries of a produce after an UNAVAILABLE answer or a broken
            connection, which leave it unknown whether the records were written (with
            ``idempotent=False``, retrying them may write them twice). None (default) retries
            those like any failure; 0 raises UnavailableError instead (at-most-once). NOT_LEADER
            redirects and requests never sent (no connection could be made), which cannot
            duplicate, are always retried.
        backoff: (initial, maximum) delay between retries, in seconds; doubled each retry, jittered.
        consistency: "follower" (default) or "linearizable" (see above).
        discovery_interval: seconds between refreshes of the server list when nothing fails.
        linger: seconds a produced record may wait for others to join its batch (default 0:
            it is sent at once if no batch is in flight; see :meth:`produce_async`).
        max_batch_records: most records in one coalesced batch (default 1000, at most the
            server's 10000).
        max_batch_bytes: most encoded bytes in one coalesced batch (default 1 MiB, at most the
            server's 4 MiB message limit); a larger record is sent alone.
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
        self._queue: _batch.Queue[Future[int]] = _batch.Queue(_batch.Limits(linger, max_batch_records, max_batch_bytes))
        self._queued = threading.Condition()  # guards _queue, _in_flight and _sender
        self._in_flight: list[Future[int]] = []
        self._sender: threading.Thread | None = None
        self._router = Router(_core.parse_target(target), discovery_interval)
        self._credentials = _core.credentials(ca, cert, key)
        self._has_cert = cert is not None
        self._options = _core.channel_options(server_name)
        self._channels: dict[str, tuple[grpc.Channel, _Stub]] = {}
        self._lock = threading.Lock()
        self._discovery = threading.Lock()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes every connection. Calls in progress, records not yet acknowledged and later calls
        raise ClientClosedError."""
        with self._queued:
            with self._lock:
                self._closed = True
                channels, self._channels = list(self._channels.values()), {}
            queued = list(self._queue.items)
            self._queue.items.clear()
            sender, self._sender = self._sender, None
            self._queued.notify_all()
        for item in queued:
            item.future.set_exception(ClientClosedError("the client is closed"))
        for channel, _ in channels:
            channel.close()
        if sender is not None and sender is not threading.current_thread():
            sender.join()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the API --------------------------------------------------------------------------------

    def produce(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
    ) -> int:
        """Appends one record and returns its offset.

        ``value`` is bytes, a str (encoded as UTF-8) or a Record (then ``key`` and ``headers`` are
        taken from it). The record is sent from the calling thread when no request is in flight;
        records produced by concurrent threads meanwhile are sent together (see
        :meth:`produce_async`).
        """
        future, lone = self._enqueue(value, key, headers, timeout, alone=True)
        if lone is not None:  # nothing in flight or queued: sent from this thread, as before
            try:
                self._send([lone])
            finally:
                with self._queued:
                    self._in_flight = []
                    self._queued.notify_all()
        return future.result()

    def produce_async(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
    ) -> Future[int]:
        """Queues one record and returns a Future of its offset (or of the error that failed it).

        One sender thread sends the queued records: those queued while a request is in flight go
        together in the next one (a ProduceBatch, so they are written at consecutive offsets in
        the order queued, all or none), bounded by ``max_batch_records`` and ``max_batch_bytes``;
        a lone record is sent at once, or after ``linger``. ``timeout`` bounds the record's wait
        and its request with retries; a batch's request ends at its earliest record's timeout, and
        carries the OpenTelemetry context of its first record. The Future cannot be cancelled.
        """
        return self._enqueue(value, key, headers, timeout, alone=False)[0]

    def _enqueue(
        self,
        value: Value,
        key: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] | None,
        timeout: float | None | Literal["default"],
        alone: bool,
    ) -> tuple[Future[int], _batch.Item[Future[int]] | None]:
        """Queues a record for the sender; or, if ``alone`` and nothing is in flight, queued or
        lingering, returns it as the request now in flight, for the caller to send."""
        record = _as_record(value, key, headers)._to_proto()
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        future: Future[int] = Future()
        future.set_running_or_notify_cancel()
        with self._queued:
            if self._closed:
                raise ClientClosedError("the client is closed")
            if alone and not self._in_flight and not self._queue.items and self._queue.limits.linger == 0:
                self._in_flight = [future]
                return future, _batch.Item(record, future, deadline_at, _core.call_metadata(), 0)
            self._queue.push(record, future, deadline_at, _core.call_metadata())
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_loop, name="proglog-producer", daemon=True)
                self._sender.start()
            self._queued.notify_all()
        return future, None

    def flush(self) -> None:
        """Sends the queued records without waiting for ``linger`` and waits until every record
        queued before the call is acknowledged or failed."""
        with self._queued:
            pending = [i.future for i in self._queue.items] + self._in_flight
            self._queue.flush_to = self._queue.seq
            self._queued.notify_all()
        wait(pending)

    def produce_batch(self, values: Iterable[Value], *, timeout: float | None | Literal["default"] = "default") -> range:
        """Appends records atomically at consecutive offsets, and returns those offsets.

        Either every record is written or none is. Retried after an ambiguous failure, the batch is
        written once (with ``idempotent=False`` it may be written twice as a whole; see
        ``produce_retries``). Idempotent produces may also raise OutOfOrderSequenceError (the
        cluster refused the request's sequence; nothing written) and UnknownProducerError (the
        cluster forgot the producer while the request was retried: it may or may not have been
        written).
        """
        request = log_pb2.ProduceBatchRequest(records=[r._to_proto() for r in _as_records(values)])
        with self._producers.request(len(request.records)) as req:

            def call(stub: _Stub, t: float | None, md: Metadata) -> range:
                if req is not None:
                    request.producer.CopyFrom(req.field())
                resp = stub.produce_batch(request, timeout=t, metadata=md)
                _producer.answered(resp.duplicate, req)
                return range(resp.first_offset, resp.first_offset + resp.count)

            return self._call("produce", timeout, call, req)

    def consume(self, offset: int, *, timeout: float | None | Literal["default"] = "default") -> Record:
        """Reads the record at ``offset``; raises OffsetOutOfRangeError (with the log's bounds) if
        there is none."""
        request = log_pb2.ConsumeRequest(offset=_check_offset(offset), consistency=_CONSISTENCY[self._settings.consistency])
        return self._call("read", timeout, lambda stub, t, md: Record._from_proto(stub.consume(request, timeout=t, metadata=md).record))

    def servers(self, *, timeout: float | None | Literal["default"] = "default") -> list[Server]:
        """Lists the cluster's servers, the leader marked."""
        request = log_pb2.GetServersRequest()
        return self._call(
            "servers", timeout, lambda stub, t, md: [Server._from_proto(s) for s in stub.get_servers(request, timeout=t, metadata=md).servers]
        )

    def bounds(self, *, timeout: float | None | Literal["default"] = "default") -> Bounds:
        """Asks the leader for the log's bounds (GetBounds, linearizable): ``next`` covers every
        record whose produce was acknowledged before the call."""
        request = log_pb2.GetBoundsRequest(consistency=log_pb2.CONSISTENCY_LINEARIZABLE)

        def call(stub: _Stub, t: float | None, md: Metadata) -> Bounds:
            resp = stub.get_bounds(request, timeout=t, metadata=md)
            return Bounds(lowest=resp.lowest, next=resp.next)

        return self._call("bounds", timeout, call)

    def stream(self, offset: int = 0, *, follow: bool = True) -> Iterator[Record]:
        """Yields the records from ``offset`` on, in order.

        With ``follow`` (the default) it then waits for new records for ever: stop by breaking out
        of the loop (or closing the generator). With ``follow=False`` it stops at the end of the log
        as it was when the stream started. If the server goes away the stream resumes on another
        one after the last record yielded, so nothing is skipped or repeated: a following stream
        retries until it is closed, one with ``follow=False`` until ``timeout`` passes without a
        record (with the default ``retries=None``).
        """
        _check_offset(offset)
        end: int | None = None
        if not follow:
            end = self.bounds().next
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
                addr, role, stub = self._pick(attempts, deadline_at)
                call = stub.consume_stream(request, metadata=_core.call_metadata())
                for resp in call:
                    record = Record._from_proto(resp.record)
                    attempts.progress()
                    deadline_at = _core.deadline(timeout)
                    request = log_pb2.ConsumeRequest(offset=record.offset + 1)
                    yield record
                    if end is not None and record.offset + 1 >= end:
                        return
                raise UnavailableError("the stream ended", grpc.StatusCode.UNAVAILABLE)
            except grpc.RpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except ProglogError as perr:
                err = perr
            finally:
                if call is not None:
                    call.cancel()
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            time.sleep(delay)

    # -- internals ------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._queued:
                while not self._closed and (self._in_flight or not self._queue.items or self._queue.linger_left() > 0):
                    self._queued.wait(self._queue.linger_left() or None)
                if self._closed:
                    return
                batch = self._queue.take()
                self._in_flight = [i.future for i in batch]
            self._send(batch)
            with self._queued:
                self._in_flight = []

    def _send(self, batch: list[_batch.Item[Future[int]]]) -> None:
        now = time.monotonic()
        expired = [i for i in batch if i.deadline_at is not None and i.deadline_at <= now]
        batch = [i for i in batch if i.deadline_at is None or i.deadline_at > now]
        for item in expired:
            item.future.set_exception(DeadlineExceededError("timed out waiting to be sent", grpc.StatusCode.DEADLINE_EXCEEDED))
        if not batch:
            return
        timeout = _batch.batch_timeout(batch, now)
        metadata = batch[0].metadata
        try:
            with self._producers.request(len(batch)) as req:
                if len(batch) == 1:
                    single = log_pb2.ProduceRequest(record=batch[0].record)

                    def call(stub: _Stub, t: float | None, _: Metadata) -> int:
                        if req is not None:
                            single.producer.CopyFrom(req.field())
                        resp = stub.produce(single, timeout=t, metadata=metadata)
                        _producer.answered(resp.duplicate, req)
                        return resp.offset

                else:
                    request = log_pb2.ProduceBatchRequest(records=[i.record for i in batch])

                    def call(stub: _Stub, t: float | None, _: Metadata) -> int:
                        if req is not None:
                            request.producer.CopyFrom(req.field())
                        resp = stub.produce_batch(request, timeout=t, metadata=metadata)
                        _producer.answered(resp.duplicate, req)
                        return resp.first_offset

                first = self._call("produce", timeout, call, req)
        except BaseException as err:  # every caller gets the failure, and the sender goes on
            for item in batch:
                item.future.set_exception(err)
            return
        for n, item in enumerate(batch):
            item.future.set_result(first + n)

    def _error(self, err: grpc.RpcError, addr: str) -> ProglogError:
        if self._closed:
            return ClientClosedError("the client is closed")
        return _core.handshake_error(from_rpc_error(err), addr, self._has_cert)

    def _stub(self, addr: str) -> _Stub:
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed")
            if addr not in self._channels:
                channel = grpc.secure_channel(addr, self._credentials, self._options)
                self._channels[addr] = (channel, _Stub(channel))
            return self._channels[addr][1]

    def _discover(self, deadline_at: float | None, prefer: str | None = None) -> None:
        """Refreshes the router from the first server that answers GetServers."""
        with self._discovery:
            if prefer is None and not self._router.needs_refresh():
                return  # another thread just did
            errors: list[str] = []
            tls: TLSError | None = None
            for addr in self._router.candidates(prefer):
                try:
                    resp = self._stub(addr).get_servers(
                        log_pb2.GetServersRequest(), timeout=_core.discovery_timeout(deadline_at), metadata=_core.call_metadata()
                    )
                except grpc.RpcError as rpc_err:
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

    def _pick(self, attempts: Attempts, deadline_at: float | None) -> tuple[str, str, _Stub]:
        if self._router.needs_refresh():
            self._discover(deadline_at)
        picked = self._router.pick(attempts.route)
        if picked is None:
            raise _core.no_server(attempts.route)
        addr, role = picked
        return addr, role, self._stub(addr)

    def _call(
        self,
        op: Literal["produce", "read", "servers", "bounds"],
        timeout: float | None | Literal["default"],
        fn: Callable[[_Stub, float | None, Metadata], _T],
        req: _producer.Request | None = None,
    ) -> _T:
        """Calls fn until it succeeds or a failure is final (see Attempts); ``req`` is the
        idempotence of a produce (see _producer.Request.after)."""
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        attempts = Attempts(self._settings, self._router, op)
        metadata = _core.call_metadata()
        while True:
            role: str | None = None
            addr = ""
            sent = False
            try:
                addr, role, stub = self._pick(attempts, deadline_at)
                left = _core.remaining(deadline_at)
                if left is not None and left <= 0:
                    raise DeadlineExceededError("timed out", grpc.StatusCode.DEADLINE_EXCEEDED)
                sent = True
                return fn(stub, left, metadata)
            except grpc.RpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except UnavailableError as unavailable:  # discovery failed, or no leader yet
                err, role = unavailable, None
            if req is not None:
                again = req.after(err, sent)
                if again is None:
                    continue
                err = again
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            time.sleep(delay)
