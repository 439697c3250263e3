"""Topics: routing by partition, metadata refresh, keys, sticky partitions and topic admin, on a
test double of a cluster with topics (in-process gRPC servers sharing one in-memory state).

The double answers as log.proto says a cluster does: a server that does not lead a partition
answers NOT_LEADER naming its leader, an unknown topic or partition is NOT_FOUND, GetMetadata
lists each partition's replicas and (possibly stale) leader, CreateTopic and DeleteTopic are
answered by the metadata leader only. Partition p of a topic is led by server p mod n, with the
next servers as its other replicas.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from proglog import (
    AsyncClient,
    Client,
    InvalidArgumentError,
    InvalidTopicError,
    NotEnoughNodesError,
    NotLeaderError,
    TopicExistsError,
    UnknownPartitionError,
    UnavailableError,
    UnknownTopicError,
    key_partition,
)
from proglog._proto.log.v1 import log_pb2, log_pb2_grpc

from conftest import ServerProcess


class _Partition:
    def __init__(self, replicas: list[int]) -> None:
        self.replicas = replicas
        self.leader = replicas[0]
        self.reported = replicas[0]  # the leader GetMetadata reports
        self.records: list[log_pb2.Record] = []


class TopicCluster:
    def __init__(self, server: ServerProcess, size: int = 3) -> None:
        certs = server.certs
        creds = grpc.ssl_server_credentials([((certs / "server-key.pem").read_bytes(), (certs / "server.pem").read_bytes())])
        self.lock = threading.Lock()
        self.topics: dict[str, list[_Partition]] = {}
        self.meta_leader = 0
        self.metadata_errors: list[grpc.StatusCode] = []  # the next GetMetadata calls fail with these
        self.lagging = 0  # the next GetMetadata calls answer as a server that knows only "log" yet
        self.calls: list[tuple[int, str, str, int]] = []  # (server, method, topic, partition)
        self.addrs: list[str] = []
        self.servers: list[grpc.Server] = []
        for i in range(size):
            s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            log_pb2_grpc.add_LogServicer_to_server(_Node(self, i), s)
            port = s.add_secure_port("127.0.0.1:0", creds)
            s.start()
            self.servers.append(s)
            self.addrs.append(f"127.0.0.1:{port}")
        self.create("log", 1, 1)

    def create(self, name: str, partitions: int, replicas: int) -> None:
        n = len(self.addrs)
        with self.lock:
            self.topics[name] = [_Partition([(p + r) % n for r in range(replicas)]) for p in range(partitions)]

    def values(self, topic: str, partition: int) -> list[bytes]:
        with self.lock:
            return [r.value for r in self.topics[topic][partition].records]

    def produces(self) -> list[tuple[int, str, int]]:
        """(server, topic, partition) of each Produce and ProduceBatch received."""
        return [(s, t, p) for s, m, t, p in self.calls if m in ("Produce", "ProduceBatch")]

    def count(self, method: str) -> int:
        return sum(1 for _, m, _, _ in self.calls if m == method)

    def stop(self) -> None:
        for s in self.servers:
            s.stop(grace=None)


def _abort(context: Any, code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str]) -> None:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="proglog", metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    st = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
    context.abort(code, message)


class _Node(log_pb2_grpc.LogServicer):  # type: ignore[misc]
    def __init__(self, cluster: TopicCluster, index: int) -> None:
        self.c = cluster
        self.i = index

    def _not_leader(self, context: Any, leader: int) -> None:
        md = {"leader_id": f"s{leader}", "leader_addr": self.c.addrs[leader]}
        _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "not the leader", "NOT_LEADER", md)

    def _partition(self, method: str, topic: str, partition: int, context: Any, leader: bool = True) -> _Partition:
        """The partition a request names, if this server may serve it; c.lock is held."""
        name = topic or "log"
        self.c.calls.append((self.i, method, name, partition))
        parts = self.c.topics.get(name)
        if parts is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"topic {name!r} does not exist", "UNKNOWN_TOPIC", {"topic": name})
            raise AssertionError("unreachable")
        if partition >= len(parts):
            md = {"topic": name, "partition": str(partition)}
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no partition {partition}", "UNKNOWN_PARTITION", md)
        p = parts[partition]
        if (leader and p.leader != self.i) or self.i not in p.replicas:
            self._not_leader(context, p.leader)
        return p

    def _append(self, p: _Partition, records: Any) -> int:
        first = len(p.records)
        for r in records:
            rec = log_pb2.Record()
            rec.CopyFrom(r)
            rec.offset = len(p.records)
            p.records.append(rec)
        return first

    def Produce(self, request: log_pb2.ProduceRequest, context: Any) -> log_pb2.ProduceResponse:
        with self.c.lock:
            p = self._partition("Produce", request.topic, request.partition, context)
            return log_pb2.ProduceResponse(offset=self._append(p, [request.record]))

    def ProduceBatch(self, request: log_pb2.ProduceBatchRequest, context: Any) -> log_pb2.ProduceBatchResponse:
        with self.c.lock:
            p = self._partition("ProduceBatch", request.topic, request.partition, context)
            return log_pb2.ProduceBatchResponse(first_offset=self._append(p, request.records), count=len(request.records))

    def Consume(self, request: log_pb2.ConsumeRequest, context: Any) -> log_pb2.ConsumeResponse:
        with self.c.lock:
            linearizable = request.consistency != log_pb2.CONSISTENCY_FOLLOWER
            p = self._partition("Consume", request.topic, request.partition, context, leader=linearizable)
            if request.offset >= len(p.records):
                md = {"offset": str(request.offset), "lowest": "0", "next": str(len(p.records))}
                _abort(context, grpc.StatusCode.OUT_OF_RANGE, "out of range", "OFFSET_OUT_OF_RANGE", md)
            return log_pb2.ConsumeResponse(record=p.records[request.offset])

    def GetBounds(self, request: log_pb2.GetBoundsRequest, context: Any) -> log_pb2.GetBoundsResponse:
        with self.c.lock:
            p = self._partition("GetBounds", request.topic, request.partition, context)
            return log_pb2.GetBoundsResponse(lowest=0, next=len(p.records))

    def ConsumeStream(self, request: log_pb2.ConsumeRequest, context: Any) -> Iterator[log_pb2.ConsumeResponse]:
        with self.c.lock:
            p = self._partition("ConsumeStream", request.topic, request.partition, context, leader=False)
            records = list(p.records[request.offset :])
        yield from (log_pb2.ConsumeResponse(record=r) for r in records)

    def _servers(self, leader: int) -> list[log_pb2.Server]:
        return [log_pb2.Server(id=f"s{i}", rpc_addr=a, is_leader=i == leader) for i, a in enumerate(self.c.addrs)]

    def GetServers(self, request: log_pb2.GetServersRequest, context: Any) -> log_pb2.GetServersResponse:
        with self.c.lock:
            return log_pb2.GetServersResponse(servers=self._servers(self.c.topics["log"][0].leader))

    def _metadata(self, name: str) -> log_pb2.TopicMetadata:
        parts = self.c.topics[name]
        tm = log_pb2.TopicMetadata(name=name, config=log_pb2.TopicConfig(partitions=len(parts), replication_factor=len(parts[0].replicas)))
        for n, p in enumerate(parts):
            replicas = [log_pb2.Server(id=f"s{r}", rpc_addr=self.c.addrs[r], is_leader=r == p.reported) for r in p.replicas]
            tm.partitions.append(log_pb2.PartitionMetadata(partition=n, replicas=replicas, leader_id=f"s{p.reported}"))
        return tm

    def GetMetadata(self, request: log_pb2.GetMetadataRequest, context: Any) -> log_pb2.GetMetadataResponse:
        with self.c.lock:
            self.c.calls.append((self.i, "GetMetadata", "", 0))
            if self.c.metadata_errors:
                context.abort(self.c.metadata_errors.pop(0), "metadata refused")
            names = sorted(set(request.topics or self.c.topics))
            lagging, self.c.lagging = self.c.lagging > 0, max(self.c.lagging - 1, 0)
            for name in names:
                if name not in self.c.topics or (lagging and name != "log"):
                    _abort(context, grpc.StatusCode.NOT_FOUND, f"topic {name!r} does not exist", "UNKNOWN_TOPIC", {"topic": name})
            return log_pb2.GetMetadataResponse(topics=[self._metadata(n) for n in names], servers=self._servers(self.c.meta_leader))

    def CreateTopic(self, request: log_pb2.CreateTopicRequest, context: Any) -> log_pb2.CreateTopicResponse:
        with self.c.lock:
            self.c.calls.append((self.i, "CreateTopic", request.name, 0))
            if self.i != self.c.meta_leader:
                self._not_leader(context, self.c.meta_leader)
            if request.name in ("", ".", ".."):
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid topic name", "INVALID_TOPIC", {"topic": request.name})
            if request.name in self.c.topics:
                _abort(context, grpc.StatusCode.ALREADY_EXISTS, "topic exists", "TOPIC_EXISTS", {"topic": request.name})
            rf = request.config.replication_factor or min(3, len(self.c.addrs))
            if rf > len(self.c.addrs):
                md = {"replication_factor": str(rf), "nodes": str(len(self.c.addrs))}
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "not enough nodes", "NOT_ENOUGH_NODES", md)
        self.c.create(request.name, request.config.partitions or 1, rf)
        with self.c.lock:
            return log_pb2.CreateTopicResponse(topic=self._metadata(request.name))

    def DeleteTopic(self, request: log_pb2.DeleteTopicRequest, context: Any) -> log_pb2.DeleteTopicResponse:
        with self.c.lock:
            self.c.calls.append((self.i, "DeleteTopic", request.name, 0))
            if self.i != self.c.meta_leader:
                self._not_leader(context, self.c.meta_leader)
            if request.name == "log":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the default topic cannot be deleted")
            if self.c.topics.pop(request.name, None) is None:
                _abort(context, grpc.StatusCode.NOT_FOUND, "no such topic", "UNKNOWN_TOPIC", {"topic": request.name})
            return log_pb2.DeleteTopicResponse()


@pytest.fixture
def topics(server: ServerProcess) -> Iterator[TopicCluster]:
    c = TopicCluster(server)
    yield c
    c.stop()


def test_keys_go_to_their_partition_leader(topics: TopicCluster, server: ServerProcess) -> None:
    topics.create("orders", 3, 2)
    with Client(topics.addrs[0], **server.tls()) as c:
        expect: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        for i in range(30):
            key = f"customer-{i}"
            pos = c.send(key, topic="orders", key=key)
            assert pos.partition == key_partition(key, 3) == c.partition_for("orders", key)
            assert pos.offset == len(expect[pos.partition])
            expect[pos.partition].append(key.encode())
        for p in range(3):
            assert topics.values("orders", p) == expect[p]
        # Each partition's produces went to its leader only (server p).
        assert {(s, p) for s, t, p in topics.produces() if t == "orders"} == {(p, p) for p in range(3) if expect[p]}
        # Reads of a partition go to its follower; bounds to its leader; streams read the partition.
        assert c.consume(0, topic="orders", partition=1).value == expect[1][0]
        assert (2, "Consume", "orders", 1) in topics.calls
        assert c.bounds(topic="orders", partition=1).next == len(expect[1])
        assert [r.value for r in c.stream(0, follow=False, topic="orders", partition=1)] == expect[1]
        # Without a topic: partition 0 of "log", whatever the key.
        assert c.produce(b"plain", key="customer-1") == 0
        assert topics.values("log", 0) == [b"plain"]


def test_stale_leader_costs_one_not_leader(topics: TopicCluster, server: ServerProcess) -> None:
    topics.create("orders", 3, 3)
    with Client(topics.addrs, **server.tls(), backoff=(0.01, 0.1), metadata_refresh=3600) as c:
        assert c.produce(b"a", topic="orders", partition=1) == 0
        topics.topics["orders"][1].leader = 2  # the metadata still reports server 1
        for i, v in enumerate([b"b", b"c", b"d"], start=1):
            assert c.produce(v, topic="orders", partition=1) == i
        assert [s for s, t, p in topics.produces() if (t, p) == ("orders", 1)] == [1, 1, 2, 2, 2]
        # Other partitions, and the default topic, keep their leader.
        c.produce(b"x", topic="orders", partition=0)
        assert topics.produces()[-1] == (0, "orders", 0)
        assert topics.count("GetMetadata") == 1  # refresh bounded to once an hour


def test_no_retries_on_a_partition_routed_by_metadata(topics: TopicCluster, server: ServerProcess) -> None:
    # retries=0: a NOT_LEADER from a partition's stale leader is raised, its hint not followed
    # (a new client would ask the metadata first and go to the new leader at once).
    topics.create("orders", 2, 3)
    with Client(topics.addrs, **server.tls(), retries=0) as c:
        assert c.produce(b"a", topic="orders", partition=1) == 0
        topics.topics["orders"][1].leader = topics.topics["orders"][1].reported = 2
        with pytest.raises(NotLeaderError) as caught:
            c.produce(b"b", topic="orders", partition=1)
        assert caught.value.leader_addr == topics.addrs[2]
        assert [s for s, t, p in topics.produces() if (t, p) == ("orders", 1)] == [1, 1]
        assert topics.values("orders", 1) == [b"a"]


def test_unknown_topic_and_partition(topics: TopicCluster, server: ServerProcess) -> None:
    with Client(topics.addrs[0], **server.tls(), backoff=(0.01, 0.1)) as c:
        with pytest.raises(UnknownTopicError):
            c.produce(b"a", topic="later")
        topics.create("later", 2, 2)  # behind the client's back: it is asked again
        assert c.send(b"a", topic="later", partition=1).offset == 0
        with pytest.raises(UnknownPartitionError) as e:
            c.produce(b"a", topic="later", partition=5)
        assert e.value.partition == 5


def test_metadata_outage(topics: TopicCluster, server: ServerProcess) -> None:
    topics.create("orders", 2, 1)
    # No server answers: asked again at most once per metadata_refresh, not by every call.
    with Client(topics.addrs[0], **server.tls(), retries=0, metadata_refresh=3600) as c:
        topics.metadata_errors = [grpc.StatusCode.UNAVAILABLE] * 3
        for _ in range(3):
            with pytest.raises(UnavailableError):
                c.produce(b"a", topic="orders", key="k")
        assert topics.count("GetMetadata") == 1
    # Once it answers again, the topic is routed by its metadata (not as by older servers).
    topics.metadata_errors = [grpc.StatusCode.UNAVAILABLE]
    with Client(topics.addrs[0], **server.tls(), retries=0, metadata_refresh=1e-9) as c:
        with pytest.raises(UnavailableError):
            c.produce(b"a", topic="orders", key="k")
        assert c.send(b"a", topic="orders", key="k").partition == key_partition("k", 2)
    # Servers that give no metadata: the topic "log" is routed by the servers' roles, others fail.
    topics.metadata_errors = [grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNIMPLEMENTED]
    with Client(topics.addrs[0], **server.tls(), retries=0) as c:
        assert c.produce(b"b") == 0
        with pytest.raises(UnavailableError, match="give no metadata"):
            c.produce(b"c", topic="orders")


def test_keyless_records_stick_until_a_batch_is_sent(topics: TopicCluster, server: ServerProcess) -> None:
    topics.create("logs", 4, 1)
    with Client(topics.addrs[0], **server.tls()) as c:
        parts = [c.send(b"x", topic="logs").partition for _ in range(12)]
        assert all(a != b for a, b in zip(parts, parts[1:])), parts
    # Held by the linger until flush: no batch is sent, so all go to one partition, in one request.
    with Client(topics.addrs[0], **server.tls(), linger=3600) as c:
        c.partition_for("logs", "k")  # the metadata, fetched before the records are queued
        before = len(topics.produces())
        queued = [c.produce_async(b"y", topic="logs") for _ in range(20)]
        c.flush()
        assert len({f.result() for f in queued}) == 20
        assert len({(t, p) for _, t, p in topics.produces()[before:]}) == 1
        assert len(topics.produces()) == before + 1


def test_topic_admin(topics: TopicCluster, server: ServerProcess) -> None:
    topics.meta_leader = 2
    with Client(topics.addrs[0], **server.tls(), backoff=(0.01, 0.1)) as c:
        info = c.create_topic("orders", partitions=4, replication_factor=2)
        assert (info.name, len(info.partitions), info.config.replication_factor) == ("orders", 4, 2)
        assert info.partitions[1].leader == topics.addrs[1] and info.partitions[1].leader_id == "s1"
        assert [s for s, m, _, _ in topics.calls if m == "CreateTopic"] == [0, 2]  # NOT_LEADER, then the metadata leader
        with pytest.raises(TopicExistsError):
            c.create_topic("orders")
        with pytest.raises(NotEnoughNodesError) as nodes:
            c.create_topic("big", replication_factor=5)
        assert (nodes.value.replication_factor, nodes.value.nodes) == (5, 3)
        with pytest.raises(InvalidTopicError) as invalid:
            c.create_topic("..")
        assert isinstance(invalid.value, InvalidArgumentError)
        assert [t.name for t in c.topics()] == ["log", "orders"]
        assert len(c.describe("orders").partitions) == 4
        c.delete_topic("orders")
        with pytest.raises(UnknownTopicError):
            c.describe("orders")
        with pytest.raises(UnknownTopicError):
            c.delete_topic("orders")
        # Once a NOT_LEADER named it, admin calls go to the metadata leader first.
        assert [s for s, m, _, _ in topics.calls if m in ("CreateTopic", "DeleteTopic")] == [0, 2, 2, 2, 2, 2, 2]


def test_lagging_metadata(topics: TopicCluster, server: ServerProcess) -> None:
    # A server whose copy of the metadata lags says a topic just created is unknown: the creator
    # keeps its create_topic answer, another client asks again before it believes it, and a topic
    # the cache knows is dropped only at the second such answer.
    with Client(topics.addrs[0], **server.tls(), metadata_refresh=0.001) as c, Client(topics.addrs[0], **server.tls()) as other:
        c.create_topic("fresh", partitions=2, replication_factor=2)
        topics.lagging = 1
        assert c.partition_for("fresh", "k") == key_partition(b"k", 2)
        topics.lagging = 1
        assert len(other.describe("fresh").partitions) == 2
        topics.lagging = 1
        assert c.send("v", topic="fresh", key="k").partition == key_partition(b"k", 2)
        with pytest.raises(TopicExistsError):
            c.create_topic("fresh")
        other.delete_topic("fresh")
        with pytest.raises(UnknownTopicError):
            c.send("v", topic="fresh", partition=0)
        with pytest.raises(UnknownTopicError):
            c.partition_for("fresh", "k")

    async def main() -> None:
        topics.create("late", 2, 2)
        async with AsyncClient(topics.addrs[0], **server.tls()) as ac:
            topics.lagging = 1
            assert (await ac.send("v", topic="late", key="k")).partition == key_partition(b"k", 2)

    asyncio.run(main())


def test_async_topics(topics: TopicCluster, server: ServerProcess) -> None:
    topics.create("orders", 3, 2)

    async def main() -> None:
        async with AsyncClient(topics.addrs, **server.tls(), backoff=(0.01, 0.1)) as c:
            # Queued before the metadata is known: placed by key once it is, in order.
            futures_ = [c.produce_async(f"v{i}", topic="orders", key="k") for i in range(5)]
            assert [await f for f in futures_] == [0, 1, 2, 3, 4]
            p = key_partition("k", 3)
            assert topics.values("orders", p) == [f"v{i}".encode() for i in range(5)]
            pos = await c.send(b"w", topic="orders", key="k")
            assert (pos.partition, pos.offset) == (p, 5)
            assert (await c.consume(5, topic="orders", partition=p)).value == b"w"
            assert [r.value async for r in c.stream(4, follow=False, topic="orders", partition=p)] == [b"v4", b"w"]
            assert (await c.produce_batch([b"a", b"b"], topic="orders", partition=0)) == range(0, 2)
            assert (await c.create_topic("more", partitions=2)).name == "more"
            assert [t.name for t in await c.topics()] == ["log", "more", "orders"]
            await c.delete_topic("more")
            with pytest.raises(UnknownTopicError):
                await c.produce(b"x", topic="missing")

    asyncio.run(main())
