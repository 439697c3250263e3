"""The mapping of gRPC statuses with proglog's ErrorInfo details to typed errors."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

import proglog
from proglog.errors import from_status


def _details(reason: str, metadata: dict[str, str]) -> list[tuple[str, bytes]]:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="proglog", metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], details=[detail])
    return [("grpc-status-details-bin", status.SerializeToString())]


def test_low_disk_space_is_not_record_too_large() -> None:
    err = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "the server's disk is nearly full",
                      _details("LOW_DISK_SPACE", {"free": "10", "required": "300"}))
    assert isinstance(err, proglog.LowDiskSpaceError)
    assert not isinstance(err, proglog.RecordTooLargeError)
    assert (err.free, err.required, err.code) == (10, 300, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_record_too_large_keeps_its_details() -> None:
    err = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too large",
                      _details("RECORD_TOO_LARGE", {"size": "2000", "limit": "1024", "index": "1"}))
    assert isinstance(err, proglog.RecordTooLargeError)
    assert (err.size, err.limit, err.index) == (2000, 1024, 1)


def test_message_over_grpc_limit_reports_sizes() -> None:
    err = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "grpc: received message larger than max (5242890 vs. 4194304)", None)
    assert isinstance(err, proglog.RecordTooLargeError)
    assert (err.size, err.limit, err.index) == (5242890, 4194304, -1)


def test_idempotent_producer_refusals() -> None:
    err = from_status(grpc.StatusCode.FAILED_PRECONDITION, "out of order",
                      _details("OUT_OF_ORDER_SEQUENCE", {"producer_id": "18446744073709551615", "sequence": "9", "expected": "4"}))
    assert isinstance(err, proglog.OutOfOrderSequenceError) and not isinstance(err, proglog.NotLeaderError)
    assert (err.producer_id, err.sequence, err.expected) == (2**64 - 1, 9, 4)
    err = from_status(grpc.StatusCode.FAILED_PRECONDITION, "unknown producer",
                      _details("UNKNOWN_PRODUCER", {"producer_id": "42", "sequence": "3"}))
    assert isinstance(err, proglog.UnknownProducerError) and isinstance(err, proglog.ProglogError)
    assert (err.producer_id, err.sequence) == (42, 3)


def test_too_many_producers_is_its_own_error() -> None:
    err = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many producers",
                      _details("TOO_MANY_PRODUCERS", {"producer_id": "18446744073709551615", "limit": "1"}))
    assert isinstance(err, proglog.TooManyProducersError)
    assert not isinstance(err, (proglog.RecordTooLargeError, proglog.LowDiskSpaceError))
    assert (err.producer_id, err.limit, err.code) == (2**64 - 1, 1, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_no_leader_names_the_unreachable_replicas() -> None:
    err = from_status(grpc.StatusCode.UNAVAILABLE, "partition log/0 has no leader: 2 of its 3 replicas are unreachable",
                      _details("NO_LEADER", {"topic": "log", "partition": "0", "replicas": "3", "unreachable": "n1,n2"}))
    assert isinstance(err, proglog.NoLeaderError) and isinstance(err, proglog.UnavailableError)
    assert (err.topic, err.partition, err.replicas, err.unreachable, err.quorum_lost) == ("log", 0, 3, ("n1", "n2"), True)
    election = from_status(grpc.StatusCode.UNAVAILABLE, "no leader yet",
                           _details("NO_LEADER", {"topic": "log", "partition": "0", "replicas": "3", "unreachable": ""}))
    assert isinstance(election, proglog.NoLeaderError) and election.unreachable == () and not election.quorum_lost
