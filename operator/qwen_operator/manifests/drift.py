"""Has someone changed an object we own? Compare only what we set (like server-side apply's ownership).

The apiserver adds defaults (probe timeouts, termination paths, ...) but does not change what we set, so
`desired` being a subset of `observed` means no write is needed: an idle resync makes no write calls.
"""

from __future__ import annotations

import json
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
    return bool(_norm_scalar(desired) == _norm_scalar(observed))


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


class InFlightWrites:
    """Our own applies that the watch has not delivered yet.

    Right after an apply, the operator's cached view still shows the object as it was, so the next pass (often
    triggered by the very events the apply caused) sees the same drift and applies the same object again: a
    no-op for the server, but a write call each time (177 in 6 s under rapid spec edits). A write is in flight
    while the cache still shows the resourceVersion it showed before that write; applying the identical object
    again then changes nothing and is skipped. Anything else re-applies: a different desired object, a cache
    that moved (our write arrived, or someone else wrote), or ``ttl_s`` passed (a lost watch event must not
    leave drift unrepaired for long)."""

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._writes: dict[tuple[str, ...], tuple[str, str | None, float]] = {}

    @staticmethod
    def _fingerprint(obj: dict[str, Any]) -> str:
        return json.dumps(obj, sort_keys=True, default=str)

    def pending(self, key: tuple[str, ...], desired: dict[str, Any], seen_rv: str | None, now: float) -> bool:
        """True when applying ``desired`` again would repeat a write the cache has not shown yet."""
        w = self._writes.get(key)
        return w is not None and w[0] == self._fingerprint(desired) and w[1] == seen_rv and now - w[2] < self.ttl_s

    def record(self, key: tuple[str, ...], desired: dict[str, Any], seen_rv: str | None, now: float) -> None:
        self._writes[key] = (self._fingerprint(desired), seen_rv, now)

    def forget(self, owner: str) -> None:
        """Drop the entries of one owner (keys start with its uid)."""
        for k in [k for k in self._writes if k and k[0] == owner]:
            del self._writes[k]
