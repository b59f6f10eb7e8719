"""Status of a QwenDeployment from what is observed: pure, so every rule is unit-tested without a cluster.

Conditions (standard shape): Validated, Ready, Progressing, Degraded, GPUsAvailable, plus CompileCacheReady and
AutoscalingActive when those features are on. lastTransitionTime only moves when a condition's status changes,
so an idle resync computes an identical status and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_BAD_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                "CreateContainerError", "InvalidImageName", "RunContainerError"}


@dataclass(frozen=True)
class PodIssue:
    reason: str
    message: str


def pod_start_seconds(pod: Mapping[str, Any]) -> float | None:
    """Seconds from a pod's creation to its Ready condition turning True, or None (not Ready, or no times)."""
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    for c in (pod.get("status") or {}).get("conditions", []) or []:
        if c.get("type") == "Ready" and c.get("status") == "True" and created and c.get("lastTransitionTime"):
            try:
                t0 = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
                t1 = datetime.fromisoformat(str(c["lastTransitionTime"]).replace("Z", "+00:00"))
            except ValueError:
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
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            extra = ""
            if last.get("reason") == "OOMKilled":
                extra = " (last exit: OOMKilled; raise resources.memory, or lower serving.maxModelLen/maxNumSeqs)"
            return PodIssue(waiting["reason"], f"pod {name} container {cs.get('name')}: {waiting['reason']}"
                            f"{': ' + waiting['message'] if waiting.get('message') else ''}{extra}")
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status", {}) or {}).get("conditions", []) or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


@dataclass(frozen=True)
class Observed:
    """What the handler read from the cluster for one QwenDeployment."""
    generation: int
    statefulset: dict[str, Any] | None
    pods: list[dict[str, Any]]
    gpu_product: str
    nodes_with_product: int          # nodes labelled with the GPU product
    max_gpus_on_a_node: int          # most allocatable GPUs of that product on one node
    desired_replicas: int


@dataclass
class ConditionSet:
    previous: dict[str, dict[str, Any]]
    now: str
    generation: int
    items: list[dict[str, Any]] = field(default_factory=list)

    def set(self, ctype: str, status: bool | None, reason: str, message: str = "") -> None:
        s = "Unknown" if status is None else ("True" if status else "False")
        prev = self.previous.get(ctype)
        ltt = prev["lastTransitionTime"] if prev and prev.get("status") == s and prev.get(
            "lastTransitionTime") else self.now
        self.items.append({"type": ctype, "status": s, "reason": reason, "message": message,
                           "lastTransitionTime": ltt, "observedGeneration": self.generation})


def previous_conditions(status: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (status or {}).get("conditions", []) or [] if "type" in c}


def compute_workload_conditions(cs: ConditionSet, obs: Observed, gpus_per_pod: int) -> dict[str, Any]:
    """Ready / Progressing / Degraded / GPUsAvailable from the StatefulSet and its pods. Returns counters."""
    sts = obs.statefulset or {}
    sts_status = sts.get("status", {}) or {}
    desired = obs.desired_replicas
    current = int(sts_status.get("replicas", 0) or 0)
    ready = sum(1 for p in obs.pods if pod_ready(p) and not p.get("metadata", {}).get("deletionTimestamp"))
    updated = int(sts_status.get("updatedReplicas", 0) or 0)
    rollout_done = (sts_status.get("observedGeneration") == sts.get("metadata", {}).get("generation")
                    and sts_status.get("currentRevision") == sts_status.get("updateRevision")
                    and updated >= desired)
    issues = [i for i in (pod_issue(p) for p in obs.pods) if i is not None]

    if obs.nodes_with_product == 0:
        cs.set("GPUsAvailable", False, "NoNodeWithProduct",
               f"No node offers {obs.gpu_product} yet (label nvidia.com/gpu.product); pods wait until one joins.")
    elif obs.max_gpus_on_a_node < gpus_per_pod:
        cs.set("GPUsAvailable", False, "NotEnoughGPUsPerNode",
               f"A pod needs {gpus_per_pod} x {obs.gpu_product} but the largest node has "
               f"{obs.max_gpus_on_a_node}; lower tensor x pipeline parallelism.")
    else:
        cs.set("GPUsAvailable", True, "NodesAvailable",
               f"{obs.nodes_with_product} node(s) offer {obs.gpu_product}.")

    if issues:
        first = issues[0]
        cs.set("Degraded", True, first.reason, "; ".join(i.message for i in issues[:3]) +
               (f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""))
    else:
        cs.set("Degraded", False, "AsExpected", "")

    if desired == 0:
        cs.set("Ready", True, "ScaledToZero", "No replicas are wanted.")
        cs.set("Progressing", False, "Stable", "")
    elif ready >= desired and rollout_done:
        cs.set("Ready", True, "AllReplicasReady", f"{ready}/{desired} replicas ready.")
        cs.set("Progressing", False, "RolloutComplete", "")
    else:
        reason = issues[0].reason if issues else ("PodsStarting" if obs.statefulset else "Creating")
        cs.set("Ready", False, reason, f"{ready}/{desired} replicas ready.")
        cs.set("Progressing", True, "RollingOut" if not rollout_done and obs.statefulset else "PodsStarting",
               f"{updated}/{desired} replicas updated, {ready} ready.")
    return {"replicas": current, "readyReplicas": ready}


def phase(conditions: list[dict[str, Any]]) -> str:
    by = {c["type"]: c["status"] for c in conditions}
    if by.get("Validated") == "False":
        return "Invalid"
    if by.get("Degraded") == "True":
        return "Degraded"
    if by.get("Ready") == "True":
        return "Ready"
    return "Progressing"
