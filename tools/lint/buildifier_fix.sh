#!/usr/bin/env bash
# bazel run //tools/lint:buildifier — format and fix lint in every Starlark file of the workspace.
set -euo pipefail
buildifier="$(readlink -f "$1")"
cd "${BUILD_WORKSPACE_DIRECTORY:?run with bazel run}"
git ls-files --cached --others --exclude-standard \
  'BUILD' 'BUILD.bazel' '*/BUILD' '*/BUILD.bazel' '*.bzl' 'MODULE.bazel' '*.MODULE.bazel' |
  xargs "$buildifier" -lint=fix
