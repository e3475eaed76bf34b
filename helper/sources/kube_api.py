"""The pod's annotations from the Kubernetes API, as its own service account.

The init container's start delays every pod, and `import kubernetes` alone costs
~300 ms and ~40 MB here, so the in-cluster path speaks the two REST calls it
needs (GET the pod, POST an Event) through the standard library. A kubeconfig
(`KUBECONFIG`, for people and tools outside a pod) goes through the kubernetes
package's own loader, which knows every auth plugin.

Transient failures (connection errors, 5xx, 429) are retried with exponential
backoff and full jitter until the deadline; 401/403/404 fail at once with the fix.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.parse
from typing import Any, NamedTuple

from helper.log import Logger
from helper.sources.base import SERVICE_ACCOUNT_DIR, AccessDeniedError, SourceError
from helper.sources.https import HttpsConnection
from helper.system import StrPath

_RETRYABLE = {429, 500, 502, 503, 504}
_WARMUP_S = 10.0  # how long 401/403 are retried once a down server answers again
_log = Logger()


# No dataclasses on the init container's path: their import is ~20 ms (runtime venv).
class PodRef(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_ref(name: str | None, namespace: str | None) -> PodRef:
    """The pod from --pod/--namespace or the Downward API env POD_NAME/POD_NAMESPACE."""
    name = name or os.environ.get("POD_NAME")
    namespace = namespace or os.environ.get("POD_NAMESPACE")
    if not name or not namespace:
        raise SourceError(
            "the Kubernetes API source needs the pod's name and namespace: set POD_NAME and "
            "POD_NAMESPACE (Downward API env: fieldRef metadata.name / metadata.namespace) "
            "or pass --pod and --namespace"
        )
    return PodRef(namespace, name)


class Connection:
    """Where the API is and who we are. `account` names the identity, for error messages.

    `headers` is this connection's own dict: a kubeconfig's token refresh replaces its
    Authorization (helper.kube.client)."""

    def __init__(
        self,
        server: str,
        context: ssl.SSLContext,
        headers: dict[str, str] | None = None,
        account: str = "this client",
    ) -> None:
        self.server = server
        self.context = context
        self.headers = {} if headers is None else headers
        self.account = account

    @classmethod
    def in_cluster(cls, directory: StrPath = SERVICE_ACCOUNT_DIR) -> Connection:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise SourceError("KUBERNETES_SERVICE_HOST is not set: not running in a pod?")
        try:
            with open(os.path.join(directory, "token"), encoding="utf-8") as file:
                token = file.read().strip()
            context = ssl.create_default_context(cafile=os.path.join(directory, "ca.crt"))
        except (OSError, ssl.SSLError) as err:
            raise SourceError(f"service account files in {directory}: {err}") from err
        server = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        return cls(server, context, {"Authorization": f"Bearer {token}"}, _token_subject(token))

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> Connection:
        # The kubernetes package's loader: auth plugins, exec credentials, contexts.
        try:
            from kubernetes import client, config  # noqa: PLC0415 - heavy, off the pod path
        except ImportError:
            raise SourceError(
                "reading a kubeconfig needs the kubernetes package: "
                "pip install 'podnat[kubeconfig]' (in a pod, the service account is used)"
            ) from None

        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, client_configuration=configuration
            )
        except Exception as err:  # the loader raises many types for a bad file
            raise SourceError(f"kubeconfig: {err}") from err
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        headers = {}
        token = configuration.api_key.get("authorization")
        if token:
            headers["Authorization"] = token
        return cls(configuration.host, context, headers, "the kubeconfig user")


def _token_subject(token: str) -> str:
    """`system:serviceaccount:NS:NAME` from the token's claims (not verified: for messages)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("sub", "this service account"))
    except (IndexError, ValueError):
        return "this service account"


class KubeApiSource:
    def __init__(self, pod: PodRef, connection: Connection, timeout: float = 60.0) -> None:
        self.pod = pod
        self.connection = connection
        self.timeout = timeout
        self._uid: str | None = None
        url = urllib.parse.urlsplit(connection.server)
        if url.scheme != "https" or not url.hostname:
            raise SourceError(f"the API server must be an https URL, not {connection.server!r}")
        self._host, self._port = url.hostname, url.port or 443
        self._http: HttpsConnection | None = None

    def describe(self) -> str:
        return (
            f"Kubernetes API {self.connection.server}, pod {self.pod} as {self.connection.account}"
        )

    def read(self) -> dict[str, str]:
        pod = self._request(
            "GET",
            f"/api/v1/namespaces/{self.pod.namespace}/pods/{self.pod.name}",
            verb="get",
            resource="pods",
        )
        metadata = pod.get("metadata", {})
        self._uid = metadata.get("uid")
        annotations: dict[str, str] = metadata.get("annotations") or {}
        return annotations

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Best effort: a Kubernetes Event on the pod. Failing to post is only logged."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{self.pod.name}.podnat-",
                "namespace": self.pod.namespace,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.pod.name,
                "namespace": self.pod.namespace,
                "uid": self._uid or "",
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "podnat"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._request(
                "POST",
                f"/api/v1/namespaces/{self.pod.namespace}/events",
                verb="create",
                resource="events",
                body=body,
                deadline_s=5.0,
            )
        except SourceError as err:
            _log.warning("could not record a %s Event on pod %s: %s", reason, self.pod, err)

    def _request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        body: dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> dict[str, Any]:
        budget = self.timeout if deadline_s is None else deadline_s
        deadline = time.monotonic() + budget
        delay, attempt = 0.1, 0
        unreachable = False  # until the server answered once after failing to
        answering_since: float | None = None
        while True:
            attempt += 1
            try:
                status, reply = self._once(method, path, body)
            except OSError as err:  # refused, reset, timeout, TLS, a reply not HTTP/1.1
                self._drop_connection()  # refused, reset, timeout: reconnect next time
                unreachable = True
                status, reply, problem = 0, {}, str(err) or type(err).__name__
            else:
                if 200 <= status < 300:
                    return reply
                answering_since = answering_since or time.monotonic()
                # A server that was just unreachable may answer 401/403 until its
                # authorizer caches have synced (seen here after a restart); wait a bit.
                warming = unreachable and time.monotonic() - answering_since < _WARMUP_S
                if status in (401, 403) and not warming:
                    raise AccessDeniedError(self._explain(status, reply, verb, resource))
                if status not in _RETRYABLE and status not in (401, 403):
                    raise SourceError(self._explain(status, reply, verb, resource))
                problem = f"HTTP {status}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SourceError(
                    f"{verb} {resource} at {self.connection.server} failed for {budget:g}s "
                    f"({attempt} attempts); last error: {problem}"
                )
            pause = min(_jitter(delay), remaining)
            _log.info("API %s %s: %s; retrying in %.2fs", method, resource, problem, pause)
            time.sleep(pause)
            delay = min(delay * 2, 5.0)

    def _once(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        """One request on a kept-alive connection: the GET and the Event share a handshake."""
        if self._http is None:
            self._http = HttpsConnection(self._host, self._port, self.connection.context, 5)
        headers = {"Accept": "application/json", **self.connection.headers}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, raw = self._http.request(method, path, headers, data)
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"message": raw[:200].decode(errors="replace")}
        return status, parsed if isinstance(parsed, dict) else {}

    def _drop_connection(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _explain(self, status: int, reply: dict[str, Any], verb: str, resource: str) -> str:
        who, ns = self.connection.account, self.pod.namespace
        detail = str(reply.get("message", "no message"))
        if status == 401:
            return (
                f"the API server rejected the credentials of {who} (401: {detail}); "
                "is the token expired or meant for another audience?"
            )
        if status == 403:
            return (
                f"{who} may not {verb} {resource} in namespace {ns} (403: {detail}). "
                f"Fix: bind it a Role that allows {verb} on {resource}, e.g. "
                f"kubectl -n {ns} create role podnat-{resource} --verb={verb} "
                f"--resource={resource} && kubectl -n {ns} create rolebinding "
                f"podnat-{resource} --role=podnat-{resource} "
                f"--serviceaccount={_account_ref(who, ns)}; or use the Downward API "
                "file (--source file)"
            )
        if status == 404:
            return (
                f"pod {self.pod} not found (404: {detail}): check POD_NAME/POD_NAMESPACE"
                if resource == "pods"
                else f"{resource}: not found (404: {detail})"
            )
        return f"{verb} {resource}: HTTP {status}: {detail}"


def _account_ref(subject: str, namespace: str) -> str:
    parts = subject.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return f"{parts[2]}:{parts[3]}"
    return f"{namespace}:SERVICE_ACCOUNT"


def _jitter(ceiling: float) -> float:
    """Full jitter in [0, ceiling). os.urandom: `random` would import hashlib (~3 ms)."""
    return ceiling * int.from_bytes(os.urandom(2), "big") / 65536
