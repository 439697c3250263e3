"""The clients against a real three-node cluster: `proglog serve` processes replicating with Raft."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from proglog import AsyncClient, Client

from conftest import ServerProcess, start_server

FAST_RAFT = (
    "--raft-heartbeat-timeout", "300ms",
    "--raft-election-timeout", "300ms",
    "--raft-leader-lease-timeout", "150ms",
    "--raft-commit-timeout", "5ms",
)  # fmt: skip


@pytest.fixture
def cluster(proglog_bin: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    # n0 bootstraps with dev certificates and gossip key; n1 and n2 join it with the same CA and
    # key, each with its own node certificate (a node refuses one that does not name it).
    n0 = start_server(proglog_bin, tmp_path / "n0", "--node-name", "n0", *FAST_RAFT)
    nodes = [n0]
    try:
        certs = n0.certs
        subprocess.run(
            [proglog_bin, "certs", "--dir", str(certs), "--node", "n1", "--node", "n2"],
            check=True,
            capture_output=True,
        )
        for i in (1, 2):
            nodes.append(
                start_server(
                    proglog_bin,
                    tmp_path / f"n{i}",
                    "--node-name", f"n{i}",
                    "--tls-cert", str(certs / f"n{i}.pem"),
                    "--tls-key", str(certs / f"n{i}-key.pem"),
                    "--tls-ca", str(certs / "ca.pem"),
                    "--gossip-key-file", str(n0.data_dir / "gossip.key"),
                    "--join", n0.gossip_addr,
                    *FAST_RAFT,
                    dev=False,
                    certs=certs,
                )  # fmt: skip
            )
        with Client(n0.addr, **n0.tls()) as c:
            for _ in range(100):
                if len(c.servers()) == 3:
                    break
                asyncio.run(asyncio.sleep(0.1))
            else:
                pytest.fail("the cluster never listed three servers")
            # The default topic starts on n0 alone and is topped up to three replicas as nodes join:
            # wait for them, so that a client's first metadata already has both followers.
            for _ in range(300):
                if len(c.describe("log").partitions[0].replicas) == 3:
                    break
                asyncio.run(asyncio.sleep(0.1))
            else:
                pytest.fail(f"the default topic never had three replicas: {c.describe('log')}")
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def _leader(client: Client, nodes: list[ServerProcess]) -> int:
    leader = next(s.rpc_addr for s in client.servers() if s.is_leader)
    return next(i for i, n in enumerate(nodes) if n.addr == leader)


def test_routing_on_a_raft_cluster(cluster: list[ServerProcess]) -> None:
    nodes = cluster
    # Seeded with the last node only: the others are discovered.
    with Client(nodes[2].addr, **nodes[0].tls()) as c:
        leader = _leader(c, nodes)
        before = [n.calls() for n in nodes]
        offsets = [c.produce(f"r{i}") for i in range(20)]
        for off in offsets:
            assert c.consume(off).value == f"r{off - offsets[0]}".encode()
        after = [n.calls() for n in nodes]
        view = (c.describe("log").partitions[0], c.servers())  # for the failure message
    produced = [a.get("Produce", 0) - b.get("Produce", 0) for a, b in zip(after, before)]
    consumed = [a.get("Consume", 0) - b.get("Consume", 0) for a, b in zip(after, before)]
    assert produced == [20 if i == leader else 0 for i in range(3)]
    # Reads alternate between the followers (a lagging follower's miss is asked of the leader).
    followers = [i for i in range(3) if i != leader]
    assert all(consumed[i] >= 8 for i in followers), (consumed, view)
    assert sum(consumed) <= 24, (consumed, view)


def test_acknowledged_records_survive_a_leader_change(cluster: list[ServerProcess]) -> None:
    nodes = cluster
    with Client([n.addr for n in nodes], **nodes[0].tls(), timeout=60) as c:
        acked = {c.produce(f"before {i}"): f"before {i}".encode() for i in range(10)}
        old = _leader(c, nodes)
        nodes[old].stop()  # SIGTERM: the leader hands over and leaves
        acked |= {c.produce(f"after {i}"): f"after {i}".encode() for i in range(10)}
        assert _leader(c, nodes) != old
        for off, value in acked.items():
            assert c.consume(off).value == value
        streamed = {r.offset: r.value for r in c.stream(0, follow=False)}
        assert {o: streamed[o] for o in acked} == acked

    async def also_async() -> None:
        async with AsyncClient([n.addr for n in nodes], **nodes[0].tls()) as ac:
            off = await ac.produce(b"async after the change")
            assert (await ac.consume(off)).value == b"async after the change"

    asyncio.run(also_async())


