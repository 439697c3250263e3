"""python_deps: the system python3 as a Bazel toolchain, plus pinned wheels from PyPI.

`python_deps.install(requirements = ...)` creates the repository @pydeps with
  - //:pkgs                 a py_library of every wheel in the requirements file;
  - //:python_toolchain     a Python toolchain running the python3 found on PATH.
Wheels are installed with that interpreter (`pip install --target --only-binary=:all: --no-deps`),
so they match it; pin every package, transitive ones included.
"""

_BUILD = """\
load("@rules_python//python:py_library.bzl", "py_library")
load("@rules_python//python:py_runtime.bzl", "py_runtime")
load("@rules_python//python:py_runtime_pair.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

py_library(
    name = "pkgs",
    srcs = glob(["site/**/*.py"], exclude = ["site/**/* *"]),
    data = glob(["site/**"], exclude = ["site/**/*.py", "site/**/* *", "site/**/__pycache__/**"]),
    imports = ["site"],
)

py_runtime(
    name = "python3",
    interpreter_path = "{python}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":python3",
)

toolchain(
    name = "python_toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _pydeps_impl(rctx):
    python = rctx.which("python3")
    if not python:
        fail("python_deps: python3 is not on PATH; install Python 3.10 or newer")
    requirements = rctx.path(rctx.attr.requirements)
    rctx.watch(requirements)
    result = rctx.execute(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            "site",
            "-r",
            requirements,
        ],
        # --target does not touch the system environment; Debian's PEP 668 guard would refuse anyway.
        environment = {"PIP_BREAK_SYSTEM_PACKAGES": "1"},
        timeout = 600,
    )
    if result.return_code != 0:
        fail("python_deps: pip install of %s with %s failed:\n%s%s" % (
            rctx.attr.requirements,
            python,
            result.stdout,
            result.stderr,
        ))
    rctx.file("BUILD.bazel", _BUILD.replace("{python}", str(python)))

_pydeps = repository_rule(
    implementation = _pydeps_impl,
    attrs = {"requirements": attr.label(allow_single_file = True)},
    environ = ["PATH", "PIP_INDEX_URL"],
)

def _python_deps_impl(mctx):
    for mod in mctx.modules:
        for install in mod.tags.install:
            _pydeps(name = "pydeps", requirements = install.requirements)

python_deps = module_extension(
    implementation = _python_deps_impl,
    tag_classes = {"install": tag_class(attrs = {"requirements": attr.label(mandatory = True)})},
)
