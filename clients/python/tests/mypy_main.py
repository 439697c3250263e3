"""Type-checks the proglog package with mypy --strict (pyproject.toml's settings): the main of the
Bazel py_test.

Outside Bazel: `cd clients/python && mypy src/proglog` with mypy, types-grpcio and types-protobuf
installed.
"""

import os
import sys
import tempfile

from mypy import api

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # clients/python
    cache = os.path.join(os.environ.get("TEST_TMPDIR", tempfile.gettempdir()), "mypy_cache")
    args = ["--config-file", os.path.join(root, "pyproject.toml"), "--cache-dir", cache, "--strict", os.path.join(root, "src", "proglog")]
    out, err, code = api.run(args)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)
