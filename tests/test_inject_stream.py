"""`podnat inject` on whole YAML streams: what kubectl reads, byte-identical pass-through,
`kind: List`, every refused object reported, malformed input (exit 5), warnings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helper.admission.inject import InjectConfig
from helper.admission.inject_stream import Refused, inject_stream
from helper.errors import ManifestError
from tests.kit.paths import REPO
from tests.netns.podnat import cli


def manifest(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def annotated_pod(name: str, value: str, extra: str = "") -> str:
    base = manifest(f"""
        apiVersion: v1
        kind: Pod
        metadata:
          name: {name}
          annotations:
            podnat.io/redirect: {value}
        spec:
          containers:
          - name: app
            image: app:1
        """)
    return base.rstrip("\n") + extra + "\n"


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("podnat.io/redirect", "8080", "a number"),
        ("podnat.io/redirect", "1e3", "a number"),
        ("podnat.io/redirect-local", "true", "a boolean"),
        ("podnat.io/redirect-local", "yes", "a boolean"),  # YAML 1.1, as kubectl reads it
        ("podnat.io/redirect-local", "on", "a boolean"),
    ],
)
def test_unquoted_values_kubectl_reads_as_non_strings_are_refused(
    key: str, value: str, what: str
) -> None:
    text = annotated_pod("web", '"1:2"').replace("podnat.io/redirect: ", f"{key}: {value}\n    x: ")
    done = cli("inject", "-f", "-", stdin=text)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert f"stdin: document 1: Pod web: {key}: {value} is {what} to kubectl" in done.stderr
    assert f'quote it: {key}: "{value}"' in done.stderr


def test_an_unquoted_value_kubectl_reads_as_a_string_is_injected() -> None:
    # YAML 1.1 (PyYAML) reads 5353:53 as a base-60 integer; kubectl's go-yaml does not.
    done = cli("inject", "-f", "-", stdin=annotated_pod("web", "5353:53"))
    assert done.returncode == 0, done.stderr
    assert "podnat-init" in done.stdout
    assert "podnat.io/redirect: 5353:53\n" in done.stdout


PLAIN = manifest("""
    # Nothing for podnat here: it must come out byte for byte.
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: strings}   # flow style
    data:
      eula: "Y"
      answer: 'N'
      short: "y"
      thousand: "1e3"
      octal: 0777
      plain: yes
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
        name: four-spaces
    spec:
        template:
            spec:
                containers:
                    -   name: app
                        image: "app:1"
                        env:
                          - {name: ACCEPT_EULA, value: "Y"}
    """)


def test_a_stream_podnat_does_not_change_comes_out_byte_identical() -> None:
    done = cli("inject", "-f", "-", stdin=PLAIN)
    assert done.returncode == 0, done.stderr
    assert done.stdout == PLAIN
    assert "stdin: nothing to inject, 2 objects written unchanged" in done.stderr


def test_documents_next_to_an_injected_one_stay_byte_identical() -> None:
    pod = annotated_pod("web", '"1:2"', '\n    env:\n    - {name: ACCEPT_EULA, value: "Y"}')
    done = cli("inject", "-f", "-", stdin=PLAIN + "---\n" + pod)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(PLAIN + "---\n")
    assert '- {name: ACCEPT_EULA, value: "Y"}' in done.stdout
    assert "stdin: injected 1 of 3 objects" in done.stderr


def test_list_items_are_injected_and_counted() -> None:
    pod = annotated_pod("in-list", '"1:2"')
    items = textwrap.indent(pod, "  ").replace("  apiVersion", "- apiVersion", 1)
    service = "- {apiVersion: v1, kind: Service, metadata: {name: s}}\n"
    text = f"apiVersion: v1\nkind: List\nitems:\n{items}{service}"
    result = inject_stream(text, "stdin", InjectConfig())
    assert (result.injected, result.objects) == (1, 2)
    assert result.text.count("name: podnat-init") == 1
    assert result.summary("f.yaml") == "f.yaml: injected 1 of 2 objects"


def test_every_refused_object_is_reported_and_nothing_is_written() -> None:
    text = "---\n".join(
        [
            annotated_pod("bad-range", '"80-90:1-2"'),
            annotated_pod("fine", '"1:2"'),
            annotated_pod("windows", '"1:2"', "\n  os: {name: windows}"),
        ]
    )
    done = cli("inject", "-f", "-", stdin=text)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "stdin: document 1: Pod bad-range: invalid annotations" in done.stderr
    assert "stdin: document 3: Pod windows: podnat.io/redirect on a Windows pod" in done.stderr
    assert "document 2" not in done.stderr
    assert "stdin: refused, nothing written" in done.stderr


POD = annotated_pod("web", '"1:2"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just a string\n", "document 1: a string, not a Kubernetes object"),
        ("- a\n- b\n", "document 1: a list, not a Kubernetes object"),
        ("kind: Pod\nmetadata: web\n", "Pod ?: metadata is a string, not a mapping"),
        ("kind: Pod\nmetadata: {name: w, annotations: [a]}\n", "metadata.annotations is a list"),
        (
            "kind: Pod\nspec: x\n" + "metadata: {annotations: {podnat.io/redirect: '1:2'}}\n",
            "Pod ?: spec is a string, not a mapping",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: [x]}\n",
            "Deployment web: spec.template is a list, not a mapping",
        ),
        (
            POD + "  initContainers: [x]\n",
            "Pod web: spec.initContainers[0] is a string, not a mapping",
        ),
        (POD + "  volumes: x\n", "Pod web: spec.volumes is a string, not a list"),
        (
            "apiVersion: v1\nkind: List\nitems: nope\n",
            "document 1: List ?: items is a string, not a list",
        ),
    ],
)
def test_malformed_manifests_exit_5_with_where_and_what(text: str, message: str) -> None:
    with pytest.raises(Refused) as refused:
        inject_stream(text, "in.yaml", InjectConfig())
    assert refused.value.exit_code == 5
    assert any(message in line for line in refused.value.lines), refused.value.lines


def test_malformed_manifest_through_the_cli_exits_5_without_a_traceback() -> None:
    done = cli("inject", "-f", "-", stdin=POD + "  volumes: [x]\n")
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_input_that_is_not_utf8_exits_5() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "helper.cli", "inject"],
        cwd=REPO,
        input=b"kind: Pod\nmetadata: {name: \xff}\n",
        capture_output=True,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert b"not UTF-8" in done.stderr


def test_yaml_errors_are_manifest_errors_with_line_and_column() -> None:
    with pytest.raises(
        ManifestError, match=r"in.yaml: document 1, line 2, column 5: not valid YAML"
    ):
        inject_stream("a: 1\nb: c: d\n", "in.yaml", InjectConfig())


def test_podnat_annotations_on_a_workloads_own_metadata_warn_where_they_belong() -> None:
    text = manifest("""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          annotations:
            podnat.io/redirect: "1:2"
        spec:
          template:
            spec:
              containers: [{name: app, image: "app:1"}]
        """)
    done = cli("inject", "-f", "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert done.stdout == text
    assert (
        "stdin: document 1: Deployment web: podnat.io/redirect on the Deployment's own metadata "
        "has no effect: it belongs in spec.template.metadata.annotations"
    ) in done.stderr


def test_the_apply_path_never_imports_ruamel() -> None:
    probe = (
        "import sys\n"
        "from helper import cli\n"
        "code = cli.main(['apply', '--dry-run', '--source', 'file', '--annotations-file', "
        "'/nonexistent'])\n"
        "assert not [m for m in sys.modules if m.startswith(('ruamel', "
        "'helper.admission.manifests', 'helper.admission.inject'))], sorted(sys.modules)\n"
        "print('exit', code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "exit 3\n"
