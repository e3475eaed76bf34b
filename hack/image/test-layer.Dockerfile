# The kernel tier inside the shipped image: FROM it, adding only the tests and the tools the
# tests assert with, so a pass proves the image itself has everything podnat's backends load.
# Built by `hack/env/images.sh test-layer` from a context it assembles (tests/, pyproject.toml
# for pytest's configuration, wheels/ with pytest). Nothing added is on podnat's paths:
#  - ip, nft and iptables-legacy-save live in /opt/test-tools with their own copies of every
#    library they link, loader included, and run through wrappers that name that loader;
#  - pytest is put on sys.path by /opt/test-tools/pytest (no PYTHONPATH), so the podnat
#    processes the tests start see the image's site-packages only;
#  - no helper/ is copied: the tests import and run the podnat installed in the image.
ARG PODNAT_IMAGE
ARG BUILD_BASE
FROM ${BUILD_BASE} AS tools
COPY wheels /wheels
COPY collect-tools.sh /collect-tools.sh
RUN sh /collect-tools.sh /opt/test-tools

FROM ${PODNAT_IMAGE}
COPY --from=tools /opt/test-tools /opt/test-tools
COPY pyproject.toml /podnat-tests/
COPY tests /podnat-tests/tests
ENV PATH=/opt/test-tools/path:$PATH
WORKDIR /podnat-tests
# The kernel tier creates network namespaces: root, in a privileged container.
USER 0:0
ENTRYPOINT ["python3", "/opt/test-tools/pytest"]
