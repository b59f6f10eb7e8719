"""The reconcile decision for one QwenDeployment, as a pure function: observed state in, a plan out.

plan() decides what to apply, which shared compile-cache objects must exist, the status to write (or None when
it is unchanged) and the events to post. The Kopf handlers only gather the inputs (a ClusterView, from in-memory
indexes fed by watches) and carry the plan out, so every behaviour here is unit-tested without a cluster.

The stages: validate the spec (domain/validation.py) and resolve it once (resolved.py); the compile-cache state
machine (cache_state.py); the workload objects and their conditions (workload.py, status.py); the router's objects
and RouterReady when spec.routing is on (router.py, status.py); the status merge and the event rules (status.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.models import RoutingPolicy
from ..domain.validation import ValidationReport, validate
from ..domain.weight_cache import weight_cache_enabled
from .cache_state import plan_compile_cache
from .coldstart import StartupBudget, plan_cold_start
from .drift import needs_apply
from .resolved import ResolvedSpec, resolve
from .router import client_routed, router_name, router_objects, stale_router_objects
from .status import (
    ConditionSet,
    Event,
    compute_router_condition,
    compute_workload_conditions,
    merge_status,
    phase,
    previous_conditions,
    require_router,
    transition_events,
)
from .view import ClusterView, Object
from .weights import plan_weight_cache
from .workload import CacheMount, Owner, build_services, build_statefulset, selector_string

__all__ = ["ClusterView", "Event", "Plan", "plan"]


@dataclass
class Plan:
    apply: list[Object] = field(default_factory=list)  # server-side apply (we own them)
    delete: list[Object] = field(default_factory=list)  # owned objects no longer wanted (the router, routing off)
    ensure_shared: list[Object] = field(default_factory=list)  # create if missing, else add our owner ref
    status: dict[str, Any] | None = None  # full new status, None when unchanged
    events: list[Event] = field(default_factory=list)
    report: ValidationReport | None = None
    cache_key: str | None = None
    mark_baked: tuple[str, float | None] | None = None  # (PVC name, bake seconds) after a bake
    mark_hydrated: tuple[str, dict[str, str]] | None = None  # (PVC name, annotations) after a weight hydration


def desired_replicas(resolved: ResolvedSpec, status: Mapping[str, Any]) -> int:
    """The StatefulSet size: spec.replicas, or the autoscaler's last decision (its floor before the first)."""
    spec = resolved.spec
    if spec.autoscaling.enabled:
        decided = ((status or {}).get("autoscaling") or {}).get("desiredReplicas")
        return int(decided) if decided is not None else spec.autoscaling.floor_replicas()
    return spec.replicas


def _validated_status(report: ValidationReport, cs: ConditionSet, name: str, generation: int) -> dict[str, Any]:
    """The Validated condition, and the status fields every generation has (selector, fit)."""
    reason, message = report.summary()
    cs.set("Validated", report.ok, reason, message)
    new_status: dict[str, Any] = {"observedGeneration": generation, "selector": selector_string(name)}
    if report.fit is not None:
        f = report.fit
        new_status["fit"] = {
            "known": True,
            "fits": f.fits,
            "weightsGiB": f.weights_gib,
            "kvCacheGiB": f.kv_cache_gib,
            "kvBytesPerToken": f.kv_bytes_per_token,
            "maxModelLen": f.max_model_len,
            "fullLengthSequences": f.full_length_sequences,
            "gpuMemoryGiB": f.gpu_memory_gib,
            "message": f.message,
        }
    elif report.spec is not None:
        new_status["fit"] = {
            "known": False,
            "message": message if not report.ok else "Fit unknown: the model or GPU is not in the catalog.",
        }
    return new_status


def _statefulset(
    resolved: ResolvedSpec,
    view: ClusterView,
    name: str,
    namespace: str,
    owner: Owner,
    desired: int,
    mount: CacheMount | None,
    budget: StartupBudget,
) -> tuple[Object, int]:
    """The StatefulSet to run and its startup budget.  A lower measured budget alone would restart every pod (the
    probe is part of the pod template) to gain nothing but a quicker verdict on a hung start: it is written only
    when the template changes anyway (a spec edit, a new compile-cache key; a new size restarts nothing, so it
    does not count); until then status shows it as the target.  A higher budget, the user's value and the default
    apply at once."""
    sts = build_statefulset(name, namespace, owner, resolved, desired, mount, budget.seconds)
    if budget.may_wait and budget.running is not None and view.statefulset is not None:
        kept = build_statefulset(name, namespace, owner, resolved, desired, mount, budget.running)
        same_size = {**kept, "spec": {**kept["spec"], "replicas": view.statefulset.get("spec", {}).get("replicas")}}
        if not needs_apply(same_size, view.statefulset):
            return kept, budget.running
    return sts, budget.seconds


def _workload_objects(
    out: Plan,
    resolved: ResolvedSpec,
    view: ClusterView,
    name: str,
    namespace: str,
    owner: Owner,
    desired: int,
    mount: CacheMount | None,
    hold_rollout: bool,
    budget: StartupBudget,
) -> int:
    """The StatefulSet and Services to apply: only what differs from what runs (drift.py).  Returns the startup
    budget the StatefulSet runs with once this plan is applied."""
    sts, applied = _statefulset(resolved, view, name, namespace, owner, desired, mount, budget)
    if hold_rollout and view.statefulset is not None:
        applied = budget.running if budget.running is not None else applied
        # Keep the running pods on the old template until the new cache is baked; only the size follows.
        if view.statefulset.get("spec", {}).get("replicas") != desired:
            out.apply.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"replicas": desired},
                }
            )
    elif not hold_rollout and needs_apply(sts, view.statefulset):
        out.apply.append(sts)
    routing = resolved.spec.routing
    for svc in build_services(name, namespace, owner, routed=client_routed(view, name, routing)):
        if needs_apply(svc, view.services.get(svc["metadata"]["name"])):
            out.apply.append(svc)
    if routing.enabled:
        for obj in router_objects(name, namespace, owner, routing):
            if needs_apply(obj, view.observed(obj["kind"], obj["metadata"]["name"])):
                out.apply.append(obj)
    else:
        out.delete += stale_router_objects(view, name, owner.uid)
    return applied


def _plan_valid(
    out: Plan,
    resolved: ResolvedSpec,
    view: ClusterView,
    meta: Mapping[str, Any],
    old_status: Mapping[str, Any],
    cs: ConditionSet,
    new_status: dict[str, Any],
) -> None:
    """A valid spec: the compile cache, the workload objects and their conditions."""
    name, namespace = meta["name"], meta["namespace"]
    owner = Owner(name=name, uid=meta.get("uid", ""))
    desired = desired_replicas(resolved, old_status)
    new_status["vllmCommand"] = resolved.command_line
    mount, hold_rollout, weights_ready = None, False, True
    if weight_cache_enabled(resolved.spec):
        wc = plan_weight_cache(resolved.spec, view, namespace, owner, cs)
        out.ensure_shared += wc.ensure_shared
        out.mark_hydrated, weights_ready = wc.mark_hydrated, wc.ready
        new_status["weightCache"] = wc.status
        hold_rollout = not weights_ready  # nothing mounts a cache that is not verified
    if resolved.cache is not None and not weights_ready:
        # The bake loads the weights too: it starts once they are in the volume.
        cs.set("CompileCacheReady", False, "WaitingForWeights", "The bake starts once the weight cache is ready.")
        new_status["compileCache"] = {"key": resolved.cache.key, "bakeJob": resolved.cache.object_name}
    elif resolved.cache is not None:
        cc = plan_compile_cache(
            resolved, resolved.cache, view, namespace, owner, old_status.get("compileCache") or {}, cs
        )
        out.cache_key, out.mark_baked = resolved.cache.key, cc.mark_baked
        mount, hold_rollout = cc.mount, cc.hold_rollout
        out.ensure_shared += cc.ensure_shared
        new_status["compileCache"] = cc.status
    bake = (new_status.get("compileCache") or {}).get("bakeSeconds")
    cold = plan_cold_start(resolved.spec, view, old_status.get("coldStart") or {}, bake)
    applied = _workload_objects(out, resolved, view, name, namespace, owner, desired, mount, hold_rollout, cold.budget)
    new_status["coldStart"] = cold.status(applied)
    counts = compute_workload_conditions(cs, view, resolved.gpu_product, desired, resolved.spec.gpus_per_pod)
    if view.statefulset is None and hold_rollout:
        # Replace the generic "Creating" with why nothing runs yet.
        for c in cs.items:
            if c["type"] == "Ready" and c["status"] == "False":
                c["reason"] = "WaitingForCompileCache" if weights_ready else "WaitingForWeights"
    routing = resolved.spec.routing
    if routing.enabled:
        routes_to = f"policy {RoutingPolicy(routing.policy).value}, to the Ready pods labelled {selector_string(name)}"
        compute_router_condition(cs, view.observed("Deployment", router_name(name)), routing.replicas, routes_to)
        require_router(cs)
    new_status.update(counts)
    new_status["desiredReplicas"] = desired
    if "autoscaling" in old_status:
        new_status["autoscaling"] = old_status["autoscaling"]
    if resolved.spec.autoscaling.enabled:
        cs.keep("AutoscalingActive")  # owned by the autoscaler (handlers/autoscaler.py)


def plan(body: Mapping[str, Any], view: ClusterView, now: str) -> Plan:
    meta = body.get("metadata", {})
    generation = int(meta.get("generation", 1))
    old_status: dict[str, Any] = dict(body.get("status") or {})
    prev = previous_conditions(old_status)
    cs = ConditionSet(previous=prev, now=now, generation=generation)
    report = validate(body.get("spec") or {})
    out = Plan(report=report)
    new_status = _validated_status(report, cs, meta["name"], generation)
    if report.spec is None or not report.ok:
        # Nothing is created for an invalid spec; what already runs (from an earlier valid generation) is left
        # alone rather than torn down by a typo.
        for ctype in ("Ready", "Progressing", "Degraded", "RouterReady"):
            cs.keep(ctype)
        new_status.setdefault("replicas", old_status.get("replicas", 0))
        new_status.setdefault("readyReplicas", old_status.get("readyReplicas", 0))
    else:
        _plan_valid(out, resolve(report), view, meta, old_status, cs, new_status)
    new_status["conditions"] = cs.conditions()
    new_status["phase"] = phase(new_status["conditions"])
    new_status["ready"] = f"{new_status.get('readyReplicas', 0)}/{new_status.get('desiredReplicas', 0)}"
    out.events = transition_events(new_status["conditions"], prev)
    out.status = merge_status(old_status, new_status)
    return out
