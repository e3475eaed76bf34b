# podnat — see README.md. `make test` and `make demo` work on a fresh Debian machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV_STAMP := .venv-path
PY = $$(cat $(VENV_STAMP))/bin/python
BIN = $$(cat $(VENV_STAMP))/bin

.PHONY: help deps venv lint tools tools-test cluster-up cluster-down test test-quick test-kernel test-kube test-reliability fuzz test-corpus test-image \
	test-e2e e2e-cluster-up e2e-cluster-down demo bench clean

help:
	@echo "make demo        the main job in a throwaway pod netns: real rules, real traffic"
	@echo "make test        set up (apt, venv) and run everything: lint, unit, golden, kernel,"
	@echo "                 API server, Helm chart, image and kind end-to-end"
	@echo "make test-quick  lint + the tiers that need no root (seconds)"
	@echo "make test-kernel the kernel tier: network namespaces, real traffic (root)"
	@echo "make test-kube   a real kube-apiserver: API source, webhook, Helm chart"
	@echo "make test-corpus real manifests (../shared/corpus) through inject, kubectl, an API server"
	@echo "make test-reliability  kills, races, fuzzing on the real kernel (root)"
	@echo "make fuzz        the long fuzz run: 1,000,000 inputs, 2,000 through the CLI (root)"
	@echo "make test-image  the shipped images (bookworm, trixie): every mode in each, the kernel"
	@echo "                 tier and the matrix inside each (root)"
	@echo "make test-e2e    real pods on the offline kind cluster (built here, cached)"
	@echo "make e2e-cluster-up / e2e-cluster-down   that cluster, for you (see README)"
	@echo "make bench       podnat against nft -f, iptables-restore, kubectl, istio's init: one table"
	@echo "make tools       build the pinned Kubernetes tools (hack/env/tools/go.mod) into ~/.cache"
	@echo "make cluster-up  a local etcd + kube-apiserver; prints an admin kubeconfig"

deps:
	@hack/env/deps.sh

venv:
	@hack/env/venv.sh > $(VENV_STAMP)

tools:
	@hack/env/tools.sh build

# What make test and make bench use; the rest of `make tools` is for later tiers.
tools-test:
	@hack/env/tools.sh build kube-apiserver etcd kubectl helm

cluster-up: venv tools-test
	@$(PY) -m tests.kit.controlplane up

cluster-down: venv
	@$(PY) -m tests.kit.controlplane down

lint: venv
	$(BIN)/ruff check helper tests
	$(BIN)/ruff format --check helper tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test-quick: venv lint
	$(BIN)/pytest -q -m "not netns and not kube and not e2e and not corpus and not image"

test-kernel: deps venv tools-test
	$(BIN)/pytest -q -m "netns and not kube and not reliability"

# Kills at random points of apply, concurrent appliers, fuzzing (PODNAT_KILLS and
# PODNAT_FUZZ_INPUTS raise the counts; `make fuzz` is the long run).
test-reliability: deps venv
	$(BIN)/pytest -q -m reliability

# PODNAT_FUZZ_SEED replays a run (each run prints its seed; a failure names it).
fuzz: deps venv
	PODNAT_FUZZ_INPUTS=$${PODNAT_FUZZ_INPUTS:-1000000} PODNAT_FUZZ_CLI=$${PODNAT_FUZZ_CLI:-2000} \
		$(BIN)/pytest -q -s -m reliability tests/reliability/test_fuzz.py

test-kube: deps venv tools-test
	$(BIN)/pytest -q -m kube

# Real manifests (../shared/corpus/manifests, or PODNAT_CORPUS_DIR) through inject, kubectl
# and a real API server; fails when the corpus is missing.
test-corpus: venv tools-test
	$(BIN)/pytest -q -m corpus

# The shipped image (hack/env/images.sh, $PODNAT_IMAGE): init, webhook and inject in it as
# the pod runs them, and the kernel tier inside a layer FROM it that adds test tools only.
test-image: deps venv
	$(BIN)/pytest -q -m image

# The offline kind cluster (built and torn down here), or PODNAT_E2E_KUBECONFIG's.
test-e2e: deps venv
	$(BIN)/pytest -q -m e2e

e2e-cluster-up: deps
	@hack/cluster/e2e-cluster.sh up

e2e-cluster-down:
	@hack/cluster/e2e-cluster.sh down

# CI's budget (warm <= 12 min): the reliability tier runs 40 kills per backend and 100 CLI
# fuzz runs here; `make test-reliability` runs its full 100 and 200.
test: deps venv lint tools-test
	PODNAT_KILLS=$${PODNAT_KILLS:-40} PODNAT_FUZZ_CLI=$${PODNAT_FUZZ_CLI:-100} \
		$(BIN)/pytest -q -m "not corpus" --durations=25

demo: deps venv
	$(PY) -m tests.kit.demo

# Every part (tests/bench: apply, peers, admission, cluster), then one table of every
# figure, its baseline, ratio, target and verdict; fails on a missed target.
bench: deps venv tools-test
	@$(PY) -m tests.bench.table

clean:
	rm -rf $(VENV_STAMP) *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
