"""python-iptables loads without its slow library probing (distutils, ldconfig, gcc)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from helper.backends.xtables.iptc_loader import load_iptc
iptc = load_iptc()
assert iptc.Rule and iptc.Table6
slow_roots = ("distutils", "pkg_resources", "setuptools")
slow = sorted(m for m in sys.modules if m.split(".")[0] in slow_roots)
print(",".join(slow))
"""


def test_loading_python_iptables_imports_no_distutils_or_pkg_resources() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_xtables_env_points_at_existing_files() -> None:
    from pathlib import Path  # noqa: PLC0415

    from helper.backends.xtables.iptc_loader import xtables_env  # noqa: PLC0415

    env = xtables_env()
    assert Path(env["XTABLES_LIBDIR"], "libxt_NAT.so").exists()
    assert env["PYTHON_IPTABLES_XTABLES_VERSION"].isdigit()


NO_PROCESS = """
import sys
started = []
def audit(event, args):
    if event == "subprocess.Popen":
        started.append(args[1])
sys.addaudithook(audit)
from helper.backends.xtables.iptc_loader import load_iptc
iptc = load_iptc()
assert iptc.Rule and iptc.Table6
print(started)
"""


def test_loading_python_iptables_starts_no_process() -> None:
    # ctypes.util.find_library ran `ldconfig -p` four times: ~10 ms of a one-core start.
    done = subprocess.run(
        [sys.executable, "-c", NO_PROCESS], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
