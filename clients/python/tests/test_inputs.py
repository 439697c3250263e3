"""Arguments are checked before anything is sent, with errors that name the argument."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from proglog import Client, Record

from conftest import ServerProcess


@pytest.fixture
def lazy(server: ServerProcess) -> Iterator[Any]:
    """A client typed Any, to pass what the annotations forbid."""
    with Client(server.addr, **server.tls(), timeout=20) as c:
        yield c


def test_offsets(lazy: Any) -> None:
    with pytest.raises(ValueError, match=r"offset must be in \[0, 2\*\*64\), not -1"):
        lazy.consume(-1)
    with pytest.raises(ValueError, match="offset must be in"):
        lazy.consume(2**64)
    with pytest.raises(TypeError, match="offset must be an int, not str"):
        lazy.consume("1")
    with pytest.raises(ValueError, match="offset must be in"):
        next(lazy.stream(-1))


def test_records(lazy: Any) -> None:
    with pytest.raises(TypeError, match=r"headers\[0\] \('h'\) value must be bytes, not str"):
        lazy.produce(b"v", headers=[("h", "text")])
    with pytest.raises(TypeError, match=r"headers\[1\] must be a \(str, bytes\) pair"):
        lazy.produce(b"v", headers=[("h", b"1"), "h2"])
    with pytest.raises(TypeError, match="headers must be a sequence of"):
        lazy.produce(b"v", headers={"h": b"1"})
    with pytest.raises(TypeError, match="key must be bytes, str or None, not int"):
        lazy.produce(b"v", key=1)
    with pytest.raises(TypeError, match="Record value must be bytes, not str"):
        Record(value="text")
    with pytest.raises(ValueError, match="naive"):
        lazy.produce(Record(value=b"v", timestamp=datetime(2024, 1, 1)))


def test_batches(lazy: Any) -> None:
    for single in ("abc", b"abc", Record(value=b"abc")):
        with pytest.raises(TypeError, match="produce_batch takes an iterable of records"):
            lazy.produce_batch(single)
    with pytest.raises(ValueError, match="at least one record"):
        lazy.produce_batch([])


def test_settings(server: ServerProcess) -> None:
    with pytest.raises(ValueError, match="retries must be >= 0 or None"):
        Client(server.addr, **server.tls(), retries=-1)
    with pytest.raises(ValueError, match="produce_retries must be >= 0 or None"):
        Client(server.addr, **server.tls(), produce_retries=-1)
    with Client(server.addr, **server.tls()) as c:
        with pytest.raises(ValueError, match="timeout must be positive or None, not 0"):
            c.consume(0, timeout=0)
