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
subclasses. ``client.consumer(group, topics)`` joins a consumer group (:class:`Consumer`,
:class:`AsyncConsumer`): the cluster shares the topics' partitions among the group's members
and keeps the group's committed offsets. The generated protobuf and gRPC modules live in `proglog._proto.log.v1`.
"""

from proglog.aio import AsyncClient
from proglog.aio_consumer import AsyncConsumer
from proglog.client import Client
from proglog.consumer import Consumer
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    InvalidACLError,
    InvalidArgumentError,
    InvalidGroupError,
    InvalidTopicError,
    LowDiskSpaceError,
    NoLeaderError,
    NotEnoughNodesError,
    NotLeaderError,
    NotOwnerError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ProglogError,
    RecordTooLargeError,
    StaleGenerationError,
    TLSError,
    TooManyMembersError,
    TooManyProducersError,
    TopicExistsError,
    UnauthenticatedError,
    UnavailableError,
    UnknownGroupError,
    UnknownMemberError,
    UnknownPartitionError,
    UnknownProducerError,
    UnknownTopicError,
)
from proglog.partitioner import key_partition, murmur2
from proglog.records import (
    DEFAULT_TOPIC,
    ACLRule,
    Bounds,
    ConsumerRecord,
    GroupDescription,
    GroupMember,
    GroupSummary,
    PartitionInfo,
    Position,
    Record,
    Server,
    TopicConfig,
    TopicInfo,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TOPIC",
    "ACLRule",
    "AsyncClient",
    "AsyncConsumer",
    "Bounds",
    "Client",
    "ClientClosedError",
    "Consumer",
    "ConsumerRecord",
    "DeadlineExceededError",
    "GroupDescription",
    "GroupMember",
    "GroupSummary",
    "InvalidACLError",
    "InvalidArgumentError",
    "InvalidGroupError",
    "InvalidTopicError",
    "LowDiskSpaceError",
    "NoLeaderError",
    "NotEnoughNodesError",
    "NotLeaderError",
    "NotOwnerError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "PartitionInfo",
    "PermissionDeniedError",
    "Position",
    "ProglogError",
    "Record",
    "RecordTooLargeError",
    "Server",
    "StaleGenerationError",
    "TLSError",
    "TooManyMembersError",
    "TooManyProducersError",
    "TopicConfig",
    "TopicExistsError",
    "TopicInfo",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownGroupError",
    "UnknownMemberError",
    "UnknownPartitionError",
    "UnknownProducerError",
    "UnknownTopicError",
    "key_partition",
    "murmur2",
]
