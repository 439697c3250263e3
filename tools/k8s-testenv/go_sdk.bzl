"""go_sdk_binary: the `go` command of the registered Go SDK, as a file a test can run."""

def _go_sdk_binary_impl(ctx):
    sdk = ctx.toolchains["@io_bazel_rules_go//go:toolchain"].sdk

    # The go command finds its GOROOT from its real path (the SDK's repository), so the runfiles
    # need only the binary; the SDK's files come along so that they are fetched.
    return [DefaultInfo(
        files = depset([sdk.go]),
        runfiles = ctx.runfiles(
            [sdk.go],
            transitive_files = depset(transitive = [sdk.headers, sdk.srcs, sdk.libs, sdk.tools]),
        ),
    )]

go_sdk_binary = rule(
    implementation = _go_sdk_binary_impl,
    doc = "The go binary of the Go SDK rules_go builds with (the same online and offline).",
    toolchains = ["@io_bazel_rules_go//go:toolchain"],
)
