#!/usr/bin/env bash
# `make bench` without make: apply (kernel, cold start, API path, validation), peers
# (istio's init, nft -f: whole processes), admission, cluster, each a module of
# tests/bench run from the checkout's root, then one table (tests/bench/table.py). Exit 1
# if a target is missed. PYTHON: the interpreter (default: the development venv).
#
#   hack/bench/run.sh                 all four (root: network namespaces, the kind cluster)
#   hack/bench/run.sh apply|peers|admission|cluster [ARGS...]   one of them
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$(hack/env/venv.sh)/bin/python}
if [[ $# -gt 0 ]]; then
    part=$1
    shift
    exec "$python" -m "tests.bench.$part" "$@"
fi
exec "$python" -m tests.bench.table
