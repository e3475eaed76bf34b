#!/usr/bin/env bash
# Build podnat's container images with no container registry: a Debian base from a
# debootstrap rootfs (`docker import`), then the Dockerfile with BASE_IMAGE pointing at it.
# Needs hack/env/docker.sh's daemon (started here if needed). Images are cached in its data root.
#
#   hack/env/images.sh base      podnat-base:bookworm (Debian minbase + python3), unless present
#   hack/env/images.sh build-base  podnat-build:bookworm: base + python3-venv and the backends'
#                                libraries (the Dockerfile's build stage: no apt in the build)
#   hack/env/images.sh podnat    the podnat image (default tag podnat:<version>, $PODNAT_IMAGE)
#   hack/env/images.sh test-layer  that image plus the kernel tier's tests and tools only
#                                (tag <name>-kernel-tests:<tag>; hack/image/test-layer.Dockerfile)
#   hack/env/images.sh mirror    the Debian mirror used (from this machine's apt sources)
#   hack/env/images.sh rootfs DIR PACKAGES   a trimmed debootstrap rootfs (for hack/cluster/node-image.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
eval "$("$repo/hack/env/docker.sh" start)"
source "$repo/hack/env/cache.sh"  # sets $cache
SUITE=bookworm
BASE=podnat-base:$SUITE
BUILD_BASE=podnat-build:$SUITE
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")
IMAGE=${PODNAT_IMAGE:-podnat:$VERSION}
TEST_IMAGE=${IMAGE%%:*}-kernel-tests:${IMAGE##*:}

mirror() {
    # The machine's own Debian mirror, so nothing here names one.
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    echo "$uri"
}

# debootstrap ROOTFS_DIR PACKAGES: a minimal Debian rootfs, docs and caches removed.
rootfs() {
    local dir=$1 packages=$2
    rm -rf "$dir"
    mkdir -p "$dir"
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$(mirror)" >"$dir.log" 2>&1 || {
        tail -20 "$dir.log" >&2
        exit 1
    }
    rm -f "$dir.log"
    chroot "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
        "$dir"/usr/share/info/* "$dir"/var/log/*.log "$dir"/var/cache/debconf/*-old
    find "$dir"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    # apt in the image's own builds keeps the image small the same way.
    cat >"$dir/etc/dpkg/dpkg.cfg.d/podnat-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
}

has_image() {
    docker image inspect "$1" >/dev/null 2>&1
}

case ${1:-} in
base)
    has_image "$BASE" && exit 0
    command -v debootstrap >/dev/null || { echo "hack/env/images.sh: debootstrap missing (make deps)" >&2; exit 1; }
    started=$(date +%s)
    dir=$cache/rootfs/base
    rootfs "$dir" python3
    # Nothing podnat loads: iconv charsets, time zones, 2to3, pydoc's topics (~16 MB).
    rm -rf "$dir"/usr/lib/x86_64-linux-gnu/gconv "$dir"/usr/share/zoneinfo \
        "$dir"/usr/lib/python3.*/lib2to3 "$dir"/usr/lib/python3.*/pydoc_data
    tar -C "$dir" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$dir"
    echo "hack/env/images.sh: built $BASE in $(($(date +%s) - started))s" >&2
    ;;
build-base)
    has_image "$BUILD_BASE" && exit 0
    command -v debootstrap >/dev/null || { echo "hack/env/images.sh: debootstrap missing (make deps)" >&2; exit 1; }
    started=$(date +%s)
    dir=$cache/rootfs/build-base
    # iproute2 and nftables: the test layer's tools (ip, nft), copied from here; never shipped.
    rootfs "$dir" python3,python3-venv,libnftables1,iptables,iproute2,nftables
    tar -C "$dir" -c . | docker import - "$BUILD_BASE" >/dev/null
    rm -rf "$dir"
    echo "hack/env/images.sh: built $BUILD_BASE in $(($(date +%s) - started))s" >&2
    ;;
podnat)
    "$0" build-base
    started=$(date +%s)
    # Wheels made here, with this machine's pip settings (index, CA), so the image build
    # needs no network for Python packages; dependencies are cached per pyproject.toml.
    deps=$cache/wheels-$(sha256sum "$repo/pyproject.toml" | cut -c1-12)
    if [[ ! -d $deps ]]; then
        python3 -m pip wheel -q --wheel-dir "$deps.tmp" "$repo" && rm -f "$deps.tmp"/podnat-*.whl
        mv "$deps.tmp" "$deps"
    fi
    # setuptools reuses build/lib: a module moved or deleted since would stay in the wheel.
    rm -rf "$repo/build/wheels" "$repo/build/lib" "$repo/build/bdist."*
    mkdir -p "$repo/build/wheels"
    cp "$deps"/*.whl "$repo/build/wheels/"
    python3 -m pip wheel -q --no-deps --wheel-dir "$repo/build/wheels" "$repo"
    # The build base has every package: no network in the build (so a rebuild works under
    # the e2e egress guard too).
    docker build -q --build-arg "BASE_IMAGE=$BUILD_BASE" -t "$IMAGE" "$repo" >/dev/null
    docker image prune -f >/dev/null  # the previous build's layers
    echo "hack/env/images.sh: built $IMAGE in $(($(date +%s) - started))s" >&2
    ;;
test-layer)
    "$0" podnat
    started=$(date +%s)
    wheels=$cache/wheels-pytest
    [[ -d $wheels ]] || { python3 -m pip wheel -q --wheel-dir "$wheels.tmp" pytest && mv "$wheels.tmp" "$wheels"; }
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    cp -r "$wheels" "$ctx/wheels"
    cp "$repo/pyproject.toml" "$repo/hack/image/collect-tools.sh" "$ctx/"
    tar -C "$repo" --exclude=__pycache__ --exclude=.hypothesis -c tests | tar -C "$ctx" -x
    docker build -q -f "$repo/hack/image/test-layer.Dockerfile" --build-arg "PODNAT_IMAGE=$IMAGE" \
        --build-arg "BUILD_BASE=$BUILD_BASE" -t "$TEST_IMAGE" "$ctx" >/dev/null
    echo "hack/env/images.sh: built $TEST_IMAGE in $(($(date +%s) - started))s" >&2
    ;;
mirror)
    mirror
    ;;
rootfs)
    rootfs "$2" "$3"
    ;;
*)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
