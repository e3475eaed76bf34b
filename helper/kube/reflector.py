"""List, then watch from the list's resourceVersion; relist on 410 Gone.

client-go's reflector in miniature: the watch resumes from the last
resourceVersion seen (events and bookmarks) after a timeout or a dropped
connection; only 410 (status or an ERROR event), an oversized event or an
unreadable one costs a relist. Failures back off exponentially with full jitter.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helper.kube.client import ApiError, GoneError, KubeClient, TooLargeError, Watch
from helper.sources.kube_api import _jitter

Obj = dict[str, Any]
_log = logging.getLogger("podnat.kube")
_PAGE = "500"


@dataclass
class Reflector:
    """Feeds `on_list(items)` after each full list and `on_event(type, obj)` per change."""

    client: KubeClient
    path: str  # e.g. /api/v1/pods
    params: dict[str, str]  # fieldSelector / labelSelector
    on_list: Callable[[list[Obj]], None]
    on_event: Callable[[str, Obj], None]
    stop: threading.Event
    watch_timeout_s: int = 300
    max_backoff_s: float = 30.0
    resource_version: str = ""
    lists: int = 0  # full lists done (metrics, tests)
    last_alive: float = field(default_factory=time.monotonic)
    _watch: Watch | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        delay = 0.0
        while not self.stop.is_set():
            self.last_alive = time.monotonic()
            try:
                if not self.resource_version:
                    self._list()
                self._watch_once()
                delay = 0.0
                continue
            except GoneError as err:
                _log.info("%s: %s; relisting", self.path, err)
                self.resource_version = ""
                continue
            except TooLargeError as err:
                _log.warning("%s: %s; relisting", self.path, err)
                self.resource_version = ""
            except (ApiError, OSError, ValueError) as err:
                if self.stop.is_set():
                    return
                _log.warning("%s: %s", self.path, err or type(err).__name__)
            except Exception as err:  # never let the loop die
                # http.client's zoo: besides its own exceptions, a watch closed from another
                # thread (close(), at a relist or shutdown) mid-read raises AttributeError
                # inside it (seen in CI when this was narrowed).
                if self.stop.is_set():
                    return
                _log.warning("%s: %s: %s", self.path, type(err).__name__, err)
            delay = min(max(delay * 2, 0.5), self.max_backoff_s)
            self.stop.wait(_jitter(delay) + delay / 2)

    def close(self) -> None:
        """Called from another thread at shutdown: end a blocked watch at once."""
        with self._lock:
            if self._watch is not None:
                self._watch.close()

    def _list(self) -> None:
        items: list[Obj] = []
        params = {**self.params, "limit": _PAGE}
        while True:
            reply = self.client.request("GET", _query(self.path, params))
            page = reply.get("items")
            items.extend(i for i in page or () if isinstance(i, dict))
            meta = reply.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            token = meta.get("continue")
            if not token:
                break
            params["continue"] = str(token)
        self.on_list(items)
        self.lists += 1
        self.resource_version = str(meta.get("resourceVersion") or "")
        if not self.resource_version:
            raise ApiError(f"{self.path}: the list has no resourceVersion")

    def _watch_once(self) -> None:
        # Spread the server-side timeouts like client-go (timeout .. 2*timeout).
        seconds = self.watch_timeout_s + int.from_bytes(os.urandom(2), "big") % max(
            self.watch_timeout_s, 1
        )
        params = {
            **self.params,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(seconds),
        }
        watch = self.client.watch(self.path, params, read_timeout=seconds + 30)
        with self._lock:
            self._watch = watch
        if self.stop.is_set():
            watch.close()
        try:
            for event in watch.events():
                self.last_alive = time.monotonic()
                self._handle(event)
        finally:
            with self._lock:
                self._watch = None
            watch.close()

    def _handle(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            raise ApiError(f"{self.path}: a watch event without an object")
        if kind == "ERROR":
            code = obj.get("code")
            message = f"{self.path}: watch error {code}: {str(obj.get('message'))[:200]}"
            if code == 410:
                raise GoneError(message, 410)
            raise ApiError(message, code if isinstance(code, int) else 0)
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK") or not version:
            _log.warning("%s: ignoring a watch event of type %r", self.path, kind)
            return
        if kind != "BOOKMARK":
            self.on_event(str(kind), obj)
        self.resource_version = str(version)


def _query(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}"
