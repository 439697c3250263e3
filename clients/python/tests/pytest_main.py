"""Runs the client tests (tests/test_*.py) with pytest: the main of the Bazel py_test.

Outside Bazel run pytest itself: `pytest clients/python/tests`.
"""

import os
import sys

import pytest

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    tests = sorted(os.path.join(here, f) for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    sys.exit(pytest.main(["-p", "no:cacheprovider", "-v", *tests, *sys.argv[1:]]))
