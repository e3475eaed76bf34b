"""The shipped image and its kernel-test layer, for each Debian suite podnat ships (every
test here runs once per suite), built once per session by hack/env/images.sh test-layer
(tag: $PODNAT_IMAGE, default podnat:<version>, with -trixie appended for trixie; rebuilt only
when an input changed), run in hack/env/docker.sh's daemon. Containers run with --network
none: their traffic stays in namespaces made for them."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from tests.kit.cluster import docker_host
from tests.kit.paths import HACK

SUITES = ("bookworm", "trixie")


@dataclass(frozen=True)
class Images:
    suite: str
    shipped: str
    kernel_tests: str


def docker(
    *argv: str, stdin: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *argv],
        env={**os.environ, "DOCKER_HOST": docker_host()},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session", params=SUITES)
def images(request: pytest.FixtureRequest) -> Images:
    suite: str = request.param
    if os.geteuid() != 0:
        pytest.fail(
            "the image tests build with hack/env/images.sh (dockerd, debootstrap): run as root"
        )
    built = subprocess.run(
        [str(HACK / "env" / "images.sh"), "test-layer"],
        env={**os.environ, "PODNAT_SUITE": suite},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return Images(suite, *image_names(suite))


@pytest.fixture
def container_name() -> Iterator[str]:
    """A name for the test's long-running container, removed afterwards."""
    name = f"podnat-image-test-{uuid.uuid4().hex[:8]}"
    yield name
    docker("rm", "-f", name)


def restricted(
    image: str,
    *argv: str,
    volumes: Sequence[str] = (),
    entrypoint: str | None = None,
    flags: Sequence[str] = ("--rm",),
) -> list[str]:
    """`docker run` as the pod runs podnat: user 65532, read-only root, every capability
    dropped but NET_ADMIN and NET_RAW (the bounding set: only the file capabilities on the
    interpreter make them usable), no network but the container's own loopback. FLAGS: more
    `docker run` flags (default --rm)."""
    mounts = [arg for volume in volumes for arg in ("-v", volume)]
    if entrypoint:
        mounts += ["--entrypoint", entrypoint]
    return [
        "run", *flags, "--read-only", "--network", "none", "--user", "65532:65532",
        "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
        *mounts, image, *argv,
    ]  # fmt: skip


def image_names(suite: str) -> tuple[str, str]:
    """(shipped, kernel-test layer), as hack/env/images.sh tags them."""
    version = next(
        line.split('"')[1]
        for line in (HACK.parent / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    shipped = os.environ.get("PODNAT_IMAGE") or f"podnat:{version}"
    if suite != "bookworm":
        shipped += f"-{suite}"
    name, tag = shipped.rsplit(":", 1)
    return shipped, f"{name}-kernel-tests:{tag}"
