#!/usr/bin/env bash
# Fails when a BUILD, .bzl or MODULE file of the workspace is not formatted by buildifier or has
# lint warnings. Fix with: bazel run //tools/lint:buildifier.
#
# Runs unsandboxed against the real source tree (found through the MODULE.bazel runfile symlink),
# so it sees every Starlark file, including ones no target depends on.
set -euo pipefail
buildifier="$(readlink -f "$1")"
workspace="$(dirname "$(readlink -f "$2")")"
cd "$workspace"
mapfile -t files < <(git ls-files --cached --others --exclude-standard \
  'BUILD' 'BUILD.bazel' '*/BUILD' '*/BUILD.bazel' '*.bzl' 'MODULE.bazel' '*.MODULE.bazel' 2>/dev/null ||
  find . \( -name BUILD -o -name BUILD.bazel -o -name '*.bzl' -o -name '*.MODULE.bazel' -o -name MODULE.bazel \) \
    -not -path './bazel-*' -printf '%P\n')
"$buildifier" -mode=check -lint=warn "${files[@]}"
echo "buildifier: ${#files[@]} files formatted and lint-clean"
