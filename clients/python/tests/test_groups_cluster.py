"""Consumer groups on a real three-node cluster (`proglog serve` processes): members of a group
killed (a process, SIGKILL: not closed) and added while records keep coming. Every record is
processed at least once, none is skipped, and the group's committed offsets only move forward."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import grpc

from proglog import AsyncClient, Client, Consumer, UnknownGroupError

from proglog._proto.log.v1 import log_pb2, log_pb2_grpc

from conftest import ServerProcess
from test_cluster import cluster  # noqa: F401 (the fixture)

PARTITIONS = 6
WAIT = 90.0

# A member in its own process, killed by the test: it prints "partition offset" once it has
# processed a record (flushed before it asks for the next one).
_MEMBER = """
import sys
from proglog import Client
addrs, certs, group, topic = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
tls = {"ca": f"{certs}/ca.pem", "cert": f"{certs}/root.pem", "key": f"{certs}/root-key.pem"}
with Client(addrs, **tls, timeout=60) as c:
    with c.consumer(group, [topic], session_timeout=2, auto_commit_interval=0.2) as consumer:
        print("joined", flush=True)
        for r in consumer:
            print(r.partition, r.offset, flush=True)
"""


class _Processed:
    """What the members processed: (partition, offset) -> times, and a condition to wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.times: dict[tuple[int, int], int] = defaultdict(int)
        self.by: dict[str, int] = defaultdict(int)

    def add(self, member: str, partition: int, offset: int) -> None:
        with self.cond:
            self.times[(partition, offset)] += 1
            self.by[member] += 1
            self.cond.notify_all()

    def wait(self, what: str, predicate: object) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT), f"waited in vain for {what}"  # type: ignore[arg-type]


def _member_thread(name: str, consumer: Consumer, processed: _Processed, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            r = consumer.poll(0.1)
            if r is not None:
                processed.add(name, r.partition, r.offset)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


class _Producer:
    """Produces to every partition in turn until stopped; remembers the offsets acknowledged."""

    def __init__(self, c: Client, topic: str) -> None:
        self.acked: set[tuple[int, int]] = set()
        self.stop = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            n = 0
            try:
                while not self.stop.is_set():
                    p = n % PARTITIONS
                    written = c.produce_batch([f"{p}/{n}/{i}" for i in range(5)], topic=topic, partition=p)
                    self.acked |= {(p, o) for o in written}
                    n += 1
                    self.stop.wait(0.005)
            except BaseException as e:
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self) -> set[tuple[int, int]]:
        self.stop.set()
        self.thread.join()
        assert self.error is None, self.error
        return self.acked


def test_group_members_killed_and_added(cluster: list[ServerProcess], tmp_path: Path) -> None:  # noqa: F811
    nodes = cluster
    addrs = [n.addr for n in nodes]
    with Client(addrs, **nodes[0].tls(), timeout=60) as c:
        c.create_topic("events", partitions=PARTITIONS, replication_factor=3)
        producer = _Producer(c, "events")
        processed = _Processed()
        stop = threading.Event()
        members = {name: c.consumer("g", ["events"], session_timeout=2, auto_commit_interval=0.2, client_id=name) for name in ("m1", "m2")}
        threads = [_member_thread(name, m, processed, stop) for name, m in members.items()]
        # The committed offsets, sampled from each server's copy of the metadata while the members
        # come and go: never lower (copies lag each other, but each applies the commits in order).
        samples: dict[str, list[dict[tuple[str, int], int]]] = {n.addr: [] for n in nodes}

        def sample() -> None:
            tls = nodes[0].tls()
            creds = grpc.ssl_channel_credentials(*(Path(tls[k]).read_bytes() for k in ("ca", "key", "cert")))
            channels = {addr: grpc.secure_channel(addr, creds) for addr in samples}
            stubs = {addr: log_pb2_grpc.LogStub(ch) for addr, ch in channels.items()}
            while not stop.is_set():
                for addr, stub in stubs.items():
                    try:
                        resp = stub.FetchOffsets(log_pb2.FetchOffsetsRequest(group="g"), timeout=5)
                    except grpc.RpcError:  # the group is not in this copy yet
                        continue
                    samples[addr].append({(o.topic, o.partition): o.offset for o in resp.offsets if o.committed})
                stop.wait(0.05)
            for ch in channels.values():
                ch.close()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        script = tmp_path / "member.py"
        script.write_text(_MEMBER)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(
            [sys.executable, str(script), ",".join(addrs), str(nodes[0].certs), "g", "events"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        lines: list[str] = []

        def drain() -> None:
            for line in proc.stdout or ():
                lines.append(line)
                parts = line.split()
                if len(parts) == 2 and parts[0].isdigit():
                    processed.add("m3", int(parts[0]), int(parts[1]))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            # m3 gets its share once m1 and m2 hand it over; it processes records of it.
            processed.wait(f"m3 to process records: {lines}", lambda: processed.by["m3"] >= 20)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            reader.join()
            killed_at = processed.by["m3"]
            members["m4"] = c.consumer("g", ["events"], session_timeout=2, auto_commit_interval=0.2, client_id="m4")
            threads.append(_member_thread("m4", members["m4"], processed, stop))
            processed.wait("m4 to process records", lambda: processed.by["m4"] >= 20)
            every = producer.finish()
            processed.wait("every record to be processed", lambda: every <= set(processed.times))
            assert processed.by["m3"] == killed_at
            # m3's session timed out: the group is m1, m2 and m4, which own every partition.
            deadline = time.monotonic() + WAIT
            while True:
                d = c.describe_group("g")
                owned = sorted(p for m in d.members for p in m.owned)
                if sorted(m.client_id for m in d.members) == ["m1", "m2", "m4"] and owned == [("events", p) for p in range(PARTITIONS)]:
                    break
                assert time.monotonic() < deadline, d
                time.sleep(0.1)
            assert all(members[m.client_id].assignment() == set(m.owned) for m in d.members)
        finally:
            producer.finish() if producer.thread.is_alive() else None
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stop.set()
            for t in threads:
                t.join()
            sampler.join()
        # Nothing but the records produced was processed; m3's uncommitted ones again by others.
        assert set(processed.times) == every, sorted(set(processed.times) - every)[:10]
        ends = {p: max(o for q, o in every if q == p) + 1 for p in range(PARTITIONS)}
        for m in members.values():
            m.close()
        # Any server answers fetch_offsets from its copy of the metadata, which may lag a moment.
        want = {("events", p): ends[p] for p in range(PARTITIONS)}
        deadline = time.monotonic() + WAIT
        while (final := c.fetch_offsets("g")) != want:
            assert time.monotonic() < deadline, (final, want)
            time.sleep(0.05)
        for addr, seq in samples.items():
            for before, after in zip(seq, seq[1:]):
                for part, off in before.items():
                    assert after.get(part, -1) >= off, f"{addr}: {part}: committed {off}, then {after.get(part)}"
            assert len(seq) > 10


async def _fetch(c: AsyncClient, group: str) -> dict[tuple[str, int], int]:
    """fetch_offsets; {} from a server whose copy of the metadata does not have the group yet."""
    try:
        return await c.fetch_offsets(group)
    except UnknownGroupError:
        return {}


async def _members(c: AsyncClient, group: str) -> list[str]:
    """describe_group's member ids; [] from a server whose copy of the metadata lacks the group."""
    try:
        return [m.member_id for m in (await c.describe_group(group)).members]
    except UnknownGroupError:
        return []


def test_async_group_on_a_cluster(cluster: list[ServerProcess]) -> None:  # noqa: F811
    import asyncio

    nodes = cluster
    addrs = [n.addr for n in nodes]

    async def main() -> None:
        async with AsyncClient(addrs, **nodes[0].tls(), timeout=60) as c:
            await c.create_topic("jobs", partitions=2, replication_factor=3)
            for p in range(2):
                await c.produce_batch([f"{p}/{i}" for i in range(5)], topic="jobs", partition=p)
            async with c.consumer("ag", ["jobs"], auto_commit_interval=None) as consumer:
                got = []
                async for r in consumer:
                    got.append((r.partition, r.offset))
                    if len(got) == 10:
                        break
                assert sorted(got) == [(p, o) for p in range(2) for o in range(5)]
                await consumer.commit()
                # Any server answers from its copy of the metadata, which may lag a moment.
                deadline = time.monotonic() + WAIT
                while (offsets := await _fetch(c, "ag")) != {("jobs", 0): 5, ("jobs", 1): 5}:
                    assert time.monotonic() < deadline, offsets
                    await asyncio.sleep(0.05)
                # Likewise describe_group, which may ask another server than the fetch did.
                while (members := await _members(c, "ag")) != [consumer.member_id]:
                    assert time.monotonic() < deadline, members
                    await asyncio.sleep(0.05)
            while [g.members for g in await c.list_groups() if g.group == "ag"] != [0]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)

    asyncio.run(main())

