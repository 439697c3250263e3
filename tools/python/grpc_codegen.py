"""Generates Python protobuf and gRPC modules for one .proto file with grpcio-tools.

protoc emits absolute imports named after the proto path (`from log.v1 import log_pb2`); this tool
rewrites them under --package (`from proglog._proto.log.v1 import log_pb2`) so the generated code
can live inside an installable package. Outputs are matched to --out paths by base name.

Usage: grpc_codegen --proto_path=proto --package=proglog._proto --out=a/log_pb2.py ... log/v1/log.proto
"""

import argparse
import importlib.resources
import os
import re
import shutil
import sys
import tempfile

from grpc_tools import protoc


def rewrite_imports(source: str, proto_packages: set[str], package: str) -> str:
    """Prefixes imports of generated modules of `proto_packages` with `package`."""
    for proto_package in sorted(proto_packages, key=len, reverse=True):
        escaped = re.escape(proto_package)
        source = re.sub(rf"^from {escaped} import ", f"from {package}.{proto_package} import ", source, flags=re.M)
        source = re.sub(rf"^import {escaped}\.", f"import {package}.{proto_package}.", source, flags=re.M)
    return source


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proto_path", required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("--out", action="append", required=True)
    parser.add_argument("proto")
    args = parser.parse_args(argv)

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        code = protoc.main([
            "grpc_tools.protoc",
            f"-I{args.proto_path}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            args.proto,
        ])
        if code != 0:
            print(f"grpc_codegen: protoc failed with exit code {code}", file=sys.stderr)
            return 1
        proto_package = os.path.dirname(args.proto).replace("/", ".")
        generated = {}
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                generated[name] = os.path.join(root, name)
        for out in args.out:
            name = os.path.basename(out)
            if name not in generated:
                print(f"grpc_codegen: protoc did not generate {name} (got {sorted(generated)})", file=sys.stderr)
                return 1
            with open(generated[name], encoding="utf-8") as f:
                source = rewrite_imports(f.read(), {proto_package}, args.package)
            with open(out, "w", encoding="utf-8") as f:
                f.write(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
