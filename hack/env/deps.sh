#!/usr/bin/env bash
# Install the system packages podnat's tests, demo and benchmarks use (Debian/Ubuntu).
# Idempotent and quiet when everything is present; never touches the network otherwise.
set -euo pipefail

need=()
command -v nft >/dev/null || need+=(nftables)
command -v iptables-legacy >/dev/null || need+=(iptables)
command -v iptables-legacy-restore >/dev/null || need+=(iptables)
# The neighbour tests install other tools' rules through both iptables flavours.
command -v iptables-nft >/dev/null || need+=(iptables)
command -v ip6tables-nft-save >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v setpriv >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
command -v setcap >/dev/null || need+=(libcap2-bin)  # the file-capability tests
command -v strace >/dev/null || need+=(strace)  # the reliability tier kills at a chosen syscall
# The image and the offline kind cluster (hack/env/docker.sh, images.sh, node-image.sh): Debian's
# dockerd, its containerd (also imports the node's preloaded images), debootstrap for rootfses.
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v gzip >/dev/null || need+=(gzip)
libs=$(ldconfig -p)
[[ $libs == *"libnftables.so.1 "* ]] || need+=(libnftables1)
[[ $libs == *"libxtables.so.12 "* ]] || need+=(libxtables12)

if ((${#need[@]})); then
    echo "hack/env/deps.sh: installing ${need[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
        echo "hack/env/deps.sh: need root to apt-get install ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The pinned Kubernetes tools are built from Go modules (hack/env/tools.sh): Go >= 1.25.
if ! command -v go >/dev/null; then
    echo "hack/env/deps.sh: Go >= 1.25 is needed to build the pinned Kubernetes tools" >&2
    exit 1
fi
