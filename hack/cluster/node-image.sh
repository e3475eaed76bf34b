#!/usr/bin/env bash
# A kind node image assembled here, with nothing pulled from any container registry
# (`kind build node-image` always pulls): a Debian rootfs with systemd, containerd, runc
# and the CNI plugins; kubelet, kubeadm and kubectl from hack/env/tools; the control-plane and
# pause images built from the same binaries and preloaded into containerd's store. No CNI
# config: each node's comes from its own podCIDRs (hack/cluster/pod-network.sh).
# Prints the image name; reused while its inputs are unchanged.
#
#   hack/cluster/node-image.sh          build it unless present; print its name
#   hack/cluster/node-image.sh name     only the name its inputs give (nothing built)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
hack=$repo/hack
eval "$("$hack/env/docker.sh" start)"
source "$hack/env/cache.sh"  # sets $cache
k8s=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$hack/env/tools/go.mod")
etcd=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' "$hack/env/tools/go.mod")
bin=$("$hack/env/tools.sh" bin-dir)
REPOSITORY=podnat.local  # what the kind config's imageRepository and containerd's sandbox_image name
PAUSE=$REPOSITORY/pause:3.10
PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,nftables,iproute2,procps,util-linux,mount,ca-certificates,catatonit,conntrack,ethtool,socat

"$hack/env/tools.sh" build kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler \
    kube-proxy etcd
"$hack/env/images.sh" base

# The files in one order however this script was invoked (relative or absolute path: a
# path-dependent order gave two names, each evicting the other). The kind config is no
# input of the image (a cluster shape, read by kind at create).
inputs=$( (cd "$repo" && find hack/cluster/node-image.sh hack/env/images.sh hack/cluster/node -type f ! -name kind-config.yaml -print0 |
    sort -z | xargs -0 cat; echo "$PACKAGES $k8s $etcd";
    cat "$bin"/.*.ldflags; docker image inspect -f '{{.Id}}' podnat-base:bookworm) | sha256sum | cut -c1-12)
NODE=podnat-kind-node:$k8s-$inputs
if [[ ${1:-} == name ]]; then
    echo "$NODE"
    exit 0
fi
if docker image inspect "$NODE" >/dev/null 2>&1; then
    echo "$NODE"
    exit 0
fi
started=$(date +%s)
work=$cache/node-build
rm -rf "$work"
mkdir -p "$work/images"

# Control-plane images: the pinned binaries on the Debian base (they link glibc), tagged as
# kubeadm names them under imageRepository.
component() {
    local name=$1 tag=$2 packages=${3:-} ctx=$work/images/$1
    mkdir -p "$ctx"
    cp "$bin/$name" "$ctx/$name"
    {
        printf 'FROM podnat-base:bookworm\nCOPY %s /usr/local/bin/%s\n' "$name" "$name"
        printf 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
        [[ -z $packages ]] || printf 'RUN apt-get update && apt-get install -y --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n' "$packages"
    } >"$ctx/Dockerfile"
    docker build -q -t "$REPOSITORY/$name:$tag" "$ctx" >/dev/null
    echo "$REPOSITORY/$name:$tag"
}
images=()
for name in kube-apiserver kube-controller-manager kube-scheduler; do
    images+=("$(component "$name" "$k8s")")
done
# kube-proxy (iptables mode) runs iptables-restore and conntrack.
images+=("$(component kube-proxy "$k8s" "iptables conntrack")")
images+=("$(component etcd "$etcd")")

# The rootfs. debootstrap gives a systemd-based Debian; the files below are podnat's own.
root=$work/rootfs
"$hack/env/images.sh" rootfs "$root" "$PACKAGES"

# The sandbox ("pause") image: Debian's static catatonit in pause mode.
mkdir -p "$work/images/pause"
cp "$root/usr/bin/catatonit" "$work/images/pause/catatonit"
printf 'FROM scratch\nCOPY catatonit /pause\nENTRYPOINT ["/pause", "-P"]\n' >"$work/images/pause/Dockerfile"
docker build -q -t "$PAUSE" "$work/images/pause" >/dev/null
images+=("$PAUSE")

install -m 0755 "$bin/kubelet" "$bin/kubeadm" "$bin/kubectl" "$root/usr/bin/"
mkdir -p "$root/kind" "$root/etc/kubernetes/manifests" "$root/etc/systemd/system/kubelet.service.d" \
    "$root/etc/containerd/certs.d/_default" "$root/etc/cni/net.d"
echo "$k8s" >"$root/kind/version"
install -m 0755 "$hack/cluster/node/entrypoint" "$root/usr/local/bin/entrypoint"
install -m 0644 "$hack/cluster/node/kubelet.service" "$hack/cluster/node/kubelet.slice" "$root/etc/systemd/system/"
install -m 0644 "$hack/cluster/node/10-kubeadm.conf" "$root/etc/systemd/system/kubelet.service.d/"
install -m 0644 "$hack/cluster/node/containerd.toml" "$root/etc/containerd/config.toml"
install -m 0644 "$hack/cluster/node/certs.d/_default/hosts.toml" "$root/etc/containerd/certs.d/_default/"
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\n' >"$root/etc/crictl.yaml"
# Nothing that would touch the VM itself: sysctls, binfmt, kernel modules, consoles.
for unit in systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
    systemd-modules-load.service getty.target console-getty.service systemd-udevd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nReadKMsg=no\n' >"$root/etc/systemd/journald.conf.d/podnat.conf"
chroot "$root" systemctl enable kubelet.service containerd.service >/dev/null 2>&1
rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"

# Preload the images into the node's containerd store with the host's containerd (the same
# Debian version), pinned so the kubelet's image GC keeps them.
docker save "${images[@]}" -o "$work/images.tar"
state=$work/containerd
mkdir -p "$state"
printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$state/config.toml"
containerd --config "$state/config.toml" --root "$root/var/lib/containerd" --state "$state/run" \
    --address "$state/sock" >"$state/log" 2>&1 &
ctd=$!
trap 'kill "$ctd" 2>/dev/null || true' EXIT  # stopped by its PID, also when a step fails
for _ in $(seq 1 100); do ctr --address "$state/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$state/sock" -n k8s.io images import --no-unpack "$work/images.tar" >/dev/null
for image in "${images[@]}"; do
    ctr --address "$state/sock" -n k8s.io images label "$image" io.cri-containerd.pinned=pinned >/dev/null
done
kill "$ctd"
wait "$ctd" || true

tar -C "$root" -c . | docker import --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'ENV container=docker' - "$NODE-rootfs" >/dev/null
# dockerd 20.10's import refuses STOPSIGNAL: one more layerless step adds it.
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$NODE-rootfs" | docker build -q -t "$NODE" - >/dev/null
docker rmi "$NODE-rootfs" >/dev/null
rm -rf "$work"
# Older node images (other inputs) and dangling layers would only fill the cache.
docker images --format '{{.Repository}}:{{.Tag}}' podnat-kind-node | grep -vx "$NODE" |
    xargs -r docker rmi >/dev/null 2>&1 || true
docker image prune -f >/dev/null
echo "hack/cluster/node-image.sh: built $NODE in $(($(date +%s) - started))s" >&2
echo "$NODE"
