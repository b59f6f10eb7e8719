"""Compile-cache objects: a PVC per cache key, and the bake Job that fills it. Pure.

Mechanism (docs/compile-cache.md): one PVC per key, written once by the bake Job (mounted read-write at the exact
VLLM_CACHE_ROOT the serving pods use), then mounted read-only by serving pods, whose init container copies it into
a pod-local emptyDir at that same path. Deployments with the same key share the PVC and the bake; each is a
(non-controller) owner, so the cache goes away with the last of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..api.models import QwenDeploymentSpec
from ..domain.vllm_args import VLLM_PORT
from .resolved import CacheIdentity, ResolvedSpec
from .status import pod_issue
from .workload import (
    COMPILE_CACHE_APP,
    LABEL_CACHE_KEY,
    MANAGED_BY,
    WEIGHT_CACHE_APP,
    Owner,
    gpu_tolerations,
    node_selector,
    pod_volumes,
    vllm_container,
)

ANNOTATION_BAKED = "qwenops.dev/baked"
ANNOTATION_BAKE_SECONDS = "qwenops.dev/bake-seconds"

# Run vLLM exactly as serving pods do, wait until it is healthy (weights loaded, graphs compiled, warmed up), check
# that compile artifacts were written, record the key factors and the time, stop. Exit codes say what failed.
BAKE_SCRIPT = r"""
set -u
start=$(date +%s)
vllm serve "$@" &
pid=$!
python3 - "$pid" <<'PY' || { kill "$pid" 2>/dev/null; exit 3; }
import os, sys, time, urllib.request
pid = int(sys.argv[1])
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        print("bake: vLLM exited before it became healthy", flush=True); sys.exit(1)
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/health", timeout=5) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    time.sleep(2)
PY
end=$(date +%s)
kill -INT "$pid"; wait "$pid" 2>/dev/null
n=$(find "$VLLM_CACHE_ROOT" -type f 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then echo "bake: no compile artifacts under $VLLM_CACHE_ROOT" >&2; exit 4; fi
printf '{"key": "%s", "seconds": %s, "files": %s, "factors": %s}\n' "$QWEN_CACHE_KEY" "$((end-start))" "$n" \
  "$QWEN_CACHE_FACTORS" > "$VLLM_CACHE_ROOT/qwen-bake-record.json"
echo "bake: cache $QWEN_CACHE_KEY ready: $n files in $((end-start)) s"
""".replace("%s/health", f"{VLLM_PORT}/health")


def cache_labels(key: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": COMPILE_CACHE_APP,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_CACHE_KEY: key,
    }


def build_cache_pvc(resolved: ResolvedSpec, cache: CacheIdentity, namespace: str, owner: Owner) -> dict[str, Any]:
    pvc_name, key = cache.object_name, cache.key
    st = resolved.spec.compile_cache.storage
    pvc_spec: dict[str, Any] = {"accessModes": [st.access_mode], "resources": {"requests": {"storage": st.size}}}
    if st.storage_class_name:
        pvc_spec["storageClassName"] = st.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": pvc_name,
            "namespace": namespace,
            "labels": cache_labels(key),
            "ownerReferences": [owner.reference(controller=False)],
        },
        "spec": pvc_spec,
    }


def build_bake_job(resolved: ResolvedSpec, cache: CacheIdentity, namespace: str, owner: Owner) -> dict[str, Any]:
    spec, key = resolved.spec, cache.key
    job_name = pvc_name = cache.object_name
    container = vllm_container(spec, resolved.argv, resolved.env)
    container["name"] = "bake"
    container["command"] = ["/bin/sh", "-c", BAKE_SCRIPT, "bake"]
    container["env"] = list(resolved.env) + [
        {"name": "QWEN_CACHE_KEY", "value": key},
        {"name": "QWEN_CACHE_FACTORS", "value": cache.factors_json},
    ]
    volumes = [v for v in pod_volumes(spec) if v["name"] != "compile-cache"]
    volumes.append({"name": "compile-cache", "persistentVolumeClaim": {"claimName": pvc_name}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": cache_labels(key),
            "ownerReferences": [owner.reference(controller=False)],
        },
        "spec": {
            "backoffLimit": 1,
            # A bake pod that loses its node (deleted node, drain, preemption: the pod gets the DisruptionTarget
            # condition) did not fail the bake: retry it without spending the one retry a real failure gets.
            "podFailurePolicy": {
                "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
            },
            # One writer at a time on the cache volume: a replacement starts once the lost pod is gone.
            "podReplacementPolicy": "Failed",
            "activeDeadlineSeconds": spec.compile_cache.bake_timeout_seconds,
            "template": {
                "metadata": {"labels": cache_labels(key)},
                # The GPU product is part of the key (inductor keys by device name): bake where serving runs.
                "spec": job_pod_spec(spec, container, volumes),
            },
        },
    }


def job_pod_spec(spec: QwenDeploymentSpec, container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod of a cache Job (bake, hydration): runs once, no API token, on the nodes serving runs on (the GPU
    product is part of the compile-cache key; a ReadWriteOnce volume binds on a node the serving pods can use)."""
    return {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "nodeSelector": node_selector(spec),
        "tolerations": gpu_tolerations(spec),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }


def job_state(job: dict[str, Any] | None) -> tuple[str, str]:
    """(state, message): Missing, Running, Succeeded or Failed, from the Job's conditions."""
    if job is None:
        return "Missing", ""
    for c in (job.get("status", {}) or {}).get("conditions", []) or []:
        if c.get("status") != "True":
            continue
        if c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded", c.get("message", "")
        if c.get("type") in ("Failed", "FailureTarget"):
            return "Failed", f"{c.get('reason', 'Failed')}: {c.get('message', '')}".strip(": ")
    return "Running", ""


def bake_progress(job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> str:
    """Where a running bake stands, in plain words, from its Job and its pods ('' when nothing is known): which
    node a bake pod runs on, why one is stuck (unschedulable, image pull...), and how many attempts failed (a
    disrupted pod is not a failed attempt: the Job's podFailurePolicy ignores it)."""
    parts: list[str] = []
    live = sorted(
        (p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")),
        key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
    )
    for p in live:
        name = (p.get("metadata") or {}).get("name", "?")
        phase = (p.get("status") or {}).get("phase", "Pending")
        issue = pod_issue(p)
        if issue is not None:
            parts.append(issue.message)
        elif phase == "Running":
            parts.append(f"bake pod {name} is running on node {(p.get('spec') or {}).get('nodeName', '?')}")
        elif phase == "Pending":
            parts.append(f"bake pod {name} is pending")
    st = (job or {}).get("status") or {}
    failed = int(st.get("failed") or 0)
    if failed:
        limit = int(((job or {}).get("spec") or {}).get("backoffLimit") or 0)
        parts.append(f"{failed} failed attempt{'s' if failed != 1 else ''} of {limit + 1} allowed")
    return "; ".join(parts)


@dataclass(frozen=True)
class PodDisruption:
    """A cache Job's pod taken away, as a Warning Event: its reason and its message in plain words."""

    reason: str
    message: str


# What a cache Job's pod does, by its app.kubernetes.io/name label (cache_labels, weights.weight_labels).
_JOB_POD_KINDS = {
    COMPILE_CACHE_APP: ("BakePodDisrupted", "bake pod", "a failed bake"),
    WEIGHT_CACHE_APP: ("HydrationPodDisrupted", "weight hydration pod", "a failed hydration"),
}


def job_pod_disruption(pod: dict[str, Any]) -> PodDisruption | None:
    """Why a bake or weight hydration pod was taken away (node lost, drained, preempted: the DisruptionTarget
    condition that the pod garbage collector, the eviction API or the scheduler sets before deleting it), in plain
    words; else None."""
    meta = pod.get("metadata") or {}
    reason, what, attempt = _JOB_POD_KINDS.get(
        (meta.get("labels") or {}).get("app.kubernetes.io/name", ""), _JOB_POD_KINDS[COMPILE_CACHE_APP]
    )
    for c in (pod.get("status") or {}).get("conditions", []) or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            node = (pod.get("spec") or {}).get("nodeName") or "?"
            why = f"{c.get('reason') or 'Disrupted'}: {c.get('message') or 'no message'}".rstrip(". ")
            return PodDisruption(
                reason,
                f"{what} {meta.get('name', '?')} on node {node} was taken away ({why}); the Job replaces it "
                f"without counting {attempt}",
            )
    return None


# ---- did a serving pod really load from the cache? -------------------------------------------------------------
# vLLM's own log lines (vLLM 0.32 source; observed on the CPU build, see docs/vllm-cpu-findings.md).
_HIT = [
    re.compile(p)
    for p in (
        r"Directly load AOT compilation from path \S+",
        r"Directly load the compiled graph\(s\) for compile range .+? from the cache",
    )
]
_MISS = [
    re.compile(p)
    for p in (
        r"Compiling model again due to a load failure from \S+, reason: .*",
        r"Compiling a graph for compile range .+? takes [\d.]+ s",
        r"saved AOT compiled function to \S+",
        r"vLLM's torch\.compile cache is disabled",
    )
]


def detect_cache_hit(log_text: str) -> tuple[bool | None, str]:
    """(hit, evidence) from a vLLM log. Any compile line means a miss (even beside a partial load)."""
    for pat in _MISS:
        m = pat.search(log_text)
        if m:
            return False, _line_of(log_text, m.start())
    for pat in _HIT:
        m = pat.search(log_text)
        if m:
            return True, _line_of(log_text, m.start())
    return None, "no compile-cache line in the log yet"


def _line_of(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].strip()[:300]
