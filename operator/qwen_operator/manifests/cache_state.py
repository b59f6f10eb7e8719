"""The compile-cache state machine of one QwenDeployment: bake before rollout.  Pure.

States (status.compileCache.state, condition CompileCacheReady):

    Baking (reason Baking, or KeyChanged when an earlier key was in use) --Job succeeds--> Ready
    Baking --Job fails--> BakeFailed (policy ServeCold: pods start without the cache; Wait: the rollout waits)
    Ready --a serving pod's vLLM log shows a recompile--> CompileCacheReady=False, reason PodsMissedCache

The PVC annotation ``qwenops.dev/baked`` records a finished bake (the Job may be gone); the handler writes it when
plan() returns ``mark_baked``.  While baking (or failed with policy Wait) the rollout is held: running pods keep
the old template and only the replica count follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .cache import (
    ANNOTATION_BAKE_SECONDS,
    ANNOTATION_BAKED,
    bake_progress,
    build_bake_job,
    build_cache_pvc,
    job_state,
)
from .resolved import CacheIdentity, ResolvedSpec
from .status import ConditionSet, parse_time
from .view import ClusterView, Object
from .workload import CacheMount, Owner


@dataclass
class CachePlan:
    """What the compile cache asks of this reconcile pass."""

    status: dict[str, Any]  # status.compileCache
    mount: CacheMount | None = None  # the baked cache to seed pods from
    hold_rollout: bool = False  # keep the running pods on their template until the cache is baked
    ensure_shared: list[Object] = field(default_factory=list)  # the PVC and Job, unless we already own them
    mark_baked: tuple[str, float | None] | None = None  # (PVC name, bake seconds): annotate the PVC as baked


def _lacks_owner(obj: Object | None, uid: str) -> bool:
    if obj is None:
        return True
    return uid not in {r.get("uid") for r in obj.get("metadata", {}).get("ownerReferences", []) or []}


def _job_seconds(job: Object | None) -> float | None:
    """How long the Job ran.  Since Kubernetes 1.31 the Job controller marks success (SuccessCriteriaMet) one update
    before it writes completionTime and Complete, and the bake is recorded at the first: take that condition's time
    when completionTime is not there yet."""
    st = (job or {}).get("status", {}) or {}
    end = st.get("completionTime") or next(
        (
            c.get("lastTransitionTime")
            for c in st.get("conditions") or []
            if c.get("type") in ("SuccessCriteriaMet", "Complete") and c.get("status") == "True"
        ),
        None,
    )
    t0, t1 = parse_time(st.get("startTime")), parse_time(end)
    return (t1 - t0).total_seconds() if t0 is not None and t1 is not None else None


def _annotations(obj: Object | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata", {}).get("annotations", {}) or {}


def plan_compile_cache(
    resolved: ResolvedSpec,
    cache: CacheIdentity,
    view: ClusterView,
    namespace: str,
    owner: Owner,
    previous: Mapping[str, Any],
    cs: ConditionSet,
) -> CachePlan:
    """Where the bake stands, the CompileCacheReady condition (set in ``cs``) and status.compileCache.
    ``previous`` is the status.compileCache written before."""
    name = cache.object_name
    cache_pvc, bake_job = view.cache_objects(name)
    baked = _annotations(cache_pvc).get(ANNOTATION_BAKED) == "true"
    state, job_message = ("Succeeded", "") if baked else job_state(bake_job)
    out = CachePlan(status={"key": cache.key, "bakeJob": name})
    if state == "Succeeded" and not baked and cache_pvc is not None:
        out.mark_baked = (name, _job_seconds(bake_job))
    if _lacks_owner(cache_pvc, owner.uid):
        out.ensure_shared.append(build_cache_pvc(resolved, cache, namespace, owner))
    if not baked and _lacks_owner(bake_job, owner.uid):
        out.ensure_shared.append(build_bake_job(resolved, cache, namespace, owner))
    if state == "Succeeded":
        out.mount = CacheMount(pvc_name=name, key=cache.key)
        cs.set("CompileCacheReady", True, "Ready", f"Compile cache {cache.key} is baked; pods seed from it.")
        out.status["state"] = "Ready"
        secs = _annotations(cache_pvc).get(ANNOTATION_BAKE_SECONDS)
        if secs is None and out.mark_baked:
            secs = out.mark_baked[1]
        if secs is not None:
            out.status["bakeSeconds"] = float(secs)
    elif state == "Failed":
        policy = resolved.spec.compile_cache.on_bake_failure
        cs.set(
            "CompileCacheReady",
            False,
            "BakeFailed",
            f"Bake Job {name} failed ({job_message or 'no reason given'}); policy {policy}: "
            + (
                "pods start without the cache and compile on their own."
                if policy == "ServeCold"
                else "the rollout waits; fix the cause and delete the Job to retry."
            ),
        )
        out.status["state"] = "BakeFailed"
        out.hold_rollout = policy == "Wait"
    else:
        old_key = previous.get("key")
        why = "KeyChanged" if old_key and old_key != cache.key else "Baking"
        progress = bake_progress(bake_job, view.bake_pods(name))
        cs.set(
            "CompileCacheReady",
            False,
            why,
            f"Baking compile cache {cache.key} in Job {name}; the rollout starts when it is ready."
            + (f" (previous key {old_key})" if why == "KeyChanged" else "")
            + (f" Now: {progress.rstrip('. ')}." if progress else ""),
        )
        out.status["state"] = "Baking"
        out.hold_rollout = True
    _record_pod_evidence(out, cache, view, previous, cs, baked_ready=state == "Succeeded")
    return out


def _record_pod_evidence(
    out: CachePlan,
    cache: CacheIdentity,
    view: ClusterView,
    previous: Mapping[str, Any],
    cs: ConditionSet,
    baked_ready: bool,
) -> None:
    """Per live serving pod: did vLLM load the baked cache?  A miss on a baked cache turns the condition False."""
    live = {p.get("metadata", {}).get("name") for p in view.pods}
    known = {e["pod"]: e for e in previous.get("pods", []) or [] if e.get("pod") in live}
    for pod_name, (hit, evidence) in view.cache_evidence.items():
        if pod_name in live:
            known[pod_name] = {"pod": pod_name, "hit": hit, "evidence": evidence[:300]}
    if not known:
        return
    out.status["pods"] = pods = [known[k] for k in sorted(known)]
    misses = [e["pod"] for e in pods if e.get("hit") is False]
    if misses and baked_ready:
        cs.unset("CompileCacheReady")
        cs.set(
            "CompileCacheReady",
            False,
            "PodsMissedCache",
            f"Compile cache {cache.key} is baked, but vLLM recompiled in {', '.join(misses)}: "
            + "; ".join(e["evidence"] for e in pods if e.get("hit") is False)[:600],
        )
