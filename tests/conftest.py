from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kit.lab import Lab


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace(os.sep, "/")
        if "tests/netns/" in path:
            item.add_marker(pytest.mark.netns)
        if "tests/reliability/" in path:
            # Real processes in namespaces the tests create: root, like the kernel tier.
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.netns)
        if "tests/kube/" in path:
            item.add_marker(pytest.mark.kube)
        if "tests/corpus/" in path:
            item.add_marker(pytest.mark.corpus)
        if "tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        if "tests/image/" in path:
            item.add_marker(pytest.mark.image)


@pytest.fixture(autouse=True)
def _netns_needs_root(request: pytest.FixtureRequest) -> None:
    # Kernel tests must fail loudly, never skip, when they cannot run.
    if request.node.get_closest_marker("netns") and os.geteuid() != 0:
        pytest.fail(
            "this test creates network namespaces and needs root: run `sudo make test`, "
            "or `make test-quick` for the tiers that need no root"
        )


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create() as created:
        yield created
