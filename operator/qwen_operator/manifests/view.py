"""ClusterView: what the operator has seen of one QwenDeployment's objects, from its watch-fed indexes.

The handlers build one per reconcile pass (handlers/controller.py) without reading the API server; plan() and
the status rules read only this.  (The autoscaler's input is a different thing: autoscaling.policy.Observation,
the metrics of the Ready replicas.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..domain.coldstart import PodColdStart

Object = dict[str, Any]
# Looks up (PVC, bake Job) of a compile-cache object name; either may be None.
CacheLookup = Callable[[str], tuple[Object | None, Object | None]]
# Looks up the pods of a bake Job by the Job's name.
BakePodsLookup = Callable[[str], list[Object]]


@dataclass(frozen=True)
class ClusterView:
    """What the handler observed for one QwenDeployment (from watches; no API reads needed)."""

    statefulset: Object | None
    services: dict[str, Object]  # by name
    pods: list[Object]
    nodes_with_product: int  # nodes labelled with the deployment's GPU product
    max_gpus_on_a_node: int  # most allocatable GPUs of that product on one node
    cache_lookup: CacheLookup | None = None  # None: not watched
    # Per serving pod: (hit, evidence) read from vLLM's log by the handler (None: not known yet).
    cache_evidence: dict[str, tuple[bool | None, str]] = field(default_factory=dict)
    bake_pods_lookup: BakePodsLookup | None = None  # None: not watched
    # Per Ready serving pod (by uid): its cold start, phase by phase, read once by the handler.
    cold_starts: dict[str, PodColdStart] = field(default_factory=dict)
    # The other objects the deployment owns, by (kind, name): the router's Deployment, ServiceAccount, Role and
    # RoleBinding (manifests/router.py).
    owned: dict[tuple[str, str], Object] = field(default_factory=dict)

    def observed(self, kind: str, name: str) -> Object | None:
        """The object of this kind and name as last seen (None: not seen), whichever field holds it."""
        if kind == "StatefulSet":
            return self.statefulset
        if kind == "Service":
            return self.services.get(name)
        return self.owned.get((kind, name))

    def cache_objects(self, object_name: str) -> tuple[Object | None, Object | None]:
        return self.cache_lookup(object_name) if self.cache_lookup else (None, None)

    def bake_pods(self, job_name: str) -> list[Object]:
        return self.bake_pods_lookup(job_name) if self.bake_pods_lookup else []
