"""The asyncio client, on grpc.aio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Literal, TypeVar

import grpc
import grpc.aio

from proglog import _batch, _core, _group, _producer
from proglog._core import PEM, Attempts, Consistency, Metadata, MetadataCache, Op, PartKey, Router, Settings
from proglog._proto.log.v1 import log_pb2
from proglog.aio_consumer import AsyncConsumer
from proglog.errors import (
    ClientClosedError,
    DeadlineExceededError,
    ProglogError,
    TLSError,
    TopicExistsError,
    UnavailableError,
    UnknownTopicError,
    from_status,
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

__all__ = ["AsyncClient"]

_T = TypeVar("_T")
_SERVICE = "/log.v1.Log/"
_CONSISTENCY = {"follower": log_pb2.CONSISTENCY_FOLLOWER, "linearizable": log_pb2.CONSISTENCY_LINEARIZABLE}


class _Stub:
    """Typed method handles of log.v1.Log on one aio channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
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
    """One partition's queued records and its sender task."""

    def __init__(self, limits: _batch.Limits) -> None:
        self.queue: _batch.Queue[asyncio.Future[int]] = _batch.Queue(limits)
        self.in_flight: list[asyncio.Future[int]] = []
        self.sender: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()


class AsyncClient:
    """The asyncio twin of :class:`proglog.Client`: the same arguments, routing, retries and errors,
    with coroutine methods and an async iterator for streams::

        async with AsyncClient("localhost:8400", ca=..., cert=..., key=...) as client:
            offset = await client.produce(b"hello")
            async for record in client.stream(offset):
                ...

    Concurrent produces (tasks) are coalesced as in Client, per partition; :meth:`produce_async` returns an
    asyncio Future. Use it from one event loop. :meth:`close` makes the calls in progress raise ClientClosedError
    (a task cancelled by its caller still raises CancelledError).
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
        self._lanes: dict[PartKey, _Lane] = {}
        # Records whose partition waits for their topic's metadata, in call order, by topic; and
        # the task placing them.
        self._unplaced: dict[str, list[tuple[_Unplaced, asyncio.Future[int]]]] = {}
        self._placers: dict[str, asyncio.Task[None]] = {}
        self._sticky = _core.Sticky()
        self._router = Router(_core.parse_target(target), discovery_interval)
        self._cache = MetadataCache(metadata_refresh, discovery_interval, metadata_max_age)
        self._metadata: asyncio.Lock | None = None
        self._credentials = _core.credentials(ca, cert, key)
        self._has_cert = cert is not None
        self._options = _core.channel_options(server_name)
        self._channels: dict[str, tuple[grpc.aio.Channel, _Stub]] = {}
        self._discovery: asyncio.Lock | None = None
        self._closed = False

    async def close(self) -> None:
        """Closes every connection. Calls in progress, records not yet acknowledged and later calls
        raise ClientClosedError."""
        self._closed = True
        for waiting in self._unplaced.values():
            for _, future in waiting:
                if not future.done():
                    future.set_exception(ClientClosedError("the client is closed"))
        self._unplaced.clear()
        senders: list[asyncio.Task[None]] = []
        for lane in self._lanes.values():
            for item in lane.queue.items:
                if not item.future.done():
                    item.future.set_exception(ClientClosedError("the client is closed"))
            lane.queue.items.clear()
            lane.wake.set()
            if lane.sender is not None:
                senders.append(lane.sender)
            lane.sender = None
        channels, self._channels = list(self._channels.values()), {}
        for channel, _ in channels:
            await channel.close()
        for sender in senders:
            await sender

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def produce(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
        topic: str | None = None,
        partition: int | None = None,
    ) -> int:
        """Appends one record and returns its offset (see Client.produce, also for ``topic`` and
        ``partition``); records produced by concurrent tasks are sent together."""
        return await self.produce_async(value, key=key, headers=headers, timeout=timeout, topic=topic, partition=partition)

    async def send(
        self,
        value: Value,
        *,
        topic: str | None = None,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timeout: float | None | Literal["default"] = "default",
    ) -> Position:
        """Like :meth:`produce` with a topic (default "log"), returning the record's partition and
        offset (see Client.send)."""
        name = topic or DEFAULT_TOPIC
        if partition is None:
            rec = _as_record(value, key, headers)
            await self._ensure_metadata(name, _core.deadline(self._settings.timeout if timeout == "default" else timeout))
            partition, value, key, headers = self._place(name, rec.key)[1], rec, None, None
        offset = await self.produce_async(value, key=key, headers=headers, timeout=timeout, topic=name, partition=partition)
        return Position(partition, offset)

    def produce_async(
        self,
        value: Value,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout: float | None | Literal["default"] = "default",
        topic: str | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[int]:
        """Queues one record and returns a Future of its offset, without waiting (see
        Client.produce_async). Call it from the client's event loop. Cancelling the Future
        before its record is sent drops the record; after, the record may be written. A record
        whose partition depends on its topic's metadata not fetched yet waits for it (in order
        with the topic's other such records)."""
        rec = _as_record(value, key, headers)
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        if partition is not None:
            _check_partition(partition)
        if self._closed:
            raise ClientClosedError("the client is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        item = _Unplaced(rec.key, rec._to_proto(), deadline_at, _core.call_metadata())
        if topic is None and partition is None:
            self._push((DEFAULT_TOPIC, 0), item, future)
            return future
        name = topic or DEFAULT_TOPIC
        if partition is not None:
            self._push((name, partition), item, future)
            return future
        if name not in self._unplaced and not self._cache.due(name):
            self._push(self._place(name, item.key), item, future)
            return future
        self._unplaced.setdefault(name, []).append((item, future))
        if name not in self._placers:
            self._placers[name] = asyncio.create_task(self._place_later(name))
        return future

    def _place(self, topic: str, key: bytes) -> PartKey:
        n = _core.partition_count(self._cache, topic)
        return topic, key_partition(key, n) if key else self._sticky.get(topic, n)

    async def _place_later(self, topic: str) -> None:
        """Fetches the topic's metadata and queues its records waiting for it, in order."""
        try:
            err: BaseException | None = None
            try:
                await self._ensure_metadata(topic, None)
                _core.partition_count(self._cache, topic)
            except (ProglogError, asyncio.CancelledError) as e:
                err = e
            for item, future in self._unplaced.pop(topic, []):
                if future.done():
                    continue
                if err is not None:
                    future.set_exception(err)
                else:
                    self._push(self._place(topic, item.key), item, future)
        finally:
            self._placers.pop(topic, None)

    def _push(self, part: PartKey, item: _Unplaced, future: asyncio.Future[int]) -> None:
        """Queues a record for its partition's sender."""
        lane = self._lanes.get(part)
        if lane is None:
            lane = self._lanes[part] = _Lane(self._limits)
        lane.queue.push(item.record, future, item.deadline_at, item.metadata)
        if lane.sender is None:
            lane.sender = asyncio.create_task(self._send_loop(part, lane))
        lane.wake.set()

    def _producers_for(self, part: PartKey) -> _producer.Producers:
        pool = self._producers.get(part)
        if pool is None:
            pool = self._producers[part] = _producer.Producers(self._idempotent)
        return pool

    async def flush(self) -> None:
        """Sends the queued records (of every partition) without waiting for ``linger`` and waits
        until every record queued before the call is acknowledged or failed."""
        pending = [f for waiting in self._unplaced.values() for _, f in waiting]
        if pending:
            await asyncio.wait(pending)  # placed, or failed
        for lane in self._lanes.values():
            pending += [i.future for i in lane.queue.items] + lane.in_flight
            lane.queue.flush_to = lane.queue.seq
            lane.wake.set()
        if pending:
            await asyncio.wait(pending)

    async def partition_for(self, topic: str, key: bytes | str, *, timeout: float | None | Literal["default"] = "default") -> int:
        """The partition of ``topic`` that a record with ``key`` goes to (see Client.partition_for)."""
        key = key.encode() if isinstance(key, str) else key
        if not key:
            raise ValueError("partition_for needs a non-empty key (a keyless record goes to the sticky partition)")
        await self._ensure_metadata(topic, _core.deadline(self._settings.timeout if timeout == "default" else timeout))
        return key_partition(key, _core.partition_count(self._cache, topic))

    async def _ensure_metadata(self, topic: str, deadline_at: float | None) -> None:
        """Fetches the topic's metadata if it is due (see Client._ensure_metadata)."""
        if self._metadata is None:
            self._metadata = asyncio.Lock()
        async with self._metadata:
            if not self._cache.due(topic):
                return
            try:
                infos, leader = await self._get_metadata([topic], deadline_at)
            except ProglogError as err:
                _core.metadata_failed(self._cache, topic, err)
                return
            _core.metadata_fetched(self._cache, topic, infos, leader)

    async def _get_metadata(self, topics: list[str], deadline_at: float | None) -> tuple[list[TopicInfo], str | None]:
        """GetMetadata; an unknown topic is asked again once (see Client._get_metadata)."""
        try:
            return await self._ask_metadata(topics, deadline_at)
        except UnknownTopicError:
            left = _core.remaining(deadline_at)
            if not topics or (left is not None and left <= self._settings.metadata_refresh):
                raise
        await asyncio.sleep(self._settings.metadata_refresh)
        return await self._ask_metadata(topics, deadline_at)

    async def _ask_metadata(self, topics: list[str], deadline_at: float | None) -> tuple[list[TopicInfo], str | None]:
        request = log_pb2.GetMetadataRequest(topics=topics)

        async def call(stub: _Stub, t: float | None, md: Metadata) -> tuple[list[TopicInfo], str | None]:
            resp = await stub.get_metadata(request, timeout=t, metadata=md)
            leader = next((s.rpc_addr for s in resp.servers if s.is_leader), None)
            return [TopicInfo._from_proto(t) for t in resp.topics], leader

        left = _core.remaining(deadline_at)
        return await self._call("servers", max(left, 0.001) if left is not None else None, call)

    async def topics(self, *, timeout: float | None | Literal["default"] = "default") -> list[TopicInfo]:
        """Describes every topic the client may describe, by name."""
        return (await self._get_metadata([], _core.deadline(self._settings.timeout if timeout == "default" else timeout)))[0]

    async def describe(self, name: str, *, timeout: float | None | Literal["default"] = "default") -> TopicInfo:
        """Describes one topic; raises UnknownTopicError if it does not exist."""
        infos = (await self._get_metadata([name], _core.deadline(self._settings.timeout if timeout == "default" else timeout)))[0]
        info = next((i for i in infos if i.name == name), None)
        if info is None:
            raise UnknownTopicError(f'topic "{name}" does not exist', grpc.StatusCode.NOT_FOUND, name)
        return info

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int = 0,
        replication_factor: int = 0,
        retention_bytes: int = 0,
        retention_age: float = 0.0,
        timeout: float | None | Literal["default"] = "default",
    ) -> TopicInfo:
        """Creates a topic (see Client.create_topic)."""
        config = TopicConfig(partitions, replication_factor, retention_bytes, retention_age)._to_proto()
        request = log_pb2.CreateTopicRequest(name=name, config=config)

        async def call(stub: _Stub, t: float | None, md: Metadata) -> TopicInfo:
            return TopicInfo._from_proto((await stub.create_topic(request, timeout=t, metadata=md)).topic)

        try:
            info = await self._call("admin", timeout, call)
        except TopicExistsError:
            raise  # what the client knows of the topic, if anything, still holds
        except BaseException:
            self._cache.forget(name)
            raise
        self._cache.created(info)
        return info

    async def delete_topic(self, name: str, *, timeout: float | None | Literal["default"] = "default") -> None:
        """Deletes a topic (see Client.delete_topic)."""
        request = log_pb2.DeleteTopicRequest(name=name)

        async def call(stub: _Stub, t: float | None, md: Metadata) -> None:
            await stub.delete_topic(request, timeout=t, metadata=md)

        try:
            await self._call("admin", timeout, call)
        finally:
            self._cache.forget(name)

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
    ) -> AsyncConsumer:
        """A member of ``group`` subscribed to ``topics`` (see Client.consumer and
        :class:`~proglog.AsyncConsumer`); it joins on first use (``async with``, ``start()``,
        the first poll). Arguments are checked at once."""
        opts = _group.Options.checked(group, topics, session_timeout, auto_commit_interval, start, client_id, max_buffered)
        return AsyncConsumer(self, opts)

    async def list_groups(self, *, timeout: float | None | Literal["default"] = "default") -> list[GroupSummary]:
        """Lists the consumer groups (see Client.list_groups)."""

        async def call(stub: _Stub, t: float | None, md: Metadata) -> list[GroupSummary]:
            resp = await stub.list_groups(log_pb2.ListGroupsRequest(), timeout=t, metadata=md)
            return [GroupSummary._from_proto(g) for g in resp.groups]

        return await self._call("servers", timeout, call)

    async def describe_group(self, group: str, *, timeout: float | None | Literal["default"] = "default") -> GroupDescription:
        """Describes a consumer group (see Client.describe_group)."""
        request = log_pb2.DescribeGroupRequest(group=_group.check_group(group))

        async def call(stub: _Stub, t: float | None, md: Metadata) -> GroupDescription:
            return GroupDescription._from_proto(await stub.describe_group(request, timeout=t, metadata=md))

        return await self._call("servers", timeout, call)

    async def fetch_offsets(
        self,
        group: str,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        timeout: float | None | Literal["default"] = "default",
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets (see Client.fetch_offsets)."""
        request = log_pb2.FetchOffsetsRequest(group=_group.check_group(group), partitions=_group.check_partitions(partitions))

        async def call(stub: _Stub, t: float | None, md: Metadata) -> dict[TopicPartition, int]:
            return _offsets((await stub.fetch_offsets(request, timeout=t, metadata=md)).offsets)

        return await self._call("servers", timeout, call)

    async def create_acls(self, rules: Iterable[ACLRule], *, timeout: float | None | Literal["default"] = "default") -> None:
        """Adds ACL rules (see Client.create_acls)."""
        request = log_pb2.CreateACLsRequest(rules=[r._to_proto() for r in rules])

        async def call(stub: _Stub, t: float | None, md: Metadata) -> None:
            await stub.create_acls(request, timeout=t, metadata=md)

        await self._call("admin", timeout, call)

    async def delete_acls(self, rules: Iterable[ACLRule], *, timeout: float | None | Literal["default"] = "default") -> None:
        """Removes ACL rules (see Client.delete_acls)."""
        request = log_pb2.DeleteACLsRequest(rules=[r._to_proto() for r in rules])

        async def call(stub: _Stub, t: float | None, md: Metadata) -> None:
            await stub.delete_acls(request, timeout=t, metadata=md)

        await self._call("admin", timeout, call)

    async def list_acls(self, *, timeout: float | None | Literal["default"] = "default") -> list[ACLRule]:
        """Lists the ACL rules (see Client.list_acls)."""
        request = log_pb2.ListACLsRequest()

        async def call(stub: _Stub, t: float | None, md: Metadata) -> list[ACLRule]:
            return [ACLRule._from_proto(r) for r in (await stub.list_acls(request, timeout=t, metadata=md)).rules]

        return await self._call("servers", timeout, call)

    async def produce_batch(
        self,
        values: Iterable[Value],
        *,
        timeout: float | None | Literal["default"] = "default",
        topic: str | None = None,
        partition: int | None = None,
    ) -> range:
        """Appends records atomically and returns their offsets (see Client.produce_batch)."""
        records = [r._to_proto() for r in _as_records(values)]
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        if topic is None and partition is None:
            part: PartKey = (DEFAULT_TOPIC, 0)
        elif partition is not None:
            part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        else:
            await self._ensure_metadata(topic or DEFAULT_TOPIC, deadline_at)
            part = self._place(topic or DEFAULT_TOPIC, b"")
        request = log_pb2.ProduceBatchRequest(records=records, topic=part[0], partition=part[1])
        with self._producers_for(part).request(len(request.records)) as req:

            async def call(stub: _Stub, t: float | None, md: Metadata) -> range:
                if req is not None:
                    request.producer.CopyFrom(req.field())
                resp = await stub.produce_batch(request, timeout=t, metadata=md)
                _producer.answered(resp.duplicate, req)
                return range(resp.first_offset, resp.first_offset + resp.count)

            left = _core.remaining(deadline_at)
            written = await self._call("produce", max(left, 0.001) if left is not None else None, call, req, part)
        self._sticky.sent(part, self._cache.partitions(part[0]))
        return written

    async def consume(
        self, offset: int, *, timeout: float | None | Literal["default"] = "default", topic: str | None = None, partition: int = 0
    ) -> Record:
        """Reads the record at ``offset`` (see Client.consume)."""
        part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        request = log_pb2.ConsumeRequest(
            offset=_check_offset(offset), consistency=_CONSISTENCY[self._settings.consistency], topic=part[0], partition=part[1]
        )

        async def call(stub: _Stub, t: float | None, md: Metadata) -> Record:
            return Record._from_proto((await stub.consume(request, timeout=t, metadata=md)).record)

        return await self._call("read", timeout, call, None, part)

    async def servers(self, *, timeout: float | None | Literal["default"] = "default") -> list[Server]:
        """Lists the cluster's servers, the leader marked."""

        async def call(stub: _Stub, t: float | None, md: Metadata) -> list[Server]:
            resp = await stub.get_servers(log_pb2.GetServersRequest(), timeout=t, metadata=md)
            return [Server._from_proto(s) for s in resp.servers]

        return await self._call("servers", timeout, call)

    async def bounds(
        self, *, timeout: float | None | Literal["default"] = "default", topic: str | None = None, partition: int = 0
    ) -> Bounds:
        """Asks the partition's leader for its bounds (see Client.bounds)."""
        part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        request = log_pb2.GetBoundsRequest(consistency=log_pb2.CONSISTENCY_LINEARIZABLE, topic=part[0], partition=part[1])

        async def call(stub: _Stub, t: float | None, md: Metadata) -> Bounds:
            resp = await stub.get_bounds(request, timeout=t, metadata=md)
            return Bounds(lowest=resp.lowest, next=resp.next)

        return await self._call("bounds", timeout, call, None, part)

    async def stream(self, offset: int = 0, *, follow: bool = True, topic: str | None = None, partition: int = 0) -> AsyncIterator[Record]:
        """Yields the records of the partition from ``offset`` on (see Client.stream)."""
        _check_offset(offset)
        part = (topic or DEFAULT_TOPIC, _check_partition(partition))
        end: int | None = None
        if not follow:
            end = (await self.bounds(topic=part[0], partition=part[1])).next
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
                addr, role, stub = await self._pick(attempts, deadline_at)
                call = stub.consume_stream(request, metadata=_core.call_metadata())
                async for resp in call:
                    record = Record._from_proto(resp.record)
                    attempts.progress()
                    deadline_at = _core.deadline(timeout)
                    request = log_pb2.ConsumeRequest(offset=record.offset + 1, topic=part[0], partition=part[1])
                    yield record
                    if end is not None and record.offset + 1 >= end:
                        return
                raise UnavailableError("the stream ended", grpc.StatusCode.UNAVAILABLE)
            except grpc.aio.AioRpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except ProglogError as perr:
                err = perr
            except asyncio.CancelledError:
                self._raise_if_closed()
                raise
            finally:
                if call is not None:
                    call.cancel()
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            await asyncio.sleep(delay)

    async def _send_loop(self, part: PartKey, lane: _Lane) -> None:
        while not self._closed:
            lane.queue.drop_done()  # Futures cancelled while queued
            if not lane.queue.items:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            left = lane.queue.linger_left()
            if left > 0:
                lane.wake.clear()
                try:
                    await asyncio.wait_for(lane.wake.wait(), left)
                except asyncio.TimeoutError:
                    pass
                continue
            batch = lane.queue.take()
            lane.in_flight = [i.future for i in batch]
            await self._send(batch, part)
            lane.in_flight = []

    async def _send(self, batch: list[_batch.Item[asyncio.Future[int]]], part: PartKey) -> None:
        now = time.monotonic()
        for item in batch:
            if item.deadline_at is not None and item.deadline_at <= now:
                item.future.set_exception(DeadlineExceededError("timed out waiting to be sent", grpc.StatusCode.DEADLINE_EXCEEDED))
        batch = [i for i in batch if not i.future.done()]
        if not batch:
            return
        timeout = _batch.batch_timeout(batch, now)
        metadata = batch[0].metadata
        single = log_pb2.ProduceRequest(record=batch[0].record, topic=part[0], partition=part[1])
        request = log_pb2.ProduceBatchRequest(records=[i.record for i in batch], topic=part[0], partition=part[1]) if len(batch) > 1 else None
        self._sticky.sent(part, self._cache.partitions(part[0]))
        try:
            with self._producers_for(part).request(len(batch)) as req:

                async def call(stub: _Stub, t: float | None, _: Metadata) -> int:
                    if request is None:
                        if req is not None:
                            single.producer.CopyFrom(req.field())
                        resp = await stub.produce(single, timeout=t, metadata=metadata)
                        _producer.answered(resp.duplicate, req)
                        return resp.offset
                    if req is not None:
                        request.producer.CopyFrom(req.field())
                    batch_resp = await stub.produce_batch(request, timeout=t, metadata=metadata)
                    _producer.answered(batch_resp.duplicate, req)
                    return batch_resp.first_offset

                first = await self._call("produce", timeout, call, req, part)
        except Exception as err:  # every caller gets the failure, and the sender goes on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        for n, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result(first + n)

    def _error(self, err: grpc.aio.AioRpcError, addr: str) -> ProglogError:
        if self._closed:
            return ClientClosedError("the client is closed")
        return _core.handshake_error(from_status(err.code(), err.details() or "", err.trailing_metadata()), addr, self._has_cert)

    def _raise_if_closed(self) -> None:
        """Called on CancelledError: grpc.aio cancels the calls of a closed channel. Raises
        ClientClosedError for those, unless the task itself is being cancelled (then the caller's
        CancelledError goes on)."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if self._closed and not (cancelling is not None and cancelling()):
            raise ClientClosedError("the client is closed") from None

    def _stub(self, addr: str) -> _Stub:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if addr not in self._channels:
            channel = grpc.aio.secure_channel(addr, self._credentials, self._options)
            self._channels[addr] = (channel, _Stub(channel))
        return self._channels[addr][1]

    async def _discover(self, deadline_at: float | None) -> None:
        if self._discovery is None:
            self._discovery = asyncio.Lock()
        async with self._discovery:
            if not self._router.needs_refresh():
                return
            errors: list[str] = []
            tls: TLSError | None = None
            for addr in self._router.candidates():
                try:
                    resp = await self._stub(addr).get_servers(
                        log_pb2.GetServersRequest(), timeout=_core.discovery_timeout(deadline_at), metadata=_core.call_metadata()
                    )
                except grpc.aio.AioRpcError as rpc_err:
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

    async def _pick(self, attempts: Attempts, deadline_at: float | None) -> tuple[str, str, _Stub]:
        if self._router.needs_refresh():
            await self._discover(deadline_at)
        if attempts.key is not None:
            try:
                await self._ensure_metadata(attempts.key[0], deadline_at)
            except UnknownTopicError:
                raise
            except ProglogError as err:  # no metadata now: route by the servers' roles
                _core.log.debug("metadata of %s: %s", attempts.key[0], err)
        picked = self._router.pick(attempts.route, attempts.part())
        if picked is None:
            raise _core.no_server(attempts.route)
        addr, role = picked
        return addr, role, self._stub(addr)

    async def _call(
        self,
        op: Op,
        timeout: float | None | Literal["default"],
        fn: Callable[[_Stub, float | None, Metadata], Awaitable[_T]],
        req: _producer.Request | None = None,
        part: PartKey | None = None,
    ) -> _T:
        """Awaits fn until it succeeds or a failure is final (see Client._call)."""
        deadline_at = _core.deadline(self._settings.timeout if timeout == "default" else timeout)
        attempts = Attempts(self._settings, self._router, op, part, self._cache)
        metadata = _core.call_metadata()
        while True:
            role: str | None = None
            addr = ""
            sent = False
            try:
                addr, role, stub = await self._pick(attempts, deadline_at)
                left = _core.remaining(deadline_at)
                if left is not None and left <= 0:
                    raise DeadlineExceededError("timed out", grpc.StatusCode.DEADLINE_EXCEEDED)
                sent = True
                result = await fn(stub, left, metadata)
                if op == "admin":
                    self._cache.meta_leader = addr  # only the metadata leader carries one out
                return result
            except grpc.aio.AioRpcError as rpc_err:
                err = self._error(rpc_err, addr)
            except (UnavailableError, UnknownTopicError) as unsent:
                err, role = unsent, None
            except asyncio.CancelledError:
                self._raise_if_closed()
                raise
            if req is not None:
                again = req.after(err, sent)
                if again is None:
                    continue
                err = again
            delay = attempts.on_error(err, role)
            left = _core.remaining(deadline_at)
            if delay is None or (left is not None and left <= delay):
                raise err
            await asyncio.sleep(delay)


class _Unplaced:
    """A produced record not yet in a partition's queue."""

    def __init__(self, key: bytes, record: log_pb2.Record, deadline_at: float | None, metadata: Metadata) -> None:
        self.key = key
        self.record = record
        self.deadline_at = deadline_at
        self.metadata = metadata
