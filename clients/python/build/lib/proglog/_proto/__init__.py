"""Generated protobuf and gRPC modules (see tools/python/grpc_codegen.py)."""
