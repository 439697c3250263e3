"""Public API of the offline rules_oci: oci_image, oci_load, oci_push (see ../README.md).

The macros take the same arguments as rules_oci 2.x's for images without a base: list- and
dict-valued arguments may be given inline or as a label of a file, like upstream.
"""

load("//oci/private:image.bzl", _oci_image_rule = "oci_image_rule")
load("//oci/private:load.bzl", _oci_load_rule = "oci_load_rule")
load("//oci/private:push.bzl", _oci_push_rule = "oci_push_rule")

oci_image_rule = _oci_image_rule
oci_load_rule = _oci_load_rule
oci_push_rule = _oci_push_rule

def _split(kwargs, name, value, kind):
    """Routes `value` to the rule's `name` (a label of a file) or `name_<kind>` (inline)."""
    if value == None:
        return
    if type(value) == kind:
        kwargs[name + "_" + kind] = value
    elif type(value) == "string" or type(value) == "Label":
        kwargs[name] = value
    else:
        fail("%s must be a %s or a label, got %s" % (name, kind, type(value)))

def oci_image(
        name,
        labels = None,
        annotations = None,
        env = None,
        cmd = None,
        entrypoint = None,
        exposed_ports = None,
        volumes = None,
        **kwargs):
    """An OCI image layout `name/` and `name.digest` (a file holding `sha256:...` of its manifest).

    Args:
        name: target name; the layout directory is `name/`.
        labels: dict or label of a file of name=value lines: the config's Labels.
        annotations: dict or label of such a file: the manifest's annotations.
        env: dict or label of a file of NAME=value lines.
        cmd: list or label of a file with a comma-separated list.
        entrypoint: list or label of a file with a comma-separated list.
        exposed_ports: list (`8400/tcp`, `53/udp`, `80`) or label of a comma-separated file.
        volumes: list or label of a comma-separated file.
        **kwargs: os, architecture, variant, tars, user, workdir and common attributes.
    """
    _split(kwargs, "labels", labels, "dict")
    _split(kwargs, "annotations", annotations, "dict")
    _split(kwargs, "env", env, "dict")
    _split(kwargs, "cmd", cmd, "list")
    _split(kwargs, "entrypoint", entrypoint, "list")
    _split(kwargs, "exposed_ports", exposed_ports, "list")
    _split(kwargs, "volumes", volumes, "list")
    _oci_image_rule(name = name, **kwargs)
    native.filegroup(
        name = name + ".digest",
        srcs = [name],
        output_group = "digest",
        tags = kwargs.get("tags"),
        testonly = kwargs.get("testonly"),
        visibility = kwargs.get("visibility"),
    )

def oci_load(name, repo_tags = None, **kwargs):
    """`bazel run :name` loads the image into docker/podman; output group `tarball` is the tarball.

    Args:
        name: target name.
        repo_tags: list of `repository:tag`, or label of a file with one per line.
        **kwargs: image, format, loader and common attributes.
    """
    _split(kwargs, "repo_tags", repo_tags, "list")
    _oci_load_rule(name = name, **kwargs)

def oci_push(name, remote_tags = None, **kwargs):
    """`bazel run :name [-- --repository HOST/REPO] [--tag T]` pushes the image.

    Args:
        name: target name.
        remote_tags: list of tags, or label of a file with one per line.
        **kwargs: image, repository, repository_file and common attributes.
    """
    _split(kwargs, "remote_tags", remote_tags, "list")
    _oci_push_rule(name = name, **kwargs)
