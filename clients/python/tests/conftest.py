"""Fixtures: a real `proglog serve --dev` process with its generated mTLS certificates.

The binary is $PROGLOG_BIN (Bazel passes //go/cmd/proglog) or, outside Bazel, built once per session
with `go build ./go/cmd/proglog` from the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from proglog import Client

_SERVING = re.compile(r"serving on (\S+) \(metrics")


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

    @property
    def certs(self) -> Path:
        return self.data_dir / "certs"

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


def start_server(binary: str, data_dir: Path, *extra: str) -> ServerProcess:
    """Starts a dev server on a free loopback port and waits until its health check passes."""
    process = subprocess.Popen(
        [binary, "serve", "--dev", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    addr = ""
    deadline = time.monotonic() + 30
    for line in process.stdout:
        lines.append(line)
        if m := _SERVING.search(line):
            addr = m.group(1)
            break
        if time.monotonic() > deadline:
            break
    if not addr:
        process.kill()
        raise RuntimeError("proglog did not start:\n" + "".join(lines))
    # Keep draining the output so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()
    server = ServerProcess(addr=addr, data_dir=data_dir, process=process)
    while not _health_check(server):
        if time.monotonic() > deadline or process.poll() is not None:
            server.stop()
            raise RuntimeError("proglog never became healthy:\n" + "".join(lines))
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
