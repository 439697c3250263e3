#!/usr/bin/env python3
"""Turns an OCI image layout into a tarball `docker load` and `podman load` accept.

    load.py --layout DIR --out image.tar [--repo-tag repo:tag]... [--repo-tags-file FILE]

The tarball is in docker-archive format (manifest.json naming the config and layer blobs and the
repo tags) and also holds the layout's oci-layout and index.json. Entries are sorted, with mtime 0
and root ownership, so the same layout gives the same tarball.
"""

import argparse
import io
import json
import os
import sys
import tarfile


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layout", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repo-tag", action="append", default=[])
    p.add_argument("--repo-tags-file")
    args = p.parse_args(argv)

    tags = list(args.repo_tag)
    if args.repo_tags_file:
        with open(args.repo_tags_file, encoding="utf-8") as f:
            tags += [line.strip() for line in f if line.strip()]

    def blob_path(digest):
        algo, _, hexdigest = digest.partition(":")
        return f"blobs/{algo}/{hexdigest}"

    with open(os.path.join(args.layout, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    if len(index.get("manifests", [])) != 1:
        sys.exit("load.py: the layout must hold exactly one image manifest")
    with open(os.path.join(args.layout, blob_path(index["manifests"][0]["digest"])), encoding="utf-8") as f:
        manifest = json.load(f)

    docker_manifest = [
        {
            "Config": blob_path(manifest["config"]["digest"]),
            "RepoTags": tags,
            "Layers": [blob_path(layer["digest"]) for layer in manifest["layers"]],
        }
    ]

    files = {
        "manifest.json": json.dumps(docker_manifest, sort_keys=True, separators=(",", ":")).encode(),
    }
    for name in ("oci-layout", "index.json"):
        with open(os.path.join(args.layout, name), "rb") as f:
            files[name] = f.read()
    blobs = sorted(
        [index["manifests"][0]["digest"], manifest["config"]["digest"]]
        + [layer["digest"] for layer in manifest["layers"]]
    )

    def info(name, size=0, is_dir=False):
        ti = tarfile.TarInfo(name)
        ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
        ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        ti.mode = 0o755 if is_dir else 0o644
        ti.size = size
        return ti

    with tarfile.open(args.out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(info(d, is_dir=True))
        for digest in dict.fromkeys(blobs):
            path = blob_path(digest)
            src = os.path.join(args.layout, path)
            with open(src, "rb") as f:
                tar.addfile(info(path, os.path.getsize(src)), f)
        for name in sorted(files):
            tar.addfile(info(name, len(files[name])), io.BytesIO(files[name]))


if __name__ == "__main__":
    main(sys.argv[1:])
