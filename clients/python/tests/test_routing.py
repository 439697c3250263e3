"""Discovery, routing and retries, on a fake three-node cluster of in-process gRPC servers.

The fake nodes speak TLS with the dev server certificate, list each other in GetServers, and act
the roles of a Raft cluster as go/replication does: only the leader appends; the others answer
FAILED_PRECONDITION with a NOT_LEADER ErrorInfo naming it. Reads are served by every node.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

import proglog
from proglog import AsyncClient, Client
from proglog import _core
from proglog._core import Attempts, MetadataCache, PartRoute, Router, Settings
from proglog._proto.log.v1 import log_pb2, log_pb2_grpc
from proglog.records import PartitionInfo, Server, TopicConfig, TopicInfo

from conftest import ServerProcess


class FakeCluster:
    def __init__(self, server: ServerProcess, size: int = 3) -> None:
        certs = server.certs
        creds = grpc.ssl_server_credentials([((certs / "server-key.pem").read_bytes(), (certs / "server.pem").read_bytes())])
        self.lock = threading.Lock()
        self.records: list[log_pb2.Record] = []
        self.leader = 0
        self.appends: Counter[int] = Counter()
        self.reads: Counter[int] = Counter()
        self.bounds: Counter[int] = Counter()  # GetBounds answered, per node
        self.fail_after_append = False
        self.unavailable = 0  # the next Consume and ConsumeStream calls fail with UNAVAILABLE
        self.streams_down = False  # every ConsumeStream fails with UNAVAILABLE
        self.refuse_servers = False  # GetServers answers PERMISSION_DENIED (an ACL without "servers")
        self.gate: threading.Event | None = None  # Produce waits for it, after releasing entered
        self.entered = threading.Semaphore(0)
        self.streaming = threading.Semaphore(0)  # released by each ConsumeStream once it waits for records
        self.metadata: list[dict[str, str]] = []  # of each Produce and ProduceBatch
        self.requests: list[int] = []  # the records of each Produce (1) and ProduceBatch the leader took
        self.fail_batches = False  # ProduceBatch answers INVALID_ARGUMENT
        # Idempotent producers as go/replication keeps them: ID -> (sequence, count, first offset)
        # of its last batch.
        self.producers: dict[int, tuple[int, int, int]] = {}
        self.sent: list[tuple[int, int]] = []  # (producer ID, sequence) of each produce the leader got
        self.forget_after_append = False  # the next append also forgets every producer (expiry)
        self.out_of_order = False  # the next idempotent produce answers OUT_OF_ORDER_SEQUENCE
        self.too_many_producers = False  # new producers are refused with TOO_MANY_PRODUCERS
        self.changed = threading.Condition(self.lock)
        self.addrs: list[str] = []
        self.servers: list[grpc.Server] = []
        for i in range(size):
            s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            log_pb2_grpc.add_LogServicer_to_server(_Node(self, i), s)
            port = s.add_secure_port("127.0.0.1:0", creds)
            s.start()
            self.servers.append(s)
            self.addrs.append(f"127.0.0.1:{port}")

    def stop(self) -> None:
        for s in self.servers:
            s.stop(grace=None)


class _Node(log_pb2_grpc.LogServicer):  # type: ignore[misc]
    def __init__(self, cluster: FakeCluster, index: int) -> None:
        self.c = cluster
        self.i = index

    def _abort(self, context: Any, code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str]) -> None:
        info = error_details_pb2.ErrorInfo(reason=reason, domain="proglog", metadata=metadata)
        detail = any_pb2.Any()
        detail.Pack(info)
        st = status_pb2.Status(code=code.value[0], message=message, details=[detail])
        context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
        context.abort(code, message)

    def _not_leader(self, context: Any) -> None:
        leader = self.c.addrs[self.c.leader]
        metadata = {"leader_id": f"n{self.c.leader}", "leader_addr": leader}
        self._abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"not the leader: send this request to {leader}", "NOT_LEADER", metadata)

    def Produce(self, request: log_pb2.ProduceRequest, context: Any) -> log_pb2.ProduceResponse:
        first, duplicate = self._append([request.record], request.producer if request.HasField("producer") else None, context)
        return log_pb2.ProduceResponse(offset=first, duplicate=duplicate)

    def ProduceBatch(self, request: log_pb2.ProduceBatchRequest, context: Any) -> log_pb2.ProduceBatchResponse:
        if self.c.fail_batches:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch refused")
        first, duplicate = self._append(request.records, request.producer if request.HasField("producer") else None, context)
        return log_pb2.ProduceBatchResponse(first_offset=first, count=len(request.records), duplicate=duplicate)

    def _sequence(self, producer: log_pb2.Producer, count: int, context: Any) -> int | None:
        """The first offset of the producer's batch if the request repeats it; aborts with the
        server's errors for a sequence that does not follow it."""
        self.c.sent.append((producer.id, producer.sequence))
        md = {"producer_id": str(producer.id), "sequence": str(producer.sequence)}
        last = self.c.producers.get(producer.id)
        if self.c.out_of_order:
            self.c.out_of_order = False
            self._abort(context, grpc.StatusCode.FAILED_PRECONDITION, "out of order", "OUT_OF_ORDER_SEQUENCE", {**md, "expected": "7"})
        if last is None and producer.sequence != 0:
            self._abort(context, grpc.StatusCode.FAILED_PRECONDITION, "unknown producer", "UNKNOWN_PRODUCER", md)
        if last is None and self.c.too_many_producers:
            self._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "too many producers", "TOO_MANY_PRODUCERS",
                        {"producer_id": str(producer.id), "limit": "1"})
        if last is not None and (producer.sequence, count) == last[:2]:
            return last[2]
        expected = 0 if last is None else last[0] + last[1]
        if producer.sequence != expected:
            self._abort(context, grpc.StatusCode.FAILED_PRECONDITION, "out of order", "OUT_OF_ORDER_SEQUENCE", {**md, "expected": str(expected)})
        return None

    def _append(self, records: Any, producer: log_pb2.Producer | None, context: Any) -> tuple[int, bool]:
        if self.c.gate is not None:
            self.c.entered.release()
            self.c.gate.wait()
        with self.c.lock:
            self.c.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
            if self.i != self.c.leader:
                self._not_leader(context)
            if producer is not None:
                if (written := self._sequence(producer, len(records), context)) is not None:
                    return written, True
                self.c.producers[producer.id] = (producer.sequence, len(records), len(self.c.records))
            self.c.appends[self.i] += len(records)
            self.c.requests.append(len(records))
            first = len(self.c.records)
            for r in records:
                rec = log_pb2.Record()
                rec.CopyFrom(r)
                rec.offset = len(self.c.records)
                self.c.records.append(rec)
            self.c.changed.notify_all()
            if self.c.forget_after_append:
                self.c.forget_after_append = False
                self.c.producers.clear()
            if self.c.fail_after_append:
                self.c.fail_after_append = False
                context.abort(grpc.StatusCode.UNAVAILABLE, "leadership changed during the request")
            return first, False

    def Consume(self, request: log_pb2.ConsumeRequest, context: Any) -> log_pb2.ConsumeResponse:
        with self.c.lock:
            if request.consistency == log_pb2.CONSISTENCY_LINEARIZABLE and self.i != self.c.leader:
                self._not_leader(context)
            self.c.reads[self.i] += 1
            if self.c.unavailable > 0:
                self.c.unavailable -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "down for a while")
            if request.offset >= len(self.c.records):
                bounds = {"offset": str(request.offset), "lowest": "0", "next": str(len(self.c.records))}
                self._abort(context, grpc.StatusCode.OUT_OF_RANGE, "out of range", "OFFSET_OUT_OF_RANGE", bounds)
            return log_pb2.ConsumeResponse(record=self.c.records[request.offset])

    def GetBounds(self, request: log_pb2.GetBoundsRequest, context: Any) -> log_pb2.GetBoundsResponse:
        with self.c.lock:
            if request.consistency == log_pb2.CONSISTENCY_LINEARIZABLE and self.i != self.c.leader:
                self._not_leader(context)
            self.c.bounds[self.i] += 1
            return log_pb2.GetBoundsResponse(lowest=0, next=len(self.c.records))

    def ConsumeStream(self, request: log_pb2.ConsumeRequest, context: Any) -> Iterator[log_pb2.ConsumeResponse]:
        offset = request.offset
        waiting = False
        while context.is_active():
            with self.c.lock:
                if self.c.unavailable > 0 or self.c.streams_down:
                    self.c.unavailable = max(self.c.unavailable - 1, 0)
                    context.abort(grpc.StatusCode.UNAVAILABLE, "down for a while")
                batch = self.c.records[offset:]
                if not batch:
                    if not waiting:
                        self.c.streaming.release()
                        waiting = True
                    self.c.changed.wait(0.05)  # and look at context.is_active() again
                    continue
            for rec in batch:
                yield log_pb2.ConsumeResponse(record=rec)
                offset += 1

    def GetServers(self, request: log_pb2.GetServersRequest, context: Any) -> log_pb2.GetServersResponse:
        if self.c.refuse_servers:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no servers permission")
        with self.c.lock:
            return log_pb2.GetServersResponse(
                servers=[log_pb2.Server(id=f"n{i}", rpc_addr=a, is_leader=i == self.c.leader) for i, a in enumerate(self.c.addrs)]
            )


@pytest.fixture
def cluster(server: ServerProcess) -> Iterator[FakeCluster]:
    c = FakeCluster(server)
    yield c
    c.stop()


def test_produce_goes_to_the_leader_and_reads_to_followers(cluster: FakeCluster, server: ServerProcess) -> None:
    # Seeded with one follower only: the rest is discovered.
    with Client(cluster.addrs[2], **server.tls()) as c:
        for i in range(10):
            assert c.produce(f"{i}".encode()) == i
        for i in range(20):
            assert c.consume(i % 10).value == f"{i % 10}".encode()
        assert c.servers()[0].is_leader
    assert cluster.appends == Counter({0: 10})
    assert cluster.reads == Counter({1: 10, 2: 10})

    with Client(cluster.addrs[2], **server.tls(), consistency="linearizable") as c:
        c.consume(0)
    assert cluster.reads[0] == 1


def test_leader_change_is_followed(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs, **server.tls(), backoff=(0.01, 0.1)) as c:
        assert c.produce(b"a") == 0
        cluster.leader = 1
        assert c.produce(b"b") == 1  # NOT_LEADER from n0, retried at n1
        assert cluster.appends == Counter({0: 1, 1: 1})
        # The leader dies; another is elected.
        cluster.servers[1].stop(grace=None)
        cluster.leader = 2
        assert c.produce(b"c") == 2
        assert cluster.appends[2] == 1

    async def main() -> None:
        async with AsyncClient(cluster.addrs, **server.tls(), backoff=(0.01, 0.1)) as ac:
            assert await ac.produce(b"d") == 3
            cluster.leader = 0
            assert await ac.produce(b"e") == 4
            assert (await ac.consume(4)).value == b"e"

    asyncio.run(main())
    assert cluster.appends[0] == 2 and cluster.appends[2] == 2


def test_ambiguous_produce_retries(cluster: FakeCluster, server: ServerProcess) -> None:
    # Default, idempotent: the retry of a request already written is answered with its offsets,
    # and writes nothing. A request keeps its producer and sequence across its retries; the
    # producer's next request goes on from there.
    with Client(cluster.addrs[0], **server.tls(), backoff=(0.01, 0.1)) as c:
        cluster.fail_after_append = True
        assert c.produce(b"once") == 0
        cluster.fail_after_append = True
        assert c.produce_batch([b"b1", b"b2"]) == range(1, 3)
        assert [r.value for r in cluster.records] == [b"once", b"b1", b"b2"]
        pid = cluster.sent[0][0]
        assert pid != 0 and cluster.sent == [(pid, 0), (pid, 0), (pid, 1), (pid, 1)]
    # idempotent=False: at-least-once; the record is written twice.
    with Client(cluster.addrs[0], **server.tls(), backoff=(0.01, 0.1), idempotent=False) as c:
        cluster.fail_after_append = True
        assert c.produce(b"twice") == 4
        assert [r.value for r in cluster.records[3:]] == [b"twice", b"twice"]
        assert len(cluster.sent) == 4  # no producer on the requests
    # produce_retries=0: at-most-once; the failure is raised.
    with Client(cluster.addrs[0], **server.tls(), produce_retries=0) as c:
        cluster.fail_after_append = True
        with pytest.raises(proglog.UnavailableError):
            c.produce(b"maybe")
        assert len(cluster.records) == 6
        # A NOT_LEADER redirect cannot duplicate: still made.
        cluster.leader = 1
        assert c.produce(b"redirected") == 6
    # retries=0: nothing is retried.
    with Client(cluster.addrs[0], **server.tls(), retries=0) as c:
        c.servers()
        cluster.leader = 2
        with pytest.raises(proglog.NotLeaderError) as caught:
            c.produce(b"refused")
        assert caught.value.leader_addr == cluster.addrs[2] and caught.value.leader_id == "n2"


def test_forgotten_producer(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls(), backoff=(0.01, 0.1)) as c:
        assert c.produce(b"a") == 0
        first = cluster.sent[0][0]
        # Expired while idle: the next request, refused and so never written, is sent again at
        # once by a new producer.
        cluster.producers.clear()
        assert c.produce(b"b") == 1
        second = cluster.sent[2][0]
        assert cluster.sent[1:] == [(first, 1), (second, 0)] and second not in (0, first)
        # Forgotten between an attempt that may have written the request and its retry: the
        # caller is told it may or may not have been written.
        cluster.fail_after_append = cluster.forget_after_append = True
        with pytest.raises(proglog.UnknownProducerError, match="may or may not have been written") as caught:
            c.produce(b"c")
        assert (caught.value.producer_id, caught.value.sequence) == (second, 1)
        # One number, in decimal as the server's ErrorInfo gives it, and no "nothing was
        # written" borrowed from the refused attempt.
        assert str(second) in str(caught.value) and f"{second:#x}" not in str(caught.value)
        assert "nothing was written" not in str(caught.value)
        # The next request starts a new producer.
        assert c.produce(b"d") == 3
        assert cluster.sent[-1][1] == 0 and cluster.sent[-1][0] not in (first, second)
    assert [r.value for r in cluster.records] == [b"a", b"b", b"c", b"d"]


def test_too_many_producers_is_not_retried(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls(), backoff=(0.01, 0.1)) as c:
        cluster.too_many_producers = True
        with pytest.raises(proglog.TooManyProducersError) as caught:
            c.produce(b"a")
        assert (caught.value.limit, len(cluster.sent)) == (1, 1)  # refused once, not retried
        cluster.too_many_producers = False
        assert c.produce(b"b") == 0  # nothing of "a" was written
    assert [r.value for r in cluster.records] == [b"b"]


def test_out_of_order_sequence(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls()) as c:
        cluster.out_of_order = True
        with pytest.raises(proglog.OutOfOrderSequenceError) as caught:
            c.produce_batch([b"a", b"b"])
        assert (caught.value.producer_id, caught.value.sequence, caught.value.expected) == (cluster.sent[0][0], 0, 7)
        assert cluster.records == []
        assert c.produce(b"c") == 0  # by a new producer, from sequence 0
        assert cluster.sent[1][0] != cluster.sent[0][0] and cluster.sent[1][1] == 0


def test_concurrent_batches_are_producers_of_their_own(cluster: FakeCluster, server: ServerProcess) -> None:
    # At most one request in flight per producer: two concurrent produce_batch calls use two.
    with Client(cluster.addrs[0], **server.tls()) as c:
        cluster.gate = threading.Event()
        results = [futures.Future[range](), futures.Future[range]()]
        for i, f in enumerate(results):
            threading.Thread(target=lambda i=i, f=f: f.set_result(c.produce_batch([f"{i}a", f"{i}b"]))).start()
        assert cluster.entered.acquire(timeout=30) and cluster.entered.acquire(timeout=30)
        cluster.gate.set()
        assert sorted(f.result().start for f in results) == [0, 2]
        assert len({pid for pid, _ in cluster.sent}) == 2 and [seq for _, seq in cluster.sent] == [0, 0]
        # Then reused: the next request goes on from one producer's sequence.
        assert c.produce_batch([b"x"]) == range(4, 5)
        assert cluster.sent[-1] in [(pid, 2) for pid, _ in cluster.sent[:2]]


def test_async_idempotent_retries(cluster: FakeCluster, server: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncClient(cluster.addrs[0], **server.tls(), backoff=(0.01, 0.1)) as c:
            cluster.fail_after_append = True
            assert await c.produce(b"once") == 0
            cluster.fail_after_append = True
            assert await c.produce_batch([b"b1", b"b2"]) == range(1, 3)
            cluster.producers.clear()
            assert await c.produce(b"new producer") == 3
            cluster.fail_after_append = cluster.forget_after_append = True
            with pytest.raises(proglog.UnknownProducerError):
                await c.produce(b"maybe")
            cluster.out_of_order = True
            with pytest.raises(proglog.OutOfOrderSequenceError):
                await c.produce(b"refused")
        async with AsyncClient(cluster.addrs[0], **server.tls(), backoff=(0.01, 0.1), idempotent=False) as c:
            cluster.fail_after_append = True
            assert await c.produce(b"twice") == 6

    asyncio.run(main())
    assert [r.value for r in cluster.records] == [b"once", b"b1", b"b2", b"new producer", b"maybe", b"twice", b"twice"]


def test_bounds_ask_the_leader(cluster: FakeCluster, server: ServerProcess) -> None:
    cluster.leader = 2
    with Client(cluster.addrs, **server.tls()) as c:
        for v in (b"a", b"b"):
            c.produce(v)
        assert c.bounds() == proglog.Bounds(lowest=0, next=2)
        assert [r.value for r in c.stream(0, follow=False)] == [b"a", b"b"]
    assert cluster.bounds == Counter({2: 2})


def test_retries_last_until_the_timeout(cluster: FakeCluster, server: ServerProcess) -> None:
    # More consecutive failures than the old fixed budget of 8 retries, well within the timeout.
    with Client(cluster.addrs, **server.tls(), backoff=(0.001, 0.002), timeout=60) as c:
        for v in (b"a", b"b", b"c"):
            c.produce(v)
        cluster.unavailable = 20
        assert c.consume(1).value == b"b"
        # A following stream retries until it is closed: nothing is lost or repeated.
        cluster.unavailable = 20
        stream = c.stream(0)
        assert [next(stream).value for _ in range(3)] == [b"a", b"b", b"c"]
        stream.close()
    # A stream to the end gives up once the timeout passes without a record.
    with Client(cluster.addrs, **server.tls(), backoff=(0.001, 0.002), timeout=0.5) as c:
        cluster.streams_down = True
        with pytest.raises(proglog.UnavailableError, match="down for a while"):
            list(c.stream(0, follow=False))
    # An explicit budget still bounds them.
    with Client(cluster.addrs, **server.tls(), backoff=(0.001, 0.002), retries=2) as c:
        cluster.unavailable = 3
        with pytest.raises(proglog.UnavailableError):
            c.consume(0)


def test_async_stream_retries_until_closed(cluster: FakeCluster, server: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncClient(cluster.addrs, **server.tls(), backoff=(0.001, 0.002)) as c:
            await c.produce(b"a")
            cluster.unavailable = 20
            async for record in c.stream(0):
                assert record.value == b"a"
                break

    asyncio.run(main())


def test_never_sent_produce_is_retried_at_most_once(cluster: FakeCluster, server: ServerProcess) -> None:
    # A seed that refuses connections (bound, not listening) and a live node, roles unknown (the
    # router is static): one of two produces is picked to go to the dead seed first. It was never
    # sent, so produce_retries=0 retries it all the same.
    cluster.refuse_servers = True
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
        with Client([dead_addr, cluster.addrs[0]], **server.tls(), produce_retries=0, backoff=(0.001, 0.002)) as c:
            assert c.produce(b"a") == 0
            assert c.produce(b"b") == 1
    assert [r.value for r in cluster.records] == [b"a", b"b"]


def test_async_close_raises_client_closed(cluster: FakeCluster, server: ServerProcess) -> None:
    async def main() -> None:
        c = AsyncClient(cluster.addrs, **server.tls())
        await c.produce(b"a")
        cluster.gate = threading.Event()

        async def follow() -> None:
            async for _ in c.stream(1):
                pass

        produce = asyncio.create_task(c.produce(b"b"))
        stream = asyncio.create_task(follow())
        # In flight: the produce waits at the gate, the stream for a record.
        assert await asyncio.to_thread(cluster.entered.acquire, timeout=30)
        assert await asyncio.to_thread(cluster.streaming.acquire, timeout=30)
        await c.close()
        for task in (produce, stream):
            with pytest.raises(proglog.ClientClosedError):
                await task
        # The caller's own cancellation stays a cancellation.
        c2 = AsyncClient(cluster.addrs, **server.tls())
        own = asyncio.create_task(c2.produce(b"c"))
        assert await asyncio.to_thread(cluster.entered.acquire, timeout=30)
        own.cancel()
        with pytest.raises(asyncio.CancelledError):
            await own
        await c2.close()

    try:
        asyncio.run(main())
    finally:
        assert cluster.gate is not None
        cluster.gate.set()


def test_logging_and_trace_context(cluster: FakeCluster, server: ServerProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="proglog")
    with Client(cluster.addrs[2], **server.tls(), backoff=(0.001, 0.002)) as c:
        c.produce(b"a")
        cluster.leader = 1
        c.produce(b"b")
        cluster.unavailable = 1
        c.consume(0)
    messages = [r.getMessage() for r in caplog.records if r.name == "proglog"]
    assert any(m.startswith("discovered 3 servers") for m in messages), messages
    assert f"leader is now {cluster.addrs[1]} (was {cluster.addrs[0]})" in messages
    assert any(m.startswith("read: retry 1 in") and "down for a while" in m for m in messages), messages

    pytest.importorskip("opentelemetry")
    from opentelemetry import context, trace

    span = trace.NonRecordingSpan(trace.SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=trace.TraceFlags(1)))
    token = context.attach(trace.set_span_in_context(span))
    try:
        with Client(cluster.addrs, **server.tls()) as c:
            c.produce(b"traced")
    finally:
        context.detach(token)
    assert cluster.metadata[-1]["traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-01"


def _servers(leader: str | None, *others: str) -> list[Server]:
    return [Server(id=a, rpc_addr=a, is_leader=a == leader) for a in ([leader] if leader else []) + list(others)]


def test_router_round_robin_and_fallbacks() -> None:
    r = Router(["seed:1"], interval=60)
    assert r.needs_refresh()
    r.update(_servers("l:1", "f:1", "f:2"))
    assert not r.needs_refresh()
    assert {r.pick("leader") for _ in range(5)} == {("l:1", "leader")}
    assert Counter(r.pick("follower") for _ in range(10)) == Counter({("f:1", "follower"): 5, ("f:2", "follower"): 5})
    assert Counter(a for a, _ in (r.pick("any") or ("", "") for _ in range(9))) == Counter({"l:1": 3, "f:1": 3, "f:2": 3})
    r.update(_servers("l:1"))
    assert r.pick("follower") == ("l:1", "leader")
    # No leader (an election): appends have nowhere to go, discovery is due.
    r.update(_servers(None, "f:1"))
    assert r.pick("leader") is None and r.needs_refresh()
    # A NOT_LEADER hint takes effect at once.
    r.hint("f:1")
    assert r.pick("leader") == ("f:1", "leader")
    assert r.candidates()[0] == "f:1"


def test_partition_reads_skip_replicas_discovery_no_longer_lists() -> None:
    # A replica whose server stopped stays in the partition's metadata until the cluster replaces
    # it; reads go to the followers discovery lists (each call's own discovery and metadata calls
    # advance the round-robin, which once sent every retry to the stopped one).
    r = Router(["l:1"], interval=60)
    r.update(_servers("l:1", "f:1"))
    part = PartRoute("l:1", ("l:1", "f:1", "gone:1"))
    assert {r.pick("follower", part) for _ in range(6)} == {("f:1", "follower")}
    assert {r.pick("leader", PartRoute(None, ("f:1", "gone:1"))) for _ in range(6)} == {("f:1", "unknown")}
    # Followers discovery does not list yet (new servers): the reads go to the leader; with no
    # replica listed, the metadata's replicas are all there is.
    assert r.pick("follower", PartRoute("l:1", ("l:1", "x:1"))) == ("l:1", "leader")
    assert {r.pick("follower", PartRoute("x:1", ("x:1", "y:1", "z:1"))) for _ in range(6)} == {("y:1", "follower"), ("z:1", "follower")}


def test_follower_reads_alternate_whatever_else_is_picked() -> None:
    # Each read may make one other call in between (a metadata refresh, discovery): with one
    # round-robin for every route, that made every read land on the same follower (a cluster test
    # saw all 20 of its reads on one).
    r = Router(["l:1"], interval=60)
    r.update(_servers("l:1", "f:1", "f:2"))
    part = PartRoute("l:1", ("l:1", "f:1", "f:2"))
    reads = []
    for _ in range(10):
        reads.append(r.pick("follower", part))
        r.pick("any")
    assert Counter(reads) == Counter({("f:1", "follower"): 5, ("f:2", "follower"): 5})


def test_metadata_cache_doubts_one_unknown_topic_answer() -> None:
    # A server whose copy of the metadata lags says a topic just created is unknown: the cache
    # keeps a topic it knows through one such answer and drops it at the second.
    cache = MetadataCache(refresh=0.0, fallback_interval=60)
    info = TopicInfo("t", TopicConfig(2, 1), tuple(PartitionInfo(p, None, "", (), 0) for p in range(2)))
    cache.created(info)
    assert cache.knows(("t", 1)) and not cache.knows(("t", 2))
    unknown = proglog.UnknownTopicError('topic "t" does not exist', grpc.StatusCode.NOT_FOUND, "t")
    _core.metadata_failed(cache, "t", unknown)  # taken as a lagging server's
    assert cache.partitions("t") == 2 and cache.due("t")
    with pytest.raises(proglog.UnknownTopicError):
        _core.metadata_fetched(cache, "t", [], None)
    assert cache.partitions("t") is None and not cache.knows(("t", 0))
    # A fetch that finds it clears the doubt.
    cache.store("t", info)
    _core.metadata_fetched(cache, "t", [], None)
    cache.store("t", info)
    _core.metadata_fetched(cache, "t", [], None)
    assert cache.partitions("t") == 2
    # A read of a partition the cache knows is retried while a server says the topic is unknown.
    settings = Settings(timeout=None, retries=None, produce_retries=None, backoff=(0.01, 0.1), consistency="follower", discovery_interval=60)
    a = Attempts(settings, Router(["a:1"], 60), "read", ("t", 0), cache)
    assert a.on_error(unknown, "follower") is not None and a.on_error(unknown, "follower") is not None
    assert Attempts(settings, Router(["a:1"], 60), "read", ("t", 5), cache).on_error(unknown, "follower") is not None
    b = Attempts(settings, Router(["a:1"], 60), "read", ("t", 5), cache)
    b.on_error(unknown, "follower")
    assert b.on_error(unknown, "follower") is None


def test_metadata_older_than_max_age_is_fetched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Replicas added later (a replacement, a top-up) are learnt once the topic's metadata is
    # max_age old, not only after a call fails (the Go client's WithMetadataMaxAge).
    now = [1000.0]
    monkeypatch.setattr(_core.time, "monotonic", lambda: now[0])
    cache = MetadataCache(refresh=0.1, fallback_interval=60, max_age=300)
    cache.store("t", TopicInfo("t", TopicConfig(1, 1), (PartitionInfo(0, None, "", (), 0),)))
    now[0] += 299
    assert not cache.due("t")
    now[0] += 1
    assert cache.due("t")
    with pytest.raises(ValueError, match="metadata_max_age"):
        Settings(timeout=None, retries=None, produce_retries=None, backoff=(0.01, 0.1), consistency="follower",
                 discovery_interval=60, metadata_max_age=0)  # fmt: skip


def test_router_static_when_discovery_is_refused() -> None:
    r = Router(["a:1", "b:1"], interval=60)
    r.set_static()
    assert {r.pick("leader") for _ in range(4)} == {("a:1", "unknown"), ("b:1", "unknown")}
    r.hint("b:1")
    r.set_static()
    assert r.pick("leader") == ("b:1", "leader")
    assert r.pick("follower") == ("a:1", "unknown")


def test_retry_policy() -> None:
    settings = Settings(timeout=None, retries=2, produce_retries=0, backoff=(0.01, 0.1), consistency="follower", discovery_interval=60)
    r = Router(["a:1"], 60)
    unavailable = proglog.UnavailableError("down", grpc.StatusCode.UNAVAILABLE)
    # A produce that reached a server and failed with UNAVAILABLE may be written: not retried here.
    assert Attempts(settings, r, "produce").on_error(unavailable, "leader") is None
    # One that never reached a server is.
    assert Attempts(settings, r, "produce").on_error(unavailable, None) is not None
    # NOT_LEADER with a leader: retried at once, there; reads move to the leader.
    a = Attempts(settings, r, "read")
    assert a.on_error(proglog.NotLeaderError("no", None, "n2", "c:1"), "follower") == 0.0
    assert a.route == "leader" and r.leader() == "c:1"
    # A produce that never reached a server (no connection) is retried even with produce_retries=0.
    refused = proglog.UnavailableError("failed to connect to all addresses; last error: Connection refused", grpc.StatusCode.UNAVAILABLE)
    assert Attempts(settings, r, "produce").on_error(refused, "leader") is not None
    # NO_LEADER is retried, also when the answering server finds a majority unreachable (it may be
    # the one cut off from a majority that elects a leader); during an election too.
    lost = proglog.NoLeaderError("no leader", grpc.StatusCode.UNAVAILABLE, "log", 0, 3, ("n1", "n2"))
    assert Attempts(settings, r, "produce").on_error(lost, None) is not None
    election = proglog.NoLeaderError("no leader yet", grpc.StatusCode.UNAVAILABLE, "log", 0, 3, ("n1",))
    assert Attempts(settings, r, "read").on_error(election, "leader") is not None
    # The budget runs out.
    a.on_error(unavailable, "leader")
    assert a.on_error(unavailable, "leader") is None
    # A lagging follower's OUT_OF_RANGE past its end: asked again of the leader.
    b = Attempts(settings, r, "read")
    assert b.on_error(proglog.OffsetOutOfRangeError("past", None, 5, 0, 5), "follower") == 0.0 and b.route == "leader"
    assert b.on_error(proglog.OffsetOutOfRangeError("past", None, 5, 0, 5), "leader") is None
    # Other errors are final.
    assert Attempts(settings, r, "read").on_error(proglog.PermissionDeniedError("no"), "follower") is None
    # Discovery for a call is bounded by the call's deadline too.
    assert _core.discovery_timeout(None) == _core.DISCOVERY_TIMEOUT
    assert 0 < _core.discovery_timeout(time.monotonic() + 0.5) <= 0.5
    assert _core.discovery_timeout(time.monotonic() - 1) > 0


# -- batching of concurrent produces ------------------------------------------------------------


def _hold_one(cluster: FakeCluster, c: Client) -> futures.Future[int]:
    """Produces b"first" and returns once its request waits at the gate (which stays closed)."""
    cluster.gate = threading.Event()
    cluster.entered = threading.Semaphore(0)
    first = c.produce_async(b"first")
    assert cluster.entered.acquire(timeout=30)
    return first


def test_concurrent_produces_are_coalesced(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls()) as c:
        # The first produce, alone, is sent by its own thread; it waits at the gate.
        cluster.gate = threading.Event()
        first: futures.Future[int] = futures.Future()
        threading.Thread(target=lambda: first.set_result(c.produce(b"first"))).start()
        assert cluster.entered.acquire(timeout=30)
        # Queued while the first request is in flight: threads calling produce, and produce_async.
        results: dict[int, int] = {}
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, c.produce(f"t{i}".encode()))) for i in range(3)]
        for t in threads:
            t.start()
        with c._queued:  # notified by each record queued
            assert c._queued.wait_for(lambda: len(c._lanes[("log", 0)].queue.items) == 3, timeout=30)
        more = [c.produce_async(b"a1"), c.produce_async(b"a2")]
        cluster.gate.set()
        for t in threads:
            t.join()
        assert first.result() == 0
        offsets = sorted(list(results.values()) + [f.result() for f in more])
        assert offsets == [1, 2, 3, 4, 5]
        for i, off in results.items():
            assert cluster.records[off].value == f"t{i}".encode()
        assert [cluster.records[f.result()].value for f in more] == [b"a1", b"a2"]
    assert cluster.requests == [1, 5]  # a lone Produce, then one ProduceBatch of the five queued


def test_batches_are_bounded(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls(), max_batch_records=2) as c:
        first = _hold_one(cluster, c)
        queued = [c.produce_async(f"{i}".encode()) for i in range(5)]
        assert cluster.gate is not None
        cluster.gate.set()
        assert [f.result() for f in [first] + queued] == list(range(6))
    assert cluster.requests == [1, 2, 2, 1]
    # Bytes: each record of 100 bytes is 102 in a batch (tag and length) plus its own fields.
    cluster.requests.clear()
    size = log_pb2.Record(value=b"x" * 100).ByteSize() + 2
    with Client(cluster.addrs[0], **server.tls(), max_batch_bytes=2 * size) as c:
        first = _hold_one(cluster, c)
        queued = [c.produce_async(b"x" * 100) for _ in range(3)] + [c.produce_async(b"y" * 1000)]
        assert cluster.gate is not None
        cluster.gate.set()
        c.flush()
        assert all(f.done() for f in queued)
    assert cluster.requests == [1, 2, 1, 1]  # the large record goes alone


def test_a_failed_batch_fails_each_caller(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls()) as c:
        first = _hold_one(cluster, c)
        queued = [c.produce_async(b"a"), c.produce_async(b"b")]
        cluster.fail_batches = True
        assert cluster.gate is not None
        cluster.gate.set()
        assert first.result() == 0
        for f in queued:
            with pytest.raises(proglog.InvalidArgumentError, match="batch refused"):
                f.result()
        # The sender goes on.
        cluster.fail_batches = False
        assert c.produce(b"c") == 1


def test_linger_and_flush(cluster: FakeCluster, server: ServerProcess) -> None:
    with Client(cluster.addrs[0], **server.tls(), linger=3600) as c:
        queued = [c.produce_async(f"{i}".encode()) for i in range(3)]
        c.flush()  # without it the records would wait an hour
        assert [f.result() for f in queued] == [0, 1, 2]
    assert cluster.requests == [3]


def test_close_fails_queued_records(cluster: FakeCluster, server: ServerProcess) -> None:
    c = Client(cluster.addrs[0], **server.tls())
    try:
        first = _hold_one(cluster, c)
        queued = c.produce_async(b"queued")
        c.close()
        for f in (first, queued):
            with pytest.raises(proglog.ClientClosedError):
                f.result()
        with pytest.raises(proglog.ClientClosedError):
            c.produce_async(b"late")
    finally:
        assert cluster.gate is not None
        cluster.gate.set()


def test_call_on_a_channel_closed_under_it_is_client_closed(cluster: FakeCluster, server: ServerProcess) -> None:
    # close() may close a channel between a call getting its stub and invoking it (a batch's sender
    # thread); grpc then raises ValueError("Cannot invoke RPC: Channel closed!"), which the caller
    # must see as ClientClosedError (once seen under Bazel in test_close_with_produces_in_flight).
    c = Client(cluster.addrs[0], **server.tls())
    assert c.produce(b"a") == 0

    def close_then_call(stub: Any, timeout: float | None, metadata: Any) -> int:
        c.close()
        return int(stub.consume(log_pb2.ConsumeRequest(offset=0), timeout=timeout, metadata=metadata).record.offset)

    with pytest.raises(proglog.ClientClosedError):
        c._call("read", 10, close_then_call)


def test_batching_settings_are_validated(server: ServerProcess) -> None:
    for kwargs, message in (
        ({"linger": -1}, "linger"),
        ({"max_batch_records": 0}, "max_batch_records"),
        ({"max_batch_records": 10_001}, "max_batch_records"),
        ({"max_batch_bytes": 0}, "max_batch_bytes"),
        ({"max_batch_bytes": (4 << 20) + 1}, "max_batch_bytes"),
    ):
        with pytest.raises(ValueError, match=message):
            Client("127.0.0.1:1", **kwargs)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=message):
            AsyncClient("127.0.0.1:1", **kwargs)  # type: ignore[arg-type]


def test_async_concurrent_produces_are_coalesced(cluster: FakeCluster, server: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncClient(cluster.addrs[0], **server.tls()) as c:
            cluster.gate = threading.Event()
            first = asyncio.create_task(c.produce(b"first"))
            assert await asyncio.to_thread(cluster.entered.acquire, timeout=30)
            tasks = [asyncio.create_task(c.produce(f"t{i}".encode())) for i in range(3)]
            await asyncio.sleep(0)  # lets the tasks queue their records
            more = [c.produce_async(b"a1"), c.produce_async(b"a2")]
            cluster.gate.set()
            assert await first == 0
            assert await asyncio.gather(*tasks, *more) == [1, 2, 3, 4, 5]
            # A Future cancelled before it is sent drops its record; flush waits for the rest.
            cluster.gate = threading.Event()
            cluster.entered = threading.Semaphore(0)
            held = c.produce_async(b"held")
            assert await asyncio.to_thread(cluster.entered.acquire, timeout=30)
            dropped, kept = c.produce_async(b"dropped"), c.produce_async(b"kept")
            dropped.cancel()
            cluster.gate.set()
            await c.flush()
            assert (held.result(), kept.result()) == (6, 7)
            assert [r.value for r in cluster.records[6:]] == [b"held", b"kept"]
        async with AsyncClient(cluster.addrs[0], **server.tls(), linger=3600) as c:
            queued = [c.produce_async(b"x"), c.produce_async(b"y")]
            await c.flush()
            assert [f.result() for f in queued] == [8, 9]

    try:
        asyncio.run(main())
    finally:
        if cluster.gate is not None:
            cluster.gate.set()
    assert cluster.requests == [1, 5, 1, 1, 2]


def test_async_close_fails_queued_records(cluster: FakeCluster, server: ServerProcess) -> None:
    async def main() -> None:
        c = AsyncClient(cluster.addrs[0], **server.tls())
        cluster.gate = threading.Event()
        cluster.entered = threading.Semaphore(0)
        first = c.produce_async(b"first")
        assert await asyncio.to_thread(cluster.entered.acquire, timeout=30)
        queued = c.produce_async(b"queued")
        await c.close()
        for f in (first, queued):
            with pytest.raises(proglog.ClientClosedError):
                await f
        with pytest.raises(proglog.ClientClosedError):
            c.produce_async(b"late")

    try:
        asyncio.run(main())
    finally:
        if cluster.gate is not None:
            cluster.gate.set()
