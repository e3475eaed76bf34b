"""Make the capabilities this process was granted effective.

The image grants NET_ADMIN/NET_RAW to its interpreter as *permitted-only* file
capabilities: a non-root container then holds exactly those of them that the pod
adds (the rest are cut by the bounding set), and an exec never fails for a missing
one, as it would with the effective bit set (the webhook drops them all). A
permitted capability does nothing until it is effective: this raises them.
"""

from __future__ import annotations

import ctypes

from helper.log import Logger

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_log = Logger(__name__)


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def raise_permitted() -> None:
    """effective := permitted; a no-op for root (already equal) and where nothing is granted."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        return
    if all(word.effective == word.permitted for word in data):
        return
    for word in data:
        word.effective = word.permitted
    if libc.capset(ctypes.byref(header), data) != 0:
        # Only reachable if the kernel refuses its own permitted set; the backend's
        # probe then reports the missing capability with the fix.
        _log.debug("capset failed: errno %d", ctypes.get_errno())
