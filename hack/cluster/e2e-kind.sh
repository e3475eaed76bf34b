#!/usr/bin/env bash
# The end-to-end suite the way a user runs it on a laptop or in hosted CI with Docker and
# registry access: a kind cluster with kind's own node image, the podnat image built from
# the Dockerfile and `kind load`ed, the chart installed, tests/e2e, the cluster deleted.
# Needs docker, and kind/helm/kubectl on PATH (else the pinned ones are built: Go).
#
# Overrides: KIND_NODE_IMAGE (default: kind's), KIND_CONFIG (a kind Cluster config file;
# default hack/cluster/e2e-kind-config.yaml: two nodes, dual-stack, as the suite needs),
# BASE_IMAGE (the Dockerfile's), PODNAT_KIND_CLUSTER (default podnat-kind).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/hack/cluster/e2e-lib.sh"
cluster=${PODNAT_KIND_CLUSTER:-podnat-kind}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")
image=podnat:$version

for tool in kind helm kubectl; do
    if ! command -v "$tool" >/dev/null; then
        "$repo/hack/env/tools.sh" build kind helm kubectl
        PATH="$("$repo/hack/env/tools.sh" bin-dir):$PATH"
        break
    fi
done
kubeconfig=$(mktemp -d)/kubeconfig
export KUBECONFIG=$kubeconfig

create=(kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
    --config "${KIND_CONFIG:-$repo/hack/cluster/e2e-kind-config.yaml}")
[[ -z ${KIND_NODE_IMAGE:-} ]] || create+=(--image "$KIND_NODE_IMAGE")
"${create[@]}"
trap 'kind delete cluster --name "$cluster" --kubeconfig "$kubeconfig"' EXIT

build=(docker build -t "$image")
[[ -z ${BASE_IMAGE:-} ]] || build+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
"${build[@]}" "$repo"
# shellcheck disable=SC2046 # node names have no spaces
load_image "$image" $(kind get nodes --name "$cluster")
install_podnat "$version"

venv=$("$repo/hack/env/venv.sh")
PODNAT_E2E_KUBECONFIG=$kubeconfig "$venv/bin/pytest" -q -p no:cacheprovider -m "not egress_guard and not offline_harness" "$repo/tests/e2e"
