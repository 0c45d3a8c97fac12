#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's `kubernetes`
# source package and cache the two binaries. Idempotent: when the cached binaries exist for the
# pinned tarball checksum, it prints their directory and exits at once.
set -euo pipefail

K8S_VERSION=v1.20.2
DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/gitsync/k8s/${K8S_VERSION}"
# Bump BUILD_RECIPE whenever the way the binaries are built changes, so caches are rebuilt.
BUILD_RECIPE=r2
CACHE_DIR="${CACHE_ROOT}/${ORIG_SHA256:0:16}-${BUILD_RECIPE}"

if [[ -x "$CACHE_DIR/kube-apiserver" && -x "$CACHE_DIR/kube-controller-manager" ]]; then
  echo "$CACHE_DIR"
  exit 0
fi

log() { echo "[build-k8s] $*" >&2; }

# deb-src entries mirroring the configured deb entries (deb822 format on bookworm).
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  log "adding deb-src entries"
  sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/gitsync-debian-src.sources
  apt-get update -qq >&2
fi
# reflect2 1.0.1 (vendored by v1.20.2) crashes the API server under Go >= 1.18 on the first
# custom resource ("fatal error: fault" in reflect2 UnsafeMapType.UnsafeIterate,
# modern-go/reflect2#26). Debian ships the fixed reflect2 1.0.2 and json-iterator 1.1.12 as Go
# source packages; they replace the vendored copies before the build.
GO_DEPS=(golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)
for pkg in golang-1.19-go rsync make "${GO_DEPS[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || NEED_INSTALL=1
done
if [[ "${NEED_INSTALL:-0}" == 1 ]]; then
  log "installing build dependencies"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-1.19-go rsync make "${GO_DEPS[@]}" >&2
fi

WORK="${CACHE_ROOT}/build"
mkdir -p "$WORK"
cd "$WORK"
ORIG="kubernetes_1.20.5+really1.20.2.orig.tar.gz"
if [[ ! -f "$ORIG" ]] || ! echo "$ORIG_SHA256  $ORIG" | sha256sum -c --quiet - >/dev/null 2>&1; then
  log "downloading source package kubernetes=$DEB_VERSION"
  apt-get source --download-only "kubernetes=$DEB_VERSION" >&2
fi
echo "$ORIG_SHA256  $ORIG" | sha256sum -c --quiet - >&2

SRC="$WORK/src"
if [[ ! -f "$SRC/Makefile" ]]; then
  log "unpacking"
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -xzf "$ORIG" -C "$SRC" --strip-components=1
fi
GOCODE=/usr/share/gocode/src/github.com
for dep in modern-go/reflect2 json-iterator/go; do
  rm -rf "$SRC/vendor/github.com/$dep"
  cp -r "$GOCODE/$dep" "$SRC/vendor/github.com/$dep"
done
log "building kube-apiserver and kube-controller-manager (about 4-5 minutes on 2 cores the first time)"
cd "$SRC"
export PATH="/usr/lib/go-1.19/bin:$PATH"
export GOFLAGS="${GOFLAGS:-}"
export GO111MODULE=off
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
OUT="$SRC/_output/bin"
mkdir -p "$CACHE_DIR"
install -m 0755 "$OUT/kube-apiserver" "$OUT/kube-controller-manager" "$CACHE_DIR/"
log "cached in $CACHE_DIR"
# the unpacked tree is large; keep only the tarball
rm -rf "$SRC"
echo "$CACHE_DIR"
