"""oci_push_rule: push an oci_image to a registry with `bazel run` (registry v2 HTTP API)."""

load(":runfiles.bzl", "FIND_RUNFILES", "rlocation_path")

def _oci_push_impl(ctx):
    if ctx.attr.repository and ctx.file.repository_file:
        fail("%s: give repository or repository_file, not both" % ctx.label)
    launcher = ctx.actions.declare_file(ctx.label.name + ".sh")
    fixed = []
    if ctx.attr.repository:
        fixed += ["--repository", ctx.attr.repository]
    files = [ctx.file.image, ctx.file._push_py]
    lines = []
    if ctx.file.repository_file:
        files.append(ctx.file.repository_file)
        lines.append('args+=(--repository "$(<"$runfiles/%s")")' % rlocation_path(ctx, ctx.file.repository_file))
    if ctx.file.remote_tags:
        files.append(ctx.file.remote_tags)
        lines.append('args+=(--tags-file "$runfiles/%s")' % rlocation_path(ctx, ctx.file.remote_tags))
    for t in ctx.attr.remote_tags_list:
        fixed += ["--tag", t]
    ctx.actions.write(launcher, is_executable = True, content = """\
#!/usr/bin/env bash
# `bazel run` of {label} [-- --repository HOST/REPO] [--tag TAG]...: push the image.
set -euo pipefail
{find_runfiles}
args=(--layout "$runfiles/{layout}" {fixed})
{lines}
exec python3 "$runfiles/{push_py}" "${{args[@]}}" "$@"
""".format(
        label = "%s//%s:%s" % ("@" + ctx.label.repo_name if ctx.label.repo_name else "", ctx.label.package, ctx.label.name),
        find_runfiles = FIND_RUNFILES,
        layout = rlocation_path(ctx, ctx.file.image),
        push_py = rlocation_path(ctx, ctx.file._push_py),
        fixed = " ".join(["'%s'" % a.replace("'", "'\\''") for a in fixed]),
        lines = "\n".join(lines),
    ))
    return [DefaultInfo(files = depset([launcher]), executable = launcher, runfiles = ctx.runfiles(files))]

oci_push_rule = rule(
    implementation = _oci_push_impl,
    executable = True,
    doc = """Pushes an oci_image by digest, then tags it, with `bazel run`.

Flags after `--`: `-r|--repository HOST/REPO` (overrides `repository`), `-t|--tag TAG`
(repeatable, adds to `remote_tags`), `--insecure` (plain HTTP; the default for localhost).""",
    attrs = {
        "image": attr.label(mandatory = True, allow_single_file = True, doc = "An oci_image."),
        "remote_tags": attr.label(allow_single_file = True, doc = "File of tags, one per line."),
        "remote_tags_list": attr.string_list(),
        "repository": attr.string(doc = "HOST[:PORT]/PATH, without tag or digest."),
        "repository_file": attr.label(allow_single_file = True),
        "_push_py": attr.label(default = "//oci/private:push.py", allow_single_file = True),
    },
)
