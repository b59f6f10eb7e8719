"""The router's objects for a QwenDeployment with spec.routing on: pure functions, plain dicts for server-side apply.

vLLM's own router (vllm-router 0.1.17, docs/routing.md) runs as a Deployment <name>-router. It finds the serving
pods by Kubernetes service discovery, so its ServiceAccount <name>-router gets a Role <name>-router with exactly
what that needs, measured on the pinned router: list and watch on pods of its own namespace (it asks for nothing
else, not even get). The client Service <name> then selects the router's pods (workload.build_services); the
router needs no Service of its own.

Every object carries the QwenDeployment's ownerReference, so deleting the QwenDeployment deletes them; turning
routing off deletes them too (plan.py: Plan.delete). Turning routing on, the client Service switches to the router
once a router pod is Ready (client_routed); turning it off, back to the vLLM pods at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.models import Routing
from ..domain.router_args import ROUTER_COMMAND, ROUTER_METRICS_PORT, ROUTER_PORT, render_router_args
from .view import ClusterView, Object
from .workload import (
    LABEL_DEPLOYMENT,
    MANAGED_BY,
    Owner,
    client_service_name,
    router_selector_labels,
    selector_labels,
)

ROUTER_CONTAINER = "router"
RBAC_API = "rbac.authorization.k8s.io/v1"
# The kinds router_objects() returns, in apply order: the account and its rights before the pods that use them.
ROUTER_KINDS = ("ServiceAccount", "Role", "RoleBinding", "Deployment")
# What service discovery of vllm-router 0.1.17 calls (docs/routing.md): GET .../namespaces/<ns>/pods?limit=500,
# then the same with watch=true; nothing else. The operator may grant this Role because it holds these verbs on
# pods itself (RBAC's escalation rule: one may only grant what one has; charts/qwen-operator/templates/_helpers.tpl).
ROUTER_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]


def router_name(name: str) -> str:
    return f"{name}-router"


def router_labels(name: str) -> dict[str, str]:
    """Labels of the router's objects: the operator's indexes find them by managed-by and the deployment label."""
    return {
        **router_selector_labels(name),
        "app.kubernetes.io/component": "router",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_DEPLOYMENT: name,
    }


def _pod_labels(name: str) -> dict[str, str]:
    # No qwenops.dev/deployment label: the operator's pod index and pod handler are for the serving pods only.
    return {**router_selector_labels(name), "app.kubernetes.io/component": "router"}


def _meta(name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    return {
        "name": router_name(name),
        "namespace": namespace,
        "labels": router_labels(name),
        "ownerReferences": [owner.reference()],
    }


def _container(name: str, namespace: str, routing: Routing) -> dict[str, Any]:
    # /liveness answers 200 whenever the router serves; /readiness answers 503 while no vLLM pod is Ready, which
    # would empty the client Service then and turn the router's clear 503 into refused connections.
    probe = {"httpGet": {"path": "/liveness", "port": "http"}, "timeoutSeconds": 5}
    return {
        "name": ROUTER_CONTAINER,
        "image": routing.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [ROUTER_COMMAND],
        "args": render_router_args(routing, selector_labels(name), namespace),
        "ports": [
            {"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": ROUTER_METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": routing.resources.cpu, "memory": routing.resources.memory},
            "limits": {"memory": routing.resources.memory},
        },
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 4},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def build_router_deployment(name: str, namespace: str, owner: Owner, routing: Routing) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "serviceAccountName": router_name(name),
        # Service discovery reads the API server with this account's token.
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": {
            # The image's user (images/vllm-router/Dockerfile), numeric so runAsNonRoot can check it.
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(name, namespace, routing)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if routing.node_selector:
        pod_spec["nodeSelector"] = dict(routing.node_selector)
    if routing.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in routing.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, owner),
        "spec": {
            "replicas": routing.replicas,
            "selector": {"matchLabels": router_selector_labels(name)},
            # A new router pod is Ready before an old one goes: the client Service never runs out of endpoints.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": _pod_labels(name)}, "spec": pod_spec},
        },
    }


def router_objects(name: str, namespace: str, owner: Owner, routing: Routing) -> list[dict[str, Any]]:
    """The router's ServiceAccount, Role, RoleBinding and Deployment (ROUTER_KINDS order)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace, owner)}
    role = {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta(name, namespace, owner), "rules": ROUTER_RULES}
    binding = {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace, owner),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": router_name(name)},
        "subjects": [{"kind": "ServiceAccount", "name": router_name(name), "namespace": namespace}],
    }
    return [account, role, binding, build_router_deployment(name, namespace, owner, routing)]


def client_routed(view: ClusterView, name: str, routing: Routing) -> bool:
    """Whether the client Service leads to the router: with routing on, once a router pod has been Ready (the
    Service then already selects the router), so turning routing on never leaves clients without endpoints; with
    routing off, never."""
    if not routing.enabled:
        return False
    svc = view.services.get(client_service_name(name)) or {}
    if (svc.get("spec") or {}).get("selector") == router_selector_labels(name):
        return True
    deployment = view.observed("Deployment", router_name(name)) or {}
    return int((deployment.get("status") or {}).get("readyReplicas", 0) or 0) >= 1


def stale_router_objects(view: ClusterView, name: str, owner_uid: str) -> list[Object]:
    """With routing off: the router's objects still there that this QwenDeployment owns, as references to delete
    (with the uid as a precondition, so an object of the same name made by someone else since is never deleted)."""
    out: list[Object] = []
    for kind in reversed(ROUTER_KINDS):
        obj = view.observed(kind, router_name(name))
        if obj is None or not _owned_by(obj, owner_uid) or obj.get("metadata", {}).get("deletionTimestamp"):
            continue
        meta = obj["metadata"]
        api_version = "apps/v1" if kind == "Deployment" else ("v1" if kind == "ServiceAccount" else RBAC_API)
        out.append(
            {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            }
        )
    return out


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return bool(uid) and any(r.get("uid") == uid for r in refs)
