"""The model-weight cache's identity: which checkpoint a volume holds, and where pods find it.  Pure.

One PVC per (endpoint, model, revision as written) in a namespace, shared by every QwenDeployment serving that
checkpoint (docs/weight-cache.md).  The revision is keyed as written, not as resolved: the hydration Job resolves a
branch to a commit once and the volume keeps that commit, so a moving branch never changes a running fleet; pinning
a new commit is a new key, a new volume and a rollout.
"""

from __future__ import annotations

import hashlib
import json

from ..api.models import QwenDeploymentSpec

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
# Inside the volume: the verified checkpoint (renamed into place only after verification) and the record of it.
MODEL_DIR = "model"
RECORD_FILE = "hydration.json"


def weight_cache_enabled(spec: QwenDeploymentSpec) -> bool:
    return spec.model.source.type == "hf" and spec.model.source.cache.enabled


def weight_key(spec: QwenDeploymentSpec) -> str:
    """Hex digest of the checkpoint's identity (20 hex chars, as the compile cache's key)."""
    src = spec.model.source
    ident = {
        "endpoint": (src.endpoint or DEFAULT_ENDPOINT).rstrip("/"),
        "model": spec.model.name,
        "revision": spec.model.revision or DEFAULT_REVISION,
    }
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def weight_object_name(key: str) -> str:
    """Name of the PVC and the hydration Job for a key: shared by every deployment in the namespace with it."""
    return f"qwen-weights-{key[:16]}"


def quantity_bytes(quantity: str) -> int:
    """Bytes of a Kubernetes quantity as the API accepts for sizes here (POSITIVE_QUANTITY in api/models.py)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix in sorted(units, key=len, reverse=True):
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * units[suffix])
    return int(float(quantity))
