"""Bazel 7's built-in proto symbols under names that do not shadow them."""

# This file IS the place that reads the built-in; loading it from @protobuf would be a cycle.
BUILTIN_PROTO_INFO = ProtoInfo  # buildifier: disable=native-proto-info
BUILTIN_PROTO_COMMON = proto_common_do_not_use
