"""The clients against a real proglog server over mutual TLS."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

import proglog
from proglog import AsyncClient, Client, Record

from conftest import ServerProcess


def test_produce_and_consume(client: Client) -> None:
    first = client.produce(b"bytes value")
    assert client.produce("text value") == first + 1
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    third = client.produce(Record(value=b"full", key=b"k", headers=[("h", b"1"), ("h", b"2")], timestamp=when))
    assert third == first + 2

    record = client.consume(first)
    assert record.value == b"bytes value" and record.offset == first
    assert record.timestamp is not None and abs(record.timestamp - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert client.consume(first + 1).value == b"text value"
    full = client.consume(third)
    assert (full.value, full.key, tuple(full.headers), full.timestamp) == (b"full", b"k", (("h", b"1"), ("h", b"2")), when)
    keyed = client.consume(client.produce(b"v", key="a key", headers=[("x", b"y")]))
    assert keyed.key == b"a key" and keyed.headers == (("x", b"y"),)


def test_produce_batch(client: Client) -> None:
    offsets = client.produce_batch([b"a", "b", Record(value=b"c", key=b"k")])
    assert len(offsets) == 3
    assert [client.consume(o).value for o in offsets] == [b"a", b"b", b"c"]
    assert client.consume(offsets[2]).key == b"k"
    with pytest.raises(ValueError):
        client.produce_batch([])


def test_stream_to_the_end(client: Client) -> None:
    offsets = client.produce_batch([f"s{i}".encode() for i in range(5)])
    got = [r for r in client.stream(offsets[1], follow=False)]
    assert [r.offset for r in got][:4] == list(offsets[1:])
    assert [r.value for r in got][:4] == [b"s1", b"s2", b"s3", b"s4"]
    assert list(client.stream(10**12, follow=False)) == []


def test_bounds(client: Client) -> None:
    before = client.bounds()
    offsets = client.produce_batch([b"b0", b"b1"])
    after = client.bounds()
    assert after == proglog.Bounds(lowest=before.lowest, next=before.next + 2)
    assert after.next == offsets[-1] + 1


def test_stream_follows_new_records(client: Client) -> None:
    start = client.produce(b"f0")

    def produce_later() -> None:
        time.sleep(0.2)
        for i in range(1, 4):
            client.produce(f"f{i}".encode())

    threading.Thread(target=produce_later).start()
    values = []
    for record in client.stream(start):
        values.append(record.value)
        if len(values) == 4:
            break
    assert values == [b"f0", b"f1", b"f2", b"f3"]


def test_offset_out_of_range(client: Client) -> None:
    client.produce(b"x")
    with pytest.raises(proglog.OffsetOutOfRangeError) as caught:
        client.consume(10**9)
    e = caught.value
    assert (e.offset, e.lowest) == (10**9, 0)
    assert 0 < e.next < 10**9
    assert e.code is not None and e.code.name == "OUT_OF_RANGE"
    assert isinstance(e, proglog.ProglogError)


def test_nobody_is_denied(server: ServerProcess) -> None:
    with Client(server.addr, **server.tls("nobody"), timeout=10) as nobody:
        with pytest.raises(proglog.PermissionDeniedError):
            nobody.produce(b"denied")
        with pytest.raises(proglog.PermissionDeniedError):
            nobody.consume(0)
        with pytest.raises(proglog.PermissionDeniedError):
            nobody.servers()


def test_record_too_large(start: Callable[..., ServerProcess]) -> None:
    small = start("--max-record-bytes", "1024")
    with Client(small.addr, **small.tls()) as c:
        with pytest.raises(proglog.RecordTooLargeError) as caught:
            c.produce(b"x" * 2000)
        assert caught.value.limit == 1024 and caught.value.size > 2000 and caught.value.index == -1
        with pytest.raises(proglog.RecordTooLargeError) as caught:
            c.produce_batch([b"ok", b"x" * 2000])
        assert caught.value.index == 1
        with pytest.raises(proglog.OffsetOutOfRangeError):
            c.consume(0)  # the batch was refused whole


def test_servers(client: Client, server: ServerProcess) -> None:
    servers = client.servers()
    assert [(s.rpc_addr, s.is_leader) for s in servers] == [(server.addr, True)]


def test_tls_material_as_bytes(server: ServerProcess) -> None:
    tls = {k: open(v, "rb").read() for k, v in server.tls().items()}
    with Client(f"proglog://{server.addr}", **tls) as c:
        assert c.consume(c.produce(b"pem bytes")).value == b"pem bytes"


def test_request_over_the_message_limit(client: Client) -> None:
    with pytest.raises(proglog.RecordTooLargeError) as caught:
        client.produce(b"x" * (5 << 20))
    assert caught.value.limit == 4 << 20 and caught.value.size > 5 << 20 and caught.value.index == -1


def test_closed_client(server: ServerProcess) -> None:
    c = Client(server.addr, **server.tls())
    c.produce(b"before close")
    c.close()
    with pytest.raises(proglog.ClientClosedError):
        c.produce(b"after close")


def test_async_client(server: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncClient(server.addr, **server.tls(), timeout=20) as c:
            first = await c.produce(b"async 0")
            rest = await c.produce_batch([b"async 1", b"async 2"])
            assert list(rest) == [first + 1, first + 2]
            record = await c.consume(first)
            assert record.value == b"async 0"
            got = [r.value async for r in c.stream(first, follow=False)]
            assert got[:3] == [b"async 0", b"async 1", b"async 2"]
            with pytest.raises(proglog.OffsetOutOfRangeError) as caught:
                await c.consume(10**9)
            assert caught.value.next > first
            servers = await c.servers()
            assert servers[0].is_leader
            bounds = await c.bounds()
            assert bounds.next == first + 3 and bounds.lowest <= first

            # Follow: a record produced while the stream waits arrives.
            async def later() -> None:
                await asyncio.sleep(0.2)
                await c.produce(b"async later")

            task = asyncio.create_task(later())
            async for r in c.stream(rest[-1] + 1):
                assert r.value == b"async later"
                break
            await task

        async with AsyncClient(server.addr, **server.tls("nobody")) as nobody:
            with pytest.raises(proglog.PermissionDeniedError):
                await nobody.produce(b"denied")

    asyncio.run(main())


def test_concurrent_produces_against_a_server(server: ServerProcess) -> None:
    # Coalesced into ProduceBatch requests by the server's count; each caller gets its own offset.
    before = server.calls().get("ProduceBatch", 0)

    async def main() -> None:
        async with AsyncClient(server.addr, **server.tls()) as c:
            values = [f"c{i}".encode() for i in range(200)]
            offsets = await asyncio.gather(*(c.produce(v) for v in values))
            assert len(set(offsets)) == len(values)
            for v, off in zip(values, offsets):
                assert (await c.consume(off)).value == v
            futures = [c.produce_async(b"f1"), c.produce_async(b"f2")]
            await c.flush()
            assert futures[1].result() == futures[0].result() + 1

    asyncio.run(main())
    with Client(server.addr, **server.tls()) as c:
        results: dict[bytes, int] = {}
        threads = [threading.Thread(target=lambda v=f"t{i}".encode(): results.__setitem__(v, c.produce(v))) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(results.values())) == 32
        assert all(c.consume(off).value == v for v, off in results.items())
        f = c.produce_async(b"async")
        c.flush()
        assert f.done() and c.consume(f.result()).value == b"async"
    assert server.calls().get("ProduceBatch", 0) > before
