"""proglog: Python client for the proglog replicated commit log.

The generated protobuf and gRPC modules live in `proglog._proto.log.v1`.
"""

__version__ = "0.1.0"
