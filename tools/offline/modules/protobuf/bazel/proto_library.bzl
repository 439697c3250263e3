"""Bazel 7 built-in proto_library, re-exported where protobuf >= 27 keeps it."""

def proto_library(**kwargs):
    native.proto_library(**kwargs)
