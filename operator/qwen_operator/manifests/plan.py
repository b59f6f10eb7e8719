"""The reconcile decision for one QwenDeployment, as a pure function: observed state in, a plan out.

plan() decides what to apply, which shared compile-cache objects must exist, the status to write (or None when
it is unchanged) and the events to post. The Kopf handlers only gather the inputs (from in-memory indexes fed
by watches) and carry the plan out, so every behaviour here is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..domain.compile_cache import cache_key, cache_object_name, key_factors
from ..domain.gpus import canonical_product
from ..domain.validation import ValidationReport, validate
from ..domain.vllm_args import render_env, shell_line
from .cache import ANNOTATION_BAKED, bake_progress, build_bake_job, build_cache_pvc, job_state
from .drift import needs_apply
from .status import ConditionSet, Observed, compute_workload_conditions, phase, previous_conditions
from .workload import CacheMount, Owner, build_services, build_statefulset, selector_string


@dataclass(frozen=True)
class ClusterView:
    """What the handler observed for one QwenDeployment (from watches; no API reads needed)."""
    statefulset: dict[str, Any] | None
    services: dict[str, dict[str, Any]]            # by name
    pods: list[dict[str, Any]]
    nodes_with_product: int
    max_gpus_on_a_node: int
    # Looks up (PVC, bake Job) of a compile-cache object name; either may be None.
    cache_lookup: Callable[[str], tuple[dict[str, Any] | None, dict[str, Any] | None]] | None = None
    # Per serving pod: (hit, evidence) read from vLLM's log by the handler (None: not known yet).
    cache_evidence: dict[str, tuple[bool | None, str]] = field(default_factory=dict)
    # Looks up the pods of a bake Job by the Job's name (to say where a bake stands); None: not watched.
    bake_pods_lookup: Callable[[str], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class Event:
    type: str      # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)          # server-side apply (we own them)
    ensure_shared: list[dict[str, Any]] = field(default_factory=list)  # create if missing, else add our owner ref
    status: dict[str, Any] | None = None                               # full new status, None when unchanged
    events: list[Event] = field(default_factory=list)
    report: ValidationReport | None = None
    cache_key: str | None = None
    mark_baked: tuple[str, float | None] | None = None                # (PVC name, bake seconds) after a bake


def _desired_replicas(spec: Any, status: dict[str, Any]) -> int:
    if spec.autoscaling.enabled:
        decided = ((status or {}).get("autoscaling") or {}).get("desiredReplicas")
        floor_ = min(spec.autoscaling.max_replicas, spec.autoscaling.min_replicas + spec.autoscaling.warm_pool)
        return int(decided) if decided is not None else floor_
    return spec.replicas


def _lacks_owner(obj: dict[str, Any] | None, uid: str) -> bool:
    if obj is None:
        return True
    return uid not in {r.get("uid") for r in obj.get("metadata", {}).get("ownerReferences", []) or []}


def _job_seconds(job: dict[str, Any] | None) -> float | None:
    from datetime import datetime
    st = (job or {}).get("status", {}) or {}
    try:
        t0 = datetime.fromisoformat(str(st["startTime"]).replace("Z", "+00:00"))
        t1 = datetime.fromisoformat(str(st["completionTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (t1 - t0).total_seconds()


def _condition_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return old.get("status") != new.get("status") or old.get("reason") != new.get("reason")


def plan(body: dict[str, Any], view: ClusterView, now: str) -> Plan:
    meta = body.get("metadata", {})
    name, namespace = meta["name"], meta["namespace"]
    generation = int(meta.get("generation", 1))
    old_status: dict[str, Any] = dict(body.get("status") or {})
    prev = previous_conditions(old_status)
    cs = ConditionSet(previous=prev, now=now, generation=generation)
    owner = Owner(name=name, uid=meta.get("uid", ""))
    out = Plan()

    report = validate(body.get("spec") or {})
    out.report = report
    reason, message = report.summary()
    cs.set("Validated", report.ok, reason, message)
    new_status: dict[str, Any] = {
        "observedGeneration": generation,
        "selector": selector_string(name),
    }
    if report.fit is not None:
        f = report.fit
        new_status["fit"] = {"known": True, "fits": f.fits, "weightsGiB": f.weights_gib, "kvCacheGiB": f.kv_cache_gib,
                             "kvBytesPerToken": f.kv_bytes_per_token, "maxModelLen": f.max_model_len,
                             "fullLengthSequences": f.full_length_sequences, "gpuMemoryGiB": f.gpu_memory_gib,
                             "message": f.message}
    elif report.spec is not None:
        new_status["fit"] = {"known": False, "message": message if not report.ok else
                             "Fit unknown: the model or GPU is not in the catalog."}

    spec = report.spec
    if spec is None or not report.ok:
        # Nothing is created for an invalid spec; what already runs (from an earlier valid generation) is left
        # alone rather than torn down by a typo.
        for c in ("Ready", "Progressing", "Degraded"):
            if c in prev:
                cs.items.append(prev[c])
        new_status.setdefault("replicas", old_status.get("replicas", 0))
        new_status.setdefault("readyReplicas", old_status.get("readyReplicas", 0))
    else:
        product = canonical_product(spec.gpu.product)
        desired = _desired_replicas(spec, old_status)
        env = render_env(spec, strict_cache=spec.compile_cache.strict)
        command_line = shell_line(["vllm", "serve"], report.args)
        new_status["vllmCommand"] = command_line

        # Compile cache: bake before rollout.
        cache_mount: CacheMount | None = None
        hold_rollout = False
        if spec.compile_cache.enabled:
            factors = key_factors(spec, report.max_model_len, product)
            key = cache_key(factors)
            out.cache_key = key
            obj_name = cache_object_name(key)
            factors_json = json.dumps(factors, sort_keys=True, separators=(",", ":"))
            pvc = build_cache_pvc(obj_name, namespace, owner, spec, key)
            job = build_bake_job(obj_name, obj_name, namespace, owner, spec, report.args, env, key, factors_json)
            cache_pvc, bake_job = view.cache_lookup(obj_name) if view.cache_lookup else (None, None)
            baked = (cache_pvc or {}).get("metadata", {}).get("annotations", {}).get(ANNOTATION_BAKED) == "true"
            state, jmsg = ("Succeeded", "") if baked else job_state(bake_job)
            if state == "Succeeded" and not baked and cache_pvc is not None:
                out.mark_baked = (obj_name, _job_seconds(bake_job))
            if _lacks_owner(cache_pvc, owner.uid):
                out.ensure_shared.append(pvc)
            if not baked and _lacks_owner(bake_job, owner.uid):
                out.ensure_shared.append(job)
            cc_status: dict[str, Any] = {"key": key, "bakeJob": obj_name}
            prev_cc = (old_status.get("compileCache") or {})
            old_key = prev_cc.get("key")
            if state == "Succeeded":
                cache_mount = CacheMount(pvc_name=obj_name, key=key)
                cs.set("CompileCacheReady", True, "Ready", f"Compile cache {key} is baked; pods seed from it.")
                cc_status["state"] = "Ready"
                secs = ((cache_pvc or {}).get("metadata", {}).get("annotations", {})
                        .get("qwenops.dev/bake-seconds"))
                if secs is None and out.mark_baked:
                    secs = out.mark_baked[1]
                if secs is not None:
                    cc_status["bakeSeconds"] = float(secs)
            elif state == "Failed":
                policy = spec.compile_cache.on_bake_failure
                cs.set("CompileCacheReady", False, "BakeFailed",
                       f"Bake Job {obj_name} failed ({jmsg or 'no reason given'}); policy {policy}: " +
                       ("pods start without the cache and compile on their own." if policy == "ServeCold"
                        else "the rollout waits; fix the cause and delete the Job to retry."))
                cc_status["state"] = "BakeFailed"
                hold_rollout = policy == "Wait"
            else:
                why = "KeyChanged" if old_key and old_key != key else "Baking"
                progress = bake_progress(bake_job, view.bake_pods_lookup(obj_name) if view.bake_pods_lookup else [])
                cs.set("CompileCacheReady", False, why,
                       f"Baking compile cache {key} in Job {obj_name}; the rollout starts when it is ready."
                       + (f" (previous key {old_key})" if why == "KeyChanged" else "")
                       + (f" Now: {progress.rstrip('. ')}." if progress else ""))
                cc_status["state"] = "Baking"
                hold_rollout = True
            live = {p.get("metadata", {}).get("name") for p in view.pods}
            known = {e["pod"]: e for e in prev_cc.get("pods", []) or [] if e.get("pod") in live}
            for pod_name, (hit, evidence) in view.cache_evidence.items():
                if pod_name in live:
                    known[pod_name] = {"pod": pod_name, "hit": hit, "evidence": evidence[:300]}
            if known:
                cc_status["pods"] = [known[k] for k in sorted(known)]
                misses = [e["pod"] for e in cc_status["pods"] if e.get("hit") is False]
                if misses and state == "Succeeded":
                    cs.items = [c for c in cs.items if c["type"] != "CompileCacheReady"]
                    cs.set("CompileCacheReady", False, "PodsMissedCache",
                           f"Compile cache {key} is baked, but vLLM recompiled in {', '.join(misses)}: "
                           + "; ".join(e["evidence"] for e in cc_status["pods"] if e.get("hit") is False)[:600])
            new_status["compileCache"] = cc_status

        sts = build_statefulset(name, namespace, owner, spec, report.args, env, desired, cache_mount, command_line)
        if hold_rollout and view.statefulset is not None:
            # Keep the running pods on the old template until the new cache is baked; only the size follows.
            if view.statefulset.get("spec", {}).get("replicas") != desired:
                out.apply.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                                  "metadata": {"name": name, "namespace": namespace},
                                  "spec": {"replicas": desired}})
        elif not hold_rollout and needs_apply(sts, view.statefulset):
            out.apply.append(sts)
        for svc in build_services(name, namespace, owner):
            if needs_apply(svc, view.services.get(svc["metadata"]["name"])):
                out.apply.append(svc)

        obs = Observed(generation=generation, statefulset=view.statefulset, pods=view.pods, gpu_product=product,
                       nodes_with_product=view.nodes_with_product, max_gpus_on_a_node=view.max_gpus_on_a_node,
                       desired_replicas=desired)
        counts = compute_workload_conditions(cs, obs, spec.gpus_per_pod)
        if view.statefulset is None and hold_rollout:
            # Replace the generic "Creating" with why nothing runs yet.
            for c in cs.items:
                if c["type"] == "Ready" and c["status"] == "False":
                    c["reason"] = "WaitingForCompileCache"
        new_status.update(counts)
        new_status["desiredReplicas"] = desired
        if "autoscaling" in old_status:
            new_status["autoscaling"] = old_status["autoscaling"]

    if spec is not None and report.ok and spec.autoscaling.enabled and "AutoscalingActive" in prev:
        cs.items.append(prev["AutoscalingActive"])  # owned by the autoscaler handler
    new_status["conditions"] = sorted(cs.items, key=lambda c: c["type"])
    new_status["phase"] = phase(new_status["conditions"])
    new_status["ready"] = f"{new_status.get('readyReplicas', 0)}/{new_status.get('desiredReplicas', 0)}"

    for c in new_status["conditions"]:
        old = prev.get(c["type"])
        if old is None or _condition_changed(old, c):
            if c["type"] in ("Validated", "Degraded", "CompileCacheReady") and (
                    (c["type"] == "Degraded") == (c["status"] == "True")) and c["status"] != "Unknown":
                out.events.append(Event("Warning", c["reason"], c["message"][:1000]))
            elif c["type"] == "Ready" and c["status"] == "True":
                out.events.append(Event("Normal", c["reason"], c["message"]))
            elif c["type"] == "Validated" and c["status"] == "True" and old is not None:
                out.events.append(Event("Normal", "Valid", "The spec is valid again."))
    # Keep fields others own (e.g. Kopf bookkeeping) and compare: identical status -> no write.
    merged = {**{k: v for k, v in old_status.items() if k not in new_status}, **new_status}
    if merged != old_status:
        out.status = merged
    return out
