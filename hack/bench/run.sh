#!/usr/bin/env bash
# `make bench` without make: apply (kernel, cold start, API path, validation), admission,
# cluster, each a module of tests/bench run from the checkout's root. Exit 1 if a target
# is missed. PYTHON: the interpreter (default: the development venv, hack/env/venv.sh).
#
#   hack/bench/run.sh                 all three (root: network namespaces, the kind cluster)
#   hack/bench/run.sh apply|admission|cluster [ARGS...]   one of them
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$(hack/env/venv.sh)/bin/python}
if [[ $# -gt 0 ]]; then
    part=$1
    shift
    exec "$python" -m "tests.bench.$part" "$@"
fi
status=0
for part in apply admission cluster; do
    "$python" -m "tests.bench.$part" || status=1
done
exit $status
