"""The chart in agent mode (`mode: agent`): the DaemonSet's flags and host access, its exact
RBAC, the own-node policy and the metrics Service, as `helm template` renders them."""

from __future__ import annotations

import json
from typing import Any

from tests.kit.tools import Tools
from tests.kube.helm import CHART, VALUE_SETS, documents, find, template

NAMESPACE = "podnat-chart"
AGENT = "rel-podnat-agent"


def render(tools: Tools, *args: str) -> list[dict[str, Any]]:
    return documents(template(tools, "rel", NAMESPACE, "--set", "mode=agent", *args))


def agent_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (daemonset,) = find(docs, "DaemonSet")
    assert daemonset["metadata"] == {**daemonset["metadata"], "name": AGENT, "namespace": NAMESPACE}
    spec: dict[str, Any] = daemonset["spec"]["template"]["spec"]
    return spec


def test_the_agent_runs_on_every_linux_node_with_the_least_host_access(tools: Tools) -> None:
    docs = render(tools)
    pod = agent_pod(docs)
    (container,) = pod["containers"]
    assert container["args"] == [
        "agent",
        "--node-name=$(NODE_NAME)",
        "--namespace-label=podnat.io/inject=enabled",
        *(f"--exclude-namespace={ns}"
          for ns in ("kube-system", "kube-public", "kube-node-lease", NAMESPACE)),
        f"--also-manage={NAMESPACE}/podnat.io/helm-test=rel",
        "--verify-interval=30",
        "--listen=0.0.0.0:9102",
        "--backend=auto",
        "--log-format=json",
        "--log-level=info",
    ]  # fmt: skip
    assert container["env"] == [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    ]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {
            "drop": ["ALL"],
            "add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"],
        },
    }
    assert pod["hostPID"] is True
    assert "hostNetwork" not in pod
    assert "volumes" not in pod
    assert "volumeMounts" not in container
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == AGENT
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}
    }  # fmt: skip
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["terminationGracePeriodSeconds"] <= 10
    assert container["ports"] == [{"name": "metrics", "containerPort": 9102, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"] == {
        "requests": {"cpu": "25m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}
    }  # fmt: skip
    (daemonset,) = find(docs, "DaemonSet")
    assert daemonset["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}
    }  # fmt: skip
    # The webhook still runs (it adds the readiness gate); its Service never selects the agent.
    services = {s["metadata"]["name"]: s["spec"] for s in find(docs, "Service")}
    assert services["rel-podnat"]["selector"]["app.kubernetes.io/component"] == "webhook"
    metrics = services[f"{AGENT}-metrics"]
    assert metrics["type"] == "ClusterIP"
    assert metrics["ports"] == [
        {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert metrics["selector"] == daemonset["spec"]["selector"]["matchLabels"]
    assert metrics["selector"]["app.kubernetes.io/component"] == "agent"
    assert len(find(docs, "Deployment")) == 1


def test_the_agent_cluster_role_grants_exactly_the_listed_verbs(tools: Tools) -> None:
    docs = render(tools)
    (role,) = find(docs, "ClusterRole")
    assert role["metadata"]["name"] == AGENT
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == AGENT
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": AGENT, "namespace": NAMESPACE}
    ]
    accounts = {a["metadata"]["name"]: a for a in find(docs, "ServiceAccount")}
    assert "automountServiceAccountToken" not in accounts[AGENT]
    assert accounts["rel-podnat"]["automountServiceAccountToken"] is False  # the webhook's


def test_the_own_node_policy_matches_the_agent_account_only(tools: Tools) -> None:
    docs = render(tools)
    (policy,) = find(docs, "ValidatingAdmissionPolicy")
    (binding,) = find(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"], "validationActions": ["Deny"]
    }  # fmt: skip
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        f'request.userInfo.username == "system:serviceaccount:{NAMESPACE}:{AGENT}"'
    )
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods/status"]
    off = render(tools, "--set", "agent.ownNodePolicy.enabled=false")
    assert not find(off, "ValidatingAdmissionPolicy")
    assert not find(off, "ValidatingAdmissionPolicyBinding")


def test_agent_values_reach_the_daemonset(tools: Tools) -> None:
    docs = render(tools, "-f", str(VALUE_SETS / "agent.yaml"), "--set", "tests.enabled=false")
    pod = agent_pod(docs)
    (container,) = pod["containers"]
    args = container["args"]
    for arg in ("--verify-interval=45", "--listen=[::]:9200", "--backend=iptables-legacy",
                "--log-level=debug", "--exclude-namespace=monitoring"):  # fmt: skip
        assert arg in args
    assert "--exclude-namespace=kube-public" not in args
    assert not [arg for arg in args if arg.startswith("--also-manage")]  # no helm test pod
    assert container["ports"][0]["containerPort"] == 9200
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "example.org/pool": "apps"}
    assert pod["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert pod["priorityClassName"] == "system-cluster-critical"
    (daemonset,) = find(docs, "DaemonSet")
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 2}
    assert daemonset["spec"]["template"]["metadata"]["labels"]["team"] == "net"
    (metrics,) = [s for s in find(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert metrics["spec"]["ports"][0]["port"] == 9200


def test_the_notes_say_what_each_mode_needs(tools: Tools) -> None:
    def notes(*args: str) -> str:
        out = tools.helm(
            "install", "rel", str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *args
        ).stdout
        return out.split("NOTES:", 1)[1]

    agent = notes("--set", "mode=agent")
    assert "pod-security.kubernetes.io/enforce=privileged" in agent
    assert f"rollout status daemonset/{AGENT}" in agent
    assert "podnat.io/redirects-applied" in agent
    assert "podnat-init" not in agent
    assert "each agent may write the status of every pod" in notes(
        "--set", "mode=agent", "--set", "agent.ownNodePolicy.enabled=false"
    )
    init = notes()
    assert "podnat-init" in init
    assert "daemonset" not in init


def test_the_agent_needs_the_privileged_pod_security_level_as_the_notes_say(
    tools: Tools,
) -> None:
    (daemonset,) = find(render(tools), "DaemonSet")
    for level in ("baseline", "privileged"):
        namespace = f"podnat-psa-{level}"
        if tools.kubectl("get", "namespace", namespace, check=False).returncode != 0:
            tools.kubectl("create", "namespace", namespace)
        tools.kubectl(
            "label", "namespace", namespace, f"pod-security.kubernetes.io/enforce={level}"
        )
        tools.kubectl("create", "serviceaccount", AGENT, "-n", namespace, check=False)
        agent = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "agent", "namespace": namespace},
            "spec": daemonset["spec"]["template"]["spec"],
        }
        done = tools.kubectl(
            "create", "--dry-run=server", "-f", "-", stdin=json.dumps(agent), check=False
        )
        if level == "privileged":
            assert done.returncode == 0, done.stderr
        else:
            assert done.returncode != 0
            assert 'violates PodSecurity "baseline:latest"' in done.stderr
            for refused in ("hostPID=true", "SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN"):
                assert refused in done.stderr
