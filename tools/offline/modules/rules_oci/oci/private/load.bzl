"""oci_load_rule: a docker-loadable tarball of an oci_image, and a `bazel run` loader."""

load(":runfiles.bzl", "FIND_RUNFILES", "rlocation_path")

def _oci_load_impl(ctx):
    if ctx.attr.format != "docker":
        fail("%s: this offline rules_oci supports format = \"docker\" only" % ctx.label)
    tarball = ctx.actions.declare_file(ctx.label.name + "/tarball.tar")
    args = ctx.actions.args()
    args.add("--layout", ctx.file.image.path)
    args.add("--out", tarball)
    inputs = [ctx.file.image]
    if ctx.file.repo_tags:
        args.add("--repo-tags-file", ctx.file.repo_tags)
        inputs.append(ctx.file.repo_tags)
    args.add_all(ctx.attr.repo_tags_list, before_each = "--repo-tag")
    ctx.actions.run(
        executable = ctx.executable._load_py,
        arguments = [args],
        inputs = inputs,
        outputs = [tarball],
        mnemonic = "OCITarball",
        progress_message = "OCI Tarball %{label}",
    )

    loader = ctx.executable.loader
    launcher = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(launcher, is_executable = True, content = """\
#!/usr/bin/env bash
# `bazel run` of {label}: load the image into docker or podman, or print where the tarball is.
set -euo pipefail
{find_runfiles}
tarball="$(readlink -f "$runfiles/{tarball}")"
loader="{loader}"
if [[ -n "$loader" ]]; then
  loader="$runfiles/$loader"
else
  loader="$(command -v docker || command -v podman || true)"
fi
if [[ -z "$loader" ]]; then
  echo "{label}: neither docker nor podman is on PATH; the image tarball is:" >&2
  echo "$tarball"
  exit 0
fi
if ! "$loader" load --input "$tarball" "$@"; then
  echo "{label}: '$loader load' failed; the image tarball is $tarball" >&2
  exit 1
fi
""".format(
        label = "%s//%s:%s" % ("@" + ctx.label.repo_name if ctx.label.repo_name else "", ctx.label.package, ctx.label.name),
        find_runfiles = FIND_RUNFILES,
        tarball = rlocation_path(ctx, tarball),
        loader = rlocation_path(ctx, loader) if loader else "",
    ))
    runfiles = ctx.runfiles([tarball] + ([loader] if loader else []))
    if ctx.attr.loader:
        runfiles = runfiles.merge(ctx.attr.loader[DefaultInfo].default_runfiles)
    return [
        DefaultInfo(files = depset([launcher]), executable = launcher, runfiles = runfiles),
        OutputGroupInfo(tarball = depset([tarball])),
    ]

oci_load_rule = rule(
    implementation = _oci_load_impl,
    executable = True,
    doc = """Loads an oci_image into docker or podman with `bazel run`.

`bazel build :load --output_groups=+tarball` builds the tarball (docker-archive format, also
holding the OCI layout's index.json) without loading it.""",
    attrs = {
        "format": attr.string(default = "docker", values = ["docker", "oci"]),
        "image": attr.label(mandatory = True, allow_single_file = True, doc = "An oci_image."),
        "loader": attr.label(executable = True, cfg = "target", doc = "Instead of docker/podman on PATH."),
        "repo_tags": attr.label(allow_single_file = True, doc = "File of repo:tag lines."),
        "repo_tags_list": attr.string_list(),
        "_load_py": attr.label(
            default = "//oci/private:load.py",
            allow_single_file = True,
            executable = True,
            cfg = "exec",
        ),
    },
)
