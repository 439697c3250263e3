"""Fixtures: a real `proglog serve --dev` process with its generated mTLS certificates.

The binary is $PROGLOG_BIN (Bazel passes //go/cmd/proglog) or, outside Bazel, built once per session
with `go build ./go/cmd/proglog` from the repository root.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from proglog import Client

_SERVING = re.compile(r"serving on (\S+) \(metrics: (\S+)\)")
_CALLS = re.compile(r'proglog_rpc_requests_total\{code="OK",method="/log\.v1\.Log/(\w+)"\} (\S+)')
_GOSSIP = re.compile(r"gossip on (\S+),")


@pytest.fixture(scope="session")
def proglog_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    if path := os.environ.get("PROGLOG_BIN"):
        return os.path.abspath(path)
    root = Path(__file__).resolve().parents[3]
    if not (root / "go.mod").exists() or shutil.which("go") is None:
        pytest.fail("set PROGLOG_BIN to a proglog binary (no Go toolchain or repository to build one)")
    out = tmp_path_factory.mktemp("bin") / "proglog"
    subprocess.run(["go", "build", "-o", str(out), "./go/cmd/proglog"], cwd=root, check=True)
    return str(out)


@dataclass
class ServerProcess:
    """A running `proglog serve --dev`."""

    addr: str
    data_dir: Path
    process: subprocess.Popen[str]
    metrics_url: str = ""
    certs_dir: Path | None = None
    gossip_addr: str = ""

    @property
    def certs(self) -> Path:
        return self.certs_dir or self.data_dir / "certs"

    def calls(self) -> dict[str, int]:
        """Successful calls served, per log.v1.Log method, from the node's metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            text = resp.read().decode()
        out: dict[str, int] = {}
        for m in _CALLS.finditer(text):
            out[m.group(1)] = out.get(m.group(1), 0) + int(float(m.group(2)))
        return out

    def tls(self, name: str = "root") -> dict[str, str]:
        """Client TLS arguments with the dev certificate of `name` (root or nobody)."""
        return {"ca": str(self.certs / "ca.pem"), "cert": str(self.certs / f"{name}.pem"), "key": str(self.certs / f"{name}-key.pem")}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _health_check(server: ServerProcess) -> bool:
    """grpc.health.v1.Health/Check, with raw bytes: an empty request; SERVING encodes as 08 01."""
    tls = server.tls()
    creds = grpc.ssl_channel_credentials(*(Path(tls[k]).read_bytes() for k in ("ca", "key", "cert")))
    with grpc.secure_channel(server.addr, creds) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", lambda b: b, lambda b: b)
        try:
            return bool(check(b"", timeout=2) == b"\x08\x01")
        except grpc.RpcError:
            return False


def start_server(
    binary: str, data_dir: Path, *extra: str, dev: bool = True, certs: Path | None = None,
    started: Callable[[ServerProcess], None] | None = None,
) -> ServerProcess:
    """Starts `proglog serve` (with --dev unless dev=False; then `extra` must give TLS and gossip
    settings and `certs` the directory with the client certificates) on free loopback ports, calls
    `started` once it prints its addresses, and waits until its health check passes."""
    args = [binary, "serve", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn"]
    process = subprocess.Popen([*args, *(["--dev"] if dev else []), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:  # also keeps the server from blocking on a full pipe
        for line in process.stdout or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    seen: list[str] = []
    server: ServerProcess | None = None
    deadline = time.monotonic() + 30
    while server is None or server.gossip_addr == "":
        wait = deadline - time.monotonic() if server is None else 2.0
        try:
            line = lines.get(timeout=max(wait, 0.01))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if server is None and (m := _SERVING.search(line)):
            server = ServerProcess(addr=m.group(1), data_dir=data_dir, process=process, metrics_url=m.group(2), certs_dir=certs)
        elif server is not None and (g := _GOSSIP.search(line)):
            server.gossip_addr = g.group(1)
    if server is None:
        process.kill()
        raise RuntimeError("proglog did not start:\n" + "".join(seen))
    if started is not None:
        started(server)
    while not _health_check(server):
        if time.monotonic() > deadline or process.poll() is not None:
            server.stop()
            raise RuntimeError("proglog never became healthy:\n" + "".join(seen))
        time.sleep(0.05)
    return server


@pytest.fixture(scope="session")
def server(proglog_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(proglog_bin, tmp_path_factory.mktemp("proglog"))
    yield s
    s.stop()


@pytest.fixture
def start(proglog_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """Starts extra servers with more flags; they stop after the test."""
    started: list[ServerProcess] = []

    def _start(*extra: str) -> ServerProcess:
        s = start_server(proglog_bin, tmp_path_factory.mktemp("proglog"), *extra)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.addr, **server.tls(), timeout=20) as c:
        yield c
