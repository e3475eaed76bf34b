# Sourced by the hack/ scripts: the cache directory outside the repo (venvs, tools, docker's
# data root, images). tests/kit/paths.py's cache_dir() is the same rule.
cache=${PODNAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podnat}
