"""Fuzz inputs for podnat's readers: random and mutated-valid annotations and Downward files.

Everything comes from one seeded random.Random, so a failure is replayed with its seed
(PODNAT_FUZZ_SEED) and the input's index.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from helper.plan.annotations import to_annotations
from helper.plan.limits import MAX_VALUE_BYTES
from helper.plan.model import FamilyMode, PortRange, Proto, Redirect, RedirectPlan
from tests.cases import CASES, F, L, R, S

KEYS = [R, S, L, F]
OTHER_KEYS = [
    "podnat.io/redirects",
    "podnat.io/sources",
    "podnat.io/",
    "podnat.io/x" * 40,
    "PODNAT.IO/redirect",
    "app",
    "kubectl.kubernetes.io/last-applied-configuration",
    "example.com/é",
]
SOURCES = ["10.0.0.0/8", "192.168.1.7", "fd00::/64", "::/0", "0.0.0.0/0", "fd51::%d0/64"]
SOURCES += ["10.0.0.1/24", "::ffff:10.0.0.0/104", "10.0.0.0/255.0.0.0", "fe80::1%eth0"]
# What a hostile or careless author types: separators, other scripts, controls, quoting.
PIECES = [*"0123456789,:-/ %.", "tcp", "udp", "sctp", "TCP", "\t", "\n", "\r", "\x00"]
PIECES += ["\x1b[2J", "é", "\u2028", "\u202e", "\uff11", "\u0663", "😀", '"', "\\", "="]
PIECES += ["true", "dual"]
BAD_ESCAPES = ["\\777", "\\x4", "\\u12", "\\UFFFFFFFF", "\\ud800", "\\q", "\\", "\\xff", "\\0"]
RAW_BYTES = [b"\xff", b"\x80", b"\xc3", b"\x00", b"\r", b"\n", b'"', b"\\", b"=", b" "]


def go_quote(value: str) -> str:
    """Go's strconv.Quote, near enough: what the kubelet writes between the quotes."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def downward_bytes(annotations: dict[str, str]) -> bytes:
    lines = [f"{key}={go_quote(value)}" for key, value in sorted(annotations.items())]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


@dataclass
class Fuzzer:
    rng: random.Random

    # -- valid starting points ------------------------------------------------------
    def valid(self) -> dict[str, str]:
        rng = self.rng
        if rng.random() < 0.3:
            return dict(rng.choice(list(CASES.values())))
        redirects = []
        count = rng.choice([1, 1, 2, 3, 5, 20]) if rng.random() < 0.97 else 200
        for slot in rng.sample(range(210), count):  # 300 ports a slot: no overlaps
            proto = rng.choice(list(Proto))
            first = slot * 300 + rng.randint(1, 150)
            last = first + rng.choice([0, 0, 0, 9, 99])
            to_first = rng.randint(1, 65535 - (last - first))
            to = PortRange(to_first, to_first if rng.random() < 0.5 else to_first + last - first)
            if to != PortRange(first, last):
                redirects.append(Redirect(proto, PortRange(first, last), to))
        if not redirects:
            return {R: "4321:1234"}
        plan = RedirectPlan(tuple(sorted(redirects)), local=rng.random() < 0.3)
        annotations = to_annotations(plan)
        if rng.random() < 0.3:
            annotations[S] = ", ".join(rng.sample(SOURCES[:5], rng.randint(1, 3)))
        if rng.random() < 0.2:
            annotations[F] = rng.choice(list(FamilyMode)).value
        return annotations

    # -- mutations --------------------------------------------------------------------
    def mutate_text(self, text: str) -> str:
        rng = self.rng
        for _ in range(rng.choice([1, 1, 2, 3])):
            at = rng.randint(0, len(text))
            end = min(len(text), at + rng.randint(0, 8))
            kind = rng.randrange(9)
            if kind == 0:
                text = text[:at] + rng.choice(PIECES) + text[at:]
            elif kind == 1:
                text = text[:at] + text[end:]
            elif kind == 2:
                text = text[:at] + rng.choice(PIECES) + text[end:]
            elif kind == 3:  # digit runs: the int() limit is 4,300 digits
                digits = rng.choice([1, 5, 6, 12, 99, 4301, 9000])
                text = text[:at] + str(rng.randint(0, 9)) * digits + text[end:]
            elif kind == 4:  # repeat the value: duplicates, and up to past the limits
                times = rng.choice([2, 3, 50, 2001])
                text = ", ".join([text] * times)
            elif kind == 5 and rng.random() < 0.02:  # rare: just past 64 KiB
                text = (text + ",") * (MAX_VALUE_BYTES // max(1, len(text) + 1) + 1)
            elif kind == 6:
                text = text.swapcase()
            elif kind == 7:
                text = ",".join(rng.sample(text.split(","), len(text.split(","))))
            else:
                text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))
            text = text[: MAX_VALUE_BYTES + 100]  # repeats of repeats: past the cap, no further
        return text

    def annotations(self) -> dict[str, str]:
        rng = self.rng
        annotations = self.valid()
        roll = rng.random()
        if roll < 0.15:
            return annotations  # unmutated: the valid side must stay valid
        if roll < 0.25:  # pure noise
            keys = rng.sample(KEYS + OTHER_KEYS, rng.randint(0, 4))
            return {key: self.mutate_text("") for key in keys}
        for _ in range(rng.choice([1, 1, 2])):
            key = rng.choice(KEYS + (OTHER_KEYS if rng.random() < 0.2 else []))
            annotations[key] = self.mutate_text(annotations.get(key, rng.choice(PIECES)))
        if rng.random() < 0.05:
            annotations.pop(R, None)
        return annotations

    def file(self) -> bytes:
        rng = self.rng
        data = downward_bytes(self.annotations())
        if rng.random() < 0.3:
            return data
        for _ in range(rng.choice([1, 1, 2])):
            at = rng.randint(0, len(data))
            kind = rng.randrange(6)
            if kind == 0:
                data = data[:at] + rng.choice(RAW_BYTES) + data[at:]
            elif kind == 1:
                escape = rng.choice(BAD_ESCAPES).encode()
                quote = data.find(b'"', at)  # inside a value where possible
                at = quote + 1 if quote >= 0 else at
                data = data[:at] + escape + data[at:]
            elif kind == 2:
                data = data[:at]
            elif kind == 3:
                data = data.replace(b"\n", b"\r\n")
            elif kind == 4:
                data = data[:at] + data[at + rng.randint(1, 20) :]
            else:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
        return data
