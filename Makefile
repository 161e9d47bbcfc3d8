# Pyroclast: the two commands are `make run` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# bench: `make test` runs the benchmark harness in its smoke mode, so its tools are always installed.
EXTRAS ?= dev,workloads,tracking-server,bench

.PHONY: run test unit lint cluster-bin crd bench bench-quick clean

# The build scripts print their result on the last line of stdout. Overridable to try the targets' failure
# paths (e.g. `make test BUILD_HELM=false`).
BUILD_CLUSTER ?= bash e2e/build-cluster.sh
BUILD_HELM ?= bash e2e/build-helm.sh
# `$(call built,VAR,COMMAND)`: export VAR as COMMAND's last line of stdout; stop with COMMAND's own status
# when it fails, or with 1 when it printed nothing (a build that fails must never become a skipped test).
built = out="$$($(2))" || { rc=$$?; echo "make: the build for $(1) failed (exit $$rc)" >&2; exit $$rc; }; \
	export $(1)="$$(tail -n1 <<<"$$out")"; \
	test -n "$$$(1)" || { echo "make: the build for $(1) printed no path" >&2; exit 1; }

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

venv: $(VENV)/.installed

## Build (or reuse) the local cluster's binaries; prints the directory holding them.
cluster-bin:
	@bash e2e/build-cluster.sh

## Local cluster + operator + a sample job, in the foreground; Ctrl-C stops everything.
run: $(VENV)/.installed
	@$(call built,KUBEBUILDER_ASSETS,$(BUILD_CLUSTER)); \
	  $(PY) -m e2e.cluster run

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

unit: $(VENV)/.installed
	$(PY) -m pytest tests -m "not cluster"

## Everything: lint, unit tests, workload tests and the cluster tests on a real control plane.
test: $(VENV)/.installed
	@$(call built,KUBEBUILDER_ASSETS,$(BUILD_CLUSTER)); \
	  $(call built,TEST_ASSET_HELM,$(BUILD_HELM)); \
	  $(MAKE) --no-print-directory lint && \
	  PYROCLAST_REQUIRE_CLUSTER=1 $(PY) -m pytest

crd: $(VENV)/.installed
	$(VENV)/bin/pyroclast crd --write deploy/crd
	$(VENV)/bin/pyroclast crd --write deploy/helm/pyroclast/crds

## BENCH_ARGS: more arguments, e.g. `--report e2e/bench/results/<run>` to judge an earlier run's figures again.
bench: $(VENV)/.installed
	@$(call built,KUBEBUILDER_ASSETS,$(BUILD_CLUSTER)); $(PY) -m e2e.bench $(BENCH_ARGS)

bench-quick: $(VENV)/.installed
	@$(call built,KUBEBUILDER_ASSETS,$(BUILD_CLUSTER)); $(PY) -m e2e.bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .pyroclast
