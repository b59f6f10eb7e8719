"""The model-weight cache: a PVC per checkpoint, the hydration Job that fills it once, and its state.  Pure.

States (status.weightCache.state, condition WeightsReady):

    Hydrating --Job succeeds--> Ready (the operator records the commit, size and file count on the PVC)
    Hydrating --Job fails--> Failed, with the script's reason: ModelNotFound, RevisionNotFound, GatedModel,
                             InsufficientSpace, VerifyFailed or DownloadFailed

Until Ready, nothing mounts the volume: no serving pod is created (running pods keep their template) and the
compile-cache bake, which loads the weights too, waits.  The Job is the volume's only writer (its name is the
lock across deployments, a file lock inside the volume the lock across Jobs); the operator is the only writer of
what the cache holds in the API (annotations on the PVC), read from the Job pod's termination message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..api.models import QwenDeploymentSpec
from ..domain.weight_cache import (
    DEFAULT_REVISION,
    quantity_bytes,
    weight_key,
    weight_object_name,
)
from .cache import bake_progress, job_pod_spec, job_state
from .status import ConditionSet
from .view import ClusterView, Object
from .workload import LABEL_CACHE_KEY, MANAGED_BY, WEIGHT_CACHE_APP, Owner

ANNOTATION_COMMIT = "qwenops.dev/weights-commit"
ANNOTATION_BYTES = "qwenops.dev/weights-bytes"
ANNOTATION_FILES = "qwenops.dev/weights-files"
ANNOTATION_SECONDS = "qwenops.dev/weights-hydration-seconds"
ANNOTATION_HYDRATED_AT = "qwenops.dev/weights-hydrated-at"
HYDRATE_CONTAINER = "hydrate"
VOLUME_MOUNT = "/cache"
# The script's exit codes for failures a retry cannot fix (jobs/hydrate_weights.py EXIT_CODES): fail the Job at once.
PERMANENT_EXIT_CODES = [2, 3, 4, 5, 6]


def hydrate_script() -> str:
    """The script the Job runs, as text: it runs with the serving image's Python, not the operator's package."""
    return resources.files("qwen_operator.jobs").joinpath("hydrate_weights.py").read_text()


def weight_labels(key: str) -> dict[str, str]:
    # LABEL_CACHE_KEY puts the PVC, the Job and its pods in the operator's cache indexes (handlers/indexes.py).
    return {
        "app.kubernetes.io/name": WEIGHT_CACHE_APP,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_CACHE_KEY: key,
    }


def build_weights_pvc(spec: QwenDeploymentSpec, namespace: str, owner: Owner) -> Object:
    key = weight_key(spec)
    st = spec.model.source.cache.storage
    pvc_spec: dict[str, Any] = {"accessModes": [st.access_mode], "resources": {"requests": {"storage": st.size}}}
    if st.storage_class_name:
        pvc_spec["storageClassName"] = st.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": weight_object_name(key),
            "namespace": namespace,
            "labels": weight_labels(key),
            "ownerReferences": [owner.reference(controller=False)],
        },
        "spec": pvc_spec,
    }


def _hydrate_env(spec: QwenDeploymentSpec) -> list[dict[str, Any]]:
    src = spec.model.source
    env: list[dict[str, Any]] = [
        {"name": "QWEN_MODEL", "value": spec.model.name},
        {"name": "QWEN_REVISION", "value": spec.model.revision or DEFAULT_REVISION},
        {"name": "QWEN_VOLUME", "value": VOLUME_MOUNT},
        {"name": "QWEN_VOLUME_BYTES", "value": str(quantity_bytes(src.cache.storage.size))},
        {"name": "HF_HOME", "value": "/tmp/hf"},  # the client's own state, off the cache volume
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if src.endpoint:
        env.append({"name": "HF_ENDPOINT", "value": src.endpoint})
    if src.token_secret_ref is not None:
        ref = src.token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def build_hydrate_job(spec: QwenDeploymentSpec, namespace: str, owner: Owner) -> Object:
    key = weight_key(spec)
    name = weight_object_name(key)
    container = {
        "name": HYDRATE_CONTAINER,
        "image": spec.image,  # vLLM's image ships the Hugging Face client the script uses
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", hydrate_script()],
        "env": _hydrate_env(spec),
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "weights", "mountPath": VOLUME_MOUNT}],
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec = job_pod_spec(spec, container, [{"name": "weights", "persistentVolumeClaim": {"claimName": name}}])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": weight_labels(key),
            "ownerReferences": [owner.reference(controller=False)],
        },
        "spec": {
            "backoffLimit": 2,  # network errors (exit 7) retry; the rest fail the Job at once
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": HYDRATE_CONTAINER,
                            "operator": "In",
                            "values": PERMANENT_EXIT_CODES,
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "podReplacementPolicy": "Failed",  # one writer: a replacement starts once the lost pod is gone
            "activeDeadlineSeconds": spec.model.source.cache.hydrate_timeout_seconds,
            "template": {"metadata": {"labels": weight_labels(key)}, "spec": pod_spec},
        },
    }


def job_outcome(pods: list[Object]) -> dict[str, Any] | None:
    """The script's JSON outcome from the newest terminated hydration pod's termination message (None: none yet)."""
    newest: tuple[str, dict[str, Any]] | None = None
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            try:
                outcome = json.loads(term.get("message") or "")
            except ValueError:
                continue
            if isinstance(outcome, dict) and (newest is None or term.get("finishedAt", "") >= newest[0]):
                newest = (term.get("finishedAt") or "", outcome)
    return newest[1] if newest else None


@dataclass
class WeightsPlan:
    """What the weight cache asks of this reconcile pass."""

    status: dict[str, Any]  # status.weightCache
    ready: bool = False  # the volume holds a verified checkpoint: pods and the bake may mount it
    ensure_shared: list[Object] = field(default_factory=list)
    mark_hydrated: tuple[str, dict[str, str]] | None = None  # (PVC name, annotations) to record a hydration


def _annotations(obj: Object | None) -> dict[str, Any]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def _owner_names(obj: Object | None) -> list[str]:
    return sorted(r.get("name", "?") for r in ((obj or {}).get("metadata") or {}).get("ownerReferences") or [])


def _lacks_owner(obj: Object | None, uid: str) -> bool:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return obj is None or uid not in {r.get("uid") for r in refs}


def _record(outcome: dict[str, Any]) -> dict[str, str]:
    return {
        ANNOTATION_COMMIT: str(outcome.get("commit", "unknown")),
        ANNOTATION_BYTES: str(outcome.get("bytes", "")),
        ANNOTATION_FILES: str(outcome.get("files", "")),
        ANNOTATION_SECONDS: str(outcome.get("seconds", "")),
        ANNOTATION_HYDRATED_AT: str(outcome.get("hydratedAt", "")),
    }


def _ready_status(ann: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"state": "Ready", "commit": ann.get(ANNOTATION_COMMIT)}
    for key, field_name, kind in (
        (ANNOTATION_BYTES, "sizeBytes", int),
        (ANNOTATION_FILES, "files", int),
        (ANNOTATION_SECONDS, "hydrationSeconds", float),
    ):
        try:
            out[field_name] = kind(ann[key])
        except (KeyError, ValueError):
            pass
    if ann.get(ANNOTATION_HYDRATED_AT):
        out["hydratedAt"] = ann[ANNOTATION_HYDRATED_AT]
    return out


def plan_weight_cache(
    spec: QwenDeploymentSpec, view: ClusterView, namespace: str, owner: Owner, cs: ConditionSet
) -> WeightsPlan:
    """Where the hydration stands, the WeightsReady condition (set in ``cs``) and status.weightCache."""
    name = weight_object_name(weight_key(spec))
    pvc, job = view.cache_objects(name)
    ann = _annotations(pvc)
    out = WeightsPlan(status={"key": weight_key(spec), "volume": name, "hydrateJob": name})
    if _lacks_owner(pvc, owner.uid):
        out.ensure_shared.append(build_weights_pvc(spec, namespace, owner))
    if ANNOTATION_COMMIT not in ann:
        state, job_message = job_state(job)
        outcome = job_outcome(view.bake_pods(name)) if state in ("Succeeded", "Failed") else None
        if state == "Succeeded" and pvc is not None:
            ann = {**ann, **_record(outcome or {})}
            out.mark_hydrated = (name, _record(outcome or {}))
        elif state == "Failed":
            _failed(out, cs, name, spec.model.name, outcome, job_message)
            return out
        else:
            if _lacks_owner(job, owner.uid):
                out.ensure_shared.append(build_hydrate_job(spec, namespace, owner))
            _hydrating(out, cs, name, spec, job, view)
            return out
    out.ready = True
    out.status.update(_ready_status(ann))
    out.status["users"] = sorted(set(_owner_names(pvc)) | {owner.name})
    cs.set(
        "WeightsReady",
        True,
        "Hydrated",
        f"Volume {name} holds {spec.model.name} at commit {out.status.get('commit')}; pods mount it read-only.",
    )
    return out


def _hydrating(
    out: WeightsPlan, cs: ConditionSet, name: str, spec: QwenDeploymentSpec, job: Object | None, view: ClusterView
) -> None:
    progress = bake_progress(job, view.bake_pods(name)).replace("bake pod", "hydration pod")
    revision = spec.model.revision or DEFAULT_REVISION
    cs.set(
        "WeightsReady",
        False,
        "Hydrating",
        f"Job {name} is downloading {spec.model.name}@{revision} into volume {name}; pods start once it is verified."
        + (f" Now: {progress.rstrip('. ')}." if progress else ""),
    )
    out.status["state"] = "Hydrating"


def _failed(
    out: WeightsPlan, cs: ConditionSet, name: str, model: str, outcome: dict[str, Any] | None, job_message: str
) -> None:
    reason = str((outcome or {}).get("reason") or "HydrationFailed")
    why = str((outcome or {}).get("message") or job_message or "no reason given")
    cs.set(
        "WeightsReady",
        False,
        reason,
        f"Hydration Job {name} failed: {why}. Nothing mounts the volume. Fix the cause, then delete the Job "
        f"(kubectl delete job {name}) to retry"
        + (" (and the PVC, to get a larger one)." if reason == "InsufficientSpace" else "."),
    )
    out.status.update({"state": "Failed", "reason": reason, "message": why[:500]})
