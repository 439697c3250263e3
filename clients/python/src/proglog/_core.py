"""What the synchronous and asyncio clients share: TLS, targets, routing state and retry policy,
logging and trace context propagation."""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import random
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc

from proglog.errors import (
    NoLeaderError,
    NotLeaderError,
    OffsetOutOfRangeError,
    ProglogError,
    TLSError,
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
)
from proglog.records import DEFAULT_TOPIC, Server, TopicInfo

# The clients' logger: retries and discovery at DEBUG, leader changes and routing fallbacks at INFO.
log = logging.getLogger("proglog")

# Where reads go: "follower" spreads Consume and stream calls over the followers (the leader when
# there are none) and asks for follower consistency; "linearizable" sends Consume to the leader.
Consistency = Literal["follower", "linearizable"]

# A PEM source: bytes are the PEM itself, a str or path names a file.
PEM = bytes | str | os.PathLike[str]

Route = Literal["leader", "follower", "any"]

# What a call is: the retry policy and the route depend on it.
Op = Literal["produce", "read", "stream", "servers", "bounds", "admin"]

# A partition: (topic, partition number).
PartKey = tuple[str, int]


@dataclass(frozen=True)
class PartRoute:
    """Where a partition's calls go: its leader's address (None: not known) and its replicas'."""

    leader: str | None
    replicas: tuple[str, ...] = ()

# The metadata the clients send with a call (see call_metadata).
Metadata = tuple[tuple[str, str], ...] | None

MAX_RECEIVE_BYTES = 64 << 20
DISCOVERY_TIMEOUT = 5.0


def read_pem(source: PEM | None) -> bytes | None:
    if source is None:
        return None
    if isinstance(source, bytes):
        return source
    with open(source, "rb") as f:
        return f.read()


def credentials(ca: PEM | None, cert: PEM | None, key: PEM | None) -> grpc.ChannelCredentials:
    """Reads and checks the TLS material (see check_tls) and returns the channel credentials."""
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together: give both or neither")
    ca_pem, cert_pem, key_pem = read_pem(ca), read_pem(cert), read_pem(key)
    check_tls(ca_pem, cert_pem, key_pem)
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)


def check_tls(ca: bytes | None, cert: bytes | None, key: bytes | None) -> None:
    """Raises TLSError naming the problem if the CA is not PEM certificates, the client certificate
    is not a PEM certificate, the key not an unencrypted PEM private key, or the key does not match
    the certificate: gRPC would only fail each handshake, with a message that does not say why."""
    if ca is not None:
        # The blocks alone: bundles may have comments in any encoding between them.
        blocks = _PEM_CERTIFICATE.findall(ca)
        if not blocks:
            raise TLSError("ca: no PEM certificate in it (no BEGIN CERTIFICATE block)")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=b"\n".join(blocks).decode("ascii"))
        except (ssl.SSLError, ValueError) as e:  # UnicodeDecodeError is a ValueError
            raise TLSError(f"ca: unreadable certificate ({e})") from None
    if cert is None or key is None:
        return
    if not _PEM_CERTIFICATE.search(cert):
        raise TLSError("cert: not a PEM certificate (no BEGIN CERTIFICATE block)")
    if b"PRIVATE KEY-----" not in key:
        raise TLSError("key: not a PEM private key (no BEGIN ... PRIVATE KEY block)")
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in key or b"Proc-Type: 4,ENCRYPTED" in key:
        raise TLSError("key: the private key is encrypted; gRPC needs it unencrypted")
    # ssl loads a key pair only from files: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="proglog-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_path, key_path, password=lambda: b"")
        except ssl.SSLError as e:
            if e.reason == "KEY_VALUES_MISMATCH":
                raise TLSError("key: the private key does not match the certificate given as cert") from None
            raise TLSError(f"cert and key: unusable as a key pair ({e})") from None


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

# Markers gRPC puts in the message of a call that failed in the TLS handshake.
_HANDSHAKE = ("handshake failed", "unwrap failed (tsi_", "failed to create security handshaker")
# Markers of a call that failed before it was sent: no connection could be made.
_NOT_CONNECTED = ("failed to connect to all addresses", "failed to connect to remote host", "dns resolution failed")


def handshake_error(err: ProglogError, addr: str, has_cert: bool) -> ProglogError:
    """Returns err as a TLSError naming the likely cause if it is a failed TLS handshake, else err."""
    if not isinstance(err, UnavailableError) or isinstance(err, TLSError):
        return err
    text = err.message.lower()
    if not any(m in text for m in _HANDSHAKE):
        return err
    if "certificate_verify_failed" in text:
        cause = f"the certificate of {addr} does not verify against the CA given as ca"
    elif "unwrap failed" in text and not has_cert:
        cause = f"{addr} refused the connection: it requires a client certificate (give cert and key)"
    elif "unwrap failed" in text:
        cause = f"{addr} refused the client certificate (not signed by a CA it trusts, or expired)"
    else:
        cause = f"the TLS handshake with {addr} failed"
    return TLSError(f"{cause}: {err.message}", err.code)


def never_sent(err: ProglogError) -> bool:
    """Whether a failed call surely never reached a server (no connection), so retrying it cannot
    write anything twice."""
    text = err.message.lower()
    return isinstance(err, UnavailableError) and any(m in text for m in _NOT_CONNECTED)


def _find_injector() -> Callable[[dict[str, str]], None] | None:
    try:
        propagate: Any = importlib.import_module("opentelemetry.propagate")
    except ImportError:
        return None
    inject: Callable[[dict[str, str]], None] = propagate.inject
    return inject


# opentelemetry's propagate.inject when opentelemetry-api is installed (an optional dependency).
_inject = _find_injector()


def call_metadata() -> Metadata:
    """The gRPC metadata of a call: the current OpenTelemetry context (W3C traceparent and
    tracestate, with OpenTelemetry's default propagators) when opentelemetry is installed."""
    if _inject is None:
        return None
    carrier: dict[str, str] = {}
    _inject(carrier)
    return tuple((k.lower(), v) for k, v in carrier.items()) or None


def channel_options(server_name: str | None) -> list[tuple[str, str | int]]:
    options: list[tuple[str, str | int]] = [
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        # Finds dead servers under idle streams; servers accept pings every 10s.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def parse_target(target: str | Sequence[str]) -> list[str]:
    """Returns the seed addresses of "host:port", "h1:p1,h2:p2", "proglog://..." or a list of them."""
    parts = [target] if isinstance(target, str) else list(target)
    seeds: list[str] = []
    for part in parts:
        for prefix in ("proglog:///", "proglog://"):
            if part.startswith(prefix):
                part = part[len(prefix) :]
                break
        for addr in (a.strip() for a in part.split(",")):
            if not addr:
                continue
            host, sep, port = addr.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bad server address {addr!r}: want host:port")
            if addr not in seeds:
                seeds.append(addr)
    if not seeds:
        raise ValueError(f"target {target!r} names no server")
    return seeds


@dataclass
class Settings:
    """The knobs both clients take (see Client for their meaning)."""

    timeout: float | None
    retries: int | None
    produce_retries: int | None
    backoff: tuple[float, float]
    consistency: Consistency
    discovery_interval: float
    metadata_refresh: float = 0.1
    metadata_max_age: float = 300.0

    def __post_init__(self) -> None:
        if not self.metadata_refresh > 0:
            raise ValueError(f"metadata_refresh must be positive seconds, not {self.metadata_refresh}")
        if not self.metadata_max_age > 0:
            raise ValueError(f"metadata_max_age must be positive seconds, not {self.metadata_max_age}")
        low, high = self.backoff
        if not 0 < low <= high:
            raise ValueError(f"backoff {self.backoff}: need 0 < initial <= maximum")
        if self.consistency not in ("follower", "linearizable"):
            raise ValueError(f"consistency must be 'follower' or 'linearizable', not {self.consistency!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive or None")
        if self.discovery_interval <= 0:
            raise ValueError("discovery_interval must be positive")
        if self.retries is not None and self.retries < 0:
            raise ValueError(f"retries must be >= 0 or None (until the timeout), not {self.retries}")
        if self.produce_retries is not None and self.produce_retries < 0:
            raise ValueError(f"produce_retries must be >= 0 or None (like retries), not {self.produce_retries}")


class Halt:
    """Stops a following stream from another thread: cancels its call in flight, and any later
    attempt, and ends its wait between retries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._call: grpc.Call | None = None
        self.halted = threading.Event()

    def attach(self, call: grpc.Call) -> None:
        with self._lock:
            self._call = call
        if self.halted.is_set():
            call.cancel()

    def halt(self) -> None:
        self.halted.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()


class Router:
    """The discovered servers and their roles, and round-robin choice among them.

    Discovery asks the hinted leader, the leader, the other servers, then the seeds. If GetServers is
    refused (an ACL without "servers"), the router is static: the seeds, roles unknown, the leader
    learned from NOT_LEADER hints.
    """

    def __init__(self, seeds: list[str], interval: float) -> None:
        self.seeds = seeds
        self.interval = interval
        self.servers: list[Server] = []
        self.static = False
        self.refreshed_at = float("-inf")
        self.stale = True
        # One round-robin counter per route, so that calls of one route (follower reads) alternate
        # whatever other calls (metadata refreshes, produces) pick in between.
        self._rr: dict[Route, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def leader(self) -> str | None:
        with self._lock:
            return self._leader()

    def needs_refresh(self) -> bool:
        with self._lock:
            if self.stale or not self.servers or time.monotonic() - self.refreshed_at > self.interval:
                return True
            return not self.static and not any(s.is_leader for s in self.servers)

    def candidates(self, prefer: str | None = None) -> list[str]:
        with self._lock:
            order = [prefer] if prefer else []
            order += [s.rpc_addr for s in self.servers if s.is_leader]
            order += [s.rpc_addr for s in self.servers]
            order += self.seeds
        return list(dict.fromkeys(a for a in order if a))

    def update(self, servers: list[Server]) -> None:
        with self._lock:
            before = self._leader()
            self.servers = sorted({s.rpc_addr: s for s in servers if s.rpc_addr}.values(), key=lambda s: s.rpc_addr)
            self.static = False
            self._refreshed()
            log.debug("discovered %d servers: %s", len(self.servers), ", ".join(s.rpc_addr for s in self.servers))
            self._leader_changed(before)

    def set_static(self) -> None:
        with self._lock:
            leader = self._leader()
            addrs = dict.fromkeys(self.seeds + ([leader] if leader else []))
            self.servers = [Server(id="", rpc_addr=a, is_leader=a == leader) for a in sorted(addrs)]
            if not self.static:
                log.info("GetServers refused; routing to the seeds %s, roles learnt from NOT_LEADER", ", ".join(self.seeds))
            self.static = True
            self._refreshed()

    def _leader(self) -> str | None:
        return next((s.rpc_addr for s in self.servers if s.is_leader), None)

    def _leader_changed(self, before: str | None) -> None:
        after = self._leader()
        if after != before:
            log.info("leader is now %s (was %s)", after or "unknown", before or "unknown")

    def _refreshed(self) -> None:
        self.refreshed_at = time.monotonic()
        self.stale = False

    def invalidate(self) -> None:
        with self._lock:
            self.stale = True

    def hint(self, leader_addr: str) -> None:
        """Marks leader_addr as the leader at once (discovery confirms it later)."""
        with self._lock:
            before = self._leader()
            if leader_addr:
                servers = [Server(s.id, s.rpc_addr, s.rpc_addr == leader_addr) for s in self.servers]
                if not any(s.is_leader for s in servers):
                    servers.append(Server("", leader_addr, True))
                self.servers = sorted(servers, key=lambda s: s.rpc_addr)
                self._leader_changed(before)
            self.stale = True

    def pick(self, route: Route, part: PartRoute | None = None) -> tuple[str, str] | None:
        """Returns (address, role) for a call, or None when it needs a leader and none is known.

        A call for a partition (``part``) goes by the partition's route: a follower read to its
        replicas other than the leader, round-robin, then the leader; anything else to the leader,
        or with none known to its replicas round-robin (they answer NOT_LEADER naming it). Without
        any address in ``part`` it goes by the servers' roles, as before topics. Replicas that
        discovery no longer lists (a server that stopped, until the metadata replaces it) are
        chosen only when no listed one is left."""
        with self._lock:
            n = next(self._rr.setdefault(route, itertools.count()))
            if part is not None:
                listed = {s.rpc_addr for s in self.servers}
                replicas = [a for a in part.replicas if self.static or not listed or a in listed] or list(part.replicas)
                followers = [a for a in replicas if a != part.leader]
                if route == "follower" and followers:
                    return followers[n % len(followers)], "follower"
                if part.leader:
                    return part.leader, "leader"
                if replicas:
                    return replicas[n % len(replicas)], "unknown"
            leader = next((s.rpc_addr for s in self.servers if s.is_leader), None)
            unknown_role = [s.rpc_addr for s in self.servers if not s.is_leader] if self.static else []
            followers = [] if self.static else [s.rpc_addr for s in self.servers if not s.is_leader]
            if route == "leader":
                if leader:
                    return leader, "leader"
                return (unknown_role[n % len(unknown_role)], "unknown") if unknown_role else None
            if route == "follower":
                if followers:
                    return followers[n % len(followers)], "follower"
                if unknown_role:
                    return unknown_role[n % len(unknown_role)], "unknown"
                return (leader, "leader") if leader else None
            everyone = [s.rpc_addr for s in self.servers]
            return (everyone[n % len(everyone)], "any") if everyone else None


class _TopicEntry:
    def __init__(self) -> None:
        self.info: TopicInfo | None = None
        self.fallback = False  # the servers gave no metadata: route by the servers' roles
        self.fetched_at: float | None = None
        self.stale = True
        self.leaders: dict[int, str] = {}  # NOT_LEADER hints since the last fetch
        # The last fetch's server did not know the topic, which info says exists (its copy of the
        # metadata lags the metadata leader's, as just after create_topic); the next such answer
        # is believed.
        self.doubted = False


class MetadataCache:
    """Each topic's metadata (GetMetadata), for routing; thread-safe, never blocks (the asyncio
    client uses it from its loop). The clients fetch a topic when ``due``: on first use, and after
    a call found it stale (NOT_LEADER, UNAVAILABLE, an unknown topic or partition) at most once per
    ``refresh`` seconds. Servers that give no metadata (older ones, or an ACL without "describe")
    leave the topic routed by the servers' roles, as before topics, asked again every
    ``fallback_interval`` seconds. An unknown topic is not kept: asked again on next use; but a
    topic the cache knows (fetched, or created by this client) is dropped only when a server says
    it is unknown twice in a row, since a server's copy of the metadata may lag. A topic's metadata
    older than ``max_age`` seconds is fetched again on next use, so that replicas added later (a
    replacement, a top-up) are learnt without waiting for a call to fail."""

    def __init__(self, refresh: float, fallback_interval: float, max_age: float = 300.0) -> None:
        self.refresh = refresh
        self.fallback_interval = fallback_interval
        self.max_age = max_age
        self.meta_leader: str | None = None  # where create_topic and delete_topic go first
        self._topics: dict[str, _TopicEntry] = {}
        self._lock = threading.Lock()

    def _entry(self, topic: str) -> _TopicEntry:
        return self._topics.setdefault(topic, _TopicEntry())

    def due(self, topic: str) -> bool:
        with self._lock:
            e = self._entry(topic)
            if e.fetched_at is None:
                return True
            age = time.monotonic() - e.fetched_at
            if e.fallback:
                return age >= self.fallback_interval
            return age >= self.max_age or (e.stale and age >= self.refresh)

    def store(self, topic: str, info: TopicInfo | None, meta_leader: str | None = None) -> None:
        """Records a fetch's outcome: the topic's metadata, or None for servers that give none."""
        with self._lock:
            e = self._entry(topic)
            e.info, e.fallback, e.fetched_at, e.stale, e.leaders = info, info is None, time.monotonic(), False, {}
            e.doubted = False
            if info is not None:
                self.meta_leader = meta_leader or self.meta_leader

    def created(self, info: TopicInfo) -> None:
        """Caches the answer of this client's create_topic, so that the topic is not unknown to its
        creator while the servers' copies of the metadata catch up; stale, since its leaders may not
        be elected yet."""
        with self._lock:
            e = self._entry(info.name)
            e.info, e.fallback, e.fetched_at, e.stale, e.leaders, e.doubted = info, False, time.monotonic(), True, {}, False

    def lagging(self, topic: str) -> bool:
        """A server said the topic is unknown: True (and asked again after ``refresh``) if the
        cache knows it and has not doubted it since it last found it, False to believe it."""
        with self._lock:
            e = self._topics.get(topic)
            if e is None or e.info is None or e.doubted:
                return False
            e.fetched_at, e.stale, e.doubted = time.monotonic(), True, True
            return True

    def unanswered(self, topic: str) -> None:
        """No server answered a fetch: keep what was known, ask again after ``refresh``."""
        with self._lock:
            e = self._entry(topic)
            e.fetched_at, e.stale = time.monotonic(), True

    def forget(self, topic: str) -> None:
        with self._lock:
            self._topics.pop(topic, None)

    def invalidate(self, topic: str) -> None:
        with self._lock:
            self._entry(topic).stale = True

    def hint(self, key: PartKey, leader: str) -> None:
        with self._lock:
            e = self._entry(key[0])
            e.stale = True
            e.leaders[key[1]] = leader

    def knows(self, key: PartKey) -> bool:
        """Whether the cached metadata has the partition (fetched, or from create_topic)."""
        with self._lock:
            e = self._topics.get(key[0])
            return e is not None and e.info is not None and key[1] < len(e.info.partitions)

    def routed(self, topic: str) -> bool:
        """Whether the topic is routed by its metadata (not by the servers' roles)."""
        with self._lock:
            e = self._topics.get(topic)
            return e is not None and not e.fallback

    def partitions(self, topic: str) -> int | None:
        """The topic's number of partitions as cached; None when not known."""
        with self._lock:
            e = self._topics.get(topic)
            return len(e.info.partitions) if e is not None and e.info is not None else None

    def route(self, key: PartKey) -> PartRoute | None:
        with self._lock:
            e = self._topics.get(key[0])
            if e is None:
                return None
            hinted = e.leaders.get(key[1])
            if e.info is None or key[1] >= len(e.info.partitions):
                return PartRoute(hinted) if hinted else None
            p = e.info.partitions[key[1]]
            return PartRoute(hinted if key[1] in e.leaders else p.leader, tuple(r.rpc_addr for r in p.replicas))


class Sticky:
    """Each topic's sticky partition for keyless records (Kafka's KIP-480): chosen at random, kept
    until a batch is sent to it, then another one chosen. Thread-safe."""

    def __init__(self) -> None:
        self._partitions: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, topic: str, n: int) -> int:
        with self._lock:
            p = self._partitions.get(topic)
            if p is None or p >= n:
                p = self._partitions[topic] = random.randrange(n)
            return p

    def sent(self, key: PartKey, n: int | None) -> None:
        """A batch went to ``key``: if it is its topic's sticky partition, choose another."""
        with self._lock:
            if n is not None and n > 1 and self._partitions.get(key[0]) == key[1]:
                p = random.randrange(n - 1)
                self._partitions[key[0]] = p + 1 if p >= key[1] else p


def partition_count(cache: MetadataCache, topic: str) -> int:
    """The topic's partitions from fetched metadata: 1 for the default topic of servers that give
    no metadata; UnavailableError for another topic of such servers."""
    n = cache.partitions(topic)
    if n is not None:
        return n
    if topic == DEFAULT_TOPIC:
        return 1
    raise UnavailableError(f'the servers give no metadata of topic "{topic}" (older servers, or no "describe" permission)', None)


def metadata_fetched(cache: MetadataCache, topic: str, infos: list[TopicInfo], leader: str | None) -> None:
    """Stores a GetMetadata answer for topic; raises UnknownTopicError if it does not list it."""
    info = next((i for i in infos if i.name == topic), None)
    if info is None:
        if cache.lagging(topic):
            return
        cache.forget(topic)
        raise UnknownTopicError(f'topic "{topic}" does not exist', grpc.StatusCode.NOT_FOUND, topic)
    cache.store(topic, info, leader)


def metadata_failed(cache: MetadataCache, topic: str, err: ProglogError) -> None:
    """Handles a failed GetMetadata for topic: servers that give no metadata (older servers, an
    ACL without "describe") leave it routed by the servers' roles; any other error is raised (an
    unknown topic is forgotten first, so that it is asked again on next use)."""
    if isinstance(err, UnknownTopicError):
        if cache.lagging(topic):
            return
        cache.forget(topic)
        raise err
    if err.code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED):
        cache.unanswered(topic)
        raise err
    log.debug("no topic metadata for %s (%s): routing by the servers' roles", topic, err)
    cache.store(topic, None)


def discovery_refused(err: ProglogError) -> bool:
    """A refusal of GetServers that every server would repeat: route to the seeds instead."""
    return err.code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED)


class Attempts:
    """The retry policy of one call: whether, when and where to retry after each failure.

    Retried: NOT_LEADER (moved to the named leader at once), UNAVAILABLE (servers down or shutting
    down, no leader), and for a follower read an OUT_OF_RANGE past a lagging follower's end (asked
    again of the leader). A produce that failed with UNAVAILABLE after it may have reached a server
    may have been written: those retries are bounded by produce_retries (the cluster answers an
    idempotent one with the original offsets; without idempotence it may write the records twice);
    one that never reached a server (no connection) is always retried. With retries None,
    the caller's deadline is the only bound (and a following stream, which has none, retries until
    it is closed).
    """

    def __init__(
        self,
        settings: Settings,
        router: Router,
        op: Op,
        key: PartKey | None = None,
        cache: MetadataCache | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.op = op
        self.key = key
        self.cache = cache
        routes: dict[str, Route] = {"produce": "leader", "read": "follower", "stream": "follower", "servers": "any", "bounds": "leader", "admin": "leader"}
        self.route: Route = routes[op]
        if op == "read" and settings.consistency == "linearizable":
            self.route = "leader"
        self.retries = 0
        self.ambiguous = 0
        self.to_leader = False
        self.not_found = False  # an unknown topic or partition was retried once
        self.admin_leader: str | None = None  # op "admin": the metadata leader a NOT_LEADER named

    def part(self) -> PartRoute | None:
        """Where the next attempt goes: the partition's route (None: by the servers' roles), or
        for an admin call the metadata leader."""
        if self.op == "admin":
            leader = self.admin_leader or (self.cache.meta_leader if self.cache else None)
            return PartRoute(leader) if leader else None
        if self.key is not None and self.cache is not None:
            return self.cache.route(self.key)
        return None

    def progress(self) -> None:
        """A stream received a record: its retry budget starts again."""
        self.retries = 0

    def on_error(self, err: ProglogError, role: str | None) -> float | None:
        """Returns the delay before the next attempt, or None when err is final."""
        immediate = False
        if isinstance(err, NotLeaderError):
            if self.op == "admin":
                self.admin_leader = err.leader_addr or None
                if self.cache is not None and err.leader_addr:
                    self.cache.meta_leader = err.leader_addr  # the next admin calls go there first
            elif self.key is not None and self.cache is not None and self.cache.routed(self.key[0]):
                # The partition's leader, not the cluster's: only this partition's route changes.
                self.cache.hint(self.key, err.leader_addr)
            else:
                self.router.hint(err.leader_addr)
            if self.op in ("read", "stream"):
                self.route = "leader"
            immediate = bool(err.leader_addr) and self.retries == 0
        elif (
            isinstance(err, (UnknownTopicError, UnknownPartitionError))
            and self.key is not None
            and self.cache
            and (not self.not_found or self.cache.knows(self.key))
        ):
            # The metadata may lag a topic just created or changed: refresh it, try once more; and
            # again while the cache has the partition (a server whose copy of the metadata lags;
            # the cache drops a topic two fetches find unknown).
            self.not_found = True
            self.cache.invalidate(self.key[0])
        elif isinstance(err, UnavailableError):
            self.router.invalidate()
            if self.op == "admin" and role is not None:
                # The metadata leader it went to is down or stepping down: ask the others
                # (by the servers' roles), which answer NOT_LEADER naming the new one.
                self.admin_leader = None
                if self.cache is not None:
                    self.cache.meta_leader = None
            if self.key is not None and self.cache is not None:
                self.cache.invalidate(self.key[0])
            if self.op == "produce" and role is not None and not never_sent(err):
                limit = self.settings.retries if self.settings.produce_retries is None else self.settings.produce_retries
                if limit is not None and self.ambiguous >= limit:
                    log.debug("%s: not retried (produce_retries=%d): %s", self.op, limit, err)
                    return None
                self.ambiguous += 1
        elif isinstance(err, OffsetOutOfRangeError) and self.op == "read" and role == "follower" and not self.to_leader and err.offset >= err.next:
            self.to_leader, self.route = True, "leader"
            return 0.0
        else:
            return None
        if self.settings.retries is not None and self.retries >= self.settings.retries:
            log.debug("%s: retries (%d) ran out: %s", self.op, self.settings.retries, err)
            return None
        self.retries += 1
        delay = 0.0
        if not immediate:
            low, high = self.settings.backoff
            delay = min(low * 2.0 ** min(self.retries - 1, 64), high)
            delay = delay / 2 + random.uniform(0, delay / 2)
        log.debug("%s: retry %d in %.3fs after %s", self.op, self.retries, delay, err)
        return delay


def deadline(timeout: float | None) -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive or None, not {timeout}")
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline_at: float | None) -> float | None:
    return None if deadline_at is None else deadline_at - time.monotonic()


def discovery_timeout(deadline_at: float | None) -> float:
    """The timeout of one GetServers of a discovery for a call that ends at deadline_at."""
    left = remaining(deadline_at)
    return DISCOVERY_TIMEOUT if left is None else max(min(DISCOVERY_TIMEOUT, left), 0.001)


def no_server(route: Route) -> UnavailableError:
    what = "leader" if route == "leader" else "server"
    return UnavailableError(f"no {what} is known (an election, or no server answered)", grpc.StatusCode.UNAVAILABLE)
