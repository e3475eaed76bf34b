"""One IP family's nat table through python-iptables: read, stage, commit, roll back.

Runs inside a per-family worker process (see xtables.worker): libxtables keeps
one address family per process, and python-iptables' maintainer advises one
family per process, so IPv4 and IPv6 never share one.
"""

from __future__ import annotations

import ctypes
import ipaddress
from types import ModuleType
from typing import Any

from helper.backends.neighbours import Neighbours
from helper.backends.xtables.entries import EntryFactory, build_rule
from helper.backends.xtables.iptc_loader import load_iptc
from helper.backends.xtables.neighbours import read_neighbours
from helper.plan.model import Family
from helper.render import iptables as render
from helper.render.iptables import XtMatch, XtRule, XtRuleset


class FamilyTable:
    """podnat's view of one family's nat table. Changes are staged until commit()."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self._iptc: ModuleType = load_iptc()
        self._table: Any = None
        self._snapshot: _Snapshot | None = None

    def _fresh(self) -> Any:
        iptc = self._iptc
        if self.family is Family.IPV4:
            table = iptc.Table(iptc.Table.NAT, autocommit=False)
        else:
            table = iptc.Table6(iptc.Table6.NAT, autocommit=False)
        table.refresh()
        self._table = table
        return table

    def probe(self) -> None:
        """An unchanged commit: a real write of the nat table, proving we may write it."""
        self._fresh().commit()

    def status(self) -> tuple[bool, bool]:
        """Whether podnat's chains exist, and whether other tools keep nat rules here."""
        table = self._fresh()
        return any(table.is_chain(name) for name in render.OWN_CHAINS), _holds_foreign(table)

    def neighbours(self) -> Neighbours:
        """Other tools' redirects in this family's PREROUTING/OUTPUT (bounded walk)."""
        return read_neighbours(self._iptc, self._fresh(), self.family)

    def read(self) -> XtRuleset:
        """podnat's rules, decoded (slow: python-iptables re-parses every parameter)."""
        return _read_ruleset(self._fresh(), self.family)

    def stage(self, wanted: XtRuleset | None) -> None:
        """Stage podnat's rules, keeping what was there for rollback()."""
        table = self._fresh()
        if self._snapshot is not None:
            self._snapshot.close()
        # Every family, since they commit concurrently: any one may have to be undone.
        self._snapshot = _Snapshot(self._iptc, self.family)
        _remove_own(table)
        if wanted is not None:
            _install(self._iptc, table, wanted)

    def commit(self) -> None:
        self._table.commit()

    def rollback(self) -> None:
        """Put back what stage() found, after a commit that must be undone."""
        table = self._fresh()
        _remove_own(table)
        if self._snapshot is not None:
            self._snapshot.restore(self._iptc, table, self.family)
        table.commit()

    def cleanup(self) -> bool:
        table = self._fresh()
        if not _remove_own(table):
            return False
        table.commit()
        return True


def _holds_foreign(table: Any) -> bool:
    for chain in table.chains:
        if chain.name in render.OWN_CHAINS:
            continue
        if not table.builtin_chain(chain.name):
            return True
        if any(rule.target.name not in render.OWN_CHAINS for rule in chain.rules):
            return True
    return False


def _remove_own(table: Any) -> bool:
    """Stage removal of podnat's jumps and chains. True if there was anything."""
    found = False
    for hook in render.HOOKS.values():
        chain = _chain(table, hook)
        for rule in list(chain.rules):
            if rule.target.name in render.OWN_CHAINS:
                chain.delete_rule(rule)
                found = True
    for name in render.OWN_CHAINS:
        if table.is_chain(name):
            table.flush_entries(name)
            table.delete_chain(name)
            found = True
    return found


def _chain(table: Any, name: str) -> Any:
    return next(chain for chain in table.chains if chain.name == name)


def _install(iptc: ModuleType, table: Any, ruleset: XtRuleset) -> None:
    for name in ruleset.chains:
        table.create_chain(name)
    hooks = set(render.HOOKS.values())
    for rule in ruleset.rules:  # one jump per built-in chain, first, so nothing shadows it
        if rule.chain in hooks:
            table.insert_entry(rule.chain, _jump_entry(iptc, rule, ruleset.family), 0)
    entries = EntryFactory(iptc, ruleset.family)
    for rule in ruleset.rules:
        if rule.chain not in hooks:
            table.append_entry(rule.chain, entries.entry(rule))


def _jump_entry(iptc: ModuleType, rule: XtRule, family: Family) -> Any:
    built = build_rule(iptc, rule, family)
    return built.rule


class _Snapshot:
    """The nat table as it was before staging, to put podnat's part back if needed.

    A second libiptc handle: one getsockopt copies the kernel's table (C, ~0.3 ms
    for a thousand rules); it is walked only if a rollback happens.
    """

    def __init__(self, iptc: ModuleType, family: Family) -> None:
        self._api = iptc.ip4tc.iptc() if family is Family.IPV4 else iptc.ip6tc.ip6tc()
        self._handle = self._api.iptc_init(b"nat")
        if not self._handle:
            raise iptc.IPTCError("can't snapshot the nat table")

    def restore(self, iptc: ModuleType, table: Any, family: Family) -> None:
        api, handle = self._api, self._handle
        for name in render.OWN_CHAINS:
            if not api.iptc_is_chain(name.encode(), handle):
                continue
            table.create_chain(name)
            entry = api.iptc_first_rule(name.encode(), handle)
            while entry:
                raw = ctypes.string_at(entry, entry.contents.next_offset)
                table.append_entry(name, ctypes.create_string_buffer(raw, len(raw)))
                entry = api.iptc_next_rule(entry, handle)
            jump = XtRule(chain=render.HOOKS[name], target=name)
            table.insert_entry(jump.chain, _jump_entry(iptc, jump, family), 0)

    def close(self) -> None:
        if self._handle:
            self._api.iptc_free(self._handle)
            self._handle = None


def _read_ruleset(table: Any, family: Family) -> XtRuleset:
    chains = tuple(name for name in render.OWN_CHAINS if table.is_chain(name))
    rules: list[XtRule] = []
    for hook in render.HOOKS.values():
        rules += [
            _read_rule(hook, rule)
            for rule in _chain(table, hook).rules
            if rule.target.name in render.OWN_CHAINS
        ]
    for name in chains:
        rules += [_read_rule(name, rule) for rule in _chain(table, name).rules]
    return XtRuleset(family, chains, tuple(rules))


def _read_rule(chain: str, rule: Any) -> XtRule:
    return XtRule(
        chain=chain,
        target=rule.target.name,
        source=_source(rule.src),
        proto=rule.protocol if rule.protocol not in (None, "", "ip", "all") else None,
        matches=tuple(XtMatch(m.name, _params(m)) for m in rule.matches),
        target_params=_params(rule.target),
    )


def _params(module: Any) -> render.Params:
    return tuple((key, " ".join(values)) for key, values in module.get_all_parameters().items())


def _source(src: str) -> str | None:
    network = ipaddress.ip_network(src, strict=False)
    return None if network.prefixlen == 0 else str(network)
