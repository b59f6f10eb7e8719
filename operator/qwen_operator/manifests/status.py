"""Status of a QwenDeployment from what is observed: pure, so every rule is unit-tested without a cluster.

Conditions (standard shape): Validated, Ready, Progressing, Degraded, GPUsAvailable, plus CompileCacheReady,
AutoscalingActive and RouterReady when those features are on. Every condition is built through ConditionSet, so
lastTransitionTime only moves when a condition's status changes, and an idle resync computes an identical status
and writes nothing. The rules for which transitions post an Event, and for merging a new status into the old
one, are here too (transition_events, merge_status).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .view import ClusterView

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Kubernetes' metav1.Time, as written in conditions


def now_time() -> str:
    """The current time as Kubernetes writes it in status (seconds, UTC)."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def parse_time(value: object) -> datetime | None:
    """A Kubernetes timestamp ("2026-01-01T00:00:00Z"), or None when missing or malformed."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


_BAD_WAITING = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
}


@dataclass(frozen=True)
class PodIssue:
    reason: str
    message: str


def pod_start_seconds(pod: Mapping[str, Any]) -> float | None:
    """Seconds from a pod's creation to its Ready condition turning True, or None (not Ready, or no times)."""
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    for c in (pod.get("status") or {}).get("conditions", []) or []:
        if c.get("type") == "Ready" and c.get("status") == "True" and created and c.get("lastTransitionTime"):
            t0, t1 = parse_time(created), parse_time(c["lastTransitionTime"])
            if t0 is None or t1 is None:
                return None
            return max(0.0, (t1 - t0).total_seconds())
    return None


def pod_issue(pod: Mapping[str, Any]) -> PodIssue | None:
    """Why a pod is stuck, in plain words, or None."""
    name = pod.get("metadata", {}).get("name", "?")
    st = pod.get("status", {}) or {}
    for c in st.get("conditions", []) or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return PodIssue("Unschedulable", f"pod {name} cannot be scheduled: {c.get('message', '').strip()}")
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _BAD_WAITING:
            last = (cs.get("lastState") or {}).get("terminated") or {}
            extra = ""
            if last.get("reason") == "OOMKilled":
                extra = " (last exit: OOMKilled; raise resources.memory, or lower serving.maxModelLen/maxNumSeqs)"
            return PodIssue(
                waiting["reason"],
                f"pod {name} container {cs.get('name')}: {waiting['reason']}"
                f"{': ' + waiting['message'] if waiting.get('message') else ''}{extra}",
            )
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status", {}) or {}).get("conditions", []) or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


@dataclass
class ConditionSet:
    previous: dict[str, dict[str, Any]]
    now: str
    generation: int
    items: list[dict[str, Any]] = field(default_factory=list)

    def set(self, ctype: str, status: bool | None, reason: str, message: str = "") -> None:
        s = "Unknown" if status is None else ("True" if status else "False")
        prev = self.previous.get(ctype)
        ltt = (
            prev["lastTransitionTime"]
            if prev and prev.get("status") == s and prev.get("lastTransitionTime")
            else self.now
        )
        self.items.append(
            {
                "type": ctype,
                "status": s,
                "reason": reason,
                "message": message,
                "lastTransitionTime": ltt,
                "observedGeneration": self.generation,
            }
        )

    def unset(self, ctype: str) -> None:
        self.items = [c for c in self.items if c["type"] != ctype]

    def keep(self, ctype: str) -> None:
        """Carry the previous condition of this type over as it was (one another writer owns, or one left alone)."""
        if ctype in self.previous:
            self.items.append(self.previous[ctype])

    def conditions(self) -> list[dict[str, Any]]:
        """The conditions in status order (by type)."""
        return sorted(self.items, key=lambda c: c["type"])


def previous_conditions(status: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (status or {}).get("conditions", []) or [] if "type" in c}


def compute_workload_conditions(
    cs: ConditionSet, view: ClusterView, gpu_product: str, desired: int, gpus_per_pod: int
) -> dict[str, Any]:
    """Ready / Progressing / Degraded / GPUsAvailable from the StatefulSet and its pods. Returns counters."""
    sts = view.statefulset or {}
    sts_status = sts.get("status", {}) or {}
    current = int(sts_status.get("replicas", 0) or 0)
    ready = sum(1 for p in view.pods if pod_ready(p) and not p.get("metadata", {}).get("deletionTimestamp"))
    updated = int(sts_status.get("updatedReplicas", 0) or 0)
    rollout_done = (
        sts_status.get("observedGeneration") == sts.get("metadata", {}).get("generation")
        and sts_status.get("currentRevision") == sts_status.get("updateRevision")
        and updated >= desired
    )
    issues = [i for i in (pod_issue(p) for p in view.pods) if i is not None]

    if view.nodes_with_product == 0:
        cs.set(
            "GPUsAvailable",
            False,
            "NoNodeWithProduct",
            f"No node offers {gpu_product} yet (label nvidia.com/gpu.product); pods wait until one joins.",
        )
    elif view.max_gpus_on_a_node < gpus_per_pod:
        cs.set(
            "GPUsAvailable",
            False,
            "NotEnoughGPUsPerNode",
            f"A pod needs {gpus_per_pod} x {gpu_product} but the largest node has "
            f"{view.max_gpus_on_a_node}; lower tensor x pipeline parallelism.",
        )
    else:
        cs.set("GPUsAvailable", True, "NodesAvailable", f"{view.nodes_with_product} node(s) offer {gpu_product}.")

    if issues:
        first = issues[0]
        cs.set(
            "Degraded",
            True,
            first.reason,
            "; ".join(i.message for i in issues[:3]) + (f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""),
        )
    else:
        cs.set("Degraded", False, "AsExpected", "")

    if desired == 0:
        cs.set("Ready", True, "ScaledToZero", "No replicas are wanted.")
        cs.set("Progressing", False, "Stable", "")
    elif ready >= desired and rollout_done:
        cs.set("Ready", True, "AllReplicasReady", f"{ready}/{desired} replicas ready.")
        cs.set("Progressing", False, "RolloutComplete", "")
    else:
        reason = issues[0].reason if issues else ("PodsStarting" if view.statefulset else "Creating")
        cs.set("Ready", False, reason, f"{ready}/{desired} replicas ready.")
        cs.set(
            "Progressing",
            True,
            "RollingOut" if not rollout_done and view.statefulset else "PodsStarting",
            f"{updated}/{desired} replicas updated, {ready} ready.",
        )
    return {"replicas": current, "readyReplicas": ready}


def _deployment_condition(status: Mapping[str, Any], ctype: str, cstatus: str) -> Mapping[str, Any] | None:
    for c in status.get("conditions", []) or []:
        if c.get("type") == ctype and c.get("status") == cstatus:
            return dict(c)
    return None


def compute_router_condition(cs: ConditionSet, deployment: Mapping[str, Any] | None, want: int, routes_to: str) -> bool:
    """RouterReady from the router's Deployment as observed: True once ``want`` router pods of the current template
    are Ready. Returns whether it is True."""
    if deployment is None:
        cs.set("RouterReady", False, "Creating", "The router's Deployment does not exist yet.")
        return False
    st = deployment.get("status", {}) or {}
    ready = int(st.get("readyReplicas", 0) or 0)
    updated = int(st.get("updatedReplicas", 0) or 0)
    current = st.get("observedGeneration") == deployment.get("metadata", {}).get("generation")
    if current and ready >= want and updated >= want:
        cs.set("RouterReady", True, "RouterReady", f"{ready}/{want} router pods ready; {routes_to}.")
        return True
    failure = _deployment_condition(st, "ReplicaFailure", "True")
    progressing = _deployment_condition(st, "Progressing", "False")  # ProgressDeadlineExceeded
    if failure is not None:
        reason, why = "RouterReplicaFailure", f": {failure.get('message', '')}"
    elif progressing is not None:
        reason, why = "RouterRolloutStuck", f": {progressing.get('message', '')}"
    else:
        reason, why = "RouterStarting", ""
    cs.set("RouterReady", False, reason, f"{ready}/{want} router pods ready, {updated} updated{why}.")
    return False


def require_router(cs: ConditionSet) -> None:
    """With routing on, clients reach the replicas only through the router: Ready stays False until RouterReady."""
    by = {c["type"]: c for c in cs.items}
    ready, router = by.get("Ready"), by.get("RouterReady")
    if ready is None or router is None or ready["status"] != "True" or router["status"] == "True":
        return
    cs.unset("Ready")
    cs.set("Ready", False, "RouterNotReady", f"{ready['message']} The router is not ready: {router['message']}")


def phase(conditions: list[dict[str, Any]]) -> str:
    by = {c["type"]: c["status"] for c in conditions}
    if by.get("Validated") == "False":
        return "Invalid"
    if by.get("Degraded") == "True":
        return "Degraded"
    if by.get("Ready") == "True":
        return "Ready"
    return "Progressing"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def _condition_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.get("status") != new.get("status") or old.get("reason") != new.get("reason")


def transition_events(conditions: list[dict[str, Any]], previous: Mapping[str, Mapping[str, Any]]) -> list[Event]:
    """The Events a reconcile posts: only on a transition (status or reason changed), so idle is silent.  Bad news
    (invalid spec, degraded, compile cache not ready) is a Warning; Ready and a spec valid again are Normal."""
    out: list[Event] = []
    for c in conditions:
        old = previous.get(c["type"])
        if old is None or _condition_changed(old, c):
            if (
                c["type"] in ("Validated", "Degraded", "CompileCacheReady")
                and ((c["type"] == "Degraded") == (c["status"] == "True"))
                and c["status"] != "Unknown"
            ):
                out.append(Event("Warning", c["reason"], c["message"][:1000]))
            elif c["type"] == "WeightsReady" and c["status"] == "False" and c["reason"] != "Hydrating":
                out.append(Event("Warning", c["reason"], c["message"][:1000]))
            elif c["type"] == "Ready" and c["status"] == "True":
                out.append(Event("Normal", c["reason"], c["message"]))
            elif c["type"] == "Validated" and c["status"] == "True" and old is not None:
                out.append(Event("Normal", "Valid", "The spec is valid again."))
    return out


def merge_status(old_status: Mapping[str, Any], new_status: dict[str, Any]) -> dict[str, Any] | None:
    """The status to write: the new fields over the old ones (fields others own, e.g. Kopf's bookkeeping, are
    kept), or None when that is identical to the old status (an idle pass writes nothing)."""
    merged = {**{k: v for k, v in old_status.items() if k not in new_status}, **new_status}
    return merged if merged != old_status else None
