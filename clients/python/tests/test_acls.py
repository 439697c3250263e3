"""ACL rules kept in the cluster's metadata, against a real `proglog serve --dev`: the rules the
clients create are listed (then the policy file's), enforced for the identity they name, refused
when invalid, and deleted."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import pytest

from conftest import ServerProcess
from proglog import ACLRule, AsyncClient, Client, InvalidACLError, InvalidArgumentError, PermissionDeniedError

_ROOT = ACLRule("root", "*", "*", from_policy_file=True)  # the dev policy file's one rule


def _until(allowed: bool, produce: Callable[[], object]) -> None:
    """Waits until produce is allowed (or refused): every server enforces a change once its copy of
    the metadata applied it, a moment after the call that made it returned."""
    deadline = time.monotonic() + 20
    while True:
        try:
            produce()
            if allowed:
                return
        except PermissionDeniedError:
            if not allowed:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"produce still {'refused' if allowed else 'allowed'} after 20 s")
        time.sleep(0.01)


def test_acls(client: Client, server: ServerProcess) -> None:
    rule = ACLRule("nobody", "acl-test-py", "produce")
    client.create_topic("acl-test-py", partitions=1, replication_factor=1)
    with Client(server.addr, **server.tls("nobody"), timeout=20) as nobody:
        with pytest.raises(PermissionDeniedError):
            nobody.produce(b"x", topic="acl-test-py", partition=0)
        client.create_acls([rule])
        assert rule in client.list_acls() and _ROOT in client.list_acls()
        _until(True, lambda: nobody.produce(b"x", topic="acl-test-py", partition=0))
        with pytest.raises(InvalidACLError) as invalid:
            client.create_acls([ACLRule("nobody", "log", "fly")])
        assert isinstance(invalid.value, InvalidArgumentError)
        client.delete_acls([rule])
        assert rule not in client.list_acls()
        _until(False, lambda: nobody.produce(b"x", topic="acl-test-py", partition=0))


def test_acls_async(server: ServerProcess) -> None:
    rule = ACLRule("nobody", "acl-test-aio", "consume")

    async def main() -> None:
        async with AsyncClient(server.addr, **server.tls(), timeout=20) as c:
            await c.create_acls([rule])
            listed = await c.list_acls()
            assert rule in listed and listed[-1] == _ROOT
            with pytest.raises(InvalidACLError):
                await c.delete_acls([ACLRule("", "log", "consume")])
            await c.delete_acls([rule])
            assert rule not in await c.list_acls()

    asyncio.run(main())
