"""Kubernetes API calls the operator makes: a thin layer over the official client's raw ApiClient.

Everything is plain dicts in and out. Owned objects are written with server-side apply (field manager
`qwen-operator`, forced: the operator is the authority on what it owns); shared compile-cache objects are created
once and only gain owner references; status is merge-patched on the status subresource.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from ..api.models import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)
FIELD_MANAGER = "qwen-operator"

_PLURALS = {
    "StatefulSet": "statefulsets",
    "Service": "services",
    "Job": "jobs",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Event": "events",
    KIND: PLURAL,
    "Pod": "pods",
    "Node": "nodes",
    "Deployment": "deployments",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}


# Characters YAML forbids raw (C1 controls, DEL, non-characters); JSON escapes C0 controls itself.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\ufeff\ufffe\uffff]")


def yaml_safe_json(obj: Any) -> str:
    """JSON the apiserver's YAML decoder accepts for apply-patch+yaml: raw UTF-8 (an ASCII-only encoder writes
    surrogate-pair escapes for characters beyond U+FFFF, which YAML rejects), with the characters YAML forbids
    raw written as \\u escapes (they can only occur inside strings)."""
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, ensure_ascii=False))


def _path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{ns}/{_PLURALS[kind]}" + (f"/{name}" if name else "")


class Kube:
    def __init__(self, api_client: ApiClient | None = None) -> None:
        self.api = api_client or ApiClient()

    def _raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        m, url, hdrs, b, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers or {},
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(m, url, header_params=hdrs, body=b, _request_timeout=30)
        data = resp.read() if hasattr(resp, "read") else resp.data
        status = int(getattr(resp, "status", 0))
        if status >= 400:
            text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
            raise ApiException(status=status, reason=getattr(resp, "reason", ""), body=text)
        return status, data if isinstance(data, bytes) else str(data or "").encode()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        try:
            _, data = self._raw(method, path, body=body, query=query, headers=headers)
        except ApiException as e:
            if e.status == 404 and method == "GET":
                return None
            raise
        return json.loads(data) if data else {}

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._call("GET", _path(api_version, kind, namespace, name))

    def pod_log(self, namespace: str, name: str, container: str, limit_bytes: int, timestamps: bool = False) -> str:
        """The container's log from its start (``timestamps``: each line prefixed with the kubelet's RFC 3339
        time, as `kubectl logs --timestamps`)."""
        path = _path("v1", "Pod", namespace, name) + "/log"
        query: list[tuple[str, Any]] = [("container", container), ("limitBytes", limit_bytes)]
        if timestamps:
            query.append(("timestamps", "true"))
        _, data = self._raw(
            "GET",
            path,
            query=query,
            # The log subresource negotiates like kubectl asks; "text/plain" alone gets 406.
            headers={"Accept": "application/json, */*"},
        )
        return data.decode(errors="replace")

    def pod_events(self, namespace: str, pod_uid: str, reason: str) -> list[dict[str, Any]]:
        """The Events about one pod with one reason (e.g. the kubelet's "Pulled"), by field selector."""
        selector = f"involvedObject.uid={pod_uid},reason={reason}"
        got = self._call("GET", _path("v1", "Event", namespace), query=[("fieldSelector", selector)])
        items = (got or {}).get("items") or []
        return [e for e in items if isinstance(e, dict)]

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any] | None:
        """Server-side apply (dry_run: the apiserver validates and admits it, and stores nothing)."""
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query += [("dryRun", "All"), ("fieldValidation", "Strict")]
        # Raw UTF-8 JSON (JSON is YAML): the apiserver's YAML decoder rejects the surrogate-pair escapes that an
        # ASCII-only encoder writes for characters beyond U+FFFF.
        return self._call(
            "PATCH", path, body=yaml_safe_json(obj), query=query, content_type="application/apply-patch+yaml"
        )

    def delete(self, ref: dict[str, Any]) -> None:
        """Delete an owned object; with its uid as a precondition when given, so an object of the same name that
        someone made since is left alone. Gone already (404) or replaced (409: the precondition failed) is fine."""
        meta = ref["metadata"]
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if meta.get("uid"):
            options["preconditions"] = {"uid": meta["uid"]}
        try:
            self._call(
                "DELETE", _path(ref["apiVersion"], ref["kind"], meta.get("namespace"), meta["name"]), body=options
            )
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    def ensure_shared(self, obj: dict[str, Any]) -> None:
        """Create if missing; otherwise make sure our owner reference is on it (never change its content)."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        current = self.get(obj["apiVersion"], obj["kind"], ns, name)
        if current is None:
            try:
                self._call("POST", _path(obj["apiVersion"], obj["kind"], ns), body=obj)
                return
            except ApiException as e:
                if e.status != 409:
                    raise
                current = self.get(obj["apiVersion"], obj["kind"], ns, name) or {}
        have = {r.get("uid") for r in current.get("metadata", {}).get("ownerReferences", []) or []}
        missing = [r for r in meta.get("ownerReferences", []) if r["uid"] not in have]
        if missing:
            ops = [{"op": "add", "path": "/metadata/ownerReferences/-", "value": r} for r in missing]
            if not current.get("metadata", {}).get("ownerReferences"):
                ops = [{"op": "add", "path": "/metadata/ownerReferences", "value": missing}]
            self._call(
                "PATCH",
                _path(obj["apiVersion"], obj["kind"], ns, name),
                body=ops,
                content_type="application/json-patch+json",
            )

    def annotate(self, api_version: str, kind: str, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self._call(
            "PATCH",
            _path(api_version, kind, namespace, name),
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = _path(f"{GROUP}/{VERSION}", KIND, namespace, name) + "/status"
        self._call("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._call("POST", _path("v1", "Event", meta["namespace"]), body=ev)
        except ApiException as e:  # events are best effort
            log.warning("could not post event %s: %s", reason, e.reason)


def load_config() -> None:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
