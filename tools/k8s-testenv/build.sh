#!/usr/bin/env bash
# tools/k8s-testenv/build.sh — build the Kubernetes binaries the k8s tests run, once per version.
#
# The versions are pinned by two separate Go modules next to this script: go.mod/go.sum
# (k8s.io/kubernetes with every staging module replaced by its published v0.x release, and etcd's
# server module) and coredns/go.mod/go.sum (CoreDNS, kept apart so it cannot move Kubernetes'
# pins). The binaries are built from the Go module proxy into a cache OUTSIDE the repository,
# keyed by a hash of the four files and the list of binaries, so they are built once per version
# and reused by //k8s/apiserver:apiserver_test and //k8s/node:node_test.
#
# Prints the directory holding bin/{kube-apiserver,kube-controller-manager,kube-scheduler,
# kube-proxy,kubelet,kubectl,etcd,coredns} on stdout; progress goes to stderr.
#
# Environment:
#   GO                          go command to build with (default: go on PATH). The tests pass
#                               Bazel's Go SDK (@io_bazel_rules_go//go).
#   PROGLOG_K8S_TESTENV_CACHE   cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/proglog-k8s-testenv)
#   GOPROXY                     Go module proxy (default: the go command's default)
set -euo pipefail

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
# Under Bazel, the runfiles tree holds symlinks to go.mod/go.sum; read them there.
src="$(dirname "${BASH_SOURCE[0]}")"
[[ -f "$src/go.mod" ]] || src="$here"

go="${GO:-go}"
cache="${PROGLOG_K8S_TESTENV_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME or PROGLOG_K8S_TESTENV_CACHE must be set}/.cache}/proglog-k8s-testenv}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"

say() { printf 'k8s-testenv: %s\n' "$*" >&2; }

# The Kubernetes commands, built together in one `go build` (they share most packages).
readonly k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)
readonly binaries=("${k8s_cmds[@]}" etcd coredns)

k8s_version="$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$src/go.mod" | head -n1)"
[[ -n "$k8s_version" ]] || {
  say "error: no k8s.io/kubernetes requirement in $src/go.mod"
  exit 1
}
key="$(cat "$src/go.mod" "$src/go.sum" "$src/coredns/go.mod" "$src/coredns/go.sum" <(echo "${binaries[*]}") |
  sha256sum | cut -c1-12)"
out="$cache/$k8s_version-$key"

complete() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$out/bin/$b" ]] || return 1; done
}

if complete; then
  printf '%s\n' "$out"
  exit 0
fi

exec 9>"$cache/.lock"
flock 9
# Another run may have finished it while this one waited for the lock.
if complete; then
  printf '%s\n' "$out"
  exit 0
fi

say "building ${binaries[*]} ($k8s_version) into $out (once per version; see README.md for the time)"
work="$out.partial"
rm -rf "$work"
mkdir -p "$work/src/coredns" "$work/bin"
cp "$src/go.mod" "$src/go.sum" "$work/src/"
cp "$src/coredns/go.mod" "$src/coredns/go.sum" "$work/src/coredns/"
chmod -R u+w "$work/src"

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
# Report a real version (not v0.0.0-master): kubectl's version-skew check and the apiserver's
# /version read these.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# The build cache (several GB) is only worth keeping while building; the module cache
# is kept for the next version.
export GOMODCACHE="$cache/gomodcache" GOCACHE="$work/gocache" GOFLAGS="-mod=readonly -trimpath"
export CGO_ENABLED=0 GOWORK=off
start=$SECONDS
(
  cd "$work/src"
  "$go" version >&2
  "$go" build -ldflags="$ldflags" -o "$work/bin/" "${k8s_cmds[@]/#/k8s.io/kubernetes/cmd/}"
  "$go" build -ldflags="-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3
  cd coredns
  "$go" build -ldflags="-s -w" -o "$work/bin/coredns" github.com/coredns/coredns
)
rm -rf "$work/gocache" "$out"
mv "$work" "$out"
say "built in $((SECONDS - start)) s: $(cd "$out/bin" && echo *)"
printf '%s\n' "$out"
