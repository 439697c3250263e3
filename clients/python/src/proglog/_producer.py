"""Idempotent producers, shared by both clients (see log.v1's Producer message).

A producer is a random non-zero 64-bit ID and the sequence number of its next record. It has at
most one request in flight: a request takes an idle producer from the client's pool (a new one if
none is idle) and gives it back when it is resolved, so the batching sender and each concurrent
``produce_batch`` call are producers of their own. A request's sequence is assigned when it is
first sent and kept across its retries, so the cluster answers a retry of a request it already
wrote with the original offsets instead of writing it again. Once a request succeeds the producer
moves past its records; once it fails, the producer starts over under a new ID at sequence 0,
since whether the records were written is not known.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from proglog._core import log, never_sent
from proglog._proto.log.v1 import log_pb2
from proglog.errors import (
    InvalidArgumentError,
    LowDiskSpaceError,
    NotLeaderError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ProglogError,
    RecordTooLargeError,
    TooManyProducersError,
    UnauthenticatedError,
    UnknownProducerError,
)

# Answers proving the request was not written (the server refused it before appending).
_REFUSED = (
    NotLeaderError,
    InvalidArgumentError,
    RecordTooLargeError,
    LowDiskSpaceError,
    PermissionDeniedError,
    UnauthenticatedError,
    OutOfOrderSequenceError,
    UnknownProducerError,
    TooManyProducersError,
)


def _new_id() -> int:
    while True:
        if producer_id := secrets.randbits(64):  # 0 means "not idempotent"
            return producer_id


class Producer:
    """One producer: its ID and the sequence of its next record."""

    def __init__(self) -> None:
        self.id = _new_id()
        self.next = 0

    def restart(self) -> None:
        self.id, self.next = _new_id(), 0


class Request:
    """The idempotence of one produce request over its attempts: the producer and sequence it
    carries, and whether an attempt may have written it."""

    def __init__(self, producer: Producer, count: int) -> None:
        self.producer = producer
        self.count = count
        self.sequence: int | None = None
        self.maybe_written = False

    def field(self) -> log_pb2.Producer:
        """The request's Producer field for the next attempt; the first assigns the sequence."""
        if self.sequence is None:
            self.sequence = self.producer.next
        return log_pb2.Producer(id=self.producer.id, sequence=self.sequence)

    def after(self, err: ProglogError, sent: bool) -> ProglogError | None:
        """Called after a failed attempt (``sent``: it may have reached a server). Returns None to
        send the request again at once, as a new producer: the cluster forgot the producer
        (UNKNOWN_PRODUCER) and no attempt can have written the request. Otherwise returns the
        error to go on with: an UnknownProducerError after an attempt that may have written it
        says so."""
        if isinstance(err, UnknownProducerError):
            if not self.maybe_written:
                log.debug("producer %d unknown to the cluster (%s): sending as a new producer", self.producer.id, err.message)
                self.producer.restart()
                self.sequence = None
                return None
            # Not err.message: its "nothing was written" holds for the refused attempt only.
            return UnknownProducerError(
                f"the cluster forgot producer {self.producer.id} (expired or evicted) while a request that "
                f"had failed ambiguously was retried: its {self.count} record(s) may or may not have been written "
                "(the last attempt was refused as UNKNOWN_PRODUCER); read the log to find out",
                err.code,
                self.producer.id,
                self.sequence or 0,
            )
        if sent and not never_sent(err) and not isinstance(err, _REFUSED):
            self.maybe_written = True
        return err


class Producers:
    """The client's idle producers (all of them are idempotent, or None when idempotence is off).
    Thread-safe; never blocks, so the asyncio client uses it from its loop."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._idle: list[Producer] = []
        self._lock = threading.Lock()

    @contextmanager
    def request(self, count: int) -> Iterator[Request | None]:
        """A request of ``count`` records by an idle producer, given back when the block ends: moved
        past the records if the block returned, started over if it raised. None when off."""
        if not self.enabled:
            yield None
            return
        with self._lock:
            producer = self._idle.pop() if self._idle else Producer()
        req = Request(producer, count)
        try:
            yield req
        except BaseException:
            producer.restart()
            raise
        else:
            if req.sequence is not None:
                producer.next = req.sequence + count
        finally:
            with self._lock:
                self._idle.append(producer)


def answered(duplicate: bool, req: Request | None) -> None:
    """Logs an answer the cluster gave from the producer's earlier write of the request."""
    if duplicate and req is not None:
        log.debug("producer %#x: sequence %d was already written; its original offsets are returned", req.producer.id, req.sequence or 0)
