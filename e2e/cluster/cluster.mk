# Local Kubernetes for the e2e tests and the demo. Included by the top-level Makefile:
#   include e2e/cluster/cluster.mk
# Variables (override on the command line or in the environment):
#   QWEN_TOOLS_DIR    where build-tools.sh caches binaries  (default ~/.cache/qwen-operator/bin)
#   TOOLS_BIN         the directory to put on PATH          ($(QWEN_TOOLS_DIR)/current)
#   QWEN_CLUSTER_DIR  state of the local cluster            (default ~/.cache/qwen-operator/cluster)
#   KUBECONFIG_LOCAL  admin kubeconfig of the local cluster ($(QWEN_CLUSTER_DIR)/kubeconfig)

CLUSTER_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# K8S_VERSION, ETCD_VERSION, KWOK_VERSION, HELM_VERSION, GO_MIN_VERSION
include $(CLUSTER_MK_DIR)/versions.env

QWEN_TOOLS_DIR ?= $(HOME)/.cache/qwen-operator/bin
QWEN_CLUSTER_DIR ?= $(HOME)/.cache/qwen-operator/cluster
TOOLS_BIN ?= $(QWEN_TOOLS_DIR)/current
KUBECONFIG_LOCAL ?= $(QWEN_CLUSTER_DIR)/kubeconfig
export QWEN_TOOLS_DIR QWEN_CLUSTER_DIR

# kind (only for machines with Docker; not used by the default e2e path)
KIND ?= kind
KIND_CLUSTER ?= qwen-kind
KIND_KUBECONFIG ?= $(QWEN_CLUSTER_DIR)/kind-kubeconfig
E2E_PYTEST ?= .venv/bin/python -m pytest

.PHONY: tools cluster-up cluster-down cluster-status cluster-env e2e-kind e2e-kind-down

## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl, helm (cached).
tools:
	@bash $(CLUSTER_MK_DIR)/build-tools.sh

## Start (or reuse) the local control plane with simulated GPU nodes; prints the kubeconfig path.
cluster-up: tools
	@bash $(CLUSTER_MK_DIR)/cluster.sh up

## Stop every process of the local cluster and delete its state.
cluster-down:
	@bash $(CLUSTER_MK_DIR)/cluster.sh down

cluster-status:
	@bash $(CLUSTER_MK_DIR)/cluster.sh status

## Shell exports for the local cluster: eval "$$(make -s cluster-env)"
cluster-env:
	@bash $(CLUSTER_MK_DIR)/cluster.sh env

## The e2e suite on a kind cluster with fake GPUs (needs Docker and kind; not the default path).
e2e-kind:
	@command -v $(KIND) >/dev/null || { echo "e2e-kind: '$(KIND)' not found (needs kind and Docker)"; exit 1; }
	@mkdir -p $(QWEN_CLUSTER_DIR)
	@if ! $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --config e2e/kind/kind-config.yaml --kubeconfig $(KIND_KUBECONFIG); \
	else \
	  $(KIND) get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG); \
	fi
	KUBECONFIG=$(KIND_KUBECONFIG) bash e2e/kind/fake-gpus.sh
	KUBECONFIG_E2E=$(KIND_KUBECONFIG) PATH="$(TOOLS_BIN):$$PATH" $(E2E_PYTEST) e2e -m e2e

e2e-kind-down:
	-$(KIND) delete cluster --name $(KIND_CLUSTER)
	rm -f $(KIND_KUBECONFIG)
