"""The synchronous client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, wait
from types import TracebackType
from typing import Callable, Literal, TypeVar

import grpc

from proglog import _batch, _core, _group, _producer
from proglog._core import PEM, Attempts, Consistency, Halt, Metadata, MetadataCache, Op, PartKey, Router, Settings
from proglog.consumer import Consumer
from proglog._proto.log.v1 import log_pb2
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    ProglogError,
    TLSError,
    TopicExistsError,
    UnavailableError,
    UnknownTopicError,
    from_rpc_error,
)
from proglog.partitioner import key_partition
from proglog.records import (
    DEFAULT_TOPIC,
    ACLRule,
    Bounds,
    GroupDescription,
    GroupSummary,
    Position,
    Record,
    Server,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    Value,
    _as_record,
    _as_records,
    _check_offset,
    _check_partition,
    _offsets,
)

__all__ = ["Client"]

_T = TypeVar("_T")
_SERVICE = "/log.v1.Log/"
_CONSISTENCY = {"follower": log_pb2.CONSISTENCY_FOLLOWER, "linearizable": log_pb2.CONSISTENCY_LINEARIZABLE}


class _Stub:
    """Typed method handles of log.v1.Log on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.produce = channel.unary_unary(
            _SERVICE + "Produce", log_pb2.ProduceRequest.SerializeToString, log_pb2.ProduceResponse.FromString
        )
        self.produce_batch = channel.unary_unary(
            _SERVICE + "ProduceBatch", log_pb2.ProduceBatchRequest.SerializeToString, log_pb2.ProduceBatchResponse.FromString
        )
        self.consume = channel.unary_unary(
            _SERVICE + "Consume", log_pb2.ConsumeRequest.SerializeToString, log_pb2.ConsumeResponse.FromString
        )
        self.consume_stream = channel.unary_stream(
            _SERVICE + "ConsumeStream", log_pb2.ConsumeRequest.SerializeToString, log_pb2.ConsumeResponse.FromString
        )
        self.get_servers = channel.unary_unary(
            _SERVICE + "GetServers", log_pb2.GetServersRequest.SerializeToString, log_pb2.GetServersResponse.FromString
        )
        self.get_bounds = channel.unary_unary(
            _SERVICE + "GetBounds", log_pb2.GetBoundsRequest.SerializeToString, log_pb2.GetBoundsResponse.FromString
        )
        self.get_metadata = channel.unary_unary(
            _SERVICE + "GetMetadata", log_pb2.GetMetadataRequest.SerializeToString, log_pb2.GetMetadataResponse.FromString
        )
        self.create_topic = channel.unary_unary(
            _SERVICE + "CreateTopic", log_pb2.CreateTopicRequest.SerializeToString, log_pb2.CreateTopicResponse.FromString
        )
        self.delete_topic = channel.unary_unary(
            _SERVICE + "DeleteTopic", log_pb2.DeleteTopicRequest.SerializeToString, log_pb2.DeleteTopicResponse.FromString
        )
        self.join_group = channel.unary_unary(
            _SERVICE + "JoinGroup", log_pb2.JoinGroupRequest.SerializeToString, log_pb2.JoinGroupResponse.FromString
        )
        self.heartbeat = channel.unary_unary(
            _SERVICE + "Heartbeat", log_pb2.HeartbeatRequest.SerializeToString, log_pb2.HeartbeatResponse.FromString
        )
        self.leave_group = channel.unary_unary(
            _SERVICE + "LeaveGroup", log_pb2.LeaveGroupRequest.SerializeToString, log_pb2.LeaveGroupResponse.FromString
        )
        self.commit_offsets = channel.unary_unary(
            _SERVICE + "CommitOffsets", log_pb2.CommitOffsetsRequest.SerializeToString, log_pb2.CommitOffsetsResponse.FromString
        )
        self.fetch_offsets = channel.unary_unary(
            _SERVICE + "FetchOffsets", log_pb2.FetchOffsetsRequest.SerializeToString, log_pb2.FetchOffsetsResponse.FromString
        )
        self.list_groups = channel.unary_unary(
            _SERVICE + "ListGroups", log_pb2.ListGroupsRequest.SerializeToString, log_pb2.ListGroupsResponse.FromString
        )
        self.describe_group = channel.unary_unary(
            _SERVICE + "DescribeGroup", log_pb2.DescribeGroupRequest.SerializeToString, log_pb2.DescribeGroupResponse.FromString
        )
        self.create_acls = channel.unary_unary(
            _SERVICE + "CreateACLs", log_pb2.CreateACLsRequest.SerializeToString, log_pb2.CreateACLsResponse.FromString
        )
        self.delete_acls = channel.unary_unary(
            _SERVICE + "DeleteACLs", log_pb2.DeleteACLsRequest.SerializeToString, log_pb2.DeleteACLsResponse.FromString
        )
        self.list_acls = channel.unary_unary(
            _SERVICE + "ListACLs", log_pb2.ListACLsRequest.SerializeToString, log_pb2.ListACLsResponse.FromString
        )


class _Lane:
    """One partition's queued records and its sender thread (guarded by Client._queued)."""

    def __init__(self, limits: _batch.Limits) -> None:
        self.queue: _batch.Queue[Future[int]] = _batch.Queue(limits)
        self.in_flight: list[Future[int]] = []
        self.sender: threading.Thread | None = None


class Client:
    """A connection to a proglog cluster. Thread-safe; create one per cluster and share it.

    ``target`` names one or more servers ("host:port", "h1:p1,h2:p2", "proglog://h1:p1,h2:p2" or a
    list); the rest of the cluster is discovered with GetServers, which is asked again every
    ``discovery_interval`` seconds and whenever a server fails or says it is not the leader.
    Produce calls go to the leader; consume and stream calls go round-robin to the followers (the
    leader when there are none), or with ``consistency="linearizable"`` consume calls go to the
    leader. Connections are made lazily, at the first call.

    Args:
        target: the seed servers.
        ca: CA certificates that verify the servers: PEM bytes, or a path (None: system roots).
        cert: the client certificate (PEM bytes or a path); its common name is the identity the
            server's ACL checks.
        key: the client's private key (PEM bytes or a path), unencrypted. The constructor raises
            TLSError if ca, cert or key is not what it should be or the key does not match cert;
            a call whose TLS handshake fails raises TLSError naming the likely cause, unretried.
        server_name: the TLS name to verify servers as, when it differs from their address host.
        timeout: default bound, in seconds, of each call including its retries (None: none).
            A ``follow=False`` stream may go this long without a record while it retries; a
            following stream is not bounded.
        retries: how many times a call is retried after a retriable failure (the server is not
            the leader, unreachable or shutting down, or no leader is elected). None (default):
            with backoff until the call's timeout ends, and for a following stream until it is
            closed; 0 never.
        idempotent: whether produces are idempotent (default True): each request carries a
            producer ID and sequence number, so a retry of a request the cluster already wrote
            returns the original offsets instead of writing the records again (exactly-once
            retries). False sends none (at-least-once: a retry may write the records twice).
            See :meth:`produce_batch` for the errors only idempotent produces raise.
        produce_retries: bounds the retries of a produce after an UNAVAILABLE answer or a broken
            connection, which leave it unknown whether the records were written (with
            ``idempotent=False``, retrying them may write them twice). None (default) retries
            those like any failure; 0 raises UnavailableError instead (at-most-once). NOT_LEADER
            redirects and requests never sent (no connection could be made), which cannot
            duplicate, are always retried.
        backoff: (initial, maximum) delay between retries, in seconds; doubled each retry, jittered.
        consistency: "follower" (default) or "linearizable" (see above).
        discovery_interval: seconds between refreshes of the server list when nothing fails.
        linger: seconds a produced record may wait for others to join its batch (default 0:
            it is sent at once if no batch is in flight; see :meth:`produce_async`).
        max_batch_records: most records in one coalesced batch (default 1000, at most the
            server's 10000).
        max_batch_bytes: most encoded bytes in one coalesced batch (default 1 MiB, at most the
            server's 4 MiB message limit); a larger record is sent alone.
        metadata_refresh: the least seconds between two GetMetadata of one topic after calls found
            its metadata stale (default 0.1).
        metadata_max_age: a topic's metadata older than this many seconds is fetched again on the
            topic's next call (default 300, as Kafka's metadata.max.age.ms and the Go client's
            WithMetadataMaxAge), so that replicas added later are learnt before a call fails.

    Topics: every call reading or writing records takes ``topic`` (default: the topic "log") and
    ``partition`` (default 0; for produces, default: the partition of the record's key, or the
    topic's sticky partition for a keyless record). See the package README.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        ca: PEM | None = None,
        cert: PEM | None = None,
        key: PEM | None = None,
        server_name: str | None = None,
        timeout: float | None = 30.0,
        retries: int | None = None,
        produce_retries: int | None = None,
        backoff: tuple[float, float] = (0.05, 1.0),
        consistency: Consistency = "follower",
        discovery_interval: float = 10.0,
        linger: float = 0.0,
        max_batch_records: int = _batch.DEFAULT_MAX_BATCH_RECORDS,
        max_batch_bytes: int = _batch.DEFAULT_MAX_BATCH_BYTES,
        idempotent: bool = True,
        metadata_refresh: float = 0.1,
        metadata_max_age: float = 300.0,
    ) -> None:
        self._settings = Settings(
            timeout, retries, produce_retries, backoff, consistency, discovery_interval, metadata_refresh, metadata_max_age
        )
        self._idempotent = idempotent
        self._producers: dict[PartKey, _producer.Producers] = {}
        self._limits = _batch.Limits(linger, max_batch_records, max_batch_bytes)
        self._queued = threading.Condition()  # guards _lanes and each lane's state
        self._lanes: dict[PartKey, _Lane] = {}
        self._sticky = _core.Sticky()
        self._router = Router(_core.parse_target(target), discovery_interval)
        self._cache = MetadataCache(metadata_refresh, discovery_interval, metadata_max_age)
        self._credentials = _core.credentials(ca, cert, key)
        self._has_cert = cert is not None
        self._options = _core.channel_options(server_name)
        self._channels: dict[str, tuple[grpc.Channel, _Stub]] = {}
        self._lock = threading.Lock()
        self._discovery = threading.Lock()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes every connection. Calls in progress, records not yet acknowledged and later calls
        raise ClientClosedError."""
        queued: list[_batch.Item[Future[int]]] = []
        senders: list[threading.Thread] = []
        with self._queued:
            with self._lock:
                self._closed = True
                channels, self._channels = list(self._channels.values()), {}
            for lane in self._lanes.values():
                queued += lane.queue.items
                lane.queue.items.clear()
                if lane.sender is not None:
                    senders.append(lane.sender)
                lane.sender = None
            self._queued.notify_all()
        for item in queued:
            item.future.set_exception(ClientClosedError("the client is closed"))
        for channel, _ in channels:
            channel.close()
        for sender in senders:
            if sender is not threading.current_thread():
                sender.join()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the API --------------------------------------------------------------------------------

    def produce(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
        topic: str | None = None,
        partition: int | None = None,
    ) -> int:
        """Appends one record and returns its offset.

        ``value`` is bytes, a str (encoded as UTF-8) or a Record (then ``key`` and ``headers`` are
        taken from it). The record is sent from the calling thread when no request is in flight;
        records produced by concurrent threads meanwhile are sent together (see
        :meth:`produce_async`).

        Without ``topic`` and ``partition`` the record goes to partition 0 of the topic "log",
        whatever its key (as before topics). Otherwise it goes to ``partition`` of ``topic``
        (default "log"), or without a partition to the one its key maps to
        (:func:`proglog.key_partition` of the topic's partitions, Kafka's default partitioner),
        or for a keyless record to the topic's sticky partition (one chosen at random and kept
        until a batch is sent to it, then chosen again: Kafka's KIP-480). :meth:`send` also
        returns the partition.
        """
        return self._produce(value, key, headers, timeout, topic, partition).offset

    def send(
        self,
        value: Value,
        *,
        topic: str | None = None,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timeout: float | None | Literal["default"] = "default",
    ) -> Position:
        """Like :meth:`produce` with a topic (default "log"), returning where the record was
        written: its partition and offset."""
        return self._produce(value, key, headers, timeout, topic or DEFAULT_TOPIC, partition)

    def _produce(
        self,
        value: Value,
        key: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] | None,
        timeout: float | None | Literal["default"],
        topic: str | None,
        partition: int | None,
    ) -> Position:
        future, lone, part = self._enqueue(value, key, headers, timeout, topic, partition, alone=True)
        if lone is not None:  # nothing in flight or queued: sent from this thread, as before
            try:
                self._send([lone], part)
            finally:
                with self._queued:
                    self._lane(part).in_flight = []
                    self._queued.notify_all()
        return Position(part[1], future.result())

    def produce_async(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
        topic: str | None = None,
        partition: int | None = None,
    ) -> Future[int]:
        """Queues one record and returns a Future of its offset (or of the error that failed it).
        ``topic`` and ``partition`` choose where it goes as in :meth:`produce`; each partition has
        its own queue, sender and batches. A record whose partition depends on metadata the client
        does not have yet (a topic's first keyed or keyless record) waits for it in the caller's
        thread.

        One sender thread sends the queued records: those queued while a request is in flight go
        together in the next one (a ProduceBatch, so they are written at consecutive offsets in
        the order queued, all or none), bounded by ``max_batch_records`` and ``max_batch_bytes``;
        a lone record is sent at once, or after ``linger``. ``timeout`` bounds the record's wait
        and its request with retries; a batch's request ends at its earliest record's timeout, and
        carries the OpenTelemetry context of its first record. The Future cannot be cancelled.
        """
        return self._enqueue(value, key, headers, timeout, topic, partition, alone=False)[0]

    def _enqueue(
        self,
        value: Value,
        key: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] | None,
        timeout: float | None | Literal["default"],
        topic: str | None,
        partition: int | None,
        alone: bool,
    ) -> tuple[Future[int], _batch.Item[Future[int]] | None, PartKey]:
        """Queues a record for its partition's sender; or, if ``alone`` and nothing is in flight,
        queued or lingering there, returns it as the request now in flight, for the caller to
        send. Also returns the partition."""
        rec = _as_record(value, key, headers)
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        part = self._target(topic, partition, rec.key, deadline_at)
        record = rec._to_proto()
        future: Future[int] = Future()
        future.set_running_or_notify_cancel()
        with self._queued:
            if self._closed:
                raise ClientClosedError("the client is closed")
            lane = self._lane(part)
            if alone and not lane.in_flight and not lane.queue.items and lane.queue.limits.linger == 0:
                lane.in_flight = [future]
                return future, _batch.Item(record, future, deadline_at, _core.call_metadata(), 0), part
            lane.queue.push(record, future, deadline_at, _core.call_metadata())
            if lane.sender is None:
                lane.sender = threading.Thread(target=self._send_loop, args=(part,), name="proglog-producer", daemon=True)
                lane.sender.start()
            self._queued.notify_all()
        return future, None, part

    def _lane(self, part: PartKey) -> _Lane:
        """The partition's lane, made on first use; self._queued is held."""
        lane = self._lanes.get(part)
        if lane is None:
            lane = self._lanes[part] = _Lane(self._limits)
        return lane

    def _producers_for(self, part: PartKey) -> _producer.Producers:
        """The partition's pool of idle producers: a producer's sequences are one partition's."""
        with self._lock:
            pool = self._producers.get(part)
            if pool is None:
                pool = self._producers[part] = _producer.Producers(self._idempotent)
            return pool

    def _target(self, topic: str | None, partition: int | None, key: bytes, deadline_at: float | None) -> PartKey:
        """The partition a produce goes to (see :meth:`produce`)."""
        if topic is None and partition is None:
            return DEFAULT_TOPIC, 0
        name = topic or DEFAULT_TOPIC
        if partition is not None:
            return name, _check_partition(partition)
        n = self._partitions(name, deadline_at)
        return name, key_partition(key, n) if key else self._sticky.get(name, n)

    def partition_for(self, topic: str, key: bytes | str, *, timeout: float | None | Literal["default"] = "default") -> int:
        """The partition of ``topic`` that a record with ``key`` goes to: key_partition(key, the
        topic's partitions), asked of the cluster's metadata."""
        key = key.encode() if isinstance(key, str) else key
        if not key:
            raise ValueError("partition_for needs a non-empty key (a keyless record goes to the sticky partition)")
        return key_partition(key, self._partitions(topic, _core.deadline(self._settings.timeout if timeout == "default" else timeout)))

    def _partitions(self, topic: str, deadline_at: float | None) -> int:
        self._ensure_metadata(topic, deadline_at)
        return _core.partition_count(self._cache, topic)

    def _ensure_metadata(self, topic: str, deadline_at: float | None) -> None:
        """Fetches the topic's metadata if it is due (see MetadataCache). Raises UnknownTopicError
        if the topic does not exist, and the fetch's error if no server answered."""
        if not self._cache.due(topic):
            return
        try:
            infos, leader = self._get_metadata([topic], deadline_at)
        except ProglogError as err:
            _core.metadata_failed(self._cache, topic, err)
            return
        _core.metadata_fetched(self._cache, topic, infos, leader)

    def _get_metadata(self, topics: list[str], deadline_at: float | None) -> tuple[list[TopicInfo], str | None]:
        """GetMetadata of the named topics (every topic when none is named). A server's copy of the
        metadata may lag the metadata leader's (it does not know a topic just created yet): an
        unknown topic is asked again once, ``metadata_refresh`` seconds later, before it is
        believed."""
        try:
            return self._ask_metadata(topics, deadline_at)
        except UnknownTopicError:
            left = _core.remaining(deadline_at)
            if not topics or (left is not None and left <= self._settings.metadata_refresh):
                raise
        time.sleep(self._settings.metadata_refresh)
        return self._ask_metadata(topics, deadline_at)

    def _ask_metadata(self, topics: list[str], deadline_at: float | None) -> tuple[list[TopicInfo], str | None]:
        request = log_pb2.GetMetadataRequest(topics=topics)

        def call(stub: _Stub, t: float | None, md: Metadata) -> tuple[list[TopicInfo], str | None]:
            resp = stub.get_metadata(request, timeout=t, metadata=md)
            leader = next((s.rpc_addr for s in resp.servers if s.is_leader), None)
            return [TopicInfo._from_proto(t) for t in resp.topics], leader

        left = _core.remaining(deadline_at)
        return self._call("servers", max(left, 0.001) if left is not None else None, call)

    def topics(self, *, timeout: float | None | Literal["default"] = "default") -> list[TopicInfo]:
        """Describes every topic the client may describe, by name."""
        return self._get_metadata([], _core.deadline(self._settings.timeout if timeout == "default" else timeout))[0]

    def describe(self, name: str, *, timeout: float | None | Literal["default"] = "default") -> TopicInfo:
        """Describes one topic; raises UnknownTopicError if it does not exist."""
        infos = self._get_metadata([name], _core.deadline(self._settings.timeout if timeout == "default" else timeout))[0]
        info = next((i for i in infos if i.name == name), None)
        if info is None:
            raise UnknownTopicError(f'topic "{name}" does not exist', grpc.StatusCode.NOT_FOUND, name)
        return info

    def create_topic(
        self,
        name: str,
        *,
        partitions: int = 0,
        replication_factor: int = 0,
        retention_bytes: int = 0,
        retention_age: float = 0.0,
        timeout: float | None | Literal["default"] = "default",
    ) -> TopicInfo:
        """Creates a topic (zero settings take the servers' defaults, see TopicConfig) and returns
        it as created (its leaders may not be elected yet). Goes to the metadata leader, following
        NOT_LEADER answers. Raises TopicExistsError, InvalidTopicError, NotEnoughNodesError."""
        config = TopicConfig(partitions, replication_factor, retention_bytes, retention_age)._to_proto()
        request = log_pb2.CreateTopicRequest(name=name, config=config)
        try:
            info: TopicInfo = self._call(
                "admin", timeout, lambda stub, t, md: TopicInfo._from_proto(stub.create_topic(request, timeout=t, metadata=md).topic)
            )
        except TopicExistsError:
            raise  # what the client knows of the topic, if anything, still holds
        except BaseException:
            self._cache.forget(name)
            raise
        self._cache.created(info)
        return info

    def delete_topic(self, name: str, *, timeout: float | None | Literal["default"] = "default") -> None:
        """Deletes a topic and its records. Goes to the metadata leader, following NOT_LEADER
        answers. Raises UnknownTopicError if it does not exist; the topic "log" cannot be deleted
        (InvalidArgumentError)."""
        request = log_pb2.DeleteTopicRequest(name=name)
        try:
            self._call("admin", timeout, lambda stub, t, md: stub.delete_topic(request, timeout=t, metadata=md))
        finally:
            self._cache.forget(name)

    # -- consumer groups ------------------------------------------------------------------------

    def consumer(
        self,
        group: str,
        topics: Iterable[str],
        *,
        session_timeout: float = _group.DEFAULT_SESSION_TIMEOUT,
        auto_commit_interval: float | None = _group.DEFAULT_AUTO_COMMIT_INTERVAL,
        start: _group.Start = "earliest",
        client_id: str | None = None,
        max_buffered: int = _group.DEFAULT_MAX_BUFFERED,
    ) -> Consumer:
        """Joins ``group`` as a new member subscribed to ``topics`` and returns its
        :class:`~proglog.Consumer`, which reads the partitions the cluster assigns it from the
        group's committed offsets. See :class:`~proglog.Consumer` for the arguments. Raises
        UnknownTopicError, PermissionDeniedError, TooManyMembersError or InvalidGroupError if
        the cluster refuses the member; ValueError or TypeError for arguments out of range."""
        opts = _group.Options.checked(group, topics, session_timeout, auto_commit_interval, start, client_id, max_buffered)
        return Consumer(self, opts)

    def list_groups(self, *, timeout: float | None | Literal["default"] = "default") -> list[GroupSummary]:
        """Lists the consumer groups (those with members or committed offsets) the client may
        see (the "group" action), by name. Any server answers."""

        def call(stub: _Stub, t: float | None, md: Metadata) -> list[GroupSummary]:
            resp = stub.list_groups(log_pb2.ListGroupsRequest(), timeout=t, metadata=md)
            return [GroupSummary._from_proto(g) for g in resp.groups]

        return self._call("servers", timeout, call)

    def describe_group(self, group: str, *, timeout: float | None | Literal["default"] = "default") -> GroupDescription:
        """Describes a consumer group: generation, members with their subscriptions and owned
        partitions, committed offsets. Raises UnknownGroupError for a group the cluster does not
        know. Any server answers, from its copy of the metadata (which may lag a moment)."""
        request = log_pb2.DescribeGroupRequest(group=_group.check_group(group))
        return self._call(
            "servers", timeout, lambda stub, t, md: GroupDescription._from_proto(stub.describe_group(request, timeout=t, metadata=md))
        )

    def fetch_offsets(
        self,
        group: str,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        timeout: float | None | Literal["default"] = "default",
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets (the offset of the next record the group has to process)
        by (topic, partition): of ``partitions`` ((topic, partition) pairs), or of every partition
        the group committed. A partition the group committed nothing for is absent. Any server
        answers, from its copy of the metadata."""
        request = log_pb2.FetchOffsetsRequest(group=_group.check_group(group), partitions=_group.check_partitions(partitions))
        return self._call("servers", timeout, lambda stub, t, md: _offsets(stub.fetch_offsets(request, timeout=t, metadata=md).offsets))

    def create_acls(self, rules: Iterable[ACLRule], *, timeout: float | None | Literal["default"] = "default") -> None:
        """Adds ``rules`` to the access rules kept in the cluster's metadata, all or none; every
        server enforces them once its copy of the metadata has them (a call is allowed when the
        policy file or these rules allow it). Goes to the metadata leader, following NOT_LEADER
        answers; needs the "acl" action on "*". Raises InvalidACLError for a rule the servers
        refuse."""
        request = log_pb2.CreateACLsRequest(rules=[r._to_proto() for r in rules])
        self._call("admin", timeout, lambda stub, t, md: stub.create_acls(request, timeout=t, metadata=md))

    def delete_acls(self, rules: Iterable[ACLRule], *, timeout: float | None | Literal["default"] = "default") -> None:
        """Removes ``rules`` from those kept in the cluster's metadata (see create_acls); rules that
        do not exist are ignored."""
        request = log_pb2.DeleteACLsRequest(rules=[r._to_proto() for r in rules])
        self._call("admin", timeout, lambda stub, t, md: stub.delete_acls(request, timeout=t, metadata=md))

    def list_acls(self, *, timeout: float | None | Literal["default"] = "default") -> list[ACLRule]:
        """Lists the rules kept in the cluster's metadata, then the policy file's (marked
        ``from_policy_file``), as the server asked has them (its copy may lag the metadata leader's
        for a moment); needs the "describe" action on "*"."""
        request = log_pb2.ListACLsRequest()
        return self._call(
            "servers", timeout, lambda stub, t, md: [ACLRule._from_proto(r) for r in stub.list_acls(request, timeout=t, metadata=md).rules]
        )

    def flush(self) -> None:
        """Sends the queued records (of every partition) without waiting for ``linger`` and waits
        until every record queued before the call is acknowledged or failed."""
        pending: list[Future[int]] = []
        with self._queued:
            for lane in self._lanes.values():
                pending += [i.future for i in lane.queue.items] + lane.in_flight
                lane.queue.flush_to = lane.queue.seq
            self._queued.notify_all()
        wait(pending)

    def produce_batch(
        self,
        values: Iterable[Value],
        *,
        timeout: float | None | Literal["default"] = "default",
        topic: str | None = None,
        partition: int | None = None,
    ) -> range:
        """Appends records atomically at consecutive offsets, and returns those offsets.

        They go to partition 0 of the topic "log" without ``topic`` and ``partition``, else to
        ``partition`` of ``topic`` (default "log"), or without a partition to the topic's sticky
        partition.

        Either every record is written or none is. Retried after an ambiguous failure, the batch is
        written once (with ``idempotent=False`` it may be written twice as a whole; see
        ``produce_retries``). Idempotent produces may also raise OutOfOrderSequenceError (the
        cluster refused the request's sequence; nothing written) and UnknownProducerError (the
        cluster forgot the producer while the request was retried: it may or may not have been
        written).
        """
        records = [r._to_proto() for r in _as_records(values)]
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        part = self._target(topic, partition, b"", deadline_at)
        request = log_pb2.ProduceBatchRequest(records=records, topic=part[0], partition=part[1])
        with self._producers_for(part).request(len(request.records)) as req:

            def call(stub: _Stub, t: float | None, md: Metadata) -> range:
                if req is not None:
                    request.producer.CopyFrom(req.field())
                resp = stub.produce_batch(request, timeout=t, metadata=md)
                _producer.answered(resp.duplicate, req)
                return range(resp.first_offset, resp.first_offset + resp.count)

            left = _core.remaining(deadline_at)
            written = self._call("produce", max(left, 0.001) if left is not None else None, call, req, part)
        self._sticky.sent(part, self._cache.partitions(part[0]))
        return written

    def consume(
        self, offset: int, *, timeout: float | None | Literal["default"] = "default", topic: str | None = None, partition: int = 0
    ) -> Record:
        """Reads the record at ``offset`` of ``partition`` of ``topic`` (default "log"); raises
        OffsetOutOfRangeError (with the log's bounds) if there is none."""
        part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        request = log_pb2.ConsumeRequest(
            offset=_check_offset(offset), consistency=_CONSISTENCY[self._settings.consistency], topic=part[0], partition=part[1]
        )
        return self._call(
            "read", timeout, lambda stub, t, md: Record._from_proto(stub.consume(request, timeout=t, metadata=md).record), None, part
        )

    def servers(self, *, timeout: float | None | Literal["default"] = "default") -> list[Server]:
        """Lists the cluster's servers, the leader marked."""
        request = log_pb2.GetServersRequest()
        return self._call(
            "servers", timeout, lambda stub, t, md: [Server._from_proto(s) for s in stub.get_servers(request, timeout=t, metadata=md).servers]
        )

    def bounds(
        self, *, timeout: float | None | Literal["default"] = "default", topic: str | None = None, partition: int = 0
    ) -> Bounds:
        """Asks the partition's leader for its bounds (GetBounds, linearizable): ``next`` covers
        every record whose produce was acknowledged before the call."""
        part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        request = log_pb2.GetBoundsRequest(consistency=log_pb2.CONSISTENCY_LINEARIZABLE, topic=part[0], partition=part[1])

        def call(stub: _Stub, t: float | None, md: Metadata) -> Bounds:
            resp = stub.get_bounds(request, timeout=t, metadata=md)
            return Bounds(lowest=resp.lowest, next=resp.next)

        return self._call("bounds", timeout, call, None, part)

    def stream(self, offset: int = 0, *, follow: bool = True, topic: str | None = None, partition: int = 0) -> Iterator[Record]:
        """Yields the records of ``partition`` of ``topic`` (default "log") from ``offset`` on, in
        order.

        With ``follow`` (the default) it then waits for new records for ever: stop by breaking out
        of the loop (or closing the generator). With ``follow=False`` it stops at the end of the log
        as it was when the stream started. If the server goes away the stream resumes on another
        one after the last record yielded, so nothing is skipped or repeated: a following stream
        retries until it is closed, one with ``follow=False`` until ``timeout`` passes without a
        record (with the default ``retries=None``).
        """
        _check_offset(offset)
        part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        yield from self._stream(offset, follow, part, None)

    def _stream(self, offset: int, follow: bool, part: PartKey, halt: Halt | None) -> Iterator[Record]:
        """stream(); ``halt`` (a following stream's) ends it, from another thread."""
        end: int | None = None
        if not follow:
            end = self.bounds(topic=part[0], partition=part[1]).next
            if offset >= end:
                return
        timeout = None if follow else self._settings.timeout
        deadline_at = _core.deadline(timeout)
        attempts = Attempts(self._settings, self._router, "stream", part, self._cache)
        request = log_pb2.ConsumeRequest(offset=offset, topic=part[0], partition=part[1])
        while True:
            role: str | None = None
            addr = ""
            call = None
            try:
                addr, role, stub = self._pick(attempts, deadline_at)
                call = stub.consume_stream(request, metadata=_core.call_metadata())
                if halt is not None:
                    halt.attach(call)
                for resp in call:
                    record = Record._from_proto(resp.record)
                    attempts.progress()
                    deadline_at = _core.deadline(timeout)
                    request = log_pb2.ConsumeRequest(offset=record.offset + 1, topic=part[0], partition=part[1])
                    yield record
                    if end is not None and record.offset + 1 >= end:
                        return
                raise UnavailableError("the stream ended", grpc.StatusCode.UNAVAILABLE)
            except grpc.RpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except ValueError:
                self._raise_if_closed()
                raise
            except ProglogError as perr:
                err = perr
            finally:
                if call is not None:
                    call.cancel()
            if halt is not None and halt.halted.is_set():
                return
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            if halt is not None:
                halt.halted.wait(delay)
            else:
                time.sleep(delay)

    # -- internals ------------------------------------------------------------------------------

    def _send_loop(self, part: PartKey) -> None:
        while True:
            with self._queued:
                lane = self._lanes[part]
                while not self._closed and (lane.in_flight or not lane.queue.items or lane.queue.linger_left() > 0):
                    self._queued.wait(lane.queue.linger_left() or None)
                if self._closed:
                    return
                batch = lane.queue.take()
                lane.in_flight = [i.future for i in batch]
            self._send(batch, part)
            with self._queued:
                lane.in_flight = []
                self._queued.notify_all()

    def _send(self, batch: list[_batch.Item[Future[int]]], part: PartKey) -> None:
        now = time.monotonic()
        expired = [i for i in batch if i.deadline_at is not None and i.deadline_at <= now]
        batch = [i for i in batch if i.deadline_at is None or i.deadline_at > now]
        for item in expired:
            item.future.set_exception(DeadlineExceededError("timed out waiting to be sent", grpc.StatusCode.DEADLINE_EXCEEDED))
        if not batch:
            return
        timeout = _batch.batch_timeout(batch, now)
        metadata = batch[0].metadata
        try:
            self._sticky.sent(part, self._cache.partitions(part[0]))
            with self._producers_for(part).request(len(batch)) as req:
                if len(batch) == 1:
                    single = log_pb2.ProduceRequest(record=batch[0].record, topic=part[0], partition=part[1])

                    def call(stub: _Stub, t: float | None, _: Metadata) -> int:
                        if req is not None:
                            single.producer.CopyFrom(req.field())
                        resp = stub.produce(single, timeout=t, metadata=metadata)
                        _producer.answered(resp.duplicate, req)
                        return resp.offset

                else:
                    request = log_pb2.ProduceBatchRequest(records=[i.record for i in batch], topic=part[0], partition=part[1])

                    def call(stub: _Stub, t: float | None, _: Metadata) -> int:
                        if req is not None:
                            request.producer.CopyFrom(req.field())
                        resp = stub.produce_batch(request, timeout=t, metadata=metadata)
                        _producer.answered(resp.duplicate, req)
                        return resp.first_offset

                first = self._call("produce", timeout, call, req, part)
        except BaseException as err:  # every caller gets the failure, and the sender goes on
            for item in batch:
                item.future.set_exception(err)
            return
        for n, item in enumerate(batch):
            item.future.set_result(first + n)

    def _raise_if_closed(self) -> None:
        """Raises ClientClosedError if the client is closed: grpc raises ValueError ("Cannot invoke
        RPC: Channel closed!") for a call started on a channel close() closed after the call got
        its stub."""
        if self._closed:
            raise ClientClosedError("the client is closed") from None

    def _error(self, err: grpc.RpcError, addr: str) -> ProglogError:
        if self._closed:
            return ClientClosedError("the client is closed")
        return _core.handshake_error(from_rpc_error(err), addr, self._has_cert)

    def _stub(self, addr: str) -> _Stub:
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed")
            if addr not in self._channels:
                channel = grpc.secure_channel(addr, self._credentials, self._options)
                self._channels[addr] = (channel, _Stub(channel))
            return self._channels[addr][1]

    def _discover(self, deadline_at: float | None, prefer: str | None = None) -> None:
        """Refreshes the router from the first server that answers GetServers."""
        with self._discovery:
            if prefer is None and not self._router.needs_refresh():
                return  # another thread just did
            errors: list[str] = []
            tls: TLSError | None = None
            for addr in self._router.candidates(prefer):
                try:
                    resp = self._stub(addr).get_servers(
                        log_pb2.GetServersRequest(), timeout=_core.discovery_timeout(deadline_at), metadata=_core.call_metadata()
                    )
                except ValueError:
                    self._raise_if_closed()
                    raise
                except grpc.RpcError as rpc_err:
                    err = self._error(rpc_err, addr)
                    if isinstance(err, ClientClosedError):
                        raise err from None
                    if _core.discovery_refused(err):
                        self._router.set_static()
                        return
                    tls = tls or (err if isinstance(err, TLSError) else None)
                    errors.append(f"{addr}: {err}")
                    continue
                servers = [Server._from_proto(s) for s in resp.servers]
                if servers:
                    self._router.update(servers)
                    return
                errors.append(f"{addr}: listed no servers")
            if tls is not None:  # no server answered, and TLS is why for some: say so
                raise tls
            raise UnavailableError("no server answered: " + "; ".join(errors), grpc.StatusCode.UNAVAILABLE)

    def _pick(self, attempts: Attempts, deadline_at: float | None) -> tuple[str, str, _Stub]:
        if self._router.needs_refresh():
            self._discover(deadline_at)
        if attempts.key is not None:
            try:
                self._ensure_metadata(attempts.key[0], deadline_at)
            except UnknownTopicError:
                raise
            except ProglogError as err:  # no metadata now: route by the servers' roles
                _core.log.debug("metadata of %s: %s", attempts.key[0], err)
        picked = self._router.pick(attempts.route, attempts.part())
        if picked is None:
            raise _core.no_server(attempts.route)
        addr, role = picked
        return addr, role, self._stub(addr)

    def _call(
        self,
        op: Op,
        timeout: float | None | Literal["default"],
        fn: Callable[[_Stub, float | None, Metadata], _T],
        req: _producer.Request | None = None,
        part: PartKey | None = None,
    ) -> _T:
        """Calls fn until it succeeds or a failure is final (see Attempts); ``req`` is the
        idempotence of a produce (see _producer.Request.after), ``part`` the partition the call
        is for (routed by its metadata)."""
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        attempts = Attempts(self._settings, self._router, op, part, self._cache)
        metadata = _core.call_metadata()
        while True:
            role: str | None = None
            addr = ""
            sent = False
            try:
                addr, role, stub = self._pick(attempts, deadline_at)
                left = _core.remaining(deadline_at)
                if left is not None and left <= 0:
                    raise DeadlineExceededError("timed out", grpc.StatusCode.DEADLINE_EXCEEDED)
                sent = True
                result = fn(stub, left, metadata)
                if op == "admin":
                    self._cache.meta_leader = addr  # only the metadata leader carries one out
                return result
            except grpc.RpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except ValueError:
                self._raise_if_closed()
                raise
            except (UnavailableError, UnknownTopicError) as unsent:  # discovery or metadata failed, or no leader yet
                err, role = unsent, None
            if req is not None:
                again = req.after(err, sent)
                if again is None:
                    continue
                err = again
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            time.sleep(delay)

