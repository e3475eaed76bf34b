# Sourced by hack/cluster/e2e-cluster.sh and hack/cluster/e2e-kind.sh: what tests/e2e expects of a cluster.
# Needs $repo, docker, kubectl and helm (KUBECONFIG set).

# load_image IMAGE NODE...: what `kind load docker-image` runs in each node, without its
# crictl check (hack/cluster/node-image.sh's nodes have no crictl).
load_image() {
    local image=$1 node
    shift
    for node in "$@"; do
        docker save "$image" | docker exec -i "$node" ctr -n k8s.io images import --digests - >/dev/null
    done
}

# install_podnat TAG: the injection-enabled namespace podnat-e2e, then the chart as a user
# installs it (release podnat in podnat-system), with API access for that namespace.
install_podnat() {
    kubectl create namespace podnat-e2e >/dev/null
    kubectl label namespace podnat-e2e podnat.io/inject=enabled >/dev/null
    helm upgrade --install podnat "$repo/charts/podnat" --namespace podnat-system \
        --create-namespace --set image.pullPolicy=Never --set "image.tag=$1" \
        --set "rbac.helperBindings[0].namespace=podnat-e2e" --wait --timeout 180s >/dev/null
}
