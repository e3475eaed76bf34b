"""What the webhook decides, seen through the cluster's own API server and controllers."""

from __future__ import annotations

from typing import Any

from tests.kit.cluster import RELEASE, RELEASE_NAMESPACE, Cluster, eventually
from tests.kit.workloads import client_pod, server_deployment, server_pod

INVALID = {"podnat.io/redirect": "4321:1234, 99999:1"}
PARSER_SAYS = 'podnat.io/redirect: "99999:1": port 99999 is out of range 1-65535'


def test_an_invalid_pod_is_denied_with_the_parsers_message(
    cluster: Cluster, image: str, namespace: str
) -> None:
    done = cluster.apply(server_pod("invalid", image, INVALID), check=False)
    assert done.returncode != 0
    assert 'admission webhook "inject.podnat.io" denied the request' in done.stderr
    assert PARSER_SAYS in done.stderr


def test_a_deployments_replicaset_reports_the_denial(
    cluster: Cluster, image: str, namespace: str
) -> None:
    cluster.apply(server_deployment("invalid-deploy", image, INVALID, tcp="1234", udp=""))

    def denial() -> list[str]:
        out = cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate",
            "-o", "jsonpath={range .items[*]}{.message}{'\\n'}{end}",
        ).stdout  # fmt: skip
        return [line for line in out.splitlines() if line.startswith("Error creating")]

    messages = eventually(denial, timeout=60)
    assert any(PARSER_SAYS in m for m in messages), messages
    cluster.kubectl("delete", "deployment", "invalid-deploy", "-n", namespace)


def test_a_pod_without_annotations_is_untouched(
    cluster: Cluster, image: str, namespace: str
) -> None:
    cluster.apply(client_pod("plain", image))
    pod: dict[str, Any] = cluster.get("pod", "plain")
    assert "initContainers" not in pod["spec"]
    assert "podnat-podinfo" not in [v["name"] for v in pod["spec"].get("volumes", [])]


def test_a_host_network_pod_with_the_annotation_is_denied(
    cluster: Cluster, image: str, namespace: str
) -> None:
    pod = server_pod("hostnet", image, {"podnat.io/redirect": "4321:1234"})
    pod["spec"]["hostNetwork"] = True
    done = cluster.apply(pod, check=False)
    assert done.returncode != 0
    assert "hostNetwork pod would rewrite the node's own NAT rules" in done.stderr


def test_helm_test_proves_a_redirect(cluster: Cluster) -> None:
    done = cluster.run(
        "helm", "test", RELEASE, "--namespace", RELEASE_NAMESPACE, "--logs", "--timeout", "120s"
    )
    assert "Phase:          Succeeded" in done.stdout
    assert "through podnat" in done.stdout
