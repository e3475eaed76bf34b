#!/usr/bin/env bash
# Build the pinned Kubernetes tools (versions: hack/env/tools/go.mod) with `go build`, into a
# cache outside the repo; binaries already there are reused.
#
#   hack/env/tools.sh build [NAME...]   build NAMEs (default: all); prints nothing on success
#   hack/env/tools.sh bin-dir           where the binaries are
#   hack/env/tools.sh replaces          print the staging-module replace block for go.mod
#   hack/env/tools.sh crds              fetch cert-manager's CRDs (Go module zip); print their dir
set -euo pipefail
cd "$(dirname "$0")/tools"

declare -A PKG=(
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kubeadm]=k8s.io/kubernetes/cmd/kubeadm
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [etcd]=go.etcd.io/etcd/server/v3
    [helm]=helm.sh/helm/v3/cmd/helm
    [kind]=sigs.k8s.io/kind
)
# Its CRDs only, to validate the chart's cert-manager objects against the real schemas.
CERT_MANAGER=v1.19.1
ALL=(kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm helm kind)

k8s=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
key=$( (cat go.mod go.sum; go env GOVERSION) | sha256sum | cut -c1-12)
source ../cache.sh  # sets $cache
bin=$cache/tools-$k8s-$key/bin

version_ldflags() {
    # What a release build stamps, so `kube-apiserver --version` says v1.35.x.
    local major minor pkg flags=""
    major=$(cut -d. -f1 <<<"${k8s#v}")
    minor=$(cut -d. -f2 <<<"$k8s")
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$flags"
}

case ${1:-build} in
bin-dir)
    echo "$bin"
    ;;
replaces)
    mod=$(go env GOMODCACHE)/k8s.io/kubernetes@$k8s/go.mod
    [[ -f $mod ]] || GOFLAGS=-mod=mod go mod download k8s.io/kubernetes
    echo "replace ("
    awk -v v="v0.${k8s#v1.}" '$2 == "=>" && $3 ~ /^\.\/staging/ {print "\t" $1 " => " $1 " " v}' "$mod"
    echo ")"
    ;;
crds)
    dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER" |
        awk -F'"' '$2 == "Dir" {print $4}')
    echo "$dir/deploy/crds"
    ;;
build)
    shift || true
    names=("$@")
    ((${#names[@]})) || names=("${ALL[@]}")
    mkdir -p "$bin"
    for name in "${names[@]}"; do
        [[ -n ${PKG[$name]:-} ]] || { echo "hack/env/tools.sh: unknown tool $name" >&2; exit 2; }
        started=$(date +%s)
        ldflags="-s -w"
        [[ ${PKG[$name]} == k8s.io/kubernetes/* ]] && ldflags+=$(version_ldflags)
        if [[ $name == helm ]]; then
            helm=$(awk '$1 == "helm.sh/helm/v3" {print $2; exit}' go.mod)
            ldflags+=" -X helm.sh/helm/v3/internal/version.version=$helm"
            # The Kubernetes version `helm template` and `helm lint` assume (else v1.20).
            for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
                ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$(cut -d. -f2 <<<"$k8s")"
            done
        fi
        # The cache key covers go.mod/go.sum; the recipe (ldflags) is checked per binary.
        if [[ -x $bin/$name && $(cat "$bin/.$name.ldflags" 2>/dev/null) == "$ldflags" ]]; then
            continue
        fi
        GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "${PKG[$name]}"
        mv "$bin/$name.tmp" "$bin/$name"
        echo "$ldflags" >"$bin/.$name.ldflags"
        echo "hack/env/tools.sh: built $name in $(($(date +%s) - started))s" >&2
    done
    ;;
*)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
