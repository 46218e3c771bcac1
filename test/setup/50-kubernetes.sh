#!/usr/bin/env bash
# A real Kubernetes API server for the Kubernetes runtime tests: kube-apiserver and
# kube-controller-manager v1.20.2, built offline once from Debian bookworm's `kubernetes` source
# package (the whole upstream tree with its vendor/ folder) with Debian's Go, plus Debian's etcd.
# Nothing is started here: each test file starts its own cluster (test/support/kubernetes.ts).
# Idempotent: packages are installed only when missing and the build is skipped when both binaries
# exist in $CONVEYOR_TEST_CACHE/kubernetes/bin. The source, GOPATH and build cache live beside them.
set -euo pipefail
cache="${CONVEYOR_TEST_CACHE:-$HOME/.cache/conveyor-test}"
K8S_VERSION=1.20.2
base="$cache/kubernetes"
bin="$base/bin"

say() { echo "50-kubernetes: $*"; }
fail() {
  echo "50-kubernetes: ERROR: $*" >&2
  exit 1
}

# -- packages --------------------------------------------------------------------------------
missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v rsync >/dev/null || missing+=(rsync)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || missing+=(golang-github-modern-go-reflect2-dev)
# kubectl is only a convenience for looking at a test cluster by hand: Debian's 1.20 client matches.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || fail "go is not installed (apt-get install golang-go failed)"
command -v etcd >/dev/null || fail "etcd is not installed (apt-get install etcd-server failed)"

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ]; then
  say "ready: kube-apiserver and kube-controller-manager v$K8S_VERSION in $bin, etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')"
  exit 0
fi

# One build at a time: a second provisioning run waits here, then finds the binaries.
mkdir -p "$base"
exec 9>"$base/.build.lock"
flock 9
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ]; then
  say "built meanwhile by another run"
  exit 0
fi

# -- the source, fetched with a private APT configuration (/etc/apt is left alone) -----------
src="$base/src"
tree="$src/kubernetes-$K8S_VERSION"
if [ ! -f "$tree/cmd/kube-apiserver/apiserver.go" ]; then
  apt_dir="$base/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc/empty.d" "$src"
  uri="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list)"
  fi
  [ -n "$uri" ] || fail "found no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "deb-src $uri bookworm main" >"$apt_dir/etc/sources.list"
  cat >"$apt_dir/apt.conf" <<EOF
Dir::Etc::SourceList "$apt_dir/etc/sources.list";
Dir::Etc::SourceParts "$apt_dir/etc/empty.d";
Dir::State::Lists "$apt_dir/lists";
Dir::Cache "$apt_dir/cache";
APT::Sandbox::User "root";
EOF
  say "fetching Debian's kubernetes source package (34 MB) from $uri"
  APT_CONFIG="$apt_dir/apt.conf" apt-get update -qq
  (cd "$src" && APT_CONFIG="$apt_dir/apt.conf" apt-get source --download-only -qq kubernetes >/dev/null)
  orig="$(ls "$src"/kubernetes_*really"$K8S_VERSION".orig.tar.gz 2>/dev/null | head -1)"
  [ -n "$orig" ] || fail "apt-get source kubernetes gave no kubernetes_*really$K8S_VERSION.orig.tar.gz in $src"
  say "unpacking $(basename "$orig")"
  rm -rf "$tree"
  tar -C "$src" -xzf "$orig"
  [ -f "$tree/cmd/kube-apiserver/apiserver.go" ] || fail "the source tarball did not unpack to $tree"
  # The vendored reflect2 1.0.1 misbehaves on Go >= 1.18: use Debian's 1.0.2.
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
fi

# -- the build (GOPATH mode, offline) --------------------------------------------------------
export GOPATH="$base/gopath" GOCACHE="$base/gocache" GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
mkdir -p "$GOPATH/src/k8s.io" "$bin"
ln -sfn "$tree" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  # Not in the tarball; without it the build stops at `undefined: openapi.GetOpenAPIDefinitions`.
  say "generating the OpenAPI definitions (make gen_openapi, 1-2 min)"
  make gen_openapi >"$base/gen_openapi.log" 2>&1 || {
    tail -n 20 "$base/gen_openapi.log" >&2
    fail "make gen_openapi failed (see $base/gen_openapi.log)"
  }
fi
ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  ldflags="$ldflags -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
done
build() {
  local name="$1" estimate="$2"
  [ -x "$bin/$name" ] && return 0
  say "building $name ($estimate, once)"
  go build -tags selinux,notest -ldflags "$ldflags" -o "$bin/$name.partial" "./cmd/$name" >"$base/build-$name.log" 2>&1 || {
    tail -n 20 "$base/build-$name.log" >&2
    fail "go build ./cmd/$name failed (see $base/build-$name.log)"
  }
  mv "$bin/$name.partial" "$bin/$name"
}
build kube-apiserver "about 10 min"
build kube-controller-manager "about 2 min"
say "ready: $("$bin/kube-apiserver" --version 2>/dev/null) in $bin"
