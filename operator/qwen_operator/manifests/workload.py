"""Desired Kubernetes objects for a QwenDeployment: pure functions of the spec (+ what the operator decided).

`build_*` return plain dicts ready for server-side apply. Names:
  StatefulSet <name>, headless Service <name>-pods (stable pod DNS), client Service <name> (OpenAI API on :8000).
With spec.routing on, the client Service keeps its name and port but selects the router's pods (router.py builds
the router's objects, named <name>-router); the vLLM pods stay reachable through <name>-pods.
A Service is never named `vllm`: Kubernetes would inject VLLM_PORT=tcp://... into pods of the namespace, which
vLLM rejects; pods also run with enableServiceLinks: false, because every injected *_SERVICE_* variable whose
name starts with VLLM_ would change vLLM's compile-cache hash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.models import GROUP, KIND, VERSION, QwenDeploymentSpec
from ..domain.coldstart import DEFAULT_STARTUP_BUDGET_S
from ..domain.gpus import canonical_product, lookup_gpu
from ..domain.vllm_args import HF_HOME, MODEL_MOUNT, VLLM_CACHE_ROOT, VLLM_PORT, model_path
from ..domain.weight_cache import MODEL_DIR, weight_cache_enabled, weight_key, weight_object_name
from .resolved import ResolvedSpec

MANAGED_BY = "qwen-operator"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_CACHE_KEY = f"{GROUP}/compile-cache-key"
# app.kubernetes.io/name of the cache objects (PVC, Job, its pods): what a cache Job's pod is for
COMPILE_CACHE_APP = "qwen-compile-cache"
WEIGHT_CACHE_APP = "qwen-weight-cache"
ANNOTATION_COMMAND = f"{GROUP}/vllm-command"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
VLLM_CONTAINER = "vllm"
CACHE_SRC_MOUNT = "/var/cache/qwen/baked"
# preStop: wait (up to 100 s, inside the 120 s grace period) until vLLM reports no running or waiting requests.
DRAIN_SCRIPT = (
    "import time,urllib.request as u\n"
    "end=time.time()+100\n"
    "while time.time()<end:\n"
    "    try:\n"
    "        m=u.urlopen('http://127.0.0.1:8000/metrics',timeout=5).read().decode()\n"
    "        busy=sum(float(l.rsplit(' ',1)[1]) for l in m.splitlines() if l.startswith(('vllm:num_requests_running','vllm:num_requests_waiting')))\n"
    "        if busy==0: break\n"
    "    except Exception: break\n"
    "    time.sleep(2)\n"
)


@dataclass(frozen=True)
class Owner:
    name: str
    uid: str

    def reference(self, controller: bool = True) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class CacheMount:
    """A baked compile cache to seed pods from (PVC name), or None for no cache."""

    pvc_name: str
    key: str


def selector_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "qwen-vllm", "app.kubernetes.io/instance": name}


def router_selector_labels(name: str) -> dict[str, str]:
    """The router's pods: another app name, so neither the vLLM selector nor the PodMonitor of vLLM pods picks them."""
    return {"app.kubernetes.io/name": "qwen-router", "app.kubernetes.io/instance": name}


def common_labels(name: str) -> dict[str, str]:
    return {**selector_labels(name), "app.kubernetes.io/managed-by": MANAGED_BY, LABEL_DEPLOYMENT: name}


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(name).items()))


def client_service_name(name: str) -> str:
    return name


def headless_service_name(name: str) -> str:
    return f"{name}-pods"


def _meta(name: str, namespace: str, owner: Owner, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner.reference()]}


def gpu_tolerations(spec: QwenDeploymentSpec) -> list[dict[str, Any]]:
    tols: list[dict[str, Any]] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    tols += [t.model_dump(by_alias=True, exclude_none=True) for t in spec.gpu.tolerations]
    return tols


def node_selector(spec: QwenDeploymentSpec) -> dict[str, str]:
    return {GPU_PRODUCT_LABEL: canonical_product(spec.gpu.product), **spec.gpu.node_selector}


def _limits(spec: QwenDeploymentSpec, gpus: int) -> dict[str, str]:
    limits = {"memory": spec.resources.memory, GPU_RESOURCE: str(gpus)}
    gpu = lookup_gpu(spec.gpu.product)
    if gpu is not None and gpu.cpu_standin:
        # On the CPU stand-in the requested CPU is the accelerator: capped at the request, a replica has a fixed
        # capacity of its own (as a GPU has), and a second replica adds as much again instead of competing for the
        # same cores. Uncapped, each vLLM CPU replica spins its engine loop on a core of its own
        # (vllm/distributed/device_communicators/shm_broadcast.py busy-loops between steps), so on a small node
        # two replicas served about as much as one.
        limits["cpu"] = spec.resources.cpu
    return limits


def vllm_container(spec: QwenDeploymentSpec, args: Sequence[str], env: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The vLLM container, shared by serving pods and the bake Job so both hash the same factors."""
    gpus = spec.gpus_per_pod
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "model-cache", "mountPath": HF_HOME},
        {"name": "compile-cache", "mountPath": VLLM_CACHE_ROOT},
    ]
    if spec.model.source.type == "pvc":
        mounts.append({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True})
    elif weight_cache_enabled(spec):
        # Only the verified checkpoint directory, read-only, where model_path() points vLLM (manifests/weights.py).
        mounts.append({"name": "model", "mountPath": model_path(spec), "subPath": MODEL_DIR, "readOnly": True})
    return {
        "name": VLLM_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm", "serve"],
        "args": list(args),
        "env": list(env),
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory, GPU_RESOURCE: str(gpus)},
            "limits": _limits(spec, gpus),
        },
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def pod_volumes(spec: QwenDeploymentSpec) -> list[dict[str, Any]]:
    vols: list[dict[str, Any]] = [
        # NCCL between the GPUs of one pod needs a large, memory-backed /dev/shm (Docker's default is 64 MiB).
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shm_size}},
        {"name": "model-cache", "emptyDir": {}},
        {"name": "compile-cache", "emptyDir": {}},
    ]
    if spec.model.source.type == "pvc":
        vols.append(
            {"name": "model", "persistentVolumeClaim": {"claimName": spec.model.source.pvc_name, "readOnly": True}}
        )
    elif weight_cache_enabled(spec):
        claim = weight_object_name(weight_key(spec))
        vols.append({"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    return vols


STARTUP_PROBE_PERIOD_S = 10


def startup_budget(spec: QwenDeploymentSpec) -> int:
    """The startup budget when nothing else decides it: the user's value, else the flat default."""
    if spec.startup_timeout_seconds is not None:
        return spec.startup_timeout_seconds
    return DEFAULT_STARTUP_BUDGET_S


def running_startup_budget(statefulset: Mapping[str, Any] | None) -> int | None:
    """The startup budget a StatefulSet's pods run with (failureThreshold x periodSeconds of the vLLM container's
    startup probe, as _add_probes writes it); None without one."""
    tmpl = ((statefulset or {}).get("spec") or {}).get("template") or {}
    for c in (tmpl.get("spec") or {}).get("containers") or []:
        if c.get("name") != VLLM_CONTAINER:
            continue
        probe = c.get("startupProbe") or {}
        try:
            return int(probe["failureThreshold"]) * int(probe.get("periodSeconds", STARTUP_PROBE_PERIOD_S))
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _add_probes(container: dict[str, Any], startup_budget_s: int) -> None:
    """Readiness and liveness only start once the startup probe passed: loading pods are never killed for being
    slow; the startup budget covers download, compile and warm-up.  On scale-down or rollout, the pod stops taking
    traffic and lets running requests finish before vLLM gets SIGTERM."""
    container["startupProbe"] = {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": STARTUP_PROBE_PERIOD_S,
        "timeoutSeconds": 5,
        "failureThreshold": max(1, math.ceil(startup_budget_s / STARTUP_PROBE_PERIOD_S)),
    }
    container["readinessProbe"] = {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    container["livenessProbe"] = {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 15,
        "timeoutSeconds": 10,
        "failureThreshold": 4,
    }
    container["lifecycle"] = {"preStop": {"exec": {"command": ["python3", "-c", DRAIN_SCRIPT]}}}


def _seed_cache_container(spec: QwenDeploymentSpec, cache: CacheMount) -> dict[str, Any]:
    """Seeds the pod-local cache from the baked, shared PVC: the shared copy stays pristine (a miss writes only
    locally) and the PVC can be ReadOnlyMany."""
    return {
        "name": "seed-compile-cache",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "sh",
            "-c",
            f"cp -a {CACHE_SRC_MOUNT}/. {VLLM_CACHE_ROOT}/ && echo seeded compile cache {cache.key}",
        ],
        "volumeMounts": [
            {"name": "baked-cache", "mountPath": CACHE_SRC_MOUNT, "readOnly": True},
            {"name": "compile-cache", "mountPath": VLLM_CACHE_ROOT},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def build_statefulset(
    name: str,
    namespace: str,
    owner: Owner,
    resolved: ResolvedSpec,
    replicas: int,
    cache: CacheMount | None,
    startup_budget_s: int | None = None,
) -> dict[str, Any]:
    """The StatefulSet; ``startup_budget_s`` is the startup probe's budget (None: spec.startupTimeoutSeconds or
    the flat default, see manifests/coldstart.py for the measured one)."""
    spec = resolved.spec
    labels = common_labels(name)
    container = vllm_container(spec, resolved.argv, resolved.env)
    _add_probes(container, startup_budget_s if startup_budget_s is not None else startup_budget(spec))
    volumes = pod_volumes(spec)
    init: list[dict[str, Any]] = []
    pod_annotations = {ANNOTATION_COMMAND: resolved.command_line}
    if cache is not None:
        volumes.append(
            {"name": "baked-cache", "persistentVolumeClaim": {"claimName": cache.pvc_name, "readOnly": True}}
        )
        init.append(_seed_cache_container(spec, cache))
        pod_annotations[LABEL_CACHE_KEY] = cache.key
    pod_spec: dict[str, Any] = {
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 120,
        "nodeSelector": node_selector(spec),
        "tolerations": gpu_tolerations(spec),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if init:
        pod_spec["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(name, namespace, owner, labels),
        "spec": {
            "replicas": replicas,
            "serviceName": headless_service_name(name),
            # Parallel: a scale-up starts every new replica at once instead of one cold start after another.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


def build_services(name: str, namespace: str, owner: Owner, routed: bool = False) -> list[dict[str, Any]]:
    """The headless Service of the vLLM pods, and the client Service: to the vLLM pods, or to the router when
    ``routed`` (same name, port and port name, so clients change nothing when routing is turned on or off)."""
    labels = common_labels(name)
    client_selector = router_selector_labels(name) if routed else selector_labels(name)
    port = {"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(headless_service_name(name), namespace, owner, labels),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector_labels(name),
                "ports": [port],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(client_service_name(name), namespace, owner, labels),
            "spec": {"type": "ClusterIP", "selector": client_selector, "ports": [port]},
        },
    ]
