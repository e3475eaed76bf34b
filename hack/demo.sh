#!/usr/bin/env bash
# `make demo` without make: podnat's main job in throwaway network namespaces (root).
# PYTHON: the interpreter (default: the development venv, hack/env/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(hack/env/venv.sh)/bin/python}
exec "$python" -m tests.kit.demo "$@"
