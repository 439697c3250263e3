"""The generated log.v1 modules import, round-trip records and serve real gRPC calls."""

import unittest
from concurrent import futures

import grpc
from google.protobuf import timestamp_pb2

from proglog._proto.log.v1 import log_pb2, log_pb2_grpc


class _MemoryLog(log_pb2_grpc.LogServicer):
    """A minimal servicer: enough to prove the generated stubs and servicer interoperate."""

    def __init__(self) -> None:
        self.records: list[log_pb2.Record] = []

    def Produce(self, request, context):
        record = log_pb2.Record()
        record.CopyFrom(request.record)
        record.offset = len(self.records)
        self.records.append(record)
        return log_pb2.ProduceResponse(offset=record.offset)

    def Consume(self, request, context):
        if request.offset >= len(self.records):
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"offset {request.offset} out of range")
        return log_pb2.ConsumeResponse(record=self.records[request.offset])


class GeneratedCodeTest(unittest.TestCase):
    def test_record_round_trips_through_bytes(self) -> None:
        record = log_pb2.Record(
            value=b"hello",
            key=b"k",
            headers=[log_pb2.Header(key="trace", value=b"1")],
            timestamp=timestamp_pb2.Timestamp(seconds=42),
        )
        decoded = log_pb2.Record.FromString(record.SerializeToString())
        self.assertEqual(decoded, record)
        self.assertEqual(decoded.headers[0].key, "trace")

    def test_service_descriptor_lists_the_api(self) -> None:
        methods = {m.name for m in log_pb2.DESCRIPTOR.services_by_name["Log"].methods}
        self.assertTrue({"Produce", "Consume", "ProduceStream", "ConsumeStream", "GetServers"} <= methods)

    def test_stub_and_servicer_over_grpc(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        log_pb2_grpc.add_LogServicer_to_server(_MemoryLog(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = log_pb2_grpc.LogStub(channel)
                for i, value in enumerate([b"a", b"b"]):
                    got = stub.Produce(log_pb2.ProduceRequest(record=log_pb2.Record(value=value)))
                    self.assertEqual(got.offset, i)
                self.assertEqual(stub.Consume(log_pb2.ConsumeRequest(offset=1)).record.value, b"b")
                with self.assertRaises(grpc.RpcError) as caught:
                    stub.Consume(log_pb2.ConsumeRequest(offset=7))
                self.assertEqual(caught.exception.code(), grpc.StatusCode.OUT_OF_RANGE)
        finally:
            server.stop(grace=None)


if __name__ == "__main__":
    unittest.main()
