"""The operating system: network namespaces, locks, addresses, privileges."""

import os

# A path as the os module takes it. Not pathlib on the apply path: its import (with
# urllib.parse, fnmatch and ntpath) is ~4 ms of every init container's start.
StrPath = str | os.PathLike[str]
