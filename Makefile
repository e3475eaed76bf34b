# podnat — see README.md. `make test` and `make demo` work on a fresh Debian machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV_STAMP := .venv-path
PY = $$(cat $(VENV_STAMP))/bin/python
BIN = $$(cat $(VENV_STAMP))/bin

.PHONY: help deps venv lint test test-quick test-kernel demo bench clean

help:
	@echo "make demo        the main job in a throwaway pod netns: real rules, real traffic"
	@echo "make test        set up (apt, venv) and run everything: lint, unit, golden, kernel"
	@echo "make test-quick  lint + the tiers that need no root (seconds)"
	@echo "make bench       apply latency and cold start against raw nft / iptables-restore"

deps:
	@hack/deps.sh

venv:
	@hack/venv.sh > $(VENV_STAMP)

lint: venv
	$(BIN)/ruff check helper tests hack
	$(BIN)/ruff format --check helper tests hack
	$(BIN)/mypy
	$(BIN)/lint-imports

test-quick: venv lint
	$(BIN)/pytest -q -m "not netns"

test-kernel: deps venv
	$(BIN)/pytest -q -m netns

test: deps venv lint
	$(BIN)/pytest -q

demo: deps venv
	$(PY) hack/demo.py

bench: deps venv
	$(PY) hack/bench.py

clean:
	rm -rf $(VENV_STAMP) *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
