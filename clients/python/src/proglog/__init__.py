"""proglog: Python client for the proglog replicated commit log.

    from proglog import Client

    with Client("localhost:8400", ca="ca.pem", cert="app.pem", key="app-key.pem") as client:
        offset = client.produce(b"hello")
        print(client.consume(offset).value)
        for record in client.stream(0, follow=False):
            print(record.offset, record.value)

:class:`Client` is synchronous and thread-safe; :class:`AsyncClient` is its asyncio twin. Both
discover the cluster from any of the given servers, send produce calls to the leader and spread
reads over the followers, retry leader changes and outages, and raise :class:`ProglogError`
subclasses. The generated protobuf and gRPC modules live in `proglog._proto.log.v1`.
"""

from proglog.aio import AsyncClient
from proglog.client import Client
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    InvalidArgumentError,
    LowDiskSpaceError,
    NotLeaderError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ProglogError,
    RecordTooLargeError,
    TLSError,
    TooManyProducersError,
    UnauthenticatedError,
    UnavailableError,
    UnknownProducerError,
)
from proglog.partitioner import key_partition, murmur2
from proglog.records import Bounds, Record, Server

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Bounds",
    "Client",
    "ClientClosedError",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "LowDiskSpaceError",
    "NotLeaderError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "PermissionDeniedError",
    "ProglogError",
    "Record",
    "RecordTooLargeError",
    "Server",
    "TLSError",
    "TooManyProducersError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownProducerError",
    "key_partition",
    "murmur2",
]
