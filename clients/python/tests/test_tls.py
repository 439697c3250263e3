"""TLS mistakes fail fast, as TLSError naming the cause: at construction when the material cannot
work, at the first call when the server and client do not trust each other."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

import proglog
from proglog import AsyncClient, Client

from conftest import ServerProcess


def test_unusable_material_is_refused_at_construction(server: ServerProcess, start: Callable[..., ServerProcess]) -> None:
    tls = server.tls()
    other = start().tls()
    with pytest.raises(proglog.TLSError, match="key: the private key does not match the certificate"):
        Client(server.addr, ca=tls["ca"], cert=tls["cert"], key=other["key"])
    with pytest.raises(proglog.TLSError, match="ca: no PEM certificate"):
        Client(server.addr, ca=b"not a certificate", cert=tls["cert"], key=tls["key"])
    with pytest.raises(proglog.TLSError, match="ca: no PEM certificate"):
        AsyncClient(server.addr, ca=tls["key"], cert=tls["cert"], key=tls["key"])
    with pytest.raises(proglog.TLSError, match="ca: unreadable certificate"):
        Client(server.addr, ca=b"-----BEGIN CERTIFICATE-----\nbm90IERFUg==\n-----END CERTIFICATE-----\n", cert=tls["cert"], key=tls["key"])
    # A bundle with text around its certificates (as system bundles have) is fine.
    with open(tls["ca"], "rb") as f:
        ca = "# Certificat racine, éprouvé\n".encode() + f.read()
    with Client(server.addr, ca=ca, cert=tls["cert"], key=tls["key"]) as c:
        c.produce(b"bundle with comments")
    with pytest.raises(proglog.TLSError, match="cert: not a PEM certificate"):
        Client(server.addr, ca=tls["ca"], cert=tls["key"], key=tls["key"])
    with pytest.raises(proglog.TLSError, match="key: not a PEM private key"):
        Client(server.addr, ca=tls["ca"], cert=tls["cert"], key=tls["cert"])
    with pytest.raises(ValueError, match="cert and key go together"):
        Client(server.addr, ca=tls["ca"], cert=tls["cert"])


def test_handshake_failures_name_the_cause_unretried(
    server: ServerProcess, start: Callable[..., ServerProcess], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="proglog")
    tls = server.tls()
    other = start().tls()  # another dev CA
    cases = [
        ({**tls, "ca": other["ca"]}, "does not verify against the CA given as ca"),
        ({"ca": tls["ca"]}, "requires a client certificate"),
        ({**other, "ca": tls["ca"]}, "refused the client certificate"),
    ]
    for args, cause in cases:
        with Client(server.addr, **args, timeout=60) as c:
            with pytest.raises(proglog.TLSError, match=cause) as caught:
                c.produce(b"x")
            assert isinstance(caught.value, proglog.UnauthenticatedError)
            assert server.addr in str(caught.value)
    assert not [r for r in caplog.records if "retry" in r.getMessage()]

    async def main() -> None:
        async with AsyncClient(server.addr, ca=tls["ca"], timeout=60) as c:
            with pytest.raises(proglog.TLSError, match="requires a client certificate"):
                await c.consume(0)

    asyncio.run(main())
