"""status.coldStart and the startup probe's budget, from the serving pods' measured cold starts.  Pure.

The handler reads each Ready serving pod's vLLM log and `Pulled` events once and hands plan() the pod's phases
(domain/coldstart.py) in the ClusterView.  Here they are kept in status (the last RECENT_PODS pods that turned
Ready, so the medians survive operator restarts and pods that are gone), summarised (the latest pod, each phase's
median), and turned into the startup probe's budget (docs/cold-start.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..api.models import QwenDeploymentSpec
from ..domain.coldstart import (
    DEFAULT_STARTUP_BUDGET_S,
    MAX_STARTUP_BUDGET_S,
    PHASE_NAMES,
    ColdStartPhases,
    PodColdStart,
    killed_by_startup_probe,
    median_phases,
    next_startup_budget,
    startup_budget_target,
)
from .view import ClusterView
from .workload import VLLM_CONTAINER, running_startup_budget

RECENT_PODS = 10

BudgetSource = Literal["Spec", "Measured", "Default"]


def _wire_key(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest) + "Seconds"


_WIRE_KEYS = {name: _wire_key(name) for name in PHASE_NAMES}


def phases_to_wire(phases: ColdStartPhases) -> dict[str, float]:
    """camelCase `<phase>Seconds` fields; an absent phase is left out (absent, not 0)."""
    return {_WIRE_KEYS[k]: v for k, v in phases.as_dict().items() if v is not None}


def phases_from_wire(entry: Mapping[str, Any]) -> ColdStartPhases:
    values: dict[str, float | None] = {}
    for name, key in _WIRE_KEYS.items():
        v = entry.get(key)
        values[name] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return ColdStartPhases(**values)


def record_to_wire(rec: PodColdStart) -> dict[str, Any]:
    return {"pod": rec.pod, "uid": rec.uid, "readyTime": rec.ready_time, **phases_to_wire(rec.phases)}


def recent_records(previous: Sequence[Mapping[str, Any]], seen: Mapping[str, PodColdStart]) -> list[dict[str, Any]]:
    """The recorded pods plus the newly seen ones, the last RECENT_PODS by Ready time, oldest first.  A pod
    already recorded keeps its record: read again after an operator restart, its events may have expired."""
    by_uid: dict[str, dict[str, Any]] = {}
    for entry in previous:
        if isinstance(entry, Mapping) and entry.get("pod"):
            by_uid[str(entry.get("uid") or entry["pod"])] = dict(entry)
    for uid, rec in seen.items():
        by_uid.setdefault(uid or rec.pod, record_to_wire(rec))
    ordered = sorted(by_uid.values(), key=lambda e: (str(e.get("readyTime") or ""), str(e.get("pod"))))
    return ordered[-RECENT_PODS:]


@dataclass(frozen=True)
class StartupBudget:
    """The startup probe's budget this pass wants, where it comes from, and what runs now."""

    seconds: int
    source: BudgetSource
    running: int | None = None  # the running StatefulSet's budget (None: no StatefulSet yet)
    target: int | None = None  # the least budget the measurements justify (Measured only)

    @property
    def may_wait(self) -> bool:
        """A lower measured budget waits for the next rollout: alone it would restart every pod for nothing."""
        return self.source == "Measured" and self.running is not None and self.seconds < self.running


def plan_startup_budget(
    spec: QwenDeploymentSpec, recent: Sequence[ColdStartPhases], bake_seconds: float | None, view: ClusterView
) -> StartupBudget:
    """The user's value when set; the flat default until a cold start was measured; else derived from the
    measurements (domain/coldstart.py: startup_budget_target, next_startup_budget), raised at once when the probe
    killed a starting pod."""
    running = running_startup_budget(view.statefulset)
    if spec.startup_timeout_seconds is not None:
        return StartupBudget(spec.startup_timeout_seconds, "Spec", running)
    totals = [p.total for p in recent if p.total is not None]
    if not totals:
        return StartupBudget(DEFAULT_STARTUP_BUDGET_S, "Default", running)
    median_total = median_phases(recent).total
    target = startup_budget_target(median_total if median_total is not None else max(totals), max(totals), bake_seconds)
    current = running if running is not None else DEFAULT_STARTUP_BUDGET_S
    wanted = next_startup_budget(current, target)
    if any(killed_by_startup_probe(p, VLLM_CONTAINER, current) for p in view.pods):
        wanted = max(wanted, min(MAX_STARTUP_BUDGET_S, max(DEFAULT_STARTUP_BUDGET_S, 2 * current)))
    return StartupBudget(wanted, "Measured", running, target)


@dataclass(frozen=True)
class ColdStartPlan:
    recent: list[dict[str, Any]]
    budget: StartupBudget

    def status(self, applied_budget: int) -> dict[str, Any]:
        """status.coldStart, with the budget the StatefulSet was given (it may differ from the wanted one)."""
        out: dict[str, Any] = {
            "startupProbeSeconds": applied_budget,
            "startupProbeSource": self.budget.source,
        }
        if self.budget.source == "Measured" and self.budget.seconds != applied_budget:
            out["startupProbeTargetSeconds"] = self.budget.seconds
        if self.recent:
            out["recent"] = self.recent
            out["latest"] = self.recent[-1]
            out["median"] = {
                "pods": len(self.recent),
                **phases_to_wire(median_phases([phases_from_wire(e) for e in self.recent])),
            }
        return out


def plan_cold_start(
    spec: QwenDeploymentSpec, view: ClusterView, previous: Mapping[str, Any], bake_seconds: float | None
) -> ColdStartPlan:
    """The recorded cold starts and the startup budget they justify.  ``previous`` is status.coldStart."""
    prev_recent = previous.get("recent") or []
    recent = recent_records(prev_recent if isinstance(prev_recent, list) else [], view.cold_starts)
    phases = [phases_from_wire(e) for e in recent]
    return ColdStartPlan(recent, plan_startup_budget(spec, phases, bake_seconds, view))
