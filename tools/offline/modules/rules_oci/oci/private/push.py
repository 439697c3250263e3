#!/usr/bin/env python3
"""Pushes an OCI image layout to a registry with the registry v2 HTTP API (the oci_push runner).

    push.py --layout DIR -r|--repository HOST[:PORT]/PATH [-t|--tag TAG]... [--tags-file F]
            [--insecure]

Blobs the registry already has (HEAD) are skipped; the others are uploaded monolithically (POST
then PUT ?digest=). The manifest is put by digest, then under each tag. Plain HTTP is used for
localhost/127.0.0.1/[::1] or with --insecure, HTTPS otherwise. Credentials: anonymous, or the
`auths` entry for the registry in $DOCKER_CONFIG/config.json (~/.docker/config.json), for Basic
or Bearer-token challenges; credential helpers are not supported. Prints REPOSITORY@DIGEST.
"""

import argparse
import base64
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Registry:
    def __init__(self, host, path, insecure):
        self.host, self.path = host, path
        local = host.split(":")[0] in ("localhost", "127.0.0.1") or host.startswith("[::1]")
        self.base = ("http" if insecure or local else "https") + "://" + host
        self.auth_header = None
        self.basic = self._basic_credentials()

    def _basic_credentials(self):
        config = os.path.join(os.environ.get("DOCKER_CONFIG", os.path.expanduser("~/.docker")), "config.json")
        try:
            with open(config, encoding="utf-8") as f:
                auths = json.load(f).get("auths", {})
        except (OSError, ValueError):
            return None
        for key in (self.host, "https://" + self.host, "http://" + self.host):
            entry = auths.get(key) or auths.get(key + "/v1/") or auths.get(key + "/v2/")
            if entry and entry.get("auth"):
                return entry["auth"]
            if entry and entry.get("username"):
                return base64.b64encode(f"{entry['username']}:{entry.get('password', '')}".encode()).decode()
        return None

    def _authenticate(self, challenge):
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self.basic:
                raise SystemExit(f"push.py: {self.host} wants Basic credentials; none in the docker config")
            self.auth_header = "Basic " + self.basic
            return
        if scheme.lower() != "bearer":
            raise SystemExit(f"push.py: unsupported auth challenge {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", "")}
        query["scope"] = fields.get("scope") or f"repository:{self.path}:pull,push"
        req = urllib.request.Request(fields["realm"] + "?" + urllib.parse.urlencode(query))
        if self.basic:
            req.add_header("Authorization", "Basic " + self.basic)
        with urllib.request.urlopen(req) as resp:
            body = json.load(resp)
        self.auth_header = "Bearer " + (body.get("token") or body.get("access_token"))

    def request(self, method, url, data=None, headers=None, ok=(200, 201, 202), retry=True):
        if not url.startswith("http"):
            url = urllib.parse.urljoin(self.base, url)
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if self.auth_header:
            req.add_header("Authorization", self.auth_header)
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            if e.code == 401 and retry and e.headers.get("WWW-Authenticate"):
                self._authenticate(e.headers["WWW-Authenticate"])
                return self.request(method, url, data, headers, ok, retry=False)
            if e.code in ok:
                return e.code, e.headers, e.read()
            if method == "HEAD" and e.code == 404:
                return 404, e.headers, b""
            body = e.read().decode(errors="replace")
            raise SystemExit(f"push.py: {method} {url}: HTTP {e.code}: {body}") from None

    def push_blob(self, digest, path):
        status, _, _ = self.request("HEAD", f"/v2/{self.path}/blobs/{digest}", ok=(200,))
        if status == 200:
            return False
        _, headers, _ = self.request("POST", f"/v2/{self.path}/blobs/uploads/", data=b"", ok=(202,))
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        with open(path, "rb") as f:
            data = f.read()
        self.request(
            "PUT",
            location + sep + urllib.parse.urlencode({"digest": digest}),
            data=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            ok=(201,),
        )
        return True

    def put_manifest(self, reference, body, media_type):
        self.request(
            "PUT", f"/v2/{self.path}/manifests/{reference}", data=body, headers={"Content-Type": media_type}, ok=(201,)
        )


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layout", required=True)
    p.add_argument("-r", "--repository", help="HOST[:PORT]/PATH (the last one given wins)")
    p.add_argument("-t", "--tag", action="append", default=[])
    p.add_argument("--tags-file")
    p.add_argument("--insecure", action="store_true", help="plain HTTP")
    args = p.parse_args(argv)
    if not args.repository:
        p.error("no repository: give -r/--repository HOST/PATH")
    repository = args.repository
    if "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        p.error(f"repository {repository!r} must not carry a tag or digest")
    host, sep, path = repository.partition("/")
    if not sep or not path:
        p.error(f"repository {repository!r} must be HOST[:PORT]/PATH")
    if host in ("docker.io", "index.docker.io"):
        host = "registry-1.docker.io"
    tags = list(args.tag)
    if args.tags_file:
        with open(args.tags_file, encoding="utf-8") as f:
            tags += [line.strip() for line in f if line.strip()]

    def blob(digest):
        return os.path.join(args.layout, "blobs", *digest.split(":", 1))

    with open(os.path.join(args.layout, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    if len(index.get("manifests", [])) != 1:
        sys.exit("push.py: the layout must hold exactly one image manifest")
    desc = index["manifests"][0]
    with open(blob(desc["digest"]), "rb") as f:
        manifest_bytes = f.read()
    manifest = json.loads(manifest_bytes)

    reg = Registry(host, path, args.insecure)
    for d in [manifest["config"]] + manifest["layers"]:
        uploaded = reg.push_blob(d["digest"], blob(d["digest"]))
        print(f"{'pushed' if uploaded else 'exists'} {d['digest']} ({d['size']} bytes)", file=sys.stderr)
    media_type = desc.get("mediaType", MT_MANIFEST)
    reg.put_manifest(desc["digest"], manifest_bytes, media_type)
    for tag in tags:
        reg.put_manifest(tag, manifest_bytes, media_type)
        print(f"tagged {repository}:{tag}", file=sys.stderr)
    print(f"{repository}@{desc['digest']}")


if __name__ == "__main__":
    main(sys.argv[1:])
