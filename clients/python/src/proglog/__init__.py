"""proglog: Python client for the proglog replicated commit log.

    from proglog import Client

    with Client("localhost:8400", ca="ca.pem", cert="app.pem", key="app-key.pem") as client:
        offset = client.produce(b"hello")
        print(client.consume(offset).value)
        for record in client.stream(0, follow=False):
            print(record.offset, record.value)

:class:`Client` is synchronous and thread-safe; :class:`AsyncClient` is its asyncio twin. Both
discover the cluster from any of the given servers, send produce calls to the leader of each
partition (``topic=``, ``partition=``, or by key with Kafka's partitioner) and spread reads over its
followers, retry leader changes and outages, and raise :class:`ProglogError`
subclasses. The generated protobuf and gRPC modules live in `proglog._proto.log.v1`.
"""

from proglog.aio import AsyncClient
from proglog.client import Client
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    InvalidACLError,
    InvalidArgumentError,
    InvalidTopicError,
    LowDiskSpaceError,
    NotEnoughNodesError,
    NotLeaderError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ProglogError,
    RecordTooLargeError,
    TLSError,
    TooManyProducersError,
    TopicExistsError,
    UnauthenticatedError,
    UnavailableError,
    UnknownPartitionError,
    UnknownProducerError,
    UnknownTopicError,
)
from proglog.partitioner import key_partition, murmur2
from proglog.records import DEFAULT_TOPIC, ACLRule, Bounds, PartitionInfo, Position, Record, Server, TopicConfig, TopicInfo

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TOPIC",
    "ACLRule",
    "AsyncClient",
    "Bounds",
    "Client",
    "ClientClosedError",
    "DeadlineExceededError",
    "InvalidACLError",
    "InvalidArgumentError",
    "InvalidTopicError",
    "LowDiskSpaceError",
    "NotEnoughNodesError",
    "NotLeaderError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "PartitionInfo",
    "PermissionDeniedError",
    "Position",
    "ProglogError",
    "Record",
    "RecordTooLargeError",
    "Server",
    "TLSError",
    "TooManyProducersError",
    "TopicConfig",
    "TopicExistsError",
    "TopicInfo",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownPartitionError",
    "UnknownProducerError",
    "UnknownTopicError",
    "key_partition",
    "murmur2",
]
