"""Produce throughput of the Python clients against a running server (docs/benchmarks.md).

Runs, in the same process one after the other, for --duration seconds each: AsyncClient with N
tasks each awaiting produce() in a loop (N from --in-flight), one task awaiting
produce_batch(--batch) in a loop, and Client with one and with --threads threads calling
produce() in a loop. Prints one row per
workload: records/s and the ratio to the produce_batch row.

    python clients/python/bench/produce.py --addr 127.0.0.1:8400 --certs proglog-data/certs
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path

from proglog import AsyncClient, Client


async def _tasks(client: AsyncClient, n: int, value: bytes, duration: float) -> int:
    end = time.monotonic() + duration
    count = 0

    async def one() -> None:
        nonlocal count
        while time.monotonic() < end:
            await client.produce(value)
            count += 1

    await asyncio.gather(*(one() for _ in range(n)))
    return count


async def _batches(client: AsyncClient, size: int, value: bytes, duration: float) -> int:
    end = time.monotonic() + duration
    count = 0
    while time.monotonic() < end:
        count += len(await client.produce_batch([value] * size))
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", required=True)
    p.add_argument("--certs", required=True, type=Path, help="directory with ca.pem, root.pem and root-key.pem")
    p.add_argument("--in-flight", default="16,64,256", help="comma-separated numbers of concurrent produce tasks")
    p.add_argument("--threads", type=int, default=64, help="concurrent threads of the sync client")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--size", type=int, default=100, help="record value bytes")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--linger", type=float, default=0.0)
    a = p.parse_args()
    tls = {"ca": str(a.certs / "ca.pem"), "cert": str(a.certs / "root.pem"), "key": str(a.certs / "root-key.pem")}
    value = b"x" * a.size

    async def run() -> list[tuple[str, float]]:
        rows: list[tuple[str, float]] = []
        async with AsyncClient(a.addr, **tls, **({"linger": a.linger} if a.linger else {})) as client:  # type: ignore[arg-type]
            await client.produce(value)  # connects
            for n in (int(x) for x in a.in_flight.split(",")):
                rows.append((f"async, {n} tasks x produce()", await _tasks(client, n, value, a.duration) / a.duration))
            rows.append((f"async, 1 task x produce_batch({a.batch})", await _batches(client, a.batch, value, a.duration) / a.duration))
        return rows

    rows = asyncio.run(run())
    with Client(a.addr, **tls) as client:
        for n in (1, a.threads):
            end, counts = time.monotonic() + a.duration, [0] * n

            def one(i: int) -> None:
                while time.monotonic() < end:
                    client.produce(value)
                    counts[i] += 1

            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rows.append((f"sync, {n} threads x produce()", sum(counts) / a.duration))
    batched = next(r for name, r in rows if "produce_batch" in name)
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / batched:.2f} |")


if __name__ == "__main__":
    main()
