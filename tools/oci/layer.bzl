"""layer_tar: a reproducible tar file to use as a container image layer.

Used by the images in this repository with either rules_oci (online: the real one from the Bazel
Central Registry; offline: tools/offline/modules/rules_oci), whose `oci_image(tars = [...])` takes
any tar. Built by //tools/oci/layertar: mtime 0, numeric owners, no user/group names, sorted
entries, parents added, optional gzip with an empty header. The same inputs give the same bytes.

    layer_tar(
        name = "layer",
        files = {":proglog_static": "/proglog"},
        directories = ["/data"],
        directory_owner = "65532:65532",
    )
"""

def _layer_tar_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + (".tar.gz" if ctx.attr.compress == "gzip" else ".tar"))
    args = ctx.actions.args()
    args.add("-out", out)
    if ctx.attr.compress == "gzip":
        args.add("-gzip")
    uid, gid = ctx.attr.file_owner.split(":")
    inputs = []
    for target, dest in ctx.attr.files.items():
        srcs = target[DefaultInfo].files.to_list()
        if len(srcs) != 1:
            fail("%s: %s must provide exactly one file, got %d" % (ctx.label, target.label, len(srcs)))
        inputs.append(srcs[0])
        args.add("-file", "%s=%s:%s:%s:%s" % (dest, srcs[0].path, ctx.attr.file_mode, uid, gid))
    duid, dgid = ctx.attr.directory_owner.split(":")
    for d in ctx.attr.directories:
        args.add("-dir", "%s:%s:%s:%s" % (d, ctx.attr.directory_mode, duid, dgid))
    ctx.actions.run(
        executable = ctx.executable._layertar,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "LayerTar",
        progress_message = "Writing image layer %{output}",
    )
    return [DefaultInfo(files = depset([out]))]

layer_tar = rule(
    implementation = _layer_tar_impl,
    doc = "A reproducible tar (optionally gzipped) holding the given files and directories.",
    attrs = {
        "compress": attr.string(
            default = "gzip",
            values = ["gzip", "none"],
            doc = "gzip (output NAME.tar.gz) or none (NAME.tar).",
        ),
        "directories": attr.string_list(doc = "Absolute paths of (empty) directories to create."),
        "directory_mode": attr.string(default = "0755", doc = "Octal mode of `directories`."),
        "directory_owner": attr.string(default = "0:0", doc = "UID:GID of `directories`."),
        "file_mode": attr.string(default = "0755", doc = "Octal mode of every file in `files`."),
        "file_owner": attr.string(default = "0:0", doc = "UID:GID of every file in `files`."),
        "files": attr.label_keyed_string_dict(
            allow_files = True,
            doc = "Target (one file each) -> absolute path in the layer.",
        ),
        "_layertar": attr.label(
            default = "//tools/oci/layertar",
            executable = True,
            cfg = "exec",
        ),
    },
)
