"""Import python-iptables fast.

At import, python-iptables looks for its libraries through `distutils`
(which setuptools' shim turns into ~270 ms of pkg_resources), `ldconfig` and
gcc. Here we tell it where the libraries are (its documented env variables) and
let it take its own no-distutils path, the one it takes on Python >= 3.12.
Import time drops from ~430 ms to ~50 ms on the dev VM. Its libc, libip4tc and
libip6tc it still looks up by bare name through ctypes.util.find_library, which
runs `ldconfig -p` each time (four processes, ~10 ms of a one-core pod's start):
while it loads, those names are found in the directory libxtables is in, listed once
(globbing it for each name walked thousands of entries: ~4 ms).
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable
from types import ModuleType

_LIB_DIRS = ("/usr/lib/{arch}", "/lib/{arch}", "/usr/lib64", "/usr/lib", "/usr/local/lib")


class _NoDistutils:
    """A meta path finder (the protocol, not importlib.abc's base class: importing that
    brings importlib.resources, whose string annotations typing compiles, ~5 ms)."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "distutils" or fullname.startswith("distutils."):
            raise ModuleNotFoundError(f"podnat: {fullname} skipped while loading iptc")
        return None


@functools.cache
def _entries(libdir: str) -> tuple[str, ...]:
    """A library directory's file names, sorted; read once."""
    try:
        return tuple(sorted(os.listdir(libdir)))
    except OSError:
        return ()


def _soname(libdir: str, lib: str) -> str | None:
    """The first `lib{lib}.so.*[0-9]` in `libdir`, as a glob would find it."""
    prefix = f"lib{lib}.so."
    return next(
        (n for n in _entries(libdir) if n.startswith(prefix) and n[-1] in "0123456789"), None
    )


@functools.cache
def _xtables_dir() -> tuple[str, str] | None:
    """The directory libxtables is in, and its soname's version."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for pattern in _LIB_DIRS:
        libdir = pattern.format(arch=arch)
        found = _soname(libdir, "xtables")
        if found:
            return libdir, found.removeprefix("libxtables.so.").split(".")[0]
    return None


def xtables_env() -> dict[str, str]:
    """The env python-iptables reads to find libxtables and its extensions."""
    env: dict[str, str] = {}
    found = _xtables_dir()
    if found is not None:
        libdir, soname = found
        env["PYTHON_IPTABLES_XTABLES_VERSION"] = soname
        if os.path.isdir(os.path.join(libdir, "xtables")):
            env["XTABLES_LIBDIR"] = os.path.join(libdir, "xtables")
        spec = importlib.util.find_spec("iptc")
        site = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else None
        env["IPTABLES_LIBDIR"] = ":".join(p for p in (libdir, site) if p)
    return env


def _find_library_in(libdir: str | None) -> Callable[[str], str | None]:
    """ctypes.util.find_library, first by the soname in `libdir` (no process)."""
    slow = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        found = _soname(libdir, name) if libdir is not None else None
        return found or slow(name)

    return find_library


def load_iptc() -> ModuleType:
    if "iptc" in sys.modules:
        return sys.modules["iptc"]
    for key, value in xtables_env().items():
        os.environ.setdefault(key, value)
    blocker = _NoDistutils()
    sys.meta_path.insert(0, blocker)
    found = _xtables_dir()
    slow = ctypes.util.find_library
    ctypes.util.find_library = _find_library_in(found[0] if found else None)  # type: ignore[assignment]
    try:
        iptc = importlib.import_module("iptc")
    finally:
        ctypes.util.find_library = slow
        sys.meta_path.remove(blocker)
    from helper.backends.xtables.iptc_compat import adapt  # noqa: PLC0415 - after iptc

    adapt(sys.modules["iptc.xtables"])  # iptables >= 1.8.11's option tables
    return iptc
