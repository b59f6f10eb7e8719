"""Kopf handlers: thin. They read the watch-fed indexes (handlers/indexes.py), call the pure planner, and carry
its plan out.

Triggers: any event on a QwenDeployment or on an object it owns, plus the periodic loop (resync, retries after
errors, and the autoscaler: handlers/loops.py). All of them funnel into `reconcile()`, serialized per deployment.
A pass writes status at most once, through `_write_status` (the autoscaler hands its part of the status to the
pass it triggers rather than writing it itself).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from ..api.models import GROUP, KIND, PLURAL, VERSION
from ..domain.coldstart import PodColdStart, pod_cold_start, strip_timestamps
from ..domain.gpus import canonical_product
from ..manifests.cache import ANNOTATION_BAKE_SECONDS, ANNOTATION_BAKED, detect_cache_hit, job_pod_disruption
from ..manifests.plan import ClusterView, Plan, plan
from ..manifests.status import ConditionSet, now_time, pod_ready, previous_conditions
from ..manifests.workload import LABEL_CACHE_KEY, LABEL_DEPLOYMENT, VLLM_CONTAINER
from . import metrics
from .indexes import JOB_NAME_LABEL, MANAGED, ROUTER_INDEXES, Indexes, all_indexes, one, plain
from .state import DeploymentState, OperatorState, PodEvidence, from_memo

log = logging.getLogger("qwen_operator")
EVIDENCE_RETRY_S = 60.0
LOG_LIMIT = 4 << 20  # bytes from the log's start: vLLM's start-up lines are in the first few hundred
LOG_TRIES = 3  # unreadable logs (simulated nodes) after which a pod's phases are kept without vLLM's part


@dataclass(frozen=True)
class StatusOverlay:
    """Status fields another part of the operator decided (the autoscaler), to be written by the next pass."""

    fields: dict[str, Any]
    conditions: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, status: Mapping[str, Any]) -> dict[str, Any]:
        types = {c["type"] for c in self.conditions}
        conds = [c for c in status.get("conditions", []) or [] if c.get("type") not in types] + self.conditions
        return {**status, **self.fields, "conditions": sorted(conds, key=lambda c: c["type"])}


# ---- reconcile ---------------------------------------------------------------------------------------------------


def reconcile(
    state: OperatorState,
    namespace: str,
    name: str,
    indexes: Indexes,
    trigger: str,
    overlay: StatusOverlay | None = None,
) -> None:
    try:
        _reconcile(state, namespace, name, indexes, trigger, overlay)
    except ApiException as e:
        text = str(getattr(e, "body", "") or "")
        if e.status == 403 and "NamespaceTerminating" in text:
            body = one(indexes["deployments"], (namespace, name))
            if body is not None:
                state.deployment(body.get("metadata", {}).get("uid", "")).in_terminating_namespace = True
            log.info("%s/%s: namespace is terminating; left alone until deleted (%s)", namespace, name, trigger)
            return
        if e.status == 404:
            log.info("%s/%s: object going away; nothing to do (%s)", namespace, name, trigger)
            return
        if e.status == 409:
            log.warning("%s/%s: conflict (%s); retried on the next pass", namespace, name, e.reason)
            return
        raise


def cluster_view(
    state: DeploymentState, kube: Any, namespace: str, name: str, body: Mapping[str, Any], indexes: Indexes
) -> ClusterView:
    """What the indexes show of one deployment's objects, and what the pods' logs say (compile-cache evidence,
    cold-start phases; ``kube`` reads them)."""
    product = canonical_product(((body.get("spec") or {}).get("gpu") or {}).get("product", ""))
    node_gpus = list(indexes["gpu_nodes"].get(product, []))
    pods_now = list(indexes["pods"].get((namespace, name), []))
    evidence, cold_starts = _read_pods(state, kube, namespace, pods_now, _recorded_uids(body))
    return ClusterView(
        statefulset=one(indexes["statefulsets"], (namespace, name)),
        services={s["metadata"]["name"]: s for s in indexes["services"].get((namespace, name), [])},
        pods=pods_now,
        cache_evidence=evidence,
        cold_starts=cold_starts,
        nodes_with_product=len(node_gpus),
        max_gpus_on_a_node=max(node_gpus, default=0),
        cache_lookup=lambda obj_name: (
            one(indexes["cache_pvcs"], (namespace, obj_name)),
            one(indexes["bake_jobs"], (namespace, obj_name)),
        ),
        bake_pods_lookup=lambda job_name: list(indexes["bake_pods"].get((namespace, job_name), [])),
        owned={
            (kind, obj["metadata"]["name"]): obj
            for kind, index in ROUTER_INDEXES.items()
            for obj in indexes[index].get((namespace, name), [])
        },
    )


def _reconcile(
    state: OperatorState, namespace: str, name: str, indexes: Indexes, trigger: str, overlay: StatusOverlay | None
) -> None:
    with state.lock(namespace, name):
        # The resource is read under the lock: a pass that read it before waiting on the lock could otherwise apply
        # an older spec's StatefulSet after a newer one and turn the template back under rapid edits.
        body = one(indexes["deployments"], (namespace, name))
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return
        uid = body["metadata"].get("uid", "")
        ds = state.deployment(uid)
        if ds.in_terminating_namespace:
            return
        t0 = time.monotonic()
        written = ds.last_written if ds.last_written is not None else dict(body.get("status") or {})
        status = overlay.apply(written) if overlay is not None else written
        body = {**body, "status": status}
        view = cluster_view(ds, state.kube, namespace, name, body, indexes)
        p = plan(body, view, now_time())
        rejected = _apply(state, uid, body, view, p, trigger)
        if rejected is not None:  # the status says why instead; what was not applied is retried next pass
            degraded, news = _rejected_status(body, *rejected)
            _write_status(state, ds, body, degraded, written)
            if news:
                state.kube.event(body, "Warning", rejected[0], rejected[1])
            return
        _write_status(state, ds, body, p.status if p.status is not None else status, written)
        for ev in p.events:
            state.kube.event(body, ev.type, ev.reason, ev.message)
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - t0)
        metrics.RECONCILES.labels(trigger=trigger).inc()


def _apply(
    state: OperatorState, uid: str, body: dict[str, Any], view: ClusterView, p: Plan, trigger: str
) -> tuple[str, str] | None:
    """Carry out the plan's writes (not status); (reason, message) when the API server refused an object."""
    meta = body["metadata"]
    k = state.kube
    for obj in p.apply:
        seen = view.observed(obj["kind"], obj["metadata"]["name"])
        write_key = (uid, obj["kind"], obj["metadata"]["name"])
        seen_rv = (seen or {}).get("metadata", {}).get("resourceVersion")
        if seen is not None and state.in_flight.pending(write_key, obj, seen_rv, time.monotonic()):
            continue  # the same write is on its way to our cache: applying it again would change nothing
        log.info(
            "%s/%s: applying %s %s (%s)", meta["namespace"], meta["name"], obj["kind"], obj["metadata"]["name"], trigger
        )
        try:
            k.apply(obj)
        except ApiException as e:
            if not _reportable(e):
                raise
            return _rejection(obj, e)
        state.in_flight.record(write_key, obj, seen_rv, time.monotonic())
    for obj in p.delete:
        log.info(
            "%s/%s: deleting %s %s (%s)", meta["namespace"], meta["name"], obj["kind"], obj["metadata"]["name"], trigger
        )
        k.delete(obj)
    for obj in p.ensure_shared:
        k.ensure_shared(obj)
    if p.mark_baked:
        pvc_name, secs = p.mark_baked
        ann = {ANNOTATION_BAKED: "true"}
        if secs is not None:
            ann[ANNOTATION_BAKE_SECONDS] = f"{secs:g}"
        k.annotate("v1", "PersistentVolumeClaim", meta["namespace"], pvc_name, ann)
    if p.mark_hydrated:
        pvc_name, record = p.mark_hydrated
        k.annotate("v1", "PersistentVolumeClaim", meta["namespace"], pvc_name, record)
    hits = [hit for hit, _ in view.cache_evidence.values()]
    for hit in set(hits):
        metrics.COMPILE_CACHE_PODS.labels(meta["namespace"], meta["name"], str(hit).lower()).set(hits.count(hit))
    return None


def _write_status(
    state: OperatorState,
    ds: DeploymentState,
    body: Mapping[str, Any],
    status: dict[str, Any],
    written: Mapping[str, Any],
) -> None:
    """The one status write of a pass, when it differs from ``written``: what we last wrote or, before our first
    write, what the watch showed."""
    if status == written:
        return
    meta = body["metadata"]
    state.kube.patch_status(meta["namespace"], meta["name"], status)
    ds.last_written = status


def _recorded_uids(body: Mapping[str, Any]) -> set[str]:
    """Pods whose cold start status already holds (their log need not be read again for it)."""
    recent = (((body.get("status") or {}).get("coldStart") or {}).get("recent")) or []
    return {str(e.get("uid")) for e in recent if isinstance(e, Mapping) and e.get("uid")}


def _read_log(kube: Any, namespace: str, pod_name: str) -> tuple[str | None, str]:
    """(text, why not): the vLLM container's log from its start, each line with the kubelet's timestamp."""
    try:
        return kube.pod_log(namespace, pod_name, container=VLLM_CONTAINER, limit_bytes=LOG_LIMIT, timestamps=True), ""
    except Exception as e:  # no log yet, kubelet unreachable, or a simulated node without logs
        return None, f"log not readable: {type(e).__name__}: {getattr(e, 'reason', '') or e}"[:200]


def _pulled_events(kube: Any, namespace: str, uid: str) -> list[tuple[str, str]] | None:
    """The kubelet's `Pulled` events of a pod as (fieldPath, message); None when they cannot be read (no `list`
    on events, or the API server is unreachable): the image pull then stays inside the neighbouring phases."""
    try:
        items = kube.pod_events(namespace, uid, "Pulled")
    except Exception as e:
        log.debug("%s: Pulled events not readable (%s)", uid, type(e).__name__)
        return None
    return [
        (str((ev.get("involvedObject") or {}).get("fieldPath") or ""), str(ev.get("message") or "")) for ev in items
    ]


def _read_pods(
    ds: DeploymentState, kube: Any, namespace: str, pods_now: list[dict[str, Any]], recorded: set[str]
) -> tuple[dict[str, PodEvidence], dict[str, PodColdStart]]:
    """What each Ready serving pod's vLLM log says, read once per pod (retried every minute while it says
    nothing yet): whether it loaded the baked compile cache (pods seeded from one), and its cold start phase by
    phase (every pod, with its `Pulled` events).  One log read serves both."""
    evidence: dict[str, PodEvidence] = {}
    ds.prune_pods({p.get("metadata", {}).get("uid", "") for p in pods_now})
    for pod in pods_now:
        meta = pod.get("metadata", {})
        uid, pod_name = meta.get("uid", ""), meta.get("name", "")
        cache_pod = LABEL_CACHE_KEY in (meta.get("annotations") or {})
        known = ds.pod_evidence.get(uid)
        if known is not None:
            evidence[pod_name] = known
        need_evidence = cache_pod and (known is None or known[0] is None)
        need_phases = (
            uid not in ds.pod_cold_starts and uid not in recorded and ds.pod_log_failures.get(uid, 0) <= LOG_TRIES
        )
        if not (need_evidence or need_phases) or not pod_ready(pod):
            continue
        if time.monotonic() - ds.pod_log_tried.get(uid, -1e9) < EVIDENCE_RETRY_S:
            continue
        ds.pod_log_tried[uid] = time.monotonic()
        text, why_not = _read_log(kube, namespace, pod_name)
        if need_evidence:
            ds.pod_evidence[uid] = detect_cache_hit(strip_timestamps(text)) if text is not None else (None, why_not)
            evidence[pod_name] = ds.pod_evidence[uid]
        if need_phases:
            _record_phases(ds, kube, namespace, pod, text)
    return evidence, dict(ds.pod_cold_starts)


def _record_phases(ds: DeploymentState, kube: Any, namespace: str, pod: dict[str, Any], text: str | None) -> None:
    """Keep a Ready pod's phases once its log was read, or, when it cannot be read (a simulated node), after
    LOG_TRIES attempts with what the pod's own timestamps and events show."""
    uid = pod.get("metadata", {}).get("uid", "")
    if text is None:
        ds.pod_log_failures[uid] = ds.pod_log_failures.get(uid, 0) + 1
        if ds.pod_log_failures[uid] < LOG_TRIES:
            return
    rec = pod_cold_start(pod, VLLM_CONTAINER, text, _pulled_events(kube, namespace, uid))
    if rec is not None:
        ds.pod_cold_starts[uid] = rec
    else:  # Ready without a Ready time: nothing to measure against; do not read its log again
        ds.pod_log_failures[uid] = LOG_TRIES + 1


# Refusals a user must hear about: the object is invalid (400/422), a quota or policy forbids it (403, except a
# terminating namespace), or the apiserver cannot serve it (500, e.g. "the Service IP range is full"). They are
# retried at every resync; conflicts (409), overload (429) and unavailability (503/504) are only retried.
_APPLY_REASONS = {400: "ApplyRejected", 422: "ApplyRejected", 403: "ApplyForbidden", 500: "ApplyFailed"}


def _reportable(e: ApiException) -> bool:
    if e.status == 403 and "NamespaceTerminating" in str(getattr(e, "body", "") or ""):
        return False
    return e.status in _APPLY_REASONS


def _rejection(obj: Mapping[str, Any], e: ApiException) -> tuple[str, str]:
    """(reason, message) for an object the apiserver refused (a spec our validation let through, a quota, a full
    IP range): said in status instead of retried silently forever."""
    try:
        msg = json.loads(str(e.body or "{}")).get("message", "")
    except ValueError:
        msg = str(e.body or "")[:500]
    return (
        _APPLY_REASONS.get(e.status or 0, "ApplyFailed"),
        f"The API server rejected {obj['kind']} {obj['metadata']['name']}: {msg}"[:1000],
    )


def _rejected_status(body: Mapping[str, Any], reason: str, message: str) -> tuple[dict[str, Any], bool]:
    """The status with Degraded=True for a refused apply (built through ConditionSet, so lastTransitionTime
    stays while it stays Degraded), and whether this is news (not the same refusal as before)."""
    meta = body["metadata"]
    status = dict(body.get("status") or {})
    prev = previous_conditions(status)
    old = prev.get("Degraded", {})
    if old.get("reason") == reason and old.get("message") == message:
        return status, False
    cs = ConditionSet(previous=prev, now=now_time(), generation=int(meta.get("generation", 1)))
    cs.items = [c for t, c in prev.items() if t != "Degraded"]
    cs.set("Degraded", True, reason, message)
    return {**status, "conditions": cs.conditions(), "phase": "Degraded"}, True


# ---- event handlers ----------------------------------------------------------------------------------------------


@kopf.on.startup()
def _create_state(memo: kopf.Memo, **_: Any) -> None:
    """main.py passes the registry in the operator-wide memo; one is created when started otherwise."""
    memo.setdefault("operator", OperatorState())


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_deployment_event(
    type: str | None, namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **kw: Any
) -> None:
    state = from_memo(memo)
    meta = body.get("metadata", {})
    uid = meta.get("uid", "")
    if type == "DELETED":
        state.forget(namespace or "", name, uid)
        return
    # Our own status writes come back as events: skip those (the generation did not move and status is ours).
    ds = state.peek(uid)
    last = ds.last_written if ds is not None else None
    if (
        last is not None
        and plain(body.get("status") or {}) == last
        and last.get("observedGeneration") == meta.get("generation")
    ):
        return  # the echo of our own status write; a spec edit moves the generation and is acted on
    reconcile(state, namespace or "", name, all_indexes(kw), "deployment-event")


def _owner_names(body: Mapping[str, Any]) -> list[str]:
    refs = body.get("metadata", {}).get("ownerReferences", []) or []
    return [r["name"] for r in refs if r.get("kind") == KIND]


def _reconcile_owners(
    memo: kopf.Memo, namespace: str | None, body: Mapping[str, Any], kw: Mapping[str, Any], trigger: str
) -> None:
    for owner in _owner_names(body):
        reconcile(from_memo(memo), namespace or "", owner, all_indexes(kw), trigger)


@kopf.on.event("apps", "v1", "statefulsets", labels=MANAGED)
def on_statefulset_event(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    _reconcile_owners(memo, namespace, body, kw, "statefulset-event")


@kopf.on.event("v1", "pods", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def on_pod_event(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **kw: Any) -> None:
    reconcile(from_memo(memo), namespace or "", labels[LABEL_DEPLOYMENT], all_indexes(kw), "pod-event")


@kopf.on.event("v1", "services", labels=MANAGED)
def on_service_event(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    _reconcile_owners(memo, namespace, body, kw, "service-event")


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
@kopf.on.event("v1", "serviceaccounts", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
@kopf.on.event("rbac.authorization.k8s.io", "v1", "roles", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
@kopf.on.event("rbac.authorization.k8s.io", "v1", "rolebindings", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def on_router_object_event(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    """The router's objects (spec.routing): its Deployment's readiness is RouterReady; a lost Role is put back."""
    _reconcile_owners(memo, namespace, body, kw, "router-event")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_CACHE_KEY: kopf.PRESENT})
def on_job_event(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    _reconcile_owners(memo, namespace, body, kw, "job-event")


@kopf.on.event("v1", "pods", labels={LABEL_CACHE_KEY: kopf.PRESENT, JOB_NAME_LABEL: kopf.PRESENT, **MANAGED})
def on_bake_pod_event(
    type: str | None, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, memo: kopf.Memo, **kw: Any
) -> None:
    state = from_memo(memo)
    ns = namespace or ""
    # A bake pod scheduled, stuck or lost changes what the status says about the bake; its Job knows the owners.
    job = one(kw["bake_jobs"], (ns, labels[JOB_NAME_LABEL]))
    owners = _owner_names(job or {})
    # A disruption leaves no trace once the pod is replaced (the Job does not count it): one Warning Event per pod.
    uid = body.get("metadata", {}).get("uid", "")
    disruption = job_pod_disruption(plain(body))
    if disruption and uid not in state.reported_disruptions:
        state.reported_disruptions.add(uid)
        for owner in owners:
            owner_body = one(kw["deployments"], (ns, owner))
            if owner_body is not None:
                state.kube.event(owner_body, "Warning", disruption.reason, disruption.message)
    if type == "DELETED":
        state.reported_disruptions.discard(uid)
    for owner in owners:
        reconcile(state, ns, owner, all_indexes(kw), "bake-pod-event")
