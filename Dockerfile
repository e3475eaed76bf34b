# podnat: one image for the init container (`podnat apply`) and the webhook (`podnat webhook`).
# CI builds it offline with BASE_IMAGE set to a debootstrap-made Debian (hack/env/images.sh);
# any Debian bookworm image with python3 (or the official slim one) works.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# pyproject.toml, README.md, helper/ and, when hack/env/images.sh made one, build/wheels/:
# a wheelhouse built on the host, so an offline build needs no index (.dockerignore).
COPY . ./
# --copies: a python binary of our own, so the file capabilities below are on it alone.
# Bytecode is compiled here: the init container's start is on every pod's path; its
# hash is never checked against the sources (unchecked-hash: no stat per module).
RUN python3 -c 'import ensurepip' 2>/dev/null \
 || { apt-get update && apt-get install -y --no-install-recommends python3-venv; } \
 && python3 -m venv --copies /opt/podnat \
 && if [ -d build/wheels ]; then from="--no-index --find-links build/wheels podnat"; else from=.; fi \
 && /opt/podnat/bin/pip install --no-cache-dir --no-compile $from \
 && /opt/podnat/bin/pip uninstall -y -q pip setuptools \
 && find /opt/podnat -depth \( -name __pycache__ -o -name tests -o -name '*.pyi' \) -exec rm -rf {} + \
 && rm -rf /opt/podnat/bin/Activate.ps1 \
 && /opt/podnat/bin/python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/podnat/lib \
 && python3 -c 'import os, struct; os.setxattr("/opt/podnat/bin/python3", "security.capability", struct.pack("<5I", 0x02000000, 1 << 12 | 1 << 13, 0, 0, 0))'

FROM ${BASE_IMAGE}
# Only the userspace the backends load: libnftables for nft, libxtables + libiptc and the
# xtables match/target modules (shipped by iptables) for iptables-legacy.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnftables1 iptables \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
# The interpreter carries NET_ADMIN and NET_RAW as *permitted-only* file capabilities
# (security.capability v2: no effective bit, bits 12 and 13, set in the build stage; COPY
# keeps them): a non-root process holds whichever of them the pod adds, and podnat raises
# them to effective itself. The lock file exists so flock works for a non-root user on a
# read-only root filesystem.
COPY --from=build /opt/podnat /opt/podnat
RUN touch /run/xtables.lock && chmod 0644 /run/xtables.lock
ENV PATH=/opt/podnat/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["podnat"]
CMD ["--help"]
