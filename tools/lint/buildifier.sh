#!/usr/bin/env bash
# buildifier.sh check|fix BUILDIFIER [MODULE.bazel runfile]
#
# check (//tools/lint:buildifier_test): fails when a BUILD, .bzl or MODULE file of the workspace is
#   not formatted by buildifier or has lint warnings. Runs unsandboxed against the real source tree
#   (found through the MODULE.bazel runfile symlink), so it sees every Starlark file, including ones
#   no target depends on.
# fix (bazel run //tools/lint:buildifier): formats and fixes lint in place.
set -euo pipefail
mode="$1"
buildifier="$(readlink -f "$2")"
case "$mode" in
check) cd "$(dirname "$(readlink -f "$3")")" ;;
fix) cd "${BUILD_WORKSPACE_DIRECTORY:?run with bazel run}" ;;
*) echo "usage: $0 check|fix BUILDIFIER [MODULE.bazel]" >&2; exit 2 ;;
esac
mapfile -t files < <(git ls-files --cached --others --exclude-standard \
  'BUILD' 'BUILD.bazel' '*/BUILD' '*/BUILD.bazel' '*.bzl' 'MODULE.bazel' '*.MODULE.bazel' 2>/dev/null ||
  find . \( -name BUILD -o -name BUILD.bazel -o -name '*.bzl' -o -name '*.MODULE.bazel' -o -name MODULE.bazel \) \
    -not -path './bazel-*' -printf '%P\n')
if [[ "$mode" == fix ]]; then
  "$buildifier" -lint=fix "${files[@]}"
else
  "$buildifier" -mode=check -lint=warn "${files[@]}"
  echo "buildifier: ${#files[@]} files formatted and lint-clean"
fi
