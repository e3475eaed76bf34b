#!/usr/bin/env bash
# istio's init, `pilot-agent istio-iptables`, pinned in hack/bench/istio/go.mod and built
# with go build for make bench's peer comparison only (never shipped, never a test tool).
# Cached outside the repo like hack/env/tools.sh's binaries; prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/istio"
version=$(awk '$1 == "require" && $2 == "istio.io/istio" {print $3}' go.mod)
key=$( (cat go.mod go.sum; go env GOVERSION) | sha256sum | cut -c1-12)
source ../../env/cache.sh  # sets $cache
bin=$cache/istio-$version-$key/pilot-agent
if [[ ! -x $bin ]]; then
    mkdir -p "$(dirname "$bin")"
    # About 2 minutes on a 2-core VM; GOFLAGS=-mod=mod: go.sum is checked in, no vendor dir.
    GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" istio.io/istio/pilot/cmd/pilot-agent
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
