"""The one base of every error podnat reports to its user: a message and an exit code.

The CLI catches this base (never a traceback for user error); each kind says its code:
2 invalid annotations (or denied), 3 annotation source, 4 backend and kernel,
5 `inject`'s input (not YAML, or not a Kubernetes manifest podnat can read).
"""

from __future__ import annotations


class PodnatError(Exception):
    exit_code = 4


class ManifestError(PodnatError):
    """`inject`'s input, or a webhook's object, is not a manifest podnat can read.

    `inject` exits 5; the webhook answers 400 (a malformed request, not a denial).
    """

    exit_code = 5
