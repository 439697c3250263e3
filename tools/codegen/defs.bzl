"""Checked-in generated code, kept in sync by tests.

generated_files(name, srcs, outs) declares, for files that Bazel generates (`srcs`, targets) and
their checked-in copies (`outs`, files of this package), matched by base name:
  - `<name>_test`: fails when a checked-in copy differs from what Bazel generates;
  - `<name>.update`: `bazel run` it to copy the generated files over the checked-in ones.

Lines that only record the version of protoc that generated a file (`// \tprotoc  vX`) are ignored
by the comparison: the offline toolchain uses the system protoc, an online build the protobuf
module's, and the generated code is otherwise identical.
"""

load("@rules_shell//shell:sh_binary.bzl", "sh_binary")
load("@rules_shell//shell:sh_test.bzl", "sh_test")

def generated_files(name, srcs, outs, **kwargs):
    """Declares <name>_test and <name>.update for checked-in copies of generated files.

    Args:
      name: prefix of the two targets.
      srcs: targets whose output files are the generated code.
      outs: the checked-in copies (files of this package), matched to srcs' files by base name.
      **kwargs: passed to both targets (e.g. tags, visibility).
    """
    pairs = []
    for out in outs:
        pairs.append("$(rlocationpath %s)" % out)
    gen = []
    for src in srcs:
        gen.append("$(rlocationpaths %s)" % src)
    args = ["--outs"] + pairs + ["--generated"] + gen
    sh_test(
        name = name + "_test",
        size = "small",
        srcs = ["//tools/codegen:check_generated.sh"],
        args = ["check"] + args,
        data = srcs + outs,
        deps = ["@bazel_tools//tools/bash/runfiles"],
        **kwargs
    )
    sh_binary(
        name = name + ".update",
        srcs = ["//tools/codegen:check_generated.sh"],
        args = ["update"] + args,
        data = srcs + outs,
        deps = ["@bazel_tools//tools/bash/runfiles"],
        **kwargs
    )
