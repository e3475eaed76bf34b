"""`--source auto|api|file`: which annotation source, and why (logged)."""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
import argparse
import os
from typing import TYPE_CHECKING, NamedTuple

from helper.log import Logger
from helper.sources.base import (
    SERVICE_ACCOUNT_DIR,
    AccessDeniedError,
    AnnotationSource,
    SourceError,
)
from helper.sources.downward import DEFAULT_PATH, DownwardFileSource

if TYPE_CHECKING:
    from helper.sources.kube_api import KubeApiSource

# helper.sources.kube_api is imported only on the API path: urllib and
# ssl cost the Downward-file path ~20 ms it does not need.


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=("auto", "api", "file"),
        default="auto",
        help="where annotations come from; auto: the API when a service-account token is "
        "mounted, else the Downward API file",
    )
    parser.add_argument(
        "--annotations-file",
        default=DEFAULT_PATH,
        help=f'Downward API file, key="value" per line (default {DEFAULT_PATH})',
    )
    parser.add_argument("--pod", default=None, help="pod name (default $POD_NAME)")
    parser.add_argument("--namespace", default=None, help="pod namespace (default $POD_NAMESPACE)")
    parser.add_argument(
        "--service-account-dir",
        default=SERVICE_ACCOUNT_DIR,
        help=f"token and ca.crt (default {SERVICE_ACCOUNT_DIR})",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to keep retrying the API (default 60)"
    )


# A named tuple, not a dataclass (see helper/__init__.py).
class Selected(NamedTuple):
    source: AnnotationSource
    why: str


def select_source(args: argparse.Namespace) -> Selected:
    token = os.path.join(args.service_account_dir, "token")
    if args.source == "file" or (args.source == "auto" and not os.path.exists(token)):
        why = "--source file" if args.source == "file" else f"no service-account token at {token}"
        return Selected(DownwardFileSource(args.annotations_file), why)

    from helper.sources.kube_api import Connection, pod_ref  # noqa: PLC0415 - lazy, see above

    pod = pod_ref(args.pod, args.namespace)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(token):
        connection = Connection.in_cluster(args.service_account_dir)
        why = f"service-account token at {token}" if args.source == "auto" else "--source api"
    elif os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
        connection = Connection.from_kubeconfig(os.environ.get("KUBECONFIG"))
        why = "--source api, with the kubeconfig"
    else:
        raise SourceError(
            "--source api: neither in-cluster credentials (KUBERNETES_SERVICE_HOST and "
            f"{token}) nor a kubeconfig were found"
        )
    from helper.sources.kube_api import KubeApiSource  # noqa: PLC0415 - lazy, see above

    api = KubeApiSource(pod, connection, timeout=args.timeout)
    if args.source == "auto" and os.path.exists(args.annotations_file):
        return Selected(ApiOrFile(api, DownwardFileSource(args.annotations_file)), why)
    return Selected(api, why)


class ApiOrFile:
    """`auto` with both available: the API, unless this account may not read the pod.

    A pod without the RBAC binding keeps working from its Downward API file; the
    log says what the binding lacks.
    """

    def __init__(self, api: "KubeApiSource", file: DownwardFileSource) -> None:
        self.api, self.file = api, file
        self.fell_back = False

    def describe(self) -> str:
        return self.file.describe() if self.fell_back else self.api.describe()

    def read(self) -> dict[str, str]:
        try:
            return self.api.read()
        except AccessDeniedError as err:
            Logger().warning("%s; using %s instead", err, self.file.describe())
            self.fell_back = True
            return self.file.read()

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        if not self.fell_back:
            self.api.event(reason, message, warning=warning)
