"""Bazel 7 built-in proto_common, re-exported where protobuf >= 27 keeps it."""

load(":builtins.bzl", "BUILTIN_PROTO_COMMON")

proto_common = BUILTIN_PROTO_COMMON
