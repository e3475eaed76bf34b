#!/usr/bin/env bash
# The offline kind cluster tests/e2e runs on in CI: podnat and node images built here
# (hack/env/images.sh, hack/cluster/node-image.sh), traffic kept on the machine, chart installed.
#
#   hack/cluster/e2e-cluster.sh up      build images, guard egress, create the cluster (two nodes,
#                               dual-stack), give each node its pod network, load the image,
#                               install the chart (release podnat in podnat-system, API
#                               access for namespace podnat-e2e); prints the kubeconfig
#   hack/cluster/e2e-cluster.sh down    delete the cluster, remove the egress guard, stop dockerd
#
# Egress guard (hack/cluster/egress-guard.sh, while the cluster exists): forwarded packets out of
# every uplink (the default routes' devices, IPv4 and IPv6) are dropped by an nft table of
# its own, and the cluster's pod and service CIDRs are blackholed on the host, so no packet
# from a node or a pod can leave the machine, whatever its family. Images are built before
# it: their apt-get and pip need the way out. Each node's pod network (bridge CNI config
# from its own podCIDRs, routes to the other node's pods, both families) is written by
# hack/cluster/pod-network.sh once the nodes have registered.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
hack=$repo/hack
source "$hack/cluster/e2e-lib.sh"
eval "$("$hack/env/docker.sh" env)"
export PATH="$("$hack/env/tools.sh" bin-dir):$PATH"
CLUSTER=podnat-e2e
state=/run/podnat-e2e
KUBECONFIG_PATH=$state/kubeconfig
KIND_CONFIG=$hack/cluster/node/kind-config.yaml
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")
IMAGE=podnat:$VERSION

case ${1:-} in
up)
    mkdir -p "$state"
    "$hack/env/docker.sh" start >/dev/null
    started=$(date +%s)
    "$hack/env/tools.sh" build kind helm kubectl
    "$hack/env/images.sh" podnat
    node=$("$hack/cluster/node-image.sh")
    PODNAT_GUARD_STATE=$state "$hack/cluster/egress-guard.sh" on "$KIND_CONFIG"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_PATH" >/dev/null 2>&1 || true
    kind create cluster --name "$CLUSTER" --image "$node" --config "$KIND_CONFIG" \
        --kubeconfig "$KUBECONFIG_PATH" >"$state/create.log" 2>&1 ||
        { tail -30 "$state/create.log" >&2; exit 1; }
    export KUBECONFIG=$KUBECONFIG_PATH
    mapfile -t nodes < <(kind get nodes --name "$CLUSTER")
    load_image "$IMAGE" "${nodes[@]}"
    # Both nodes take pods (kind untaints the control plane only when it is alone).
    kubectl taint nodes --all node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null 2>&1 || true
    "$hack/cluster/pod-network.sh" "${#nodes[@]}"
    kubectl wait --for=condition=Ready nodes --all --timeout=120s >/dev/null
    install_podnat "$VERSION"
    echo "hack/cluster/e2e-cluster.sh: cluster up in $(($(date +%s) - started))s" >&2
    echo "$KUBECONFIG_PATH"
    ;;
down)
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_PATH" >/dev/null 2>&1 || true
    PODNAT_GUARD_STATE=$state "$hack/cluster/egress-guard.sh" off
    rm -rf "$state"
    "$hack/env/docker.sh" stop  # its images stay cached in the data root
    ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
