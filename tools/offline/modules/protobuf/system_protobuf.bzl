"""A repository exposing the build machine's protoc and its well-known .proto files."""

WELL_KNOWN_TYPES = [
    "any",
    "api",
    "descriptor",
    "duration",
    "empty",
    "field_mask",
    "source_context",
    "struct",
    "timestamp",
    "type",
    "wrappers",
]

# proto_library deps between the well-known types (import graph of google/protobuf/*.proto).
_WKT_DEPS = {
    "api": ["source_context", "type"],
    "type": ["any", "source_context"],
}

def _system_protobuf_impl(rctx):
    protoc = rctx.which("protoc")
    if not protoc:
        fail("offline protobuf: no protoc on PATH (Debian package protobuf-compiler)")
    include = None
    for candidate in ["/usr/include", "/usr/local/include"]:
        if rctx.path(candidate + "/google/protobuf/timestamp.proto").exists:
            include = candidate
            break
    if not include:
        fail("offline protobuf: google/protobuf/*.proto not found (Debian package libprotobuf-dev)")
    rctx.symlink(protoc, "protoc")
    for wkt in WELL_KNOWN_TYPES:
        rctx.symlink("%s/google/protobuf/%s.proto" % (include, wkt), "google/protobuf/%s.proto" % wkt)
    rules = [
        """proto_library(
    name = "{name}_proto",
    srcs = ["google/protobuf/{name}.proto"],
    deps = [{deps}],
)
""".format(name = wkt, deps = ", ".join(['":%s_proto"' % d for d in _WKT_DEPS.get(wkt, [])]))
        for wkt in WELL_KNOWN_TYPES
    ]
    rctx.file("BUILD.bazel", """\
load("@rules_proto//proto:defs.bzl", "proto_library")

package(default_visibility = ["//visibility:public"])

exports_files(["protoc"])

""" + "\n".join(rules))

_system_protobuf = repository_rule(
    implementation = _system_protobuf_impl,
    local = True,
    environ = ["PATH"],
)

def _extension_impl(_mctx):
    _system_protobuf(name = "system_protobuf")

system_protobuf = module_extension(implementation = _extension_impl)
