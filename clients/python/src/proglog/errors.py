"""Exceptions raised by proglog clients.

Every failed call raises a :class:`ProglogError` subclass chosen by the gRPC status code and the
proglog ``google.rpc.ErrorInfo`` detail the server attached, so callers catch what they mean::

    try:
        record = client.consume(offset)
    except proglog.OffsetOutOfRangeError as e:
        offset = e.lowest if e.offset < e.lowest else e.next
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

__all__ = [
    "ProglogError",
    "OffsetOutOfRangeError",
    "RecordTooLargeError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "TLSError",
    "NotLeaderError",
    "UnavailableError",
    "InvalidArgumentError",
    "DeadlineExceededError",
    "ClientClosedError",
    "OutOfOrderSequenceError",
    "UnknownProducerError",
    "TooManyProducersError",
    "UnknownTopicError",
    "UnknownPartitionError",
    "TopicExistsError",
    "InvalidTopicError",
    "NotEnoughNodesError",
    "InvalidGroupError",
    "UnknownGroupError",
    "UnknownMemberError",
    "NotOwnerError",
    "StaleGenerationError",
    "TooManyMembersError",
]

_DOMAIN = "proglog"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ProglogError(Exception):
    """Base class of every proglog client error.

    Attributes:
        code: the gRPC status code of the failed call (None for errors raised by the client itself).
        message: the server's (or gRPC's) message.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.code.name}: {self.message}"


class OffsetOutOfRangeError(ProglogError):
    """The offset is not in the log's readable range ``[lowest, next)``.

    A consumer that fell behind retention resumes at ``lowest``; one that is ahead waits for
    ``next``.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, offset: int, lowest: int, next: int) -> None:
        super().__init__(message, code)
        self.offset = offset
        self.lowest = lowest
        self.next = next


class RecordTooLargeError(ProglogError):
    """A record's encoded size exceeds the server's limit; nothing of the request was written.

    ``index`` is the record's position in a batch, -1 for a single record (or a whole request over
    gRPC's message size limit, when ``size`` and ``limit`` are the request's and the limit's sizes).
    ``size`` and ``limit`` are 0 only when neither the server nor gRPC said.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, size: int = 0, limit: int = 0, index: int = -1) -> None:
        super().__init__(message, code)
        self.size = size
        self.limit = limit
        self.index = index


class LowDiskSpaceError(ProglogError):
    """The server's free disk space is below its watermark (``--min-free-bytes``); nothing of the
    request was written. Reads still work, and produces succeed again once space is freed on the
    server. Not retried: the caller decides when to try again.

    ``free`` and ``required`` are in bytes, 0 when the server did not say.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, free: int = 0, required: int = 0) -> None:
        super().__init__(message, code)
        self.free = free
        self.required = required


class PermissionDeniedError(ProglogError):
    """The client certificate's subject may not perform the call on this log."""


class UnauthenticatedError(ProglogError):
    """The server saw no verified client certificate."""


class TLSError(UnauthenticatedError):
    """The TLS material is unusable, or the TLS handshake with a server failed; the message names
    the cause (a CA that did not sign the server's certificate, a client certificate the server
    refused or did not get, a key that does not match its certificate, ...).

    Raised by the client constructors (``code`` None) for material that cannot work, and by calls
    whose handshake failed (``code`` the gRPC status the handshake failure came with, UNAVAILABLE).
    Not retried: the same material fails the same way again.
    """

    def __str__(self) -> str:
        return f"TLS: {self.message}"


class NotLeaderError(ProglogError):
    """The server is not the leader; ``leader_addr`` names the one it knows ("" during an election).

    The client retries at the leader itself: this is only raised when retries ran out.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, leader_id: str = "", leader_addr: str = "") -> None:
        super().__init__(message, code)
        self.leader_id = leader_id
        self.leader_addr = leader_addr


class UnavailableError(ProglogError):
    """No server could serve the call (down, shutting down, no leader, unreachable) and retries ran out."""


class NoLeaderError(UnavailableError):
    """A partition has no leader (UNAVAILABLE, reason NO_LEADER). ``unreachable`` are the ids of its
    replicas on servers the answering server knows as failed or leaving, of ``replicas``; with ``topic``
    empty it is the metadata group (topic, group and ACL calls) and they are its voters. It is retried
    like any unavailability and raised when the retries end; ``quorum_lost`` (a majority unreachable)
    says no leader can be elected until they are back, as that server sees it (it may be the one cut
    off, so it is not raised at once)."""

    def __init__(self, message: str, code: grpc.StatusCode | None, topic: str = "", partition: int = 0,
                 replicas: int = 0, unreachable: tuple[str, ...] = ()) -> None:
        super().__init__(message, code)
        self.topic = topic
        self.partition = partition
        self.replicas = replicas
        self.unreachable = unreachable

    @property
    def quorum_lost(self) -> bool:
        return self.replicas > 0 and self.replicas - len(self.unreachable) < self.replicas // 2 + 1


class InvalidArgumentError(ProglogError, ValueError):
    """The request is malformed (an empty batch, too many records in one batch, ...)."""


class DeadlineExceededError(ProglogError, TimeoutError):
    """The call's timeout passed, retries included."""


class ClientClosedError(ProglogError):
    """The client was closed."""


class OutOfOrderSequenceError(ProglogError):
    """The cluster refused an idempotent produce whose sequence does not follow its producer's
    last batch (a gap, a sequence older than the batches the cluster retains, or a retry that
    does not match the batch at its sequence); nothing of the request was written. The client's
    next produce starts a new producer. Not retried.

    ``producer_id``, ``sequence`` and ``expected`` (the sequence the cluster wanted) are 0 when
    the server did not say.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, producer_id: int = 0, sequence: int = 0, expected: int = 0) -> None:
        super().__init__(message, code)
        self.producer_id = producer_id
        self.sequence = sequence
        self.expected = expected


class UnknownProducerError(ProglogError):
    """The cluster forgot the producer of an idempotent produce (idle past the server's producer
    expiry, or evicted) while the client was retrying a request that had failed ambiguously (a
    timeout, a lost connection, a leader change): the records may or may not have been written.

    A request the cluster cannot have written yet is sent again at once by a new producer instead,
    so this is only raised for retries. ``producer_id`` and ``sequence`` are the request's.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, producer_id: int = 0, sequence: int = 0) -> None:
        super().__init__(message, code)
        self.producer_id = producer_id
        self.sequence = sequence


class TooManyProducersError(ProglogError):
    """The cluster refused a new idempotent producer: it keeps its limit of producers
    (``--max-producers``), all of them active within its eviction window
    (``--producer-evict-after``, 5 minutes by default). Nothing of the request was written, so
    producing again later is safe. Not retried: the window is longer than a call's timeout, so
    the caller decides when to try again.

    ``producer_id`` is the refused producer's and ``limit`` the cluster's limit, 0 when the server
    did not say.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None, producer_id: int = 0, limit: int = 0) -> None:
        super().__init__(message, code)
        self.producer_id = producer_id
        self.limit = limit


class UnknownTopicError(ProglogError):
    """The topic does not exist (NOT_FOUND, reason UNKNOWN_TOPIC). The clients refresh their
    metadata and try once more before raising it, so a topic created a moment ago is found.
    ``topic`` is its name when the server said."""

    def __init__(self, message: str, code: grpc.StatusCode | None, topic: str = "") -> None:
        super().__init__(message, code)
        self.topic = topic


class UnknownPartitionError(ProglogError):
    """The topic has no such partition (NOT_FOUND, reason UNKNOWN_PARTITION); retried once like
    UnknownTopicError. ``partition`` is -1 when the server did not say."""

    def __init__(self, message: str, code: grpc.StatusCode | None, topic: str = "", partition: int = -1) -> None:
        super().__init__(message, code)
        self.topic = topic
        self.partition = partition


class TopicExistsError(ProglogError):
    """create_topic of a topic that exists (ALREADY_EXISTS, reason TOPIC_EXISTS)."""

    def __init__(self, message: str, code: grpc.StatusCode | None, topic: str = "") -> None:
        super().__init__(message, code)
        self.topic = topic


class InvalidTopicError(InvalidArgumentError):
    """A topic name or setting the servers refuse (INVALID_ARGUMENT, reason INVALID_TOPIC)."""


class InvalidACLError(InvalidArgumentError):
    """An ACL rule or request the servers refuse (INVALID_ARGUMENT, reason INVALID_ACL): an unknown
    action, an empty or over-long field, more than 1024 rules in one call, more than the cluster's
    limit of rules."""


class NotEnoughNodesError(ProglogError):
    """create_topic asked for more replicas than the cluster has live servers
    (FAILED_PRECONDITION, reason NOT_ENOUGH_NODES)."""

    def __init__(self, message: str, code: grpc.StatusCode | None, replication_factor: int = 0, nodes: int = 0) -> None:
        super().__init__(message, code)
        self.replication_factor = replication_factor
        self.nodes = nodes


class InvalidGroupError(InvalidArgumentError):
    """A group name or group request field the servers refuse (INVALID_ARGUMENT, reason
    INVALID_GROUP): a name outside 1 to 249 of ``[a-zA-Z0-9._-]``, or a field out of its range."""

    def __init__(self, message: str, code: grpc.StatusCode | None, group: str = "") -> None:
        super().__init__(message, code)
        self.group = group


class UnknownGroupError(ProglogError):
    """The group has no members and no committed offsets (NOT_FOUND, reason UNKNOWN_GROUP)."""

    def __init__(self, message: str, code: grpc.StatusCode | None, group: str = "") -> None:
        super().__init__(message, code)
        self.group = group


class UnknownMemberError(ProglogError):
    """The group member left or its session timed out (NOT_FOUND, reason UNKNOWN_MEMBER): its
    partitions went to the others and its commits are refused. A Consumer joins again by itself;
    its :meth:`~proglog.Consumer.commit` raises it for the positions it could not commit."""

    def __init__(self, message: str, code: grpc.StatusCode | None, group: str = "", member_id: str = "") -> None:
        super().__init__(message, code)
        self.group = group
        self.member_id = member_id


class NotOwnerError(ProglogError):
    """A commit for a partition the member does not own (any more) (FAILED_PRECONDITION, reason
    NOT_OWNER); nothing of the commit was written. ``partition`` is -1 when the server did not
    say."""

    def __init__(
        self, message: str, code: grpc.StatusCode | None, group: str = "", member_id: str = "", topic: str = "", partition: int = -1
    ) -> None:
        super().__init__(message, code)
        self.group = group
        self.member_id = member_id
        self.topic = topic
        self.partition = partition


class StaleGenerationError(ProglogError):
    """A commit or heartbeat naming a generation older than the one the member acknowledged, or
    newer than the group's (FAILED_PRECONDITION, reason STALE_GENERATION); nothing was written.
    ``generation`` is the one named, ``current`` the group's."""

    def __init__(
        self, message: str, code: grpc.StatusCode | None, group: str = "", member_id: str = "", generation: int = 0, current: int = 0
    ) -> None:
        super().__init__(message, code)
        self.group = group
        self.member_id = member_id
        self.generation = generation
        self.current = current


class TooManyMembersError(ProglogError):
    """The group already has the server's limit of members (RESOURCE_EXHAUSTED, reason
    TOO_MANY_MEMBERS). Not retried."""

    def __init__(self, message: str, code: grpc.StatusCode | None, group: str = "", limit: int = 0) -> None:
        super().__init__(message, code)
        self.group = group
        self.limit = limit


def _error_info(metadata: Iterable[Any] | None) -> tuple[str, dict[str, str]] | None:
    """Returns the reason and metadata of the proglog ErrorInfo in a call's trailing metadata: an
    iterable of (key, value) pairs, as both grpc and grpc.aio give it."""
    for key, value in metadata or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status: Any = status_pb2.Status.FromString(value)
        for detail in status.details:
            info: Any = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and str(info.domain) == _DOMAIN:
                return str(info.reason), {str(k): str(v) for k, v in info.metadata.items()}
    return None


def _int(metadata: dict[str, str], key: str, default: int = 0) -> int:
    try:
        return int(metadata[key])
    except (KeyError, ValueError):
        return default


# gRPC's message for a message over a size limit, on either side: "... larger than max (size vs. limit)".
_TOO_LARGE = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")


def from_status(code: grpc.StatusCode, message: str, metadata: Iterable[Any] | None) -> ProglogError:
    """Maps a gRPC status (code, message, trailing metadata) to the matching ProglogError."""
    info = _error_info(metadata)
    reason, md = info if info is not None else ("", {})
    if code == grpc.StatusCode.OUT_OF_RANGE:
        return OffsetOutOfRangeError(message, code, _int(md, "offset"), _int(md, "lowest"), _int(md, "next"))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if reason == "RECORD_TOO_LARGE":
            return RecordTooLargeError(message, code, _int(md, "size"), _int(md, "limit"), _int(md, "index", -1))
        if reason == "LOW_DISK_SPACE":
            return LowDiskSpaceError(message, code, _int(md, "free"), _int(md, "required"))
        if reason == "TOO_MANY_MEMBERS":
            return TooManyMembersError(message, code, md.get("group", ""), _int(md, "limit"))
        if reason == "TOO_MANY_PRODUCERS":
            return TooManyProducersError(message, code, _int(md, "producer_id"), _int(md, "limit"))
        if m := _TOO_LARGE.search(message):
            return RecordTooLargeError(message, code, int(m.group(1)), int(m.group(2)))
        return RecordTooLargeError(message, code)
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "NOT_LEADER":
        return NotLeaderError(message, code, md.get("leader_id", ""), md.get("leader_addr", ""))
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "OUT_OF_ORDER_SEQUENCE":
        return OutOfOrderSequenceError(message, code, _int(md, "producer_id"), _int(md, "sequence"), _int(md, "expected"))
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "UNKNOWN_PRODUCER":
        return UnknownProducerError(message, code, _int(md, "producer_id"), _int(md, "sequence"))
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "NOT_ENOUGH_NODES":
        return NotEnoughNodesError(message, code, _int(md, "replication_factor"), _int(md, "nodes"))
    if code == grpc.StatusCode.UNAVAILABLE and reason == "NO_LEADER":
        unreachable = tuple(u for u in md.get("unreachable", "").split(",") if u)
        return NoLeaderError(message, code, md.get("topic", ""), _int(md, "partition"), _int(md, "replicas"), unreachable)
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "NOT_OWNER":
        return NotOwnerError(message, code, md.get("group", ""), md.get("member_id", ""), md.get("topic", ""), _int(md, "partition", -1))
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "STALE_GENERATION":
        return StaleGenerationError(
            message, code, md.get("group", ""), md.get("member_id", ""), _int(md, "generation"), _int(md, "current")
        )
    if code == grpc.StatusCode.NOT_FOUND and reason == "UNKNOWN_GROUP":
        return UnknownGroupError(message, code, md.get("group", ""))
    if code == grpc.StatusCode.NOT_FOUND and reason == "UNKNOWN_MEMBER":
        return UnknownMemberError(message, code, md.get("group", ""), md.get("member_id", ""))
    if code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_GROUP":
        return InvalidGroupError(message, code, md.get("group", ""))
    if code == grpc.StatusCode.NOT_FOUND and reason == "UNKNOWN_TOPIC":
        return UnknownTopicError(message, code, md.get("topic", ""))
    if code == grpc.StatusCode.NOT_FOUND and reason == "UNKNOWN_PARTITION":
        return UnknownPartitionError(message, code, md.get("topic", ""), _int(md, "partition", -1))
    if code == grpc.StatusCode.ALREADY_EXISTS and reason == "TOPIC_EXISTS":
        return TopicExistsError(message, code, md.get("topic", ""))
    if code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_TOPIC":
        return InvalidTopicError(message, code)
    if code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_ACL":
        return InvalidACLError(message, code)
    cls = {
        grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
        grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
        grpc.StatusCode.UNAVAILABLE: UnavailableError,
        grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
        grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    }.get(code, ProglogError)
    return cls(message, code)


def from_rpc_error(err: grpc.RpcError) -> ProglogError:
    """Maps a failed synchronous call's exception to the matching ProglogError."""
    return from_status(err.code(), err.details() or "", err.trailing_metadata())
