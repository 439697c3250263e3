"""Bazel 7 built-in ProtoLangToolchainInfo, re-exported where protobuf >= 27 keeps it."""

load(":builtins.bzl", "BUILTIN_PROTO_COMMON")

ProtoLangToolchainInfo = BUILTIN_PROTO_COMMON.ProtoLangToolchainInfo
