# podnat: one image for the init container (`podnat apply`), the webhook (`podnat webhook`) and
# the node agent (`podnat agent`). CI builds it offline with BASE_IMAGE set to a
# debootstrap-made Debian (hack/env/images.sh); any Debian bookworm or trixie image with
# python3 works. SUITE picks the default base's Debian (bookworm: Python 3.11, nft 1.0.6,
# iptables 1.8.9; trixie: Python 3.13, nft 1.1.3, iptables 1.8.11), and so the userspace the
# image ships; the image records it in /opt/podnat/USERSPACE (hack/image/rootfs.py).
#
# Two stages: `build` installs podnat and the libraries its backends load into a Debian, then
# hack/image/rootfs.py copies out only what runs (each part listed there with its reason) and
# the shipped image is that tree on `scratch`: no apt, dpkg, perl or package lists.
ARG SUITE=bookworm
ARG BASE_IMAGE=debian:${SUITE}-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# Debian's python3 and python3-venv; libnftables for the nft backend; libxtables, libiptc and
# the xtables match/target modules (shipped by iptables) for iptables-legacy; gcc for
# python-iptables' C part where the index has no wheel for it. hack/env/images.sh's build base
# has them all already (and brings wheels), so its build needs no network.
RUN if ! dpkg -s python3 python3-venv libnftables1 iptables >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv libnftables1 iptables gcc libc6-dev; \
    fi
# pyproject.toml, README.md, helper/, hack/image/ and, when hack/env/images.sh made one,
# build/wheels/: a wheelhouse built on the host, so an offline build needs no index
# (.dockerignore).
COPY . ./
# --copies: a python binary of our own, so the file capabilities below are on it alone.
# Bytecode is compiled here: the init container's start is on every pod's path; its
# hash is never checked against the sources (unchecked-hash: no stat per module).
RUN python3 -m venv --copies /opt/podnat \
 && if [ -d build/wheels ]; then from="--no-index --find-links build/wheels podnat"; else from=.; fi \
 && /opt/podnat/bin/pip install --no-cache-dir --no-compile $from \
 && /opt/podnat/bin/pip uninstall -y -q pip setuptools \
 && find /opt/podnat -depth \( -name __pycache__ -o -name tests -o -name '*.pyi' \) -exec rm -rf {} + \
 && rm -rf /opt/podnat/bin/Activate.ps1 \
 && /opt/podnat/bin/python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/podnat/lib \
 && python3 -c 'import os, struct; os.setxattr("/opt/podnat/bin/python3", "security.capability", struct.pack("<5I", 0x02000000, 1 << 12 | 1 << 13 | 1 << 19 | 1 << 21, 0, 0, 0))'
# The tree the image ships, /rootfs (the standard library's bytecode is compiled there too).
RUN python3 hack/image/rootfs.py /rootfs

FROM scratch
# The interpreter carries NET_ADMIN, NET_RAW, SYS_PTRACE and SYS_ADMIN as *permitted-only*
# file capabilities (security.capability v2: bits 12, 13, 19 and 21, no effective bit, set in
# the build stage; COPY keeps them): a non-root process holds whichever of them the pod adds,
# and podnat raises them to effective itself. SYS_ADMIN (setns into a pod's network namespace)
# and SYS_PTRACE (open /proc/PID/ns/net of another user's process) are for `podnat agent`;
# every other container's bounding set cuts them, and with no effective bit no exec fails
# where a pod grants fewer. /run/xtables.lock exists so flock works for a non-root user on a
# read-only root.
COPY --from=build /rootfs /
ENV PATH=/opt/podnat/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["podnat"]
CMD ["--help"]
