"""One table of annotation cases, shared by the golden tests and the kernel tests."""

from __future__ import annotations

R, S, L, F = (
    "podnat.io/redirect",
    "podnat.io/redirect-sources",
    "podnat.io/redirect-local",
    "podnat.io/ip-families",
)

CASES: dict[str, dict[str, str]] = {
    "single": {R: "4321:1234"},
    "udp": {R: "5353:53/udp"},
    "sctp": {R: "3868:3869/sctp"},
    "shift": {R: "8000-8009:9000-9009"},
    "many_to_one": {R: "8080-8089:80/tcp"},
    "multi": {R: "4321:1234, 5353:53/udp"},
    "sources_v4": {R: "4321:1234", S: "192.168.10.0/24"},
    "sources_dual": {R: "4321:1234", S: "10.0.0.0/24, 10.0.1.0/25, 10.1.0.7, fd00::/64"},
    "sources_shift": {R: "8000-8002:9000-9002", S: "10.0.0.0/8, fd00::/8"},
    "local": {R: "4321:1234", L: "true"},
    "local_shift": {R: "8000-8002:9000-9002", L: "true"},
    "ipv4_only": {R: "4321:1234", F: "ipv4"},
    "ipv6_only": {R: "4321:1234", F: "ipv6"},
    "ipv4_local_shift": {R: "4321:1234, 8000-8002:9000-9002", L: "true", F: "ipv4"},
    "everything": {
        R: "4321:1234, 5353:53/udp, 8000-8002:9000-9002, 8080-8089:80, 3868:3869/sctp",
        S: "10.77.1.0/24, fd77:1::/64",
        L: "true",
        F: "dual",
    },
}
