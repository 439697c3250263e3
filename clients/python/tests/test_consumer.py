"""Consumer groups: the sync and asyncio consumers on a test double of a cluster with a group
coordinator (in-process gRPC servers sharing one in-memory state), so that a test moves
partitions and expires members when it chooses.

The double follows log.proto's protocol: the member RPCs are answered by the metadata leader only
(the other server answers NOT_LEADER naming it); every change of members starts a generation
whose target gives partition p of each topic to the (p mod n)-th member by id; a partition moving
from A to B stays A's until A heartbeats naming that generation (or A is removed), and a response
lists the partitions the member owns and is assigned; commits are fenced (UNKNOWN_MEMBER,
NOT_OWNER, STALE_GENERATION). Streams follow their partition until cancelled. Tests wait on the
double's condition for what they expect, never on time.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

import proglog
from proglog import AsyncClient, Client, ClientClosedError, ConsumerRecord
from proglog._proto.log.v1 import log_pb2, log_pb2_grpc
from proglog.errors import from_status

from conftest import ServerProcess

HEARTBEAT = 0.02  # the double's heartbeat interval, seconds
WAIT = 20.0  # the longest a test waits for what it expects


def _abort(context: Any, code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str]) -> None:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="proglog", metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    st = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
    context.abort(code, message)


Part = tuple[str, int]


@dataclass
class _Member:
    topics: list[str]
    client_id: str
    acked: int = 0


@dataclass
class GroupCluster:
    """Three servers; server ``meta`` leads the metadata, server 0 holds and leads every
    partition (GetServers marks it the leader)."""

    server: ServerProcess
    lock: threading.Condition = field(default_factory=threading.Condition)
    topics: dict[str, list[list[log_pb2.Record]]] = field(default_factory=dict)
    meta: int = 1
    generation: int = 0
    members: dict[str, _Member] = field(default_factory=dict)
    owner: dict[Part, str] = field(default_factory=dict)
    target: dict[Part, str] = field(default_factory=dict)
    committed: dict[Part, int] = field(default_factory=dict)
    # What happened, in order: ("join", member), ("heartbeat", member, generation),
    # ("commit", member, part, offset), ("refused", member, reason), ("leave", member),
    # ("owner", part, member) when a partition changes hands.
    events: list[tuple[Any, ...]] = field(default_factory=list)
    refuse_commits: list[str] = field(default_factory=list)  # the next commits refused with these reasons
    addrs: list[str] = field(default_factory=list)
    servers: list[grpc.Server] = field(default_factory=list)
    down: set[int] = field(default_factory=set)  # stopped servers, no longer listed
    stall: threading.Event | None = None  # heartbeats wait for it (then answer UNAVAILABLE)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def start(self) -> GroupCluster:
        certs = self.server.certs
        creds = grpc.ssl_server_credentials([((certs / "server-key.pem").read_bytes(), (certs / "server.pem").read_bytes())])
        for i in range(3):
            s = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
            log_pb2_grpc.add_LogServicer_to_server(_Node(self, i), s)
            port = s.add_secure_port("127.0.0.1:0", creds)
            s.start()
            self.servers.append(s)
            self.addrs.append(f"127.0.0.1:{port}")
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.stop(grace=None)

    def create(self, name: str, partitions: int, records: int = 0) -> None:
        with self.lock:
            self.topics[name] = [[] for _ in range(partitions)]
        for p in range(partitions):
            self.append(name, p, records)

    def append(self, topic: str, partition: int, n: int) -> None:
        with self.lock:
            log = self.topics[topic][partition]
            for _ in range(n):
                log.append(log_pb2.Record(value=f"{topic}/{partition}/{len(log)}".encode(), offset=len(log)))
            self.lock.notify_all()

    def wait(self, what: Callable[[], bool], timeout: float = WAIT) -> None:
        with self.lock:
            assert self.lock.wait_for(what, timeout), "the double never reached the state the test waits for"

    def expire(self, member: str) -> None:
        """The member's session timed out."""
        with self.lock:
            self._remove(member)

    def owned(self, member: str) -> set[Part]:
        with self.lock:
            return {p for p, m in self.owner.items() if m == member}

    # -- the coordinator (self.lock held) -------------------------------------------------------

    def _rebalance(self) -> None:
        self.generation += 1
        ids = sorted(self.members)
        self.target = {}
        for name, parts in self.topics.items():
            subs = [m for m in ids if name in self.members[m].topics]
            for p in range(len(parts)):
                if subs:
                    self.target[(name, p)] = subs[p % len(subs)]
        self._hand_over()

    def _hand_over(self) -> None:
        for part, to in self.target.items():
            cur = self.owner.get(part)
            if cur == to:
                continue
            if cur is None or cur not in self.members or self.members[cur].acked >= self.generation:
                self.owner[part] = to
                self.events.append(("owner", part, to))
        for part in [p for p, m in self.owner.items() if m not in self.members or p not in self.target]:
            del self.owner[part]
        self.lock.notify_all()

    def _remove(self, member: str) -> None:
        if self.members.pop(member, None) is not None:
            self._rebalance()

    def _assignment(self, member: str) -> log_pb2.Assignment:
        a = log_pb2.Assignment(member_id=member, generation=self.generation)
        a.heartbeat_interval.FromMilliseconds(int(HEARTBEAT * 1000))
        for part in sorted(p for p, m in self.owner.items() if m == member and self.target.get(p) == member):
            off = self.committed.get(part)
            a.partitions.append(log_pb2.PartitionOffset(topic=part[0], partition=part[1], offset=off or 0, committed=off is not None))
        return a


class _Node(log_pb2_grpc.LogServicer):  # type: ignore[misc]
    def __init__(self, cluster: GroupCluster, index: int) -> None:
        self.c = cluster
        self.i = index

    def _meta(self, context: Any) -> None:
        if self.i != self.c.meta:
            md = {"leader_id": f"s{self.c.meta}", "leader_addr": self.c.addrs[self.c.meta]}
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "not the metadata leader", "NOT_LEADER", md)

    def _member(self, group: str, member: str, context: Any) -> _Member:
        m = self.c.members.get(member)
        if m is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "unknown member", "UNKNOWN_MEMBER", {"group": group, "member_id": member})
            raise AssertionError("unreachable")
        return m

    def GetServers(self, request: Any, context: Any) -> log_pb2.GetServersResponse:
        return log_pb2.GetServersResponse(servers=self._servers())

    def _servers(self) -> list[log_pb2.Server]:
        return [log_pb2.Server(id=f"s{i}", rpc_addr=a, is_leader=i == 0) for i, a in enumerate(self.c.addrs) if i not in self.c.down]

    def GetMetadata(self, request: log_pb2.GetMetadataRequest, context: Any) -> log_pb2.GetMetadataResponse:
        with self.c.lock:
            resp = log_pb2.GetMetadataResponse(servers=self._servers())
            for name in request.topics or sorted(self.c.topics):
                if name not in self.c.topics:
                    _abort(context, grpc.StatusCode.NOT_FOUND, "no such topic", "UNKNOWN_TOPIC", {"topic": name})
                tm = resp.topics.add(name=name)
                for p in range(len(self.c.topics[name])):
                    tm.partitions.add(partition=p, replicas=self._servers()[:1], leader_id="s0")
            return resp

    def GetBounds(self, request: log_pb2.GetBoundsRequest, context: Any) -> log_pb2.GetBoundsResponse:
        with self.c.lock:
            return log_pb2.GetBoundsResponse(lowest=0, next=len(self.c.topics[request.topic][request.partition]))

    def ConsumeStream(self, request: log_pb2.ConsumeRequest, context: Any) -> Iterator[log_pb2.ConsumeResponse]:
        offset = request.offset
        while context.is_active():
            with self.c.lock:
                batch = self.c.topics[request.topic][request.partition][offset:]
                if not batch:
                    self.c.lock.wait(0.05)  # and look at context.is_active() again
                    continue
            for rec in batch:
                yield log_pb2.ConsumeResponse(record=rec)
                offset += 1

    def JoinGroup(self, request: log_pb2.JoinGroupRequest, context: Any) -> log_pb2.JoinGroupResponse:
        with self.c.lock:
            self._meta(context)
            for t in request.topics:
                if t not in self.c.topics:
                    _abort(context, grpc.StatusCode.NOT_FOUND, "no such topic", "UNKNOWN_TOPIC", {"topic": t})
            member = f"m{next(self.c._ids)}"
            self.c.members[member] = _Member(list(request.topics), request.client_id)
            self.c.events.append(("join", member, request.session_timeout.ToNanoseconds() / 1e9))
            self.c._rebalance()
            return log_pb2.JoinGroupResponse(assignment=self.c._assignment(member))

    def Heartbeat(self, request: log_pb2.HeartbeatRequest, context: Any) -> log_pb2.HeartbeatResponse:
        if (stall := self.c.stall) is not None:
            stall.wait()
            context.abort(grpc.StatusCode.UNAVAILABLE, "stalled")
        with self.c.lock:
            self._meta(context)
            m = self._member(request.group, request.member_id, context)
            if request.generation > self.c.generation or request.generation < m.acked:
                md = {"group": request.group, "member_id": request.member_id, "generation": str(request.generation), "current": str(self.c.generation)}
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "stale generation", "STALE_GENERATION", md)
            if request.generation != m.acked:
                self.c.events.append(("heartbeat", request.member_id, request.generation))
            m.acked = request.generation
            self.c._hand_over()
            return log_pb2.HeartbeatResponse(assignment=self.c._assignment(request.member_id))

    def CommitOffsets(self, request: log_pb2.CommitOffsetsRequest, context: Any) -> log_pb2.CommitOffsetsResponse:
        with self.c.lock:
            self._meta(context)
            m = self._member(request.group, request.member_id, context)
            md = {"group": request.group, "member_id": request.member_id}
            if self.c.refuse_commits:
                reason = self.c.refuse_commits.pop(0)
                self.c.events.append(("refused", request.member_id, reason))
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "refused", reason, md)
            if request.generation > self.c.generation or request.generation < m.acked:
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "stale generation", "STALE_GENERATION", md)
            for o in request.offsets:
                if self.c.owner.get((o.topic, o.partition)) != request.member_id:
                    _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "not the owner", "NOT_OWNER",
                           {**md, "topic": o.topic, "partition": str(o.partition)})  # fmt: skip
            for o in request.offsets:
                self.c.committed[(o.topic, o.partition)] = o.offset
                self.c.events.append(("commit", request.member_id, (o.topic, o.partition), o.offset))
            self.c.lock.notify_all()
            return log_pb2.CommitOffsetsResponse()

    def LeaveGroup(self, request: log_pb2.LeaveGroupRequest, context: Any) -> log_pb2.LeaveGroupResponse:
        with self.c.lock:
            self._meta(context)
            self.c.events.append(("leave", request.member_id))
            self.c._remove(request.member_id)
            return log_pb2.LeaveGroupResponse()

    def _offsets(self) -> list[log_pb2.PartitionOffset]:
        return [log_pb2.PartitionOffset(topic=t, partition=p, offset=o, committed=True) for (t, p), o in sorted(self.c.committed.items())]

    def FetchOffsets(self, request: log_pb2.FetchOffsetsRequest, context: Any) -> log_pb2.FetchOffsetsResponse:
        with self.c.lock:
            if not request.partitions:
                return log_pb2.FetchOffsetsResponse(offsets=self._offsets())
            resp = log_pb2.FetchOffsetsResponse()
            for tp in request.partitions:
                for p in tp.partitions:
                    off = self.c.committed.get((tp.topic, p))
                    resp.offsets.add(topic=tp.topic, partition=p, offset=off or 0, committed=off is not None)
            return resp

    def ListGroups(self, request: Any, context: Any) -> log_pb2.ListGroupsResponse:
        with self.c.lock:
            summary = log_pb2.GroupSummary(group="g", generation=self.c.generation, members=len(self.c.members))
            return log_pb2.ListGroupsResponse(groups=[summary])

    def DescribeGroup(self, request: log_pb2.DescribeGroupRequest, context: Any) -> log_pb2.DescribeGroupResponse:
        with self.c.lock:
            if request.group != "g":
                _abort(context, grpc.StatusCode.NOT_FOUND, "unknown group", "UNKNOWN_GROUP", {"group": request.group})
            resp = log_pb2.DescribeGroupResponse(group="g", generation=self.c.generation, offsets=self._offsets())
            for mid, m in sorted(self.c.members.items()):
                gm = resp.members.add(member_id=mid, client_id=m.client_id, topics=m.topics, generation=m.acked)
                for part in sorted(p for p, o in self.c.owner.items() if o == mid):
                    gm.owned.add(topic=part[0], partitions=[part[1]])
            return resp


@pytest.fixture
def groups(server: ServerProcess) -> Iterator[GroupCluster]:
    c = GroupCluster(server).start()
    yield c
    c.stop()


def _drain(consumer: proglog.Consumer, n: int) -> list[ConsumerRecord]:
    out = []
    for _ in range(n):
        r = consumer.poll(WAIT)
        assert r is not None, f"no record after {len(out)} of {n}"
        out.append(r)
    return out


def test_consumer_reads_commits_and_leaves(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("orders", 4, records=5)
    # Seeded with the server that does not lead the metadata: JoinGroup follows NOT_LEADER.
    with Client(groups.addrs[0], **server.tls()) as c:
        consumer = c.consumer("g", ["orders"], session_timeout=3, auto_commit_interval=None, client_id="me")
        with consumer:
            member = consumer.member_id
            assert groups.events[0] == ("join", member, 3.0)
            assert consumer.assignment() == {("orders", p) for p in range(4)}
            got = _drain(consumer, 20)
            assert sorted((r.topic, r.partition, r.offset) for r in got) == [("orders", p, o) for p in range(4) for o in range(5)]
            assert {r.value for r in got} == {f"orders/{p}/{o}".encode() for p in range(4) for o in range(5)}
            for p in range(4):  # each partition in order
                assert [r.offset for r in got if r.partition == p] == list(range(5))
            assert consumer.poll(0) is None
            assert groups.committed == {}  # no auto-commit
            consumer.commit()
            assert groups.committed == {("orders", p): 5 for p in range(4)}
            assert c.fetch_offsets("g") == {("orders", p): 5 for p in range(4)}
            assert c.fetch_offsets("g", [("orders", 1), ("orders", 7)]) == {("orders", 1): 5}
            groups.append("orders", 2, 1)
            r = consumer.poll(WAIT)
            assert r is not None and (r.partition, r.offset, r.value) == (2, 5, b"orders/2/5")
            d = c.describe_group("g")
            assert [(m.member_id, m.client_id, m.topics) for m in d.members] == [(member, "me", ("orders",))]
            assert d.members[0].owned == tuple(("orders", p) for p in range(4))
            assert c.list_groups() == [proglog.GroupSummary("g", groups.generation, 1)]
            with pytest.raises(proglog.UnknownGroupError):
                c.describe_group("other")
        # close: without auto-commit no commit, then LeaveGroup.
        assert groups.events[-1] == ("leave", member) and groups.members == {}
        assert groups.committed[("orders", 2)] == 5
        with pytest.raises(ClientClosedError):
            consumer.poll(0)
        with pytest.raises(ClientClosedError):
            consumer.commit()
        # A new member resumes from the committed offsets; close commits with auto-commit.
        with c.consumer("g", ["orders"], session_timeout=3) as again:
            r = again.poll(WAIT)
            assert r is not None and (r.partition, r.offset) == (2, 5)
            assert again.poll(0) is None
        assert groups.committed[("orders", 2)] == 6


def test_hand_over_stops_commits_then_acknowledges(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("orders", 4, records=10)
    with Client(groups.addrs, **server.tls()) as c:
        a = c.consumer("g", ["orders"], session_timeout=3, auto_commit_interval=60)
        first: list[ConsumerRecord] = []
        while {r.partition for r in first} != {0, 1, 2, 3} or len(first) < 8:  # a reads every partition
            first += _drain(a, 1)
        returned = a.positions()
        ninth = a.poll(WAIT)  # the 8 records before it are processed; it is being processed
        assert ninth is not None
        b = c.consumer("g", ["orders"], session_timeout=3, auto_commit_interval=60)
        # b joins: generation 2 moves partitions 1 and 3 to it (members ordered by id) once a
        # stopped reading them, committed them and acknowledged.
        moved = {("orders", 1), ("orders", 3)}
        groups.wait(lambda: groups.owned(b.member_id) == moved)
        gen = groups.generation
        events = list(groups.events)
        acked = events.index(("heartbeat", a.member_id, gen))
        for part in moved:
            commit = next(i for i, e in enumerate(events) if e[:3] == ("commit", a.member_id, part))
            assert events[commit][3] == returned[part]  # its position after what a returned
            assert commit < acked < events.index(("owner", part, b.member_id))
        assert a.assignment() == {("orders", 0), ("orders", 2)}
        # Every record is processed: a's of its partitions, b's of the moved ones from a's commit
        # on, none skipped; only the record a was processing is read twice, if it moved.
        again = ("orders", ninth.partition) in moved
        first.append(ninth)
        rest_a = _drain(a, 20 - len([r for r in first if ("orders", r.partition) not in moved]))
        rest_b = _drain(b, 20 - len([r for r in first if ("orders", r.partition) in moved]) + again)
        seen = [(r.partition, r.offset) for r in first + rest_a + rest_b]
        assert sorted(seen) == sorted([(p, o) for p in range(4) for o in range(10)] + ([(ninth.partition, ninth.offset)] if again else []))
        assert {r.partition for r in rest_b} <= {1, 3}
        assert a.poll(0) is None and b.poll(0) is None
        b.close()
        # b leaves: its partitions go back to a, from b's commit.
        groups.wait(lambda: a.assignment() == {("orders", p) for p in range(4)})
        groups.append("orders", 3, 1)
        r = a.poll(WAIT)
        assert r is not None and (r.partition, r.offset) == (3, 10)
        a.close()
    assert groups.committed == {("orders", p): 10 + (p == 3) for p in range(4)}


def test_record_in_process_during_hand_over_is_read_again(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 2, records=3)
    with Client(groups.addrs, **server.tls()) as c:
        a = c.consumer("g", ["t"], session_timeout=3)
        _drain(a, 6)
        groups.append("t", 1, 1)
        in_process = a.poll(WAIT)  # returned, not yet finished
        assert in_process is not None and (in_process.partition, in_process.offset) == (1, 3)
        b = c.consumer("g", ["t"], session_timeout=3)
        groups.wait(lambda: groups.owned(b.member_id) == {("t", 1)})
        # a committed partition 1 at the record it was processing, not after it: b reads it again.
        assert groups.committed[("t", 1)] == in_process.offset
        r = b.poll(WAIT)
        assert r is not None and (r.partition, r.offset) == (1, in_process.offset)
        a.close()
        b.close()


def test_removed_member_joins_again(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 2, records=4)
    with Client(groups.addrs, **server.tls()) as c:
        with c.consumer("g", ["t"], session_timeout=3) as consumer:
            _drain(consumer, 8)
            consumer.commit()
            groups.append("t", 0, 2)
            _drain(consumer, 2)  # returned, not committed
            old = consumer.member_id
            groups.expire(old)
            # The next heartbeat is refused UNKNOWN_MEMBER: the consumer stops, joins again and
            # reads from the committed offsets, so the uncommitted records come again.
            groups.wait(lambda: len(groups.members) == 1 and old not in groups.members and groups.owned(next(iter(groups.members))) != set())
            again = _drain(consumer, 2)
            assert sorted((r.partition, r.offset) for r in again) == [(0, 4), (0, 5)]
            assert consumer.member_id != old
            assert not any(e[0] == "commit" and e[1] == old and e[3] > 4 for e in groups.events)


def test_refused_commit_heartbeats_and_commits_again(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1, records=2)
    with Client(groups.addrs, **server.tls()) as c:
        with c.consumer("g", ["t"], session_timeout=3, auto_commit_interval=None) as consumer:
            for n, reason in enumerate(("NOT_OWNER", "STALE_GENERATION")):
                _drain(consumer, 1)
                groups.refuse_commits.append(reason)
                before = len(groups.events)
                consumer.commit()
                assert groups.events[before] == ("refused", consumer.member_id, reason)
                assert groups.committed == {("t", 0): n + 1}
            groups.append("t", 0, 1)
            _drain(consumer, 1)
            groups.refuse_commits += ["NOT_OWNER", "NOT_OWNER"]  # refused again after the heartbeat
            with pytest.raises(proglog.NotOwnerError) as caught:
                consumer.commit()
            assert (caught.value.group, caught.value.member_id) == ("g", consumer.member_id)
            # UNKNOWN_MEMBER: raised, and the consumer joins again.
            old = consumer.member_id
            groups.expire(old)
            with pytest.raises(proglog.UnknownMemberError):
                consumer.commit()
            groups.wait(lambda: len(groups.members) == 1 and old not in groups.members)


def test_auto_commit_and_exit_through_an_exception(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1, records=5)
    with Client(groups.addrs, **server.tls()) as c:
        # Auto-commit commits the records finished with: those returned before the latest poll.
        with c.consumer("g", ["t"], auto_commit_interval=0.05) as consumer:
            _drain(consumer, 3)
            groups.wait(lambda: groups.committed.get(("t", 0)) == 2)
            assert consumer.poll(WAIT) is not None
            groups.wait(lambda: groups.committed.get(("t", 0)) == 3)
        assert groups.committed[("t", 0)] == 4  # close: after every record returned
        # Leaving the with block through an exception: the record being processed is not committed.
        with pytest.raises(RuntimeError):
            with c.consumer("g", ["t"], auto_commit_interval=60) as consumer:
                r = consumer.poll(WAIT)
                assert r is not None and r.offset == 4
                raise RuntimeError("processing failed")
        assert groups.committed[("t", 0)] == 4 and groups.members == {}


def test_metadata_leader_stops(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1, records=1)
    with Client(groups.addrs, **server.tls(), backoff=(0.01, 0.05)) as c:
        with c.consumer("g", ["t"], session_timeout=3) as consumer:
            _drain(consumer, 1)
            consumer.commit()  # the client knows server 1 as the metadata leader now
            # The metadata leader (server 1) stops and server 2 takes over: the member calls,
            # which went to server 1, find the new leader (asking the others, which answer
            # NOT_LEADER naming it) instead of retrying the stopped one until the session is lost.
            with groups.lock:
                groups.down.add(groups.meta)
                groups.servers[groups.meta].stop(grace=None)
                groups.meta = 2
                beats = len(groups.events)
            groups.append("t", 0, 1)
            r = consumer.poll(WAIT)
            assert r is not None and r.offset == 1
            member = consumer.member_id
            consumer.commit()
            assert groups.committed == {("t", 0): 2} and member in groups.members
            assert ("join", member, 3.0) in groups.events[:beats]  # the same member: never removed


def test_unanswered_heartbeats_stop_the_reading(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1, records=1)
    with Client(groups.addrs, **server.tls(), backoff=(0.01, 0.05)) as c:
        with c.consumer("g", ["t"], session_timeout=1) as consumer:
            _drain(consumer, 1)
            old = consumer.member_id
            # No heartbeat is answered (the coordinator is cut off) for the session timeout: the
            # cluster may have given the partition to another member, so the consumer stops
            # reading it and joins again, as a new member that owns nothing while the old one
            # does (the double never expires it by itself).
            groups.stall = threading.Event()
            groups.wait(lambda: len(groups.members) == 2)
            with consumer._cond:
                assert consumer._cond.wait_for(lambda: consumer._m.member_id not in ("", old), WAIT)
            assert consumer.assignment() == set()
            groups.append("t", 0, 1)
            assert consumer.poll(0.05) is None
            groups.stall.set()
            groups.stall = None
            groups.expire(old)
            # The new member reads from the committed offset: nothing was committed yet.
            assert [r.offset for r in _drain(consumer, 2)] == [0, 1] and consumer.member_id not in ("", old)


def test_start_latest_and_bounded_buffer(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1, records=3)
    with Client(groups.addrs, **server.tls()) as c:
        with c.consumer("g", ["t"], start="latest", max_buffered=4) as consumer:
            assert consumer.poll(0.05) is None  # the 3 records before the consumer started
            groups.append("t", 0, 50)
            r = consumer.poll(WAIT)
            assert r is not None and r.offset == 3
            # The reader stops at max_buffered records not yet returned.
            with consumer._cond:
                assert consumer._cond.wait_for(lambda: consumer._m.buffered == 4, WAIT)
            with consumer._cond:
                assert consumer._m.buffered <= 4
            offsets = [r.offset] + [x.offset for x in _drain(consumer, 49)]
            assert offsets == list(range(3, 53))


def test_close_with_poll_in_flight(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1)
    with Client(groups.addrs, **server.tls()) as c:
        consumer = c.consumer("g", ["t"])
        errors: list[BaseException] = []
        waiting = threading.Event()

        def poll() -> None:
            waiting.set()
            try:
                consumer.poll()
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=poll)
        t.start()
        waiting.wait()
        consumer.close()
        t.join(WAIT)
        assert not t.is_alive() and len(errors) == 1 and isinstance(errors[0], ClientClosedError)
        # The client closed under a consumer: its poll raises ClientClosedError.
        other = c.consumer("g", ["t"])
    with pytest.raises(ClientClosedError):
        other.poll(WAIT)


def test_async_consumer(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("orders", 2, records=3)

    async def main() -> None:
        async with AsyncClient(groups.addrs[0], **server.tls()) as c:
            async with c.consumer("g", ["orders"], session_timeout=3, auto_commit_interval=None) as a:
                got = []
                async for r in a:
                    got.append((r.partition, r.offset))
                    if len(got) == 6:
                        break
                assert sorted(got) == [(p, o) for p in range(2) for o in range(3)]
                await a.commit()
                assert await c.fetch_offsets("g") == {("orders", 0): 3, ("orders", 1): 3}
                # A second member: the hand-over moves partition 1 to it.
                b = c.consumer("g", ["orders"], session_timeout=3)
                await b.start()
                deadline = time.monotonic() + WAIT
                while a.assignment() != {("orders", 0)} or b.assignment() != {("orders", 1)}:
                    assert time.monotonic() < deadline
                    assert await b.poll(0.01) is None
                groups.append("orders", 1, 1)
                r = await b.poll(WAIT)
                assert r is not None and (r.partition, r.offset) == (1, 3)
                assert (await c.describe_group("g")).generation == groups.generation
                assert [g.group for g in await c.list_groups()] == ["g"]
                # close() with a poll in flight: ClientClosedError, not CancelledError.
                pending = asyncio.ensure_future(b.poll())
                await asyncio.sleep(0)
                await b.close()
                with pytest.raises(ClientClosedError):
                    await pending
            assert groups.members == {}

    asyncio.run(main())


def test_async_consumer_rejoins_and_client_close(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1, records=2)

    async def main() -> None:
        c = AsyncClient(groups.addrs, **server.tls())
        consumer = c.consumer("g", ["t"], session_timeout=3)
        assert [(r.offset) for r in [await consumer.poll(WAIT), await consumer.poll(WAIT)] if r] == [0, 1]
        await consumer.commit()
        groups.append("t", 0, 1)
        r = await consumer.poll(WAIT)
        assert r is not None and r.offset == 2  # returned, not committed
        old = consumer.member_id
        groups.expire(old)
        # Removed: the consumer joins again and reads from the committed offset.
        r = await consumer.poll(WAIT)
        assert r is not None and r.offset == 2 and consumer.member_id not in ("", old)
        # The client closed under the consumer: its poll raises ClientClosedError.
        pending = asyncio.ensure_future(consumer.poll())
        await asyncio.sleep(0)
        await c.close()
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(pending, WAIT)
        await consumer.close()

    asyncio.run(main())


def test_arguments_are_checked(groups: GroupCluster, server: ServerProcess) -> None:
    groups.create("t", 1)
    with Client(groups.addrs, **server.tls()) as c:
        lazy: Any = c
        with pytest.raises(TypeError, match="topics must be an iterable of topic names"):
            lazy.consumer("g", "t")
        with pytest.raises(ValueError, match=r"group 'a b': must be 1 to 249 of \[a-zA-Z0-9._-\]"):
            lazy.consumer("a b", ["t"])
        with pytest.raises(ValueError, match="group '..'"):
            lazy.consumer("..", ["t"])
        with pytest.raises(ValueError, match="group"):
            lazy.consumer("x" * 250, ["t"])
        with pytest.raises(ValueError, match="subscribe to 1 to 256 topics, not 0"):
            lazy.consumer("g", [])
        with pytest.raises(ValueError, match="session_timeout must be 1 to 300 seconds, not 0.5"):
            lazy.consumer("g", ["t"], session_timeout=0.5)
        with pytest.raises(ValueError, match="start must be 'earliest' or 'latest'"):
            lazy.consumer("g", ["t"], start="beginning")
        with pytest.raises(ValueError, match="auto_commit_interval must be positive"):
            lazy.consumer("g", ["t"], auto_commit_interval=0)
        with pytest.raises(ValueError, match="max_buffered must be a positive int"):
            lazy.consumer("g", ["t"], max_buffered=0)
        with pytest.raises(ValueError, match="client_id must be a str of at most 255 bytes"):
            lazy.consumer("g", ["t"], client_id="x" * 256)
        with pytest.raises(TypeError, match=r"partitions must hold \(topic, partition\) pairs"):
            lazy.fetch_offsets("g", [("t",)])
        with pytest.raises(TypeError, match="partitions must be an iterable"):
            lazy.fetch_offsets("g", "t")
        with pytest.raises(proglog.UnknownTopicError):
            c.consumer("g", ["no-such-topic"])
        assert groups.members == {}


@pytest.mark.parametrize(
    ("code", "reason", "md", "cls", "attrs"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_GROUP", {"group": "a b"}, proglog.InvalidGroupError, {"group": "a b"}),
        (grpc.StatusCode.NOT_FOUND, "UNKNOWN_GROUP", {"group": "g"}, proglog.UnknownGroupError, {"group": "g"}),
        (grpc.StatusCode.NOT_FOUND, "UNKNOWN_MEMBER", {"group": "g", "member_id": "m"}, proglog.UnknownMemberError, {"member_id": "m"}),
        (grpc.StatusCode.FAILED_PRECONDITION, "NOT_OWNER", {"group": "g", "member_id": "m", "topic": "t", "partition": "3"},
         proglog.NotOwnerError, {"topic": "t", "partition": 3}),
        (grpc.StatusCode.FAILED_PRECONDITION, "STALE_GENERATION", {"group": "g", "member_id": "m", "generation": "4", "current": "6"},
         proglog.StaleGenerationError, {"generation": 4, "current": 6}),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_MEMBERS", {"group": "g", "limit": "1000"}, proglog.TooManyMembersError, {"limit": 1000}),
    ],
)  # fmt: skip
def test_group_errors(code: grpc.StatusCode, reason: str, md: dict[str, str], cls: type, attrs: dict[str, Any]) -> None:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="proglog", metadata=md)
    detail = any_pb2.Any()
    detail.Pack(info)
    st = status_pb2.Status(code=code.value[0], message="m", details=[detail])
    err = from_status(code, "m", (("grpc-status-details-bin", st.SerializeToString()),))
    assert type(err) is cls
    for k, v in attrs.items():
        assert getattr(err, k) == v
