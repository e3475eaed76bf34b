"""The shipped image (`FROM scratch`, hack/image/rootfs.py) does what the pod asks of it: init
(`podnat apply` with both backends), webhook (a review over TLS), inject, as user 65532 with
the interpreter's file capabilities on a read-only root, and it is at most 40 MB compressed."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from tests.cases import F, R
from tests.image.conftest import Images, docker, restricted
from tests.kit.cluster import docker_host
from tests.kit.pki import Pki

GOLDEN = Path(__file__).parents[1] / "golden" / "inject"
LIMIT_MB = 40.0
NET_ADMIN, NET_RAW = 12, 13


def readable(directory: Path) -> Path:
    """Let user 65532 in the container read DIRECTORY's files (bind-mounted read-only)."""
    for path in (directory, *directory.parents):
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o711)
    for child in directory.iterdir():
        child.chmod(0o644)
    return directory


def test_the_image_is_at_most_40_mb_compressed(images: Images) -> None:
    env = {**os.environ, "DOCKER_HOST": docker_host()}
    save = subprocess.Popen(["docker", "save", images.shipped], stdout=subprocess.PIPE, env=env)
    gzip = subprocess.Popen(["gzip", "-6", "-c"], stdin=save.stdout, stdout=subprocess.PIPE)
    assert gzip.stdout is not None
    size = 0
    while chunk := gzip.stdout.read(1 << 20):
        size += len(chunk)
    assert save.wait() == 0
    assert gzip.wait() == 0
    assert size / 1e6 <= LIMIT_MB, f"{size / 1e6:.1f} MB compressed"


# What each suite ships (hack/image/rootfs.py records it; the README names these versions).
USERSPACES = {
    "bookworm": {"python": "3.11.", "libnftables1": "1.0.6-", "iptables": "1.8.9-"},
    "trixie": {"python": "3.13.", "libnftables1": "1.1.3-", "iptables": "1.8.11-"},
}


def test_the_image_ships_its_suites_userspace(images: Images) -> None:
    read = (
        "import platform; print(open('/opt/podnat/USERSPACE').read()"
        " + 'running=' + platform.python_version())"
    )
    done = docker(*restricted(images.shipped, "-c", read, entrypoint="python3"))
    assert done.returncode == 0, done.stderr
    recorded = dict(line.split("=", 1) for line in done.stdout.split())
    assert recorded["suite"] == images.suite
    expected = USERSPACES[images.suite]
    assert recorded["running"].startswith(expected["python"])
    for name, prefix in expected.items():
        assert recorded[name].startswith(prefix), (name, recorded)


def test_the_interpreter_carries_permitted_only_capabilities(images: Images) -> None:
    read = "import os; print(os.getxattr('/opt/podnat/bin/python3', 'security.capability').hex())"
    done = docker(*restricted(images.shipped, "-c", read, entrypoint="python3"))
    assert done.returncode == 0, done.stderr
    magic, permitted, _inheritable, *_ = struct.unpack("<5I", bytes.fromhex(done.stdout.strip()))
    assert magic & 0xFF000000 == 0x02000000  # version 2
    assert not magic & 1, "the effective bit is set: podnat raises its capabilities itself"
    assert permitted & (1 << NET_ADMIN)


@pytest.mark.parametrize("backend", ["nft", "iptables-legacy"])
def test_apply_verify_cleanup_as_user_65532_on_a_read_only_root(
    images: Images, tmp_path: Path, backend: str
) -> None:
    """One container, one network namespace: apply, verify (no drift), cleanup, verify
    (drift: the rules were there and are gone), both families (named: the container has
    loopback only). /bin/sh is the one `kubectl debug` uses."""
    annotations = {R: "4321:1234", F: "dual"}
    (tmp_path / "annotations").write_text(
        "".join(f"{key}={json.dumps(value)}\n" for key, value in annotations.items())
    )
    common = f"--backend {backend} --termination-log /dev/null"
    read = f"{common} --annotations-file /in/annotations"
    script = (
        f"podnat apply {read} && podnat verify {read} && podnat cleanup {common}; "
        f"podnat verify {read}; echo verify-after-cleanup=$?"
    )
    volume = f"{readable(tmp_path)}:/in:ro"
    done = docker(*restricted(images.shipped, "-c", script, volumes=[volume], entrypoint="sh"))
    assert done.stdout.strip().splitlines()[-1] == "verify-after-cleanup=1", done.stderr
    assert "Traceback" not in done.stderr


def test_the_webhook_serves_a_review_over_tls(
    images: Images, tmp_path: Path, container_name: str
) -> None:
    pki = Pki.create(tmp_path)
    pki.issue("tls", "/CN=webhook")
    readable(tmp_path)
    run = restricted(
        images.shipped, "webhook", "--cert", "/pki/tls.crt", "--key", "/pki/tls.key",
        "--host", "127.0.0.1", "--port", "8443", "--image", "podnat:test",
        volumes=[f"{tmp_path}:/pki:ro"], flags=["-d", "--name", container_name],
    )  # fmt: skip
    started = docker(*run)
    assert started.returncode == 0, started.stderr
    done = docker("exec", container_name, "python3", "-c", CLIENT, timeout=60)
    assert done.returncode == 0, done.stderr + docker("logs", container_name).stderr
    review = json.loads(done.stdout)["response"]
    assert review["uid"] == "u"
    assert review["allowed"] is True
    assert review["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(review["patch"]))
    (init,) = next(op["value"] for op in patch if op["path"] == "/spec/initContainers")
    assert init["name"] == "podnat-init"
    assert init["image"] == "podnat:test"


# The webhook's client, inside its container (loopback only): probes until the server is
# up, then one AdmissionReview over TLS, trusting only the test's CA; prints the answer.
CLIENT = """
import http.client, json, ssl, time
context = ssl.create_default_context(cafile="/pki/ca.crt")
def post(method, path, body=None):
    conn = http.client.HTTPSConnection("127.0.0.1", 8443, context=context, timeout=5)
    try:
        conn.request(method, path, body=body)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()
for _ in range(200):
    try:
        if post("GET", "/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.05)
pod = {"metadata": {"name": "web", "annotations": {"podnat.io/redirect": "4321:1234"}},
       "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
request = {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
           "operation": "CREATE", "object": pod}
status, body = post("POST", "/mutate", json.dumps(
    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
assert status == 200, (status, body)
print(body.decode())
"""


def test_inject_matches_the_golden_file(images: Images) -> None:
    done = docker(
        *restricted(images.shipped, "inject", "--image", "podnat:test", flags=["--rm", "-i"]),
        stdin=(GOLDEN / "workloads.in.yaml").read_text(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (GOLDEN / "workloads.golden.yaml").read_text()


# Every module any helper/ file imports (at the top or inside a function, as an absolute
# import) is found by the image's interpreter: what hack/image/rootfs.py left out of the
# standard library is nothing podnat names. kubernetes is the `kubeconfig` extra (the API
# source outside a pod), never installed in the image.
EXTRAS = ("kubernetes",)
IMPORTS = f"""
import ast, importlib.util, pathlib
import helper
missing = set()
for path in pathlib.Path(helper.__path__[0]).rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            try:
                found = importlib.util.find_spec(name)
            except ModuleNotFoundError:
                found = None
            if found is None and name.split(".")[0] not in {EXTRAS!r}:
                missing.add(f"{{name}} ({{path.name}})")
print("\\n".join(sorted(missing)))
"""


def test_every_module_podnat_imports_is_in_the_image(images: Images) -> None:
    done = docker(*restricted(images.shipped, "-c", IMPORTS, entrypoint="python3"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"missing from the image:\n{done.stdout}"
