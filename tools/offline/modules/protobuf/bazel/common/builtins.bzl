"""Bazel 7's built-in proto symbols under names that do not shadow them."""

BUILTIN_PROTO_INFO = ProtoInfo
BUILTIN_PROTO_COMMON = proto_common_do_not_use
