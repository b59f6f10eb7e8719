"""Kopf indexes: in-memory copies of the objects the operator reads, fed by watches, so a resync reads nothing
from the API server.  A reconcile pass turns them into a ClusterView (handlers/controller.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.models import GROUP, PLURAL, VERSION
from ..manifests.workload import GPU_PRODUCT_LABEL, GPU_RESOURCE, LABEL_CACHE_KEY, LABEL_DEPLOYMENT, MANAGED_BY

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
# The Job controller labels its pods with the Job's name; a bake pod is indexed under its Job.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_NAMES = (
    "deployments",
    "statefulsets",
    "services",
    "pods",
    "bake_jobs",
    "bake_pods",
    "cache_pvcs",
    "gpu_nodes",
    "router_deployments",
    "router_accounts",
    "router_roles",
    "router_bindings",
)
# The index of each kind of the router's objects (manifests/router.py), for ClusterView.owned.
ROUTER_INDEXES = {
    "Deployment": "router_deployments",
    "ServiceAccount": "router_accounts",
    "Role": "router_roles",
    "RoleBinding": "router_bindings",
}

Index = kopf.Index[Any, Any]
Indexes = Mapping[str, Index]


def plain(obj: Any) -> Any:
    """Kopf bodies are read-only mapping views; the planner wants plain dicts."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def one(index: Index, key: Any) -> dict[str, Any] | None:
    """The (first) object under ``key``, or None."""
    for item in index.get(key) or ():
        return item if isinstance(item, dict) else None
    return None


def all_indexes(kw: Mapping[str, Any]) -> dict[str, Index]:
    """The operator's indexes, from a handler's keyword arguments (Kopf passes each by its function's name)."""
    return {k: kw[k] for k in INDEX_NAMES}


@kopf.index(GROUP, VERSION, PLURAL)
def deployments(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("apps", "v1", "statefulsets", labels=MANAGED)
def statefulsets(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("v1", "services", labels=MANAGED)
def services(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels.get(LABEL_DEPLOYMENT, "")): plain(body)}


@kopf.index("v1", "pods", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def pods(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_DEPLOYMENT]): plain(body)}


@kopf.index("batch", "v1", "jobs", labels={LABEL_CACHE_KEY: kopf.PRESENT})
def bake_jobs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("v1", "pods", labels={LABEL_CACHE_KEY: kopf.PRESENT, JOB_NAME_LABEL: kopf.PRESENT, **MANAGED})
def bake_pods(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[JOB_NAME_LABEL]): plain(body)}


@kopf.index("v1", "persistentvolumeclaims", labels={LABEL_CACHE_KEY: kopf.PRESENT})
def cache_pvcs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("v1", "nodes", labels={GPU_PRODUCT_LABEL: kopf.PRESENT})
def gpu_nodes(
    labels: Mapping[str, str], status: Mapping[str, Any], spec: Mapping[str, Any], **_: Any
) -> dict[Any, Any]:
    alloc = (status.get("allocatable") or {}).get(GPU_RESOURCE, "0")
    try:
        gpus = int(str(alloc))
    except ValueError:
        gpus = 0
    if spec.get("unschedulable"):
        gpus = 0
    return {labels[GPU_PRODUCT_LABEL]: gpus}


# The router's objects (spec.routing), by namespace and deployment: RouterReady reads the Deployment's status, and
# what is seen of each object spares an apply when nothing changed (manifests/drift.py).
@kopf.index("apps", "v1", "deployments", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def router_deployments(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_DEPLOYMENT]): plain(body)}


@kopf.index("v1", "serviceaccounts", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def router_accounts(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_DEPLOYMENT]): plain(body)}


@kopf.index("rbac.authorization.k8s.io", "v1", "roles", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def router_roles(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_DEPLOYMENT]): plain(body)}


@kopf.index("rbac.authorization.k8s.io", "v1", "rolebindings", labels={LABEL_DEPLOYMENT: kopf.PRESENT, **MANAGED})
def router_bindings(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_DEPLOYMENT]): plain(body)}
