"""The kernel tier inside the shipped image: the test layer (hack/image/test-layer.Dockerfile)
is FROM the shipped image and adds only pytest, the tests and the tools they assert with, so
each backend here loads the libraries, xtables modules and Python modules of the image itself.
Real namespaces, veth pairs and TCP/UDP traffic, IPv4 and IPv6, nft and iptables-legacy, inside
a privileged container of its own (--network none) on a read-only root; for each suite, so
also with that suite's nft, iptables and Python. The neighbours matrix runs there too: its
results (the userspace named) go to build/matrix-<suite>.json (tests/kit/matrix.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.image.conftest import Images, docker
from tests.kit.paths import REPO

# The kernel tests that run podnat's backends: apply, verify, cleanup, real traffic,
# lifecycle, backend choice, the in-process engine, the xtables worker, the namespace lock,
# and podnat beside other tools' rules (the compatibility matrix). Left out:
# test_file_capabilities.py (it copies the host's interpreter and uses setcap/setpriv;
# test_shipped_image.py covers the image's own capabilities).
KERNEL_TESTS = (
    "tests/netns/test_traffic.py",
    "tests/netns/test_roundtrip.py",
    "tests/netns/test_lifecycle.py",
    "tests/netns/test_backend_choice.py",
    "tests/netns/test_library.py",
    "tests/netns/test_worker_errors.py",
    "tests/netns/test_namespace_lock.py",
    "tests/netns/test_neighbours.py",
)
# It compares the engine's families with the test's own namespace, which here has loopback
# only (--network none): a property of where the tests run, not of the image.
DESELECTED = ("tests/netns/test_library.py::test_families_are_those_of_the_entered_namespace",)


def test_the_kernel_tier_passes_inside_the_shipped_image(images: Images, tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    out.mkdir()
    done = docker(
        "run", "--rm", "--privileged", "--network", "none", "--read-only",
        "--tmpfs", "/tmp", "--tmpfs", "/run/netns",  # noqa: S108 (the container's own)
        "-v", f"{out}:/out", "-e", "PODNAT_MATRIX_OUT=/out/matrix.json",
        images.kernel_tests, "-q", "-p", "no:cacheprovider", *KERNEL_TESTS,
        *(arg for test in DESELECTED for arg in ("--deselect", test)),
        timeout=1200,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed, 1 deselected in [\d.]+s( \(.*\))?", summary), summary
    (REPO / "build").mkdir(exist_ok=True)
    shutil.copy(out / "matrix.json", REPO / "build" / f"matrix-{images.suite}.json")
