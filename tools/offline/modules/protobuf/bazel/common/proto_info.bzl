"""Bazel 7 built-in ProtoInfo, re-exported where protobuf >= 27 keeps it."""

load(":builtins.bzl", "BUILTIN_PROTO_INFO")

ProtoInfo = BUILTIN_PROTO_INFO
