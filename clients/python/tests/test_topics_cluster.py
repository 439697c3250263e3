"""Topics on a real three-node cluster (`proglog serve` processes: the metadata group, the
partitions' Raft groups), sync and asyncio: keyed records on key_partition's partition, order per
partition, reads from leaders and followers, a stopped node, topic admin and its errors."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from concurrent.futures import Future

import pytest

from proglog import (
    AsyncClient,
    Client,
    ClientClosedError,
    InvalidArgumentError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
    key_partition,
)

from conftest import ServerProcess
from test_cluster import cluster  # noqa: F401 (the fixture)

PARTITIONS = 6
KEYS = 24


def _check(c: Client, topic: str, acked: dict[tuple[int, int], str]) -> None:
    """Every partition read to its end: each acknowledged record at its offset, exactly once, in its
    key's partition, and each key's records in produce order; each one also read alone."""
    for p in range(PARTITIONS):
        seen: dict[bytes, int] = {}
        last: dict[bytes, int] = {}
        for r in c.stream(0, follow=False, topic=topic, partition=p):
            assert r.value not in seen, f"partition {p} holds {r.value!r} twice ({seen[r.value]}, {r.offset})"
            seen[r.value] = r.offset
            assert key_partition(r.key, PARTITIONS) == p
            i = int(r.value.decode().rsplit("/", 1)[1])
            assert last.get(r.key, -1) < i, f"partition {p}: {r.key!r}'s record {i} after {last[r.key]}"
            last[r.key] = i
        for (part, off), value in acked.items():
            if part == p:
                assert seen.get(value.encode()) == off, f"acknowledged {value} at {p}/{off}"
    for (part, off), value in acked.items():
        assert c.consume(off, topic=topic, partition=part).value == value.encode()


def test_topic_on_a_raft_cluster(cluster: list[ServerProcess]) -> None:  # noqa: F811
    nodes = cluster
    addrs = [n.addr for n in nodes]
    with Client(addrs, **nodes[0].tls(), timeout=60) as c:
        info = c.create_topic("orders", partitions=PARTITIONS, replication_factor=3)
        assert [len(p.replicas) for p in info.partitions] == [3] * PARTITIONS
        # The topic is known to its creator at once, whichever server it asks.
        assert c.partition_for("orders", "customer-1") == key_partition(b"customer-1", PARTITIONS)
        with pytest.raises(TopicExistsError):
            c.create_topic("orders", partitions=PARTITIONS)

        acked: dict[tuple[int, int], str] = {}
        futures: list[tuple[str, str, Future[int]]] = []
        for i in range(120):
            key, value = f"customer-{i % KEYS}", f"customer-{i % KEYS}/{i}"
            futures.append((key, value, c.produce_async(value, key=key, topic="orders")))
        for key, value, f in futures:
            acked[(key_partition(key.encode(), PARTITIONS), f.result())] = value
        for i in range(120, 150):
            key, value = f"customer-{i % KEYS}", f"customer-{i % KEYS}/{i}"
            pos = c.send(value, key=key, topic="orders")
            assert pos.partition == key_partition(key.encode(), PARTITIONS)
            acked[(pos.partition, pos.offset)] = value
        _check(c, "orders", acked)
        with Client(addrs, **nodes[0].tls(), consistency="linearizable") as lin:
            for (part, off), value in acked.items():
                assert lin.consume(off, topic="orders", partition=part).value == value.encode()

        with pytest.raises(UnknownTopicError):
            c.produce("v", key="k", topic="no-such-topic")
        with pytest.raises(UnknownTopicError):
            c.consume(0, topic="no-such-topic")
        with pytest.raises(UnknownPartitionError):
            c.produce("v", topic="orders", partition=PARTITIONS)
        with pytest.raises(UnknownPartitionError):
            c.consume(0, topic="orders", partition=PARTITIONS)
        # The default topic, as before topics.
        off = c.produce("default")
        assert c.consume(off).value == b"default"
        assert c.consume(off, topic="log", partition=0).value == b"default"

        # A node leading some partitions stops (SIGTERM: it hands over and leaves); records keep
        # coming, each acknowledged one is in its partition exactly once.
        leaders = {p.leader for p in c.describe("orders").partitions if p.leader}
        meta = next(s.rpc_addr for s in c.servers() if s.is_leader)
        victim = next((i for i, n in enumerate(nodes) if n.addr in leaders and n.addr != meta), 0)
        with Client(addrs, **nodes[0].tls(), timeout=60) as stale:
            stale.partition_for("orders", "k")  # its metadata predates the change
            nodes[victim].stop()
            for i in range(150, 270):
                key, value = f"customer-{i % KEYS}", f"customer-{i % KEYS}/{i}"
                pos = c.send(value, key=key, topic="orders")
                acked[(pos.partition, pos.offset)] = value
            # A client idle during the change finds the new leaders.
            for p in range(PARTITIONS):
                key = next(f"customer-{k}" for k in range(KEYS) if key_partition(f"customer-{k}".encode(), PARTITIONS) == p)
                pos = stale.send(f"{key}/{1000 + p}", key=key, topic="orders")
                assert pos.partition == p
                acked[(pos.partition, pos.offset)] = f"{key}/{1000 + p}"
        _check(c, "orders", acked)


def test_topic_admin_on_a_raft_cluster(cluster: list[ServerProcess]) -> None:  # noqa: F811
    nodes = cluster
    # Each node in turn is the seed: whichever it is, CreateTopic and DeleteTopic reach the
    # metadata leader (following NOT_LEADER).
    for i, n in enumerate(nodes):
        with Client(n.addr, **nodes[0].tls(), timeout=60) as c:
            name = f"admin-{i}"
            c.create_topic(name, partitions=2, replication_factor=3)
            assert c.send("v", topic=name, partition=1).partition == 1
            c.delete_topic(name)
            with pytest.raises(UnknownTopicError):
                c.delete_topic(name)
            with pytest.raises(InvalidArgumentError):
                c.delete_topic("log")


def test_async_topics_on_a_raft_cluster(cluster: list[ServerProcess]) -> None:  # noqa: F811
    nodes = cluster
    addrs = [n.addr for n in nodes]

    async def run() -> None:
        async with AsyncClient(addrs, **nodes[0].tls(), timeout=60) as ac:
            await ac.create_topic("events", partitions=PARTITIONS, replication_factor=3)
            # produce_async to several partitions at once, right after creating the topic.
            futures = []
            for i in range(120):
                key, value = f"customer-{i % KEYS}", f"customer-{i % KEYS}/{i}"
                futures.append((key, value, ac.produce_async(value, key=key, topic="events")))
            per_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
            for key, value, f in futures:
                p = key_partition(key.encode(), PARTITIONS)
                per_partition[p].append((await f, value))
            assert len(per_partition) > 1
            for p, records in per_partition.items():
                streamed = [r async for r in ac.stream(0, follow=False, topic="events", partition=p)]
                by_offset = {r.offset: r.value.decode() for r in streamed}
                assert {off: by_offset[off] for off, _ in records} == dict(records)
                assert len(streamed) == len(records)
            pos = await ac.send("one", key="customer-3", topic="events")
            assert pos.partition == key_partition(b"customer-3", PARTITIONS)
            assert (await ac.consume(pos.offset, topic="events", partition=pos.partition)).value == b"one"
            with pytest.raises(UnknownTopicError):
                await ac.send("v", key="k", topic="no-such-topic")
            with pytest.raises(UnknownPartitionError):
                await ac.consume(0, topic="events", partition=PARTITIONS)

            # close() with produces in flight to several partitions: each one is acknowledged or
            # fails with ClientClosedError, none hangs.
            pending = [ac.produce_async(f"closing/{i}", key=f"customer-{i % KEYS}", topic="events") for i in range(60)]
            await ac.close()
            results = await asyncio.gather(*pending, return_exceptions=True)
            for r in results:
                assert isinstance(r, (int, ClientClosedError)), r

    asyncio.run(run())


def test_close_with_produces_in_flight(cluster: list[ServerProcess]) -> None:  # noqa: F811
    nodes = cluster
    c = Client([n.addr for n in nodes], **nodes[0].tls(), timeout=60)
    c.create_topic("closing", partitions=PARTITIONS, replication_factor=3)
    pending = [c.produce_async(f"r{i}", key=f"customer-{i % KEYS}", topic="closing") for i in range(200)]
    c.close()
    for f in pending:
        err = f.exception(timeout=30)
        assert err is None or isinstance(err, ClientClosedError), err
