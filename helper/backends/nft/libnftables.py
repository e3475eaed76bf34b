"""A minimal in-process binding to libnftables (the library behind the `nft` command).

The official Python binding is a thin ctypes layer that ships only with the nftables
sources and distro packages, not on PyPI; this is the same idea, limited to the
five calls podnat needs. In-process means no fork/exec per transaction.
API: https://www.netfilter.org/projects/nftables/manpage.html (libnftables(3)).
"""

from __future__ import annotations

import _thread
import ctypes
import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LIBRARY = "libnftables.so.1"
_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON


class NftError(Exception):
    """nft refused a command; `message` is what it printed on its error stream.

    libnftables reports no errno, only text: callers never classify by it; they
    look first (e.g. list the tables) where a refusal would otherwise need reading.
    """

    def __init__(self, message: str) -> None:
        self.message = message.strip()
        super().__init__(self.message)


# fd 2 is the process's: with calls from several threads (the agent), the first in points
# it at /dev/null and the last out gives it back. Saving and restoring it per call would
# interleave and could leave it at /dev/null for good.
_silence_lock = _thread.allocate_lock()
_silenced = 0
_saved_stderr = -1


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    global _silenced, _saved_stderr  # noqa: PLW0603 - one fd 2 per process
    with _silence_lock:
        if _silenced == 0:
            _saved_stderr = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _silenced += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silenced -= 1
            if _silenced == 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)


@functools.cache
def _load(library: str) -> ctypes.CDLL:
    """The library with its signatures declared, once a process: a context per namespace
    visit (the agent's verify, every pod every interval) need not dlopen and declare again."""
    try:
        lib = ctypes.CDLL(library)
    except OSError as err:
        raise NftError(f"cannot load {library}: {err} (install libnftables1)") from err
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_get_flags.restype = ctypes.c_uint32
    lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


class Nft:
    """One libnftables context with buffered output and error streams."""

    def __init__(self, library: str = LIBRARY) -> None:
        lib = _load(library)
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise NftError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        self._flags = lib.nft_ctx_output_get_flags(self._ctx)

    def run(self, commands: str) -> str:
        """Run nft commands (one batch, one kernel transaction); return the output."""
        self._lib.nft_ctx_output_set_flags(self._ctx, self._flags)
        return self._run(commands)

    def run_json(self, commands: str) -> Any:
        self._lib.nft_ctx_output_set_flags(self._ctx, self._flags | _OUTPUT_JSON)
        try:
            out = self._run(commands)
        finally:
            self._lib.nft_ctx_output_set_flags(self._ctx, self._flags)
        return json.loads(out) if out.strip() else {}

    def _run(self, commands: str) -> str:
        with _stderr_silenced():  # libnftables also prints some errors to fd 2 itself
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
        output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
        error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0:
            raise NftError(error or f"nft failed with code {rc}")
        return output

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
