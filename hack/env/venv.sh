#!/usr/bin/env bash
# Create (once) a virtualenv outside the repo, keyed by pyproject.toml, and install
# this checkout into it in editable mode. Prints the venv path.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "hack/env/venv.sh: podnat needs Python >= 3.11 ($python is $("$python" -V))" >&2
    exit 1
}
key=$( (cat pyproject.toml; "$python" -V) | sha256sum | cut -c1-12)
source hack/env/cache.sh  # sets $cache
venv=$cache/venv-$key

if [[ ! -f $venv/.deps-installed ]]; then
    echo "hack/env/venv.sh: creating $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    log=$cache/venv-$key.log
    if ! { "$venv/bin/pip" install -q --upgrade pip 'setuptools>=77' wheel &&
           "$venv/bin/pip" install -q -e '.[dev]'; } >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    touch "$venv/.deps-installed"
fi
# Cheap, and points the venv at *this* checkout (CI clones elsewhere each run).
log=$(mktemp)
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e . >"$log" 2>&1 || {
    cat "$log" >&2
    exit 1
}
rm -f "$log"
echo "$venv"
