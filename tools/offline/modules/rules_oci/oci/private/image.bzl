"""oci_image_rule: an OCI image layout directory built from tar layers, without a base image."""

def _json_or_file(args, inputs, flag, value, file):
    """Passes `value` (JSON-encoded) or `file` (key=value / comma-separated text) to image.py."""
    if file:
        args.add("--%s-file" % flag, file)
        inputs.append(file)
    elif value:
        args.add("--%s-json" % flag, json.encode(value))

def _oci_image_impl(ctx):
    if ctx.attr.base:
        fail("%s: this offline rules_oci builds images without a base image only" % ctx.label)
    if not ctx.attr.os or not ctx.attr.architecture:
        fail("%s: 'os' and 'architecture' are mandatory when 'base' is unspecified." % ctx.label)

    layout = ctx.actions.declare_directory(ctx.label.name)
    digest = ctx.actions.declare_file(ctx.label.name + ".digest.txt")
    inputs = list(ctx.files.tars)
    args = ctx.actions.args()
    args.add("--out", layout.path)
    args.add("--digest-out", digest)
    args.add("--os", ctx.attr.os)
    args.add("--architecture", ctx.attr.architecture)
    if ctx.attr.variant:
        args.add("--variant", ctx.attr.variant)
    if ctx.attr.user:
        args.add("--user", ctx.attr.user)
    if ctx.attr.workdir:
        args.add("--workdir", ctx.attr.workdir)
    _json_or_file(args, inputs, "entrypoint", ctx.attr.entrypoint_list, ctx.file.entrypoint)
    _json_or_file(args, inputs, "cmd", ctx.attr.cmd_list, ctx.file.cmd)
    _json_or_file(args, inputs, "env", ctx.attr.env_dict, ctx.file.env)
    _json_or_file(args, inputs, "labels", ctx.attr.labels_dict, ctx.file.labels)
    _json_or_file(args, inputs, "annotations", ctx.attr.annotations_dict, ctx.file.annotations)
    _json_or_file(args, inputs, "exposed-ports", ctx.attr.exposed_ports_list, ctx.file.exposed_ports)
    _json_or_file(args, inputs, "volumes", ctx.attr.volumes_list, ctx.file.volumes)
    for t in ctx.files.tars:
        args.add("--layer", t)

    ctx.actions.run(
        executable = ctx.executable._image_py,
        arguments = [args],
        inputs = inputs,
        outputs = [layout, digest],
        mnemonic = "OCIImage",
        progress_message = "OCI Image %{label}",
    )
    return [
        DefaultInfo(files = depset([layout]), runfiles = ctx.runfiles([layout])),
        OutputGroupInfo(digest = depset([digest])),
    ]

_TAR_EXTENSIONS = [".tar", ".tgz", ".tar.gz"]

oci_image_rule = rule(
    implementation = _oci_image_impl,
    doc = "Builds an OCI image layout directory (oci-layout, index.json, blobs/sha256/...).",
    attrs = {
        "annotations": attr.label(allow_single_file = True, doc = "File of name=value lines."),
        "annotations_dict": attr.string_dict(),
        "architecture": attr.string(doc = "GOARCH-style CPU architecture, e.g. amd64."),
        "base": attr.label(doc = "Not supported offline; present so a misuse fails clearly."),
        "cmd": attr.label(allow_single_file = True, doc = "File with a comma-separated list."),
        "cmd_list": attr.string_list(),
        "entrypoint": attr.label(allow_single_file = True, doc = "File with a comma-separated list."),
        "entrypoint_list": attr.string_list(),
        "env": attr.label(allow_single_file = True, doc = "File of NAME=value lines."),
        "env_dict": attr.string_dict(),
        "exposed_ports": attr.label(allow_single_file = True, doc = "File with a comma-separated list."),
        "exposed_ports_list": attr.string_list(),
        "labels": attr.label(allow_single_file = True, doc = "File of name=value lines."),
        "labels_dict": attr.string_dict(),
        "os": attr.string(doc = "GOOS-style operating system, e.g. linux."),
        "tars": attr.label_list(allow_files = _TAR_EXTENSIONS, doc = "Layers, bottom first."),
        "user": attr.string(),
        "variant": attr.string(),
        "volumes": attr.label(allow_single_file = True, doc = "File with a comma-separated list."),
        "volumes_list": attr.string_list(),
        "workdir": attr.string(),
        "_image_py": attr.label(
            default = "//oci/private:image.py",
            allow_single_file = True,
            executable = True,
            cfg = "exec",
        ),
    },
)
