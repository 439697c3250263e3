"""Helpers for the `bazel run` launchers of oci_load and oci_push."""

def rlocation_path(ctx, file):
    """The runfiles path of `file` (`_main/pkg/f` or `other_repo/pkg/f`)."""
    if file.short_path.startswith("../"):
        return file.short_path[3:]
    return ctx.workspace_name + "/" + file.short_path

# Bash that sets $runfiles to the runfiles root of the launcher: next to it under `bazel run`, or
# the caller's (RUNFILES_DIR, TEST_SRCDIR) when another target runs it from its own runfiles.
FIND_RUNFILES = """\
if [[ -d "$0.runfiles" ]]; then
  runfiles="$0.runfiles"
elif [[ -n "${RUNFILES_DIR:-}" ]]; then
  runfiles="$RUNFILES_DIR"
elif [[ -n "${TEST_SRCDIR:-}" ]]; then
  runfiles="$TEST_SRCDIR"
else
  echo "$0: cannot find the runfiles directory" >&2
  exit 1
fi
"""
