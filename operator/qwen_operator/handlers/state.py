"""The operator's in-memory state, in one object: per deployment (by uid) what the handlers keep between passes,
plus the few process-wide pieces (the API client, our in-flight applies, bake pods whose disruption was reported).

Nothing here survives a restart, and nothing needs to: what must (the autoscaler's windows and what it learned,
the compile-cache state, the measured cold start) is in the resource's status.  The registry is created once
(main.py passes it to Kopf as the operator-wide memo; handlers reach it as ``memo.operator``) and handed to every
function that needs it; a deployment's entry is dropped with its DELETED event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..adapters.kube import Kube
from ..autoscaling.policy import PolicyState
from ..domain.coldstart import PodColdStart
from ..manifests.drift import InFlightWrites

PodEvidence = tuple[bool | None, str]  # (hit, evidence) read from vLLM's log: did the pod load the baked cache?


@dataclass
class DeploymentState:
    """What the operator keeps about one QwenDeployment between passes."""

    # The status we last wrote: the watch may lag behind our own writes, so a pass starts from this.
    last_written: dict[str, Any] | None = None
    # The API server said its namespace is terminating. Termination never reverses and a recreated namespace brings
    # new uids, so the deployment is left alone until its DELETED event: retrying every resync would only collect
    # 403s until the namespace controller gets to it.
    in_terminating_namespace: bool = False
    policy_state: PolicyState | None = None  # the autoscaler's state (also persisted in status)
    last_autoscale: float = -1e9  # monotonic time of the last autoscaling decision
    pod_evidence: dict[str, PodEvidence] = field(default_factory=dict)  # pod uid -> what vLLM's log said
    pod_log_tried: dict[str, float] = field(default_factory=dict)  # pod uid -> monotonic time its log was read
    pod_log_failures: dict[str, int] = field(default_factory=dict)  # pod uid -> failed log reads so far
    pod_cold_starts: dict[str, PodColdStart] = field(default_factory=dict)  # pod uid -> its phases, read once

    def prune_pods(self, live_uids: set[str]) -> None:
        """Forget the pods that are gone."""
        tables: tuple[dict[str, Any], ...] = (
            self.pod_evidence,
            self.pod_log_tried,
            self.pod_log_failures,
            self.pod_cold_starts,
        )
        for d in tables:
            for uid in [u for u in d if u not in live_uids]:
                del d[uid]


class OperatorState:
    """The registry: one DeploymentState per deployment uid, one lock per deployment name, and the process-wide
    pieces.  Thread-safe where handlers and the periodic loop meet (the lock table and the entries table)."""

    def __init__(self, kube_factory: Callable[[], Kube] = Kube) -> None:
        self._guard = threading.Lock()
        self._deployments: dict[str, DeploymentState] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._kube_factory = kube_factory
        self._kube: Kube | None = None
        # Our applies the watch has not delivered yet (skips no-op re-applies); keys start with the owner's uid.
        self.in_flight = InFlightWrites()
        # Bake pod uids whose disruption has had its Event (bake pods are shared by the deployments of a key).
        self.reported_disruptions: set[str] = set()

    @property
    def kube(self) -> Kube:
        """The API client, created on first use (after main.py loaded the Kubernetes config)."""
        with self._guard:
            if self._kube is None:
                self._kube = self._kube_factory()
            return self._kube

    def lock(self, namespace: str, name: str) -> threading.Lock:
        """Serializes the passes of one deployment (keyed by name: a pass reads the resource under it)."""
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def deployment(self, uid: str) -> DeploymentState:
        with self._guard:
            return self._deployments.setdefault(uid, DeploymentState())

    def peek(self, uid: str) -> DeploymentState | None:
        """The entry, without creating one."""
        with self._guard:
            return self._deployments.get(uid)

    def forget(self, namespace: str, name: str, uid: str) -> None:
        """The deployment was deleted: drop everything kept about it."""
        with self._guard:
            self._deployments.pop(uid, None)
            self._locks.pop((namespace, name), None)
        self.in_flight.forget(uid)

    def __len__(self) -> int:
        return len(self._deployments)


def from_memo(memo: Any) -> OperatorState:
    """The registry from Kopf's memo (operator-wide, or a resource's shallow copy of it)."""
    state = memo.get("operator") if isinstance(memo, dict) else None
    if not isinstance(state, OperatorState):
        raise RuntimeError(
            "the operator state is missing from Kopf's memo (start the operator with qwen_operator.main)"
        )
    return state
