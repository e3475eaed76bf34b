"""Assemble the shipped image's root filesystem: only what podnat runs, each part with why.

Runs in the Dockerfile's build stage (a Debian with python3, libnftables1 and iptables, podnat
installed in /opt/podnat):

    python3 rootfs.py DEST

The final stage is `FROM scratch` with DEST copied in, so nothing of apt, dpkg, perl,
debconf, the package lists or the rest of Debian's minbase is shipped. KEEP names every part
with the reason it is there; the shared libraries come from following each kept ELF file's
dependencies (ldd), plus the ones podnat loads itself with dlopen (ctypes, python-iptables).
STDLIB_UNUSED and DYNLOAD_UNUSED name what of Python's standard library is left out: modules
neither podnat nor its dependencies import (tests/image proves the image runs every mode).
The manifest (part, files, bytes) is printed and kept as /opt/podnat/ROOTFS; the userspace
the image ships (Debian suite, Python, libnftables, iptables versions) as /opt/podnat/USERSPACE.
Bookworm (Python 3.11) and trixie (3.13, usrmerged like bookworm) differ only in the names
listed below that one of them lacks.
"""

from __future__ import annotations

import compileall
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

VENV = Path("/opt/podnat")
STDLIB = Path(sysconfig.get_paths()["stdlib"])  # /usr/lib/python3.11, python3.13
ARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
LIBDIR = Path("/usr/lib") / ARCH

# Never imported by podnat (apply, verify, cleanup, webhook, inject, agent) or by its
# dependencies: build, test, interactive and GUI tooling, and the modules whose C libraries
# (sqlite, Berkeley DB, ncurses, readline, NIS) would come along.
STDLIB_UNUSED = (
    "test", "unittest", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip",
    "lib2to3", "pydoc_data", "distutils", "venv", "sqlite3", "dbm", "curses",
    "__phello__", "__hello__.py", "antigravity.py", "this.py", "_pyrepl",
)  # fmt: skip
# Their C halves, the CPython test extensions, and the East Asian codecs (podnat reads and
# writes UTF-8 only).
DYNLOAD_UNUSED = (
    "_sqlite3", "_dbm", "_gdbm", "_curses", "_curses_panel", "readline", "nis", "_crypt",
    "ossaudiodev", "audioop", "_ctypes_test", "_testbuffer", "_testcapi", "_testclinic",
    "_testimportmultiple", "_testinternalcapi", "_testmultiphase", "_xxtestfuzz",
    "_xxsubinterpreters", "xxlimited", "xxlimited_35", "_lsprof", "_multibytecodec",
    "_testclinic_limited", "_testexternalinspection", "_testlimitedcapi", "_testsinglephase",
    "xxsubtype", "_interpreters", "_interpchannels", "_interpqueues",  # Python 3.13's
    "_codecs_cn", "_codecs_hk", "_codecs_iso2022", "_codecs_jp", "_codecs_kr", "_codecs_tw",
)  # fmt: skip
# PyYAML's optional libyaml binding (2.7 MB): podnat uses the pure-Python SafeLoader and
# SafeDumper only; without it `import yaml` falls back silently (and loads faster).
SITE_UNUSED = ("yaml/_yaml.*.so",)

OPTIONAL = ""  # in a part's list: the part may match nothing
KEEP: list[tuple[str, list[str]]] = [
    (
        "interpreter: podnat's own copy (it carries the file capabilities) and the venv",
        [f"{VENV}/bin/python3", f"{VENV}/bin/podnat", f"{VENV}/pyvenv.cfg"],
    ),
    ("podnat and its dependencies (site-packages)", [f"{VENV}/lib"]),
    ("Python's standard library, less STDLIB_UNUSED", [str(STDLIB)]),
    # Debian's sitecustomize.py is a symlink to /etc; the interpreter imports it at start.
    (
        "Debian's sitecustomize (imported at every start; other bases have none)",
        [f"/etc/python3.{sys.version_info[1]}/sitecustomize.py", OPTIONAL],
    ),
    ("nft backend: libnftables, loaded with ctypes", [f"{LIBDIR}/libnftables.so.1"]),
    (
        "iptables-legacy backend: libiptc and libxtables (python-iptables, ctypes) and every "
        "xtables match/target module, for ours and for any other rule in a nat table it reads",
        [
            f"{LIBDIR}/libip4tc.so.2",
            f"{LIBDIR}/libip6tc.so.2",
            f"{LIBDIR}/libxtables.so.12",
            f"{LIBDIR}/xtables",
        ],
    ),
    (
        "C.UTF-8: the interpreter coerces the C locale to it, as on any Debian",
        ["/usr/lib/locale/C.utf8"],
    ),
    (
        "name service, users, protocols: what libc and the socket module read",
        [
            "/etc/passwd",
            "/etc/group",
            "/etc/nsswitch.conf",
            "/etc/host.conf",
            "/etc/gai.conf",
            "/etc/protocols",
            "/etc/services",
            "/etc/hosts",
            "/etc/os-release",
            "/usr/lib/os-release",
        ],
    ),
    (
        "/bin/sh (dash): `kubectl debug ... -- sh -c` in the pod, as the e2e suite does",
        ["/bin/sh", "/usr/bin/dash"],
    ),
]
# `venv --copies` made three copies of the interpreter; one is enough, the others name it.
INTERPRETER_LINKS = ("python", f"python3.{sys.version_info[1]}")
# python-iptables finds its libraries by their unversioned names in $IPTABLES_LIBDIR (what a
# -dev package would install) or else through `ldconfig -p`, which the image does not have.
DEV_LINKS = {"libip4tc.so": "libip4tc.so.2", "libip6tc.so": "libip6tc.so.2",
             "libxtables.so": "libxtables.so.12"}  # fmt: skip
LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


class Rootfs:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.copied: set[Path] = set()

    def add(self, source: Path) -> list[Path]:
        """Copy SOURCE (a file, symlink or tree) to the same path under dest, keeping symlinks
        on the way as symlinks (/lib -> usr/lib), modes and extended attributes; the files."""
        source = Path(os.path.normpath(source))
        self._parents(source)
        if source.is_symlink():
            target = str(source.readlink())
            self._link(source, target)
            return self.add(Path(os.path.normpath(source.parent / target)))
        if source.is_dir():
            found: list[Path] = []
            self._dir(source)
            for child in sorted(source.iterdir()):
                if not self._unused(child):
                    found += self.add(child)
            return found
        if source not in self.copied:
            shutil.copy2(source, self._at(source))  # copy2 keeps security.capability
            self.copied.add(source)
        return [source]

    def link(self, path: Path, target: str) -> None:
        self._link(path, target)

    def _unused(self, path: Path) -> bool:
        if path.parent == STDLIB and path.name in STDLIB_UNUSED:
            return True
        if path.suffix == ".pyc" and ".opt-" in path.name:  # nothing runs with -O
            return True
        if path.parent.name == "lib-dynload":
            return path.name.split(".")[0] in DYNLOAD_UNUSED
        site = VENV / "lib"
        return any(path.match(f"{site}/*/site-packages/{pattern}") for pattern in SITE_UNUSED)

    def _parents(self, source: Path) -> None:
        for parent in reversed(source.parents):
            if parent.is_symlink():
                target = str(parent.readlink())
                self._link(parent, target)
                resolved = Path(os.path.normpath(parent.parent / target))
                self._parents(resolved)  # the directory it names, not what is in it
                self._dir(resolved)
            elif parent != Path("/"):
                self._dir(parent)

    def _dir(self, source: Path) -> None:
        at = self._at(source)
        if not at.is_dir():
            at.mkdir()
            shutil.copystat(source, at)

    def _link(self, source: Path, target: str) -> None:
        at = self._at(source)
        if not at.is_symlink():
            at.symlink_to(target)

    def _at(self, source: Path) -> Path:
        return self.dest / source.relative_to("/")


def is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def needed(path: Path) -> set[Path]:
    """The shared libraries PATH links against, as the dynamic loader resolves them."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False).stdout
    return {Path(m.group(1)) for m in map(LDD_PATH.search, out.splitlines()) if m}


def compile_stdlib() -> None:
    """Bytecode for the kept standard library: the base may ship none, the root is read-only."""
    unused = re.compile("|".join(re.escape(f"{STDLIB}/{name}") for name in STDLIB_UNUSED))
    if not compileall.compile_dir(STDLIB, quiet=1, workers=0, rx=unused):
        raise SystemExit("rootfs.py: the standard library did not compile")


def build(dest: Path) -> list[tuple[str, int, int]]:
    compile_stdlib()
    dest.mkdir(parents=True, exist_ok=True)
    rootfs = Rootfs(dest)
    manifest = []
    for why, patterns in KEEP:
        matches = [m for p in patterns if p for m in sorted(Path("/").glob(p.lstrip("/")))]
        files = [f for m in matches for f in rootfs.add(m)]
        if not files and OPTIONAL not in patterns:
            raise SystemExit(f"rootfs.py: nothing matched {patterns} ({why})")
        manifest.append((why, files))
    elves = [f for f in list(rootfs.copied) if not f.is_symlink() and is_elf(f)]
    libraries = sorted({lib for elf in elves for lib in needed(elf)} - rootfs.copied)
    manifest.append(("shared libraries the files above link against (ldd)", []))
    for library in libraries:
        manifest[-1][1].extend(rootfs.add(library))
    for name in INTERPRETER_LINKS:
        rootfs.link(VENV / "bin" / name, "python3")
    for name, soname in DEV_LINKS.items():
        rootfs.link(LIBDIR / name, soname)
    (dest / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (dest / "tmp").chmod(0o1777)  # kubectl debug containers and tempfile, when root is writable
    (dest / "run").mkdir(mode=0o755, exist_ok=True)
    # flock(2) on it works for a non-root user on a read-only root (xtables/lock.py).
    (dest / "run/xtables.lock").touch(mode=0o644)
    return [(why, len(files), sum(f.stat().st_size for f in files)) for why, files in manifest]


def userspace() -> str:
    """What the image ships that podnat's behaviour depends on, one `name=version` a line."""
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    packages = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}=${Version}\\n", "libnftables1", "iptables"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    suite = release.get("VERSION_CODENAME", "unknown").strip('"')
    debian = Path("/etc/debian_version").read_text().strip()
    python = ".".join(map(str, sys.version_info[:3]))
    return f"suite={suite}\ndebian={debian}\npython={python}\n{packages}"


def main() -> None:
    dest = Path(sys.argv[1])
    rows = build(dest)
    (dest / VENV.relative_to("/") / "USERSPACE").write_text(userspace())
    lines = [f"{size / 1e6:8.2f} MB {count:6d} files  {why}" for why, count, size in rows]
    total = sum(size for _, _, size in rows)
    lines.append(f"{total / 1e6:8.2f} MB in all (hack/image/rootfs.py)")
    text = "\n".join(lines) + "\n"
    (dest / VENV.relative_to("/") / "ROOTFS").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
