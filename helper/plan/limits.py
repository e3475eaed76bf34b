"""The documented bounds on what podnat reads (README, "Annotation reference").

A pod's author writes every annotation, and may be hostile: these bounds keep each
answer small and fast whatever they write. For scale, Kubernetes caps all the
annotations of one pod together at 256 KiB.
"""

from __future__ import annotations

# Each podnat.io/* value, in UTF-8 bytes, checked before anything splits it.
MAX_VALUE_BYTES = 64 * 1024
MAX_REDIRECT_ITEMS = 2000
MAX_SOURCE_ITEMS = 1000
# The longest valid items are ~50 characters ("65535-65535:65535-65535/sctp", a
# fully written IPv6 CIDR); a longer one is refused before it is parsed.
MAX_ITEM_CHARS = 100
# The Downward API file: 256 KiB of annotations, Go-quoted (a byte can become
# four characters, `\xNN`), plus keys and newlines, fits well under this.
MAX_DOWNWARD_FILE_BYTES = 2 * 1024 * 1024

# How much of a user's text a message quotes.
SHOWN_CHARS = 64


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` fit to quote in a one-line message: control characters escaped, cut to `limit`.

    A cut text ends in "…". Escaping keeps a value from forging extra log lines.
    """
    head = text[: limit + 1]
    escaped = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in head
    )
    if len(escaped) > limit:
        return escaped[:limit] + "…"
    return escaped


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates, which JSON can carry, count as three)."""
    return len(text.encode("utf-8", "surrogatepass"))
