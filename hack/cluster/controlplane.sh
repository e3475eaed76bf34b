#!/usr/bin/env bash
# `make cluster-up` / `make cluster-down` without make: etcd + kube-apiserver on loopback
# (tests/kit/controlplane.py); `up` prints the admin kubeconfig's path.
# PYTHON: the interpreter (default: the development venv, hack/env/venv.sh).
#
#   hack/cluster/controlplane.sh up|down [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$(hack/env/venv.sh)/bin/python}
exec "$python" -m tests.kit.controlplane "$@"
