"""The one base of every error podnat reports to its user: a message and an exit code.

The CLI catches this base (never a traceback for user error); each kind says its code:
2 invalid annotations (or denied), 3 annotation source, 4 backend and kernel.
"""

from __future__ import annotations


class PodnatError(Exception):
    exit_code = 4
