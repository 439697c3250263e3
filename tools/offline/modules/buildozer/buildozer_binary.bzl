"""`buildozer_binary` extension: @buildozer_binary//:buildozer.exe, as `bazel mod tidy` expects.

The real module downloads a prebuilt binary; offline, the script builds buildozer from the Go
module proxy with the Go toolchain on PATH (cached by Go after the first run).
"""

# Same buildtools version as the repository's go.mod (buildifier).
BUILDTOOLS_VERSION = "v0.0.0-20250930140053-2eb4fccefb52"

_SCRIPT = """#!/bin/sh
set -e
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOPATH="${{GOPATH:-${{HOME:-/tmp}}/go}}"
export GOCACHE="${{GOCACHE:-$GOPATH/cache}}"
# go install, not go run: `go run` turns buildozer's exit code 3 ("no changes") into 1.
bin="$GOPATH/proglog-buildozer/{version}"
if [ ! -x "$bin/buildozer" ]; then
  GOBIN="$bin" go install github.com/bazelbuild/buildtools/buildozer@{version}
fi
exec "$bin/buildozer" "$@"
"""

def _buildozer_repo_impl(rctx):
    rctx.file("buildozer.exe", _SCRIPT.format(version = BUILDTOOLS_VERSION), executable = True)
    rctx.file("BUILD.bazel", 'exports_files(["buildozer.exe"])\n')

_buildozer_repo = repository_rule(implementation = _buildozer_repo_impl)

def _buildozer_binary_impl(_mctx):
    _buildozer_repo(name = "buildozer_binary")

buildozer_binary = module_extension(
    implementation = _buildozer_binary_impl,
    tag_classes = {"buildozer": tag_class(attrs = {"version": attr.string(), "sha256": attr.string_dict()})},
)
