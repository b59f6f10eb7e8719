"""Kopf handlers: thin. They keep in-memory indexes of what the operator owns (fed by watches, so a resync reads
nothing from the API server), call the pure planner, and carry its plan out.

Triggers: any event on a QwenDeployment or on an object it owns, plus a periodic timer (resync, retries after
errors, and the autoscaler). All of them funnel into `reconcile()`, serialized per deployment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from ..adapters.kube import Kube
from ..api.models import GROUP, PLURAL, VERSION
from ..domain.gpus import canonical_product
from ..manifests.cache import ANNOTATION_BAKE_SECONDS, ANNOTATION_BAKED, bake_pod_disruption, detect_cache_hit
from ..manifests.drift import InFlightWrites
from ..manifests.plan import ClusterView, plan
from ..manifests.status import pod_ready
from ..manifests.workload import GPU_PRODUCT_LABEL, GPU_RESOURCE, LABEL_CACHE_KEY, LABEL_DEPLOYMENT, MANAGED_BY
from . import metrics

log = logging.getLogger("qwen_operator")
MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}

_kube: Kube | None = None
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_last_written: dict[str, dict[str, Any]] = {}   # uid -> status we last wrote (the watch may lag behind)
# Deployments whose namespace the API server told us is terminating. Termination never reverses and a recreated
# namespace brings new uids, so these are left alone until their DELETED event: retrying every resync would only
# collect 403s until the namespace controller gets to them.
_in_terminating_namespace: set[str] = set()
_reported_disruptions: set[str] = set()  # bake pod uids whose disruption has had its Event
_in_flight = InFlightWrites()             # our applies the watch has not delivered yet (skips no-op re-applies)


def _cached(view: ClusterView, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object as our cache (Kopf's indexes) shows it, for the kinds the plan applies."""
    if obj["kind"] == "StatefulSet":
        return view.statefulset
    if obj["kind"] == "Service":
        return view.services.get(obj["metadata"]["name"])
    return None


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube()
    return _kube


def plain(obj: Any) -> Any:
    """Kopf bodies are read-only mapping views; the planner wants plain dicts."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- indexes (watch-fed, in memory) -----------------------------------------------------------------------------

@kopf.index(GROUP, VERSION, PLURAL)
def deployments(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("apps", "v1", "statefulsets", labels=MANAGED)
def statefulsets(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("v1", "services", labels=MANAGED)
def services(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels.get(LABEL_DEPLOYMENT, "")): plain(body)}


@kopf.index("v1", "pods", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_DEPLOYMENT]): plain(body)}


@kopf.index("batch", "v1", "jobs", labels={LABEL_CACHE_KEY: kopf.PRESENT})
def bake_jobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


# The Job controller labels its pods with the Job's name; a bake pod is indexed under its Job.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@kopf.index("v1", "pods", labels={LABEL_CACHE_KEY: kopf.PRESENT, JOB_NAME_LABEL: kopf.PRESENT, **MANAGED})
def bake_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[JOB_NAME_LABEL]): plain(body)}


@kopf.index("v1", "persistentvolumeclaims", labels={LABEL_CACHE_KEY: kopf.PRESENT})
def cache_pvcs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("v1", "nodes", labels={GPU_PRODUCT_LABEL: kopf.PRESENT})
def gpu_nodes(labels: Mapping[str, str], status: Mapping[str, Any], spec: Mapping[str, Any], **_: Any
              ) -> dict[Any, Any]:
    alloc = (status.get("allocatable") or {}).get(GPU_RESOURCE, "0")
    try:
        gpus = int(str(alloc))
    except ValueError:
        gpus = 0
    if spec.get("unschedulable"):
        gpus = 0
    return {labels[GPU_PRODUCT_LABEL]: gpus}


def _one(index: kopf.Index, key: Any) -> dict[str, Any] | None:
    store = index.get(key)
    if not store:
        return None
    for item in store:
        return item  # type: ignore[no-any-return]
    return None


# ---- reconcile ---------------------------------------------------------------------------------------------------

def reconcile(namespace: str, name: str, indexes: Mapping[str, kopf.Index], trigger: str) -> None:
    try:
        _reconcile(namespace, name, indexes, trigger)
    except ApiException as e:
        text = str(getattr(e, "body", "") or "")
        if e.status == 403 and "NamespaceTerminating" in text:
            body = _one(indexes["deployments"], (namespace, name))
            if body is not None:
                _in_terminating_namespace.add(body.get("metadata", {}).get("uid", ""))
            log.info("%s/%s: namespace is terminating; left alone until deleted (%s)", namespace, name, trigger)
            return
        if e.status == 404:
            log.info("%s/%s: object going away; nothing to do (%s)", namespace, name, trigger)
            return
        if e.status == 409:
            log.warning("%s/%s: conflict (%s); retried on the next pass", namespace, name, e.reason)
            return
        raise


def _reconcile(namespace: str, name: str, indexes: Mapping[str, kopf.Index], trigger: str) -> None:
    with _lock(f"{namespace}/{name}"):
        # The resource is read under the lock: a pass that read it before waiting on the lock could otherwise apply
        # an older spec's StatefulSet after a newer one and turn the template back under rapid edits.
        body = _one(indexes["deployments"], (namespace, name))
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return
        uid = body["metadata"].get("uid", "")
        if uid in _in_terminating_namespace:
            return
        t0 = time.monotonic()
        last = _last_written.get(uid)
        if last is not None:
            body = {**body, "status": last}
        product = ((body.get("spec") or {}).get("gpu") or {}).get("product", "")
        product = canonical_product(product)
        node_gpus = list(indexes["gpu_nodes"].get(product, []))
        svc = {s["metadata"]["name"]: s for s in indexes["services"].get((namespace, name), [])}
        pods_now = list(indexes["pods"].get((namespace, name), []))
        view = ClusterView(
            statefulset=_one(indexes["statefulsets"], (namespace, name)),
            services=svc,
            pods=pods_now,
            cache_evidence=_cache_evidence(namespace, pods_now),
            nodes_with_product=len(node_gpus),
            max_gpus_on_a_node=max(node_gpus, default=0),
            cache_lookup=lambda obj_name: (_one(indexes["cache_pvcs"], (namespace, obj_name)),
                                           _one(indexes["bake_jobs"], (namespace, obj_name))),
            bake_pods_lookup=lambda job_name: list(indexes["bake_pods"].get((namespace, job_name), [])),
        )
        p = plan(body, view, _now())
        k = kube()
        for obj in p.apply:
            seen = _cached(view, obj)
            write_key = (uid, obj["kind"], obj["metadata"]["name"])
            seen_rv = (seen or {}).get("metadata", {}).get("resourceVersion")
            if seen is not None and _in_flight.pending(write_key, obj, seen_rv, time.monotonic()):
                continue  # the same write is on its way to our cache: applying it again would change nothing
            log.info("%s/%s: applying %s %s (%s)", namespace, name, obj["kind"], obj["metadata"]["name"], trigger)
            try:
                k.apply(obj)
            except ApiException as e:
                if not _reportable(e):
                    raise
                _report_rejected_apply(body, obj, e)
                return
            _in_flight.record(write_key, obj, seen_rv, time.monotonic())
        for obj in p.ensure_shared:
            k.ensure_shared(obj)
        if p.mark_baked:
            pvc_name, secs = p.mark_baked
            ann = {ANNOTATION_BAKED: "true"}
            if secs is not None:
                ann[ANNOTATION_BAKE_SECONDS] = f"{secs:g}"
            k.annotate("v1", "PersistentVolumeClaim", namespace, pvc_name, ann)
        for _pod_name, (hit, _ev) in view.cache_evidence.items():
            metrics.COMPILE_CACHE_PODS.labels(namespace, name, str(hit).lower()).set(
                sum(1 for h, _ in view.cache_evidence.values() if h == hit))
        if p.status is not None and p.status != last:
            k.patch_status(namespace, name, p.status)
            _last_written[uid] = p.status
        for ev in p.events:
            k.event(body, ev.type, ev.reason, ev.message)
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - t0)
        metrics.RECONCILES.labels(trigger=trigger).inc()


_evidence: dict[str, tuple[bool | None, str]] = {}   # pod uid -> what vLLM's log said
_evidence_tried: dict[str, float] = {}               # pod uid -> when its log was last read
EVIDENCE_RETRY_S = 60.0


def _cache_evidence(namespace: str, pods_now: list[dict[str, Any]]) -> dict[str, tuple[bool | None, str]]:
    """Did each Ready serving pod load the baked cache? Read from vLLM's own log lines, once per pod (retried
    every minute while the log says nothing yet). A silent miss becomes a visible condition."""
    out: dict[str, tuple[bool | None, str]] = {}
    for pod in pods_now:
        meta = pod.get("metadata", {})
        uid, pod_name = meta.get("uid", ""), meta.get("name", "")
        if LABEL_CACHE_KEY not in (meta.get("annotations") or {}):
            continue
        if uid in _evidence and _evidence[uid][0] is not None:
            out[pod_name] = _evidence[uid]
            continue
        if not pod_ready(pod) or time.monotonic() - _evidence_tried.get(uid, -1e9) < EVIDENCE_RETRY_S:
            if uid in _evidence:
                out[pod_name] = _evidence[uid]
            continue
        _evidence_tried[uid] = time.monotonic()
        try:
            text = kube().pod_log(namespace, pod_name, container="vllm", limit_bytes=4 << 20)
            _evidence[uid] = detect_cache_hit(text)
        except Exception as e:  # no log yet, kubelet unreachable, or a simulated node without logs
            _evidence[uid] = (None, f"log not readable: {type(e).__name__}: {getattr(e, 'reason', '') or e}"[:200])
        out[pod_name] = _evidence[uid]
    return out


# Refusals a user must hear about: the object is invalid (400/422), a quota or policy forbids it (403, except a
# terminating namespace), or the apiserver cannot serve it (500, e.g. "the Service IP range is full"). They are
# retried at every resync; conflicts (409), overload (429) and unavailability (503/504) are only retried.
_APPLY_REASONS = {400: "ApplyRejected", 422: "ApplyRejected", 403: "ApplyForbidden", 500: "ApplyFailed"}


def _reportable(e: ApiException) -> bool:
    if e.status == 403 and "NamespaceTerminating" in str(getattr(e, "body", "") or ""):
        return False
    return e.status in _APPLY_REASONS


def _report_rejected_apply(body: dict[str, Any], obj: dict[str, Any], e: ApiException) -> None:
    """The apiserver refused an object we rendered (a spec our validation let through, a quota, a full IP
    range): say so in status instead of retrying silently forever."""
    meta = body["metadata"]
    try:
        msg = json.loads(str(e.body or "{}")).get("message", "")
    except ValueError:
        msg = str(e.body or "")[:500]
    message = f"The API server rejected {obj['kind']} {obj['metadata']['name']}: {msg}"[:1000]
    status = dict(_last_written.get(meta.get("uid", "")) or body.get("status") or {})
    conds = [c for c in status.get("conditions", []) or [] if c.get("type") != "Degraded"]
    prev = next((c for c in status.get("conditions", []) or [] if c.get("type") == "Degraded"), None)
    reason = _APPLY_REASONS.get(e.status or 0, "ApplyFailed")
    if prev and prev.get("reason") == reason and prev.get("message") == message:
        return
    conds.append({"type": "Degraded", "status": "True", "reason": reason, "message": message,
                  "lastTransitionTime": _now(), "observedGeneration": meta.get("generation")})
    status["conditions"] = sorted(conds, key=lambda c: c["type"])
    status["phase"] = "Degraded"
    kube().patch_status(meta["namespace"], meta["name"], {"conditions": status["conditions"], "phase": "Degraded"})
    _last_written[meta.get("uid", "")] = status
    kube().event(body, "Warning", reason, message)


def _all_indexes(kw: Mapping[str, Any]) -> dict[str, kopf.Index]:
    return {k: kw[k] for k in ("deployments", "statefulsets", "services", "pods", "bake_jobs", "bake_pods",
                               "cache_pvcs", "gpu_nodes")}


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_deployment_event(type: str | None, namespace: str, name: str, body: kopf.Body, **kw: Any) -> None:
    if type == "DELETED":
        _last_written.pop(body.get("metadata", {}).get("uid", ""), None)
        _in_flight.forget(body.get("metadata", {}).get("uid", ""))
        _in_terminating_namespace.discard(body.get("metadata", {}).get("uid", ""))
        return
    # Our own status writes come back as events: skip those (the generation did not move and status is ours).
    uid = body.get("metadata", {}).get("uid", "")
    last = _last_written.get(uid)
    if last is not None and plain(body.get("status") or {}) == last and \
            last.get("observedGeneration") == body.get("metadata", {}).get("generation"):
        return  # the echo of our own status write; a spec edit moves the generation and is acted on
    reconcile(namespace, name, _all_indexes(kw), "deployment-event")


def _owner_names(body: Mapping[str, Any]) -> list[str]:
    refs = body.get("metadata", {}).get("ownerReferences", []) or []
    return [r["name"] for r in refs if r.get("kind") == "QwenDeployment"]


@kopf.on.event("apps", "v1", "statefulsets", labels=MANAGED)
def on_statefulset_event(namespace: str, body: kopf.Body, **kw: Any) -> None:
    for owner in _owner_names(body):
        reconcile(namespace, owner, _all_indexes(kw), "statefulset-event")


@kopf.on.event("v1", "pods", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def on_pod_event(namespace: str, labels: Mapping[str, str], **kw: Any) -> None:
    reconcile(namespace, labels[LABEL_DEPLOYMENT], _all_indexes(kw), "pod-event")


@kopf.on.event("v1", "services", labels=MANAGED)
def on_service_event(namespace: str, body: kopf.Body, **kw: Any) -> None:
    for owner in _owner_names(body):
        reconcile(namespace, owner, _all_indexes(kw), "service-event")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_CACHE_KEY: kopf.PRESENT})
def on_job_event(namespace: str, body: kopf.Body, **kw: Any) -> None:
    for owner in _owner_names(body):
        reconcile(namespace, owner, _all_indexes(kw), "job-event")


@kopf.on.event("v1", "pods", labels={LABEL_CACHE_KEY: kopf.PRESENT, JOB_NAME_LABEL: kopf.PRESENT, **MANAGED})
def on_bake_pod_event(type: str | None, namespace: str, labels: Mapping[str, str], body: kopf.Body, **kw: Any
                      ) -> None:
    # A bake pod scheduled, stuck or lost changes what the status says about the bake; its Job knows the owners.
    job = _one(kw["bake_jobs"], (namespace, labels[JOB_NAME_LABEL]))
    owners = _owner_names(job or {})
    # A disruption leaves no trace once the pod is replaced (the Job does not count it): one Warning Event per pod.
    uid = body.get("metadata", {}).get("uid", "")
    why = bake_pod_disruption(plain(body))
    if why and uid not in _reported_disruptions:
        _reported_disruptions.add(uid)
        for owner in owners:
            owner_body = _one(kw["deployments"], (namespace, owner))
            if owner_body is not None:
                kube().event(owner_body, "Warning", "BakePodDisrupted", why)
    if type == "DELETED":
        _reported_disruptions.discard(uid)
    for owner in owners:
        reconcile(namespace, owner, _all_indexes(kw), "bake-pod-event")


