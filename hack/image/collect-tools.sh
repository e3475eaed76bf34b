#!/bin/sh
# Run in the test layer's tools stage (hack/image/test-layer.Dockerfile): the test tools and
# their libraries under DEST, isolated from the shipped image's own libraries: ip, nft and
# iptables-legacy-save to assert with, setpriv to drop capabilities, sleep to hold a namespace,
# iptables-nft and iptables-legacy to install the neighbours' rules (tests/netns/neighbours.py).
#   DEST/bin, DEST/lib   the binaries and every library they link (ldd), the loader too
#   DEST/path/NAME       wrappers: run NAME with that loader and that library path only
#   DEST/site            pytest and its dependencies (pure Python), DEST/pytest starts it
set -eu
dest=$1
mkdir -p "$dest/bin" "$dest/lib" "$dest/path"
loader=$(ldd /usr/bin/ip | awk '/ld-linux/ {print $1}')
for tool in /usr/bin/ip /usr/sbin/nft /usr/sbin/xtables-legacy-multi /usr/sbin/xtables-nft-multi \
    /usr/bin/setpriv /usr/bin/sleep; do
    cp "$tool" "$dest/bin/"
    ldd "$tool" | awk '$2 == "=>" {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
        cp -L "$lib" "$dest/lib/"
    done
done
wrap() {  # wrap NAME BINARY
    printf '#!/bin/sh\nexec %s/lib/%s --library-path %s/lib --argv0 %s %s/bin/%s "$@"\n' \
        "$dest" "$(basename "$loader")" "$dest" "$1" "$dest" "$2" >"$dest/path/$1"
    chmod 0755 "$dest/path/$1"
}
for name in ip nft setpriv sleep; do
    wrap "$name" "$name"
done
for name in iptables-legacy-save ip6tables-legacy-save iptables-legacy ip6tables-legacy; do
    wrap "$name" xtables-legacy-multi
done
for name in iptables-nft-save ip6tables-nft-save iptables-nft ip6tables-nft; do
    wrap "$name" xtables-nft-multi
done
python3 -m venv /tmp/pip
/tmp/pip/bin/pip install -q --no-index --find-links /wheels --target "$dest/site" pytest
cat >"$dest/pytest" <<'PY'
import sys

sys.path.insert(0, "/opt/test-tools/site")
import pytest  # noqa: E402

# The image has no unittest (hack/image/rootfs.py): pytest's plugin for it stays off.
sys.exit(pytest.main(["-p", "no:unittest", *sys.argv[1:]]))
PY
