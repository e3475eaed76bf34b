"""podnat.

Every pod's start waits for `podnat apply` in a fresh interpreter, so the modules on
that path follow three rules, each measured on the runtime venv:

- Named tuples, not dataclasses: importing dataclasses is ~20 ms, and each class ~2 ms.
- No `from __future__ import annotations` in a module that defines a named tuple:
  typing compiles string annotations, and the first compile() builds the whole AST
  module's state (~5 ms). Forward references are quoted instead.
- Import on first use what most pods never run (iptables-legacy, the API client), and
  log through `helper.log` (the logging module is ~10 ms).

tests/test_cli_imports.py and tests/netns/test_apply_imports.py hold the path to them.
"""
