"""proglog_image: the static proglog binary, its layer and the OCI image (see BUILD.bazel)."""

load("@io_bazel_rules_go//go:def.bzl", "go_binary")
load("@rules_oci//oci:defs.bzl", "oci_image")
load("//tools/oci:layer.bzl", "layer_tar")

# The version the binary reports (--version) and the image is labelled with.
VERSION = "0.1.0"

# Unprivileged user and group (the "nonroot" ID of distroless images).
USER = "65532:65532"

def proglog_image(name, binary, layer, **kwargs):
    """Targets `binary` (static proglog), `layer` (its tar) and `name` (the image).

    Args:
        name: the oci_image target.
        binary: name of the go_binary target: pure Go, static, linux/amd64, x_defs version.
        layer: name of the layer_tar target: /proglog (root, 0755) and /data (owned by USER).
        **kwargs: common attributes (visibility, testonly, tags) for all three.
    """
    go_binary(
        name = binary,
        embed = ["//go/cmd/proglog:proglog_lib"],
        goarch = "amd64",
        goos = "linux",
        pure = "on",
        static = "on",
        x_defs = {"main.version": VERSION},
        **kwargs
    )
    layer_tar(
        name = layer,
        directories = ["/data"],
        directory_owner = USER,
        files = {":" + binary: "/proglog"},
        **kwargs
    )
    oci_image(
        name = name,
        architecture = "amd64",
        entrypoint = ["/proglog"],
        exposed_ports = [
            "8400/tcp",  # gRPC API and Raft (one port, multiplexed)
            "8401/tcp",  # Prometheus /metrics
            "8402/tcp",  # Serf gossip (TCP and UDP)
            "8402/udp",
            "8403/tcp",  # plaintext gRPC health only (--health-addr), for probes
        ],
        labels = {
            "org.opencontainers.image.source": "https://github.com/proglog/proglog",
            "org.opencontainers.image.title": "proglog",
            "org.opencontainers.image.version": VERSION,
        },
        os = "linux",
        tars = [":" + layer],
        user = USER,
        # --data-dir defaults to ./proglog-data: under /data, which USER may write.
        workdir = "/data",
        **kwargs
    )
