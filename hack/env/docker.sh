#!/usr/bin/env bash
# A dockerd of our own (Debian's dockerd package): own socket, data and exec roots, pid file, and
# the runc wrapper as default runtime (kind's privileged nodes need it on these VMs).
# Images persist in the cache between runs; the daemon is stopped by its PID.
#
#   hack/env/docker.sh start    start it unless running; prints `export DOCKER_HOST=...; PATH=...`
#   hack/env/docker.sh stop     stop it (by PID) and wait
#   hack/env/docker.sh env      the exports only
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/hack/env/cache.sh"  # sets $cache
run=/run/podnat-docker
sock=$run/docker.sock
pidfile=$run/dockerd.pid
shims=$cache/shims

exports() {
    # Debian's docker CLI first: it matches the daemon, and kind calls `docker` from PATH.
    echo "export DOCKER_HOST=unix://$sock PATH=$shims:\$PATH"
}

running() {
    [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case ${1:-} in
start)
    mkdir -p "$run" "$cache/docker" "$shims"
    ln -sf /usr/bin/docker "$shims/docker"
    if ! running; then
        # The runtime must sit at a stable path outside the repo checkout.
        install -m 0755 "$repo/hack/cluster/runc-wrapper" "$cache/runc-wrapper"
        dockerd --data-root "$cache/docker" --exec-root "$run/exec" --pidfile "$pidfile" \
            -H "unix://$sock" --add-runtime "podnat-runc=$cache/runc-wrapper" \
            --default-runtime podnat-runc --log-level warn >"$run/dockerd.log" 2>&1 &
        for _ in $(seq 1 100); do
            /usr/bin/docker -H "unix://$sock" version >/dev/null 2>&1 && break
            sleep 0.2
        done
        /usr/bin/docker -H "unix://$sock" version >/dev/null 2>&1 || {
            tail -20 "$run/dockerd.log" >&2
            exit 1
        }
    fi
    exports
    ;;
stop)
    if running; then
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    ;;
env)
    exports
    ;;
*)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
