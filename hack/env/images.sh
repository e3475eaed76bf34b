#!/usr/bin/env bash
# Build podnat's container images with no container registry: a Debian base from a
# debootstrap rootfs (`docker import`), then the Dockerfile with BASE_IMAGE pointing at it.
# Needs hack/env/docker.sh's daemon (started here if needed). Images are cached in its data root.
#
#   hack/env/images.sh base      podnat-base:SUITE (Debian minbase + python3), unless present
#   hack/env/images.sh build-base  podnat-build:SUITE: base + python3-venv and the backends'
#                                libraries (the Dockerfile's build stage: no apt in the build)
#   hack/env/images.sh podnat    the podnat image (tag podnat:<version> on bookworm,
#                                podnat:<version>-trixie on trixie; $PODNAT_IMAGE names the
#                                bookworm one, trixie's is it with -trixie appended)
#   hack/env/images.sh test-layer  that image plus the kernel tier's tests and tools only
#                                (tag <name>-kernel-tests:<tag>; hack/image/test-layer.Dockerfile)
#   hack/env/images.sh mirror    the Debian mirror used (from this machine's apt sources)
#   hack/env/images.sh rootfs DIR PACKAGES   a trimmed debootstrap rootfs (for hack/cluster/node-image.sh)
#   hack/env/images.sh tag       the podnat image's tag for $PODNAT_SUITE
# PODNAT_SUITE=bookworm (default) or trixie: the Debian suite, and so the userspace (Python,
# libnftables, iptables) the image ships.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
eval "$("$repo/hack/env/docker.sh" start)"
source "$repo/hack/env/cache.sh"  # sets $cache
SUITE=${PODNAT_SUITE:-bookworm}
case $SUITE in
bookworm | trixie) ;;
*) echo "hack/env/images.sh: PODNAT_SUITE=$SUITE: bookworm or trixie" >&2; exit 2 ;;
esac
BASE=podnat-base:$SUITE
BUILD_BASE=podnat-build:$SUITE
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")
IMAGE=${PODNAT_IMAGE:-podnat:$VERSION}
[[ $SUITE == bookworm ]] || IMAGE=$IMAGE-$SUITE
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

LABEL=io.podnat.inputs
label() {  # label IMAGE: the input hash it was built from ("" if none, or no image)
    docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true
}

# hash_files PATH...: the names and contents of the files under PATHs (the repo's own:
# caches and build output left out), one hash per line.
hash_files() {
    (cd "$repo" && find "$@" -type f ! -path '*/__pycache__/*' ! -path '*/.hypothesis/*' \
        ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# wheels DIR: podnat and its dependencies as wheels for the suite's Python. The host is
# bookworm, so its pip makes bookworm's; for another suite the build base's own Python
# does, in a container on the host network with the host's pip settings (python-iptables
# has no wheel on the index: it compiles its libxtwrapper, hence gcc in that base).
wheels() {
    local out=$1
    if [[ $SUITE == bookworm ]]; then
        python3 -m pip wheel -q --wheel-dir "$out" "$repo"
        return
    fi
    mkdir -p "$out"
    local settings=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
    [[ ! -f /etc/pip.conf ]] || settings+=(-v /etc/pip.conf:/etc/pip.conf:ro)
    while IFS= read -r var; do settings+=(-e "$var"); done < <(env | grep -E '^PIP_' | cut -d= -f1 | grep -vx PIP_FIND_LINKS)
    # A local wheelhouse of the host's, where it has one (at the same path).
    [[ ! -d ${PIP_FIND_LINKS:-} ]] || settings+=(-e PIP_FIND_LINKS -v "$PIP_FIND_LINKS:$PIP_FIND_LINKS:ro")
    docker run --rm --network host "${settings[@]}" -v "$repo:/src:ro" -v "$out:/out" \
        "$BUILD_BASE" sh -ec '
            python3 -m venv /tmp/pip
            mkdir /tmp/src && cp -r /src/pyproject.toml /src/README.md /src/helper /tmp/src/
            /tmp/pip/bin/pip wheel -q --wheel-dir /out /tmp/src' >&2
}

case ${1:-} in
base)
    has_image "$BASE" && exit 0
    command -v debootstrap >/dev/null || { echo "hack/env/images.sh: debootstrap missing (make deps)" >&2; exit 1; }
    started=$(date +%s)
    dir=$cache/rootfs/base-$SUITE
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
    dir=$cache/rootfs/build-base-$SUITE
    # iproute2 and nftables: the test layer's tools (ip, nft), copied from here; never shipped.
    packages=python3,python3-venv,libnftables1,iptables,iproute2,nftables
    [[ $SUITE == bookworm ]] || packages+=,gcc,libc6-dev  # wheels(): python-iptables' C part
    rootfs "$dir" "$packages"
    tar -C "$dir" -c . | docker import - "$BUILD_BASE" >/dev/null
    rm -rf "$dir"
    echo "hack/env/images.sh: built $BUILD_BASE in $(($(date +%s) - started))s" >&2
    ;;
podnat)
    "$0" build-base
    started=$(date +%s)
    # The image is rebuilt only when an input changed: the build base and the build's files
    # (.dockerignore's list; the dependencies' wheels are cached per pyproject.toml, below).
    # The hash is the image's label.
    inputs=$(
        {
            echo "$SUITE $(docker image inspect -f '{{.Id}}' "$BUILD_BASE")"
            hash_files Dockerfile .dockerignore pyproject.toml README.md helper hack/image
        } | sha256sum | cut -c1-16
    )
    if [[ $(label "$IMAGE") == "$inputs" ]]; then
        echo "hack/env/images.sh: $IMAGE is current (inputs $inputs)" >&2
        exit 0
    fi
    # Wheels made with this machine's pip settings (index, CA), so the image build needs
    # no network for Python packages; dependencies are cached per pyproject.toml and Python.
    deps=$cache/wheels-$(sha256sum "$repo/pyproject.toml" | cut -c1-12)
    [[ $SUITE == bookworm ]] || deps=$deps-$SUITE
    if [[ ! -d $deps ]]; then
        rm -rf "$deps.tmp"
        wheels "$deps.tmp"
        rm -f "$deps.tmp"/podnat-*.whl
        mv "$deps.tmp" "$deps"
    fi
    # setuptools reuses build/lib: a module moved or deleted since would stay in the wheel.
    rm -rf "$repo/build/wheels" "$repo/build/lib" "$repo/build/bdist."*
    mkdir -p "$repo/build/wheels"
    cp "$deps"/*.whl "$repo/build/wheels/"
    python3 -m pip wheel -q --no-deps --wheel-dir "$repo/build/wheels" "$repo"  # pure Python
    # The build base has every package: no network in the build (so a rebuild works under
    # the e2e egress guard too).
    docker build -q --build-arg "BASE_IMAGE=$BUILD_BASE" --build-arg "SUITE=$SUITE" \
        --label "$LABEL=$inputs" -t "$IMAGE" "$repo" >/dev/null
    docker image prune -f >/dev/null  # the previous build's layers
    echo "hack/env/images.sh: built $IMAGE in $(($(date +%s) - started))s" >&2
    ;;
test-layer)
    "$0" podnat
    started=$(date +%s)
    wheels=$cache/wheels-pytest  # pure Python: the host's pip serves every suite
    [[ -d $wheels ]] || { python3 -m pip wheel -q --wheel-dir "$wheels.tmp" pytest && mv "$wheels.tmp" "$wheels"; }
    inputs=$(
        {
            echo "$(docker image inspect -f '{{.Id}}' "$IMAGE" "$BUILD_BASE")"
            ls "$wheels"
            hash_files tests pyproject.toml hack/image/test-layer.Dockerfile hack/image/collect-tools.sh
        } | sha256sum | cut -c1-16
    )
    if [[ $(label "$TEST_IMAGE") == "$inputs" ]]; then
        echo "hack/env/images.sh: $TEST_IMAGE is current (inputs $inputs)" >&2
        exit 0
    fi
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    cp -r "$wheels" "$ctx/wheels"
    cp "$repo/pyproject.toml" "$repo/hack/image/collect-tools.sh" "$ctx/"
    tar -C "$repo" --exclude=__pycache__ --exclude=.hypothesis -c tests | tar -C "$ctx" -x
    docker build -q -f "$repo/hack/image/test-layer.Dockerfile" --build-arg "PODNAT_IMAGE=$IMAGE" \
        --build-arg "BUILD_BASE=$BUILD_BASE" --label "$LABEL=$inputs" -t "$TEST_IMAGE" "$ctx" >/dev/null
    echo "hack/env/images.sh: built $TEST_IMAGE in $(($(date +%s) - started))s" >&2
    ;;
mirror)
    mirror
    ;;
tag)
    echo "$IMAGE"
    ;;
rootfs)
    rootfs "$2" "$3"
    ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
