"""Bazel 7 built-in proto_library, re-exported where protobuf >= 27 keeps it."""

def proto_library(**kwargs):
    """Bazel 7's native proto_library."""
    native.proto_library(**kwargs)  # buildifier: disable=native-proto
