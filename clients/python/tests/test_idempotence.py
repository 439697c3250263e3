"""Idempotent produces against a real proglog server: a request whose answer is lost after the
server wrote it is retried, and the retry is answered with the original offsets (exactly once)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from proglog import Client

from conftest import ServerProcess, start_server


class _Pipe:
    """One proxied connection: the client's socket and the server's."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.muted = False  # the server's bytes are dropped

    def close(self) -> None:
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class LossyProxy:
    """A TCP proxy to one server that can lose the server's answers: after mute(), what the server
    sends on the connections open then is dropped, until cut() closes them (the client sees its
    connection break after the request was sent, the server saw nothing wrong). Connections made
    later are proxied faithfully."""

    def __init__(self) -> None:
        self.upstream = ("", 0)  # set by connect before the first client connects
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.pipes: list[_Pipe] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            pipe = _Pipe(client, socket.create_connection(self.upstream))
            with self.lock:
                self.pipes.append(pipe)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pipe, pipe.client, pipe.server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(pipe, pipe.server, pipe.client, True), daemon=True).start()

    def _pump(self, pipe: _Pipe, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if not (from_server and pipe.muted):
                    dst.sendall(data)
        except OSError:
            pass
        pipe.close()

    def mute(self) -> None:
        with self.lock:
            for pipe in self.pipes:
                pipe.muted = True

    def cut(self) -> None:
        with self.lock:
            muted = [p for p in self.pipes if p.muted]
            self.pipes = [p for p in self.pipes if not p.muted]
        for pipe in muted:
            pipe.close()

    def connect(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            pipes, self.pipes = self.pipes, []
        for pipe in pipes:
            pipe.close()


@pytest.fixture
def behind_proxy(proglog_bin: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, LossyProxy]]:
    """A server reached only through the proxy: it advertises the proxy's address (what GetMetadata
    names, since produce allows it), and its ACL refuses GetServers."""
    policy = tmp_path / "policy.csv"
    policy.write_text("p, root, *, produce\np, root, *, consume\n")
    proxy = LossyProxy()
    server = start_server(proglog_bin, tmp_path / "server", "--acl-policy", str(policy), "--advertise-addr", proxy.addr,
                          started=lambda s: proxy.connect(_api_listener(s)))  # fmt: skip
    yield server, proxy
    server.stop()
    proxy.close()


def _api_listener(server: ServerProcess) -> str:
    """The address the server's API listens on (it advertises another, the proxy's): its listening
    TCP socket on loopback that is neither the metrics nor the gossip one, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{server.process.pid}/fd"):
        try:
            link = os.readlink(f"/proc/{server.process.pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    others = {int(urlsplit(server.metrics_url).port or 0), int(server.gossip_addr.rpartition(":")[2])}
    ports = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            host, port = local.split(":")
            if state == "0A" and inode in inodes and host == "0100007F" and int(port, 16) not in others:
                ports.append(int(port, 16))
    assert len(ports) == 1, f"listening ports {ports}, metrics and gossip {others}"
    return f"127.0.0.1:{ports[0]}"


def _wait_for_calls(server: ServerProcess, method: str, n: int) -> None:
    """Polls the server's metrics until it has answered n calls of method successfully (counted
    once the handler returned: the records are committed)."""
    deadline = time.monotonic() + 30
    while server.calls().get(method, 0) < n:
        assert time.monotonic() < deadline, f"{method}: {server.calls()}"
        time.sleep(0.01)


@pytest.mark.parametrize("idempotent", [True, False])
def test_lost_answer_is_written_once(behind_proxy: tuple[ServerProcess, LossyProxy], idempotent: bool) -> None:
    server, proxy = behind_proxy
    probes = proxy.accepted  # the start's health checks came through the proxy too
    with Client(proxy.addr, **server.tls(), backoff=(0.01, 0.1), timeout=20, idempotent=idempotent) as c, ThreadPoolExecutor(1) as pool:
        assert c.produce(b"before") == 0  # opens the connection whose answers get lost
        proxy.mute()
        single = c.produce_async(b"single")  # a Produce
        _wait_for_calls(server, "Produce", 2)  # written, its answer dropped
        proxy.cut()
        offset = single.result(timeout=30)
        # The broken connection made the client drop its metadata: a read fetches it again now, so
        # that the batch below does not need it while answers are being lost.
        assert c.consume(offset).value == b"single"
        proxy.mute()
        batch = pool.submit(c.produce_batch, [b"b1", b"b2"])
        _wait_for_calls(server, "ProduceBatch", 1)
        proxy.cut()
        offsets = batch.result(timeout=30)
        # Each lost answer was retried once, on a new connection (through the proxy, or straight to
        # the server once the metadata names it: produce implies describe).
        assert proxy.accepted - probes == 3  # each retry came on a new connection
    with Client(server.addr, **server.tls()) as direct:
        log = [r.value for r in direct.stream(0, follow=False)]
    if idempotent:
        # The retries were answered with the original offsets; nothing was written twice.
        assert (offset, offsets) == (1, range(2, 4))
        assert log == [b"before", b"single", b"b1", b"b2"]
    else:
        assert (offset, offsets) == (2, range(5, 7))
        assert log == [b"before", b"single", b"single", b"b1", b"b2", b"b1", b"b2"]
