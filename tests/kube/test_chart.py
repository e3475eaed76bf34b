"""The Helm chart: lint, render with several value sets, and have the real API server validate
every object (server-side dry-run, cert-manager objects against cert-manager's own CRDs)."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kit.paths import REPO
from tests.kit.tools import Tools
from tests.kube.helm import CHART, VALUE_SETS, documents, find, template

VALUE_FILES = sorted(VALUE_SETS.glob("*.yaml"))
NAMESPACE = "podnat-chart"
COMPONENT = "app.kubernetes.io/component"
AGENT_KINDS = {"DaemonSet", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
               "ValidatingAdmissionPolicyBinding"}  # fmt: skip


@pytest.fixture(scope="module")
def cluster_ready(tools: Tools) -> Tools:
    """Namespaces the value sets name, and cert-manager's CRDs (from its Go module)."""
    crds = subprocess.run(
        [str(REPO / "hack" / "env" / "tools.sh"), "crds"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for name in ("certificates", "issuers"):
        tools.kubectl("apply", "-f", f"{crds}/cert-manager.io_{name}.yaml")
    # Polled, not `kubectl wait`: that fails at once while a fresh CRD has no status yet
    # (and so does this jsonpath, while status.conditions is still null: not yet, not an error).
    established = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + 60
    for name in ("certificates", "issuers"):
        crd = f"crd/{name}.cert-manager.io"
        get = ("get", crd, "-o", f"jsonpath={established}")
        while tools.kubectl(*get, check=False).stdout != "True":
            assert time.monotonic() < deadline, f"{crd} not Established within 60 s"
            time.sleep(0.2)
    for ns in (NAMESPACE, "shop", "web"):
        if tools.kubectl("get", "namespace", ns, check=False).returncode != 0:
            tools.kubectl("create", "namespace", ns)
    return tools


@pytest.mark.parametrize("values", VALUE_FILES, ids=[p.stem for p in VALUE_FILES])
def test_lint_is_clean(tools: Tools, values: Path) -> None:
    out = tools.helm("lint", "--strict", str(CHART), "-f", str(values)).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", VALUE_FILES, ids=[p.stem for p in VALUE_FILES])
def test_the_api_server_accepts_every_rendered_object(cluster_ready: Tools, values: Path) -> None:
    rendered = template(cluster_ready, "podnat", NAMESPACE, "-f", str(values))
    kinds = {doc["kind"] for doc in documents(rendered)}
    # A dry run creates nothing, so the helm test pod would miss its service account.
    accounts = [yaml.safe_dump(doc) for doc in find(documents(rendered), "ServiceAccount")]
    cluster_ready.kubectl("apply", "-f", "-", stdin="---\n".join(accounts))
    assert {"Deployment", "Service", "MutatingWebhookConfiguration"} <= kinds
    if values.stem == "agent":
        assert kinds >= AGENT_KINDS
    out = cluster_ready.kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered).stdout
    assert out.count("(server dry run)") == len(documents(rendered))


def render(tools: Tools, *args: str) -> list[dict[str, Any]]:
    return documents(template(tools, "rel", NAMESPACE, *args))


def test_defaults_inject_opted_in_namespaces_only_and_never_the_system_or_own_one(
    tools: Tools,
) -> None:
    docs = render(tools)
    (config,) = find(docs, "MutatingWebhookConfiguration")
    inject, helm_test = config["webhooks"]
    assert inject["failurePolicy"] == "Fail"
    assert inject["sideEffects"] == "None"
    assert inject["reinvocationPolicy"] == "IfNeeded"
    assert inject["timeoutSeconds"] <= 5
    expressions = inject["namespaceSelector"]["matchExpressions"]
    assert expressions[0] == {"key": "podnat.io/inject", "operator": "In", "values": ["enabled"]}
    assert {"kube-system", NAMESPACE} <= set(expressions[1]["values"])
    assert expressions[1]["operator"] == "NotIn"
    # The helm-test webhook serves one labelled pod in the release's own namespace.
    assert helm_test["objectSelector"] == {"matchLabels": {"podnat.io/helm-test": "rel"}}
    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert (
        container["image"]
        == f"podnat:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}"
    )
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    assert deployment["spec"]["replicas"] == 2
    assert find(docs, "PodDisruptionBudget")[0]["spec"]["minAvailable"] == 1
    assert not find(docs, "ClusterRole")  # no API access unless asked for
    assert not {doc["kind"] for doc in docs} & AGENT_KINDS  # mode: init
    assert not [d for d in docs if d["metadata"].get("labels", {}).get(COMPONENT) == "agent"]
    # The webhook's Service and PDB never select the agent's pods (same selector labels).
    (service,) = find(docs, "Service")
    assert service["spec"]["selector"][COMPONENT] == "webhook"


def test_minimal_values_reach_every_object(tools: Tools) -> None:
    docs = render(tools, "-f", str(VALUE_SETS / "minimal.yaml"))
    assert not find(docs, "PodDisruptionBudget")  # one replica: a PDB would block drains
    assert not find(docs, "Pod")  # no helm test hook
    (config,) = find(docs, "MutatingWebhookConfiguration")
    (inject,) = config["webhooks"]
    assert inject["failurePolicy"] == "Ignore"
    assert inject["namespaceSelector"]["matchExpressions"][0]["key"] == "example.org/nat"
    (deployment,) = find(docs, "Deployment")
    assert deployment["metadata"]["name"] == "natter"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    for arg in ("--image=example.org/podnat:1.2.3", "--pull-policy=Never", "--backend=nft",
                "--run-as-user=1234"):  # fmt: skip
        assert arg in args
    bindings = {b["metadata"]["namespace"]: b["subjects"] for b in find(docs, "RoleBinding")}
    assert bindings["shop"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
         "name": "system:serviceaccounts:shop"}
    ]  # fmt: skip
    assert [s["name"] for s in bindings["web"]] == ["frontend", "backend"]
    (role,) = find(docs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def test_the_serving_certificate_names_the_service_and_chains_to_the_ca_bundle(
    tools: Tools, tmp_path: Path
) -> None:
    docs = render(tools, "--set", "tls.extraDNSNames={localhost}")
    (secret,) = find(docs, "Secret")
    (config,) = find(docs, "MutatingWebhookConfiguration")
    for name in ("ca.crt", "tls.crt"):
        (tmp_path / name).write_bytes(base64.b64decode(secret["data"][name]))
    assert (
        base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
        == (tmp_path / "ca.crt").read_bytes()
    )
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "tls.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    names = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "tls.crt")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for dns in (f"rel-podnat.{NAMESPACE}.svc", "localhost"):
        assert f"DNS:{dns}" in names


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("webhook.failurePolicy=Maybe", "/webhook/failurePolicy"),
        ("helper.backend=iptables-nft", "/helper/backend"),
        ("webhook.port=80", "/webhook/port"),
        ("webhook.url=http://insecure/mutate", "/webhook/url"),
        ("webhook.replica=3", "replica"),
        ("mode=sidecar", "/mode"),
        ("agent.verifyInterval=0", "/agent/verifyInterval"),
        ("agent.listen=9102", "/agent/listen"),
        ("agent.listen=0.0.0.0:80", "/agent/listen"),
        ("agent.ownNodePolicy.enabled=yes", "/agent/ownNodePolicy/enabled"),
        ("agent.updateStrategy.type=Surge", "/agent/updateStrategy/type"),
    ],
)
def test_the_schema_rejects_bad_values_by_name(tools: Tools, setting: str, complaint: str) -> None:
    done = tools.helm("template", "rel", str(CHART), "--set", setting, check=False)
    assert done.returncode != 0
    assert complaint in done.stderr


def test_cert_manager_mode_makes_no_secret_and_asks_for_ca_injection(tools: Tools) -> None:
    docs = render(tools, "-f", str(VALUE_SETS / "cert-manager.yaml"))
    assert not find(docs, "Secret")
    (config,) = find(docs, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/rel-podnat"
    }
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    serving = next(c for c in find(docs, "Certificate") if c["metadata"]["name"] == "rel-podnat")
    assert serving["spec"]["secretName"] == "rel-podnat-tls"
    assert serving["spec"]["issuerRef"] == {"name": "rel-podnat-ca", "kind": "Issuer"}
