"""Has someone changed an object we own? Compare only what we set (like server-side apply's ownership).

The apiserver adds defaults (probe timeouts, termination paths, ...) but does not change what we set, so
`desired` being a subset of `observed` means no write is needed: an idle resync makes no write calls.
"""

from __future__ import annotations

from typing import Any

# Fields the apiserver rewrites in an equivalent form, or that we do not own.
_IGNORED_TOP = {"status"}
_IGNORED_META = {"ownerReferences"}


def _norm_scalar(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return str(v)


def is_subset(desired: Any, observed: Any) -> bool:
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return False
        return all(is_subset(v, observed.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return False
        return all(is_subset(d, o) for d, o in zip(desired, observed))
    if desired == {} or desired == []:
        return True
    return _norm_scalar(desired) == _norm_scalar(observed)


def needs_apply(desired: dict[str, Any], observed: dict[str, Any] | None) -> bool:
    if observed is None:
        return True
    d = {k: v for k, v in desired.items() if k not in _IGNORED_TOP}
    d["metadata"] = {k: v for k, v in desired.get("metadata", {}).items() if k not in _IGNORED_META}
    if not is_subset(d, observed):
        return True
    # Ownership is ours to keep: a lost owner reference would orphan the object.
    want = {(r["uid"]) for r in desired.get("metadata", {}).get("ownerReferences", [])}
    have = {(r.get("uid")) for r in observed.get("metadata", {}).get("ownerReferences", []) or []}
    return not want <= have
