# Pyroclast: the two commands are `make run` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,workloads,tracking-server

.PHONY: run test unit lint cluster-bin crd bench bench-quick clean

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
	@export KUBEBUILDER_ASSETS="$$(bash e2e/build-cluster.sh | tail -n1)" && \
	  $(PY) -m e2e.cluster run

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

unit: $(VENV)/.installed
	$(PY) -m pytest tests -m "not cluster"

## Everything: lint, unit tests, workload tests and the cluster tests on a real control plane.
test: $(VENV)/.installed
	@export KUBEBUILDER_ASSETS="$$(bash e2e/build-cluster.sh | tail -n1)" && \
	  export TEST_ASSET_HELM="$$(bash e2e/build-helm.sh | tail -n1)" && \
	  $(MAKE) --no-print-directory lint && \
	  PYROCLAST_REQUIRE_CLUSTER=1 $(PY) -m pytest

crd: $(VENV)/.installed
	$(VENV)/bin/pyroclast crd --write deploy/crd
	$(VENV)/bin/pyroclast crd --write deploy/helm/pyroclast/crds

bench: $(VENV)/.installed
	@export KUBEBUILDER_ASSETS="$$(bash e2e/build-cluster.sh | tail -n1)" && $(PY) -m e2e.bench

bench-quick: $(VENV)/.installed
	@export KUBEBUILDER_ASSETS="$$(bash e2e/build-cluster.sh | tail -n1)" && $(PY) -m e2e.bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .pyroclast
