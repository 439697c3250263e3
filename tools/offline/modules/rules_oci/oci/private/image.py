#!/usr/bin/env python3
"""Writes an OCI image layout for an image without a base (the oci_image action).

    image.py --out DIR --digest-out FILE --os linux --architecture amd64 \
        [--user U] [--workdir D] [--entrypoint-json '["/app"]'] [--labels-json '{...}'] \
        [--exposed-ports-json '["8400/tcp"]'] [--layer layer.tar.gz]...

Each list/dict setting may instead come from a file (--NAME-file): comma-separated for lists,
KEY=value lines for dicts, as rules_oci's files are.

Reproducible: the config's `created` is the Unix epoch and there is no history; JSON is written
with sorted keys and no whitespace; layers are copied byte for byte (make them reproducible
too). The same inputs give the same manifest digest.
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys

EPOCH = "1970-01-01T00:00:00Z"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_file(path, opener=open):
    h = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_setting(args, name, kind):
    """The value of --NAME-json or --NAME-file, or None."""
    key = name.replace("-", "_")
    raw = getattr(args, key + "_json")
    if raw is not None:
        return json.loads(raw)
    path = getattr(args, key + "_file")
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    result = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        k, sep, v = line.partition("=")
        if not sep:
            sys.exit(f"image.py: {path}: line {line!r} is not KEY=value")
        result[k] = v
    return result


def add_blob(out, data=None, path=None):
    """Stores a blob under out/blobs/sha256 and returns (digest, size)."""
    if data is not None:
        hexdigest = hashlib.sha256(data).hexdigest()
        dest = os.path.join(out, "blobs", "sha256", hexdigest)
        with open(dest, "wb") as f:
            f.write(data)
        return "sha256:" + hexdigest, len(data)
    hexdigest = sha256_file(path)
    dest = os.path.join(out, "blobs", "sha256", hexdigest)
    if not os.path.exists(dest):
        shutil.copyfile(path, dest)
    return "sha256:" + hexdigest, os.path.getsize(path)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--digest-out", required=True)
    p.add_argument("--os", required=True)
    p.add_argument("--architecture", required=True)
    p.add_argument("--variant")
    p.add_argument("--user")
    p.add_argument("--workdir")
    p.add_argument("--layer", action="append", default=[])
    for name in ("entrypoint", "cmd", "env", "labels", "annotations", "exposed-ports", "volumes"):
        p.add_argument(f"--{name}-json")
        p.add_argument(f"--{name}-file")
    args = p.parse_args(argv)

    os.makedirs(os.path.join(args.out, "blobs", "sha256"), exist_ok=True)

    layers, diff_ids = [], []
    for layer in args.layer:
        if is_gzip(layer):
            media_type, diff_id = MT_LAYER_GZIP, sha256_file(layer, gzip.open)
        else:
            media_type, diff_id = MT_LAYER, sha256_file(layer)
        digest, size = add_blob(args.out, path=layer)
        layers.append({"mediaType": media_type, "digest": digest, "size": size})
        diff_ids.append("sha256:" + diff_id)

    config = {}
    if args.user:
        config["User"] = args.user
    if args.workdir:
        config["WorkingDir"] = args.workdir
    for name, key in (("entrypoint", "Entrypoint"), ("cmd", "Cmd")):
        value = read_setting(args, name, "list")
        if value:
            config[key] = value
    env = read_setting(args, "env", "dict")
    if env:
        config["Env"] = [f"{k}={v}" for k, v in env.items()]
    labels = read_setting(args, "labels", "dict")
    if labels:
        config["Labels"] = labels
    ports = read_setting(args, "exposed-ports", "list")
    if ports:
        config["ExposedPorts"] = {(p if "/" in p else p + "/tcp"): {} for p in ports}
    volumes = read_setting(args, "volumes", "list")
    if volumes:
        config["Volumes"] = {v: {} for v in volumes}

    image_config = {
        "created": EPOCH,
        "os": args.os,
        "architecture": args.architecture,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if args.variant:
        image_config["variant"] = args.variant
    config_digest, config_size = add_blob(args.out, data=canonical(image_config))

    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    annotations = read_setting(args, "annotations", "dict")
    if annotations:
        manifest["annotations"] = annotations
    manifest_digest, manifest_size = add_blob(args.out, data=canonical(manifest))

    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_MANIFEST, "digest": manifest_digest, "size": manifest_size}],
    }
    with open(os.path.join(args.out, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(args.out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(args.digest_out, "w", encoding="ascii") as f:
        f.write(manifest_digest)


if __name__ == "__main__":
    main(sys.argv[1:])
