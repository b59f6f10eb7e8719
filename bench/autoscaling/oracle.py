"""Oracle reference: the fewest replicas per interval that meet the SLO, knowing the future and with
zero cold start.

For each interval [t, t + interval) in order, starting from the fleet state the previous choices
left (requests still in flight carry over), try replica counts n and simulate the interval's arrivals
on the same service model and router until every one of them got its first token; keep the smallest
n for which at least ``goal`` of them meet the SLO (TTFT only, or TTFT and
per-request TPOT: ``joint``; with it each interval's requests are followed until they finish) (the search assumes more replicas never
hurt and probes around the previous interval's answer).  Replicas added are Ready at once; replicas
removed drain their in-flight requests, as in the main simulation.

This is a greedy, per-interval lower reference, not a proof of optimality: it cannot pre-scale
(it has no cold start to hide), and it may trade a worse interval for a cheaper one only within the
per-interval goal.  Its schedule is replayed through the main simulator as a check.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .service import ServiceModel
from .sim import GONE, Fleet
from .traces import Request

TPOT_SLO_S = 0.100  # per-request TPOT bound of the joint SLO (why: bench/autoscaling/README.md, "The SLO")


def meets_slo(r: Request, joint: bool, tpot_slo_s: float = TPOT_SLO_S) -> bool:
    """TTFT within the request's bound and, for the joint SLO, its mean time per output token within ``tpot_slo_s``."""
    if r.ttft > r.slo:
        return False
    return not joint or r.tpot <= tpot_slo_s


@dataclass
class OracleResult:
    interval_s: float
    counts: list[int]
    gpu_seconds: float
    requests: list[Request]
    trials: int


def _clone(fleet: Fleet, t0: float, arrivals: list[Request]) -> Fleet:
    memo: dict[int, object] = {id(fleet.sm): fleet.sm}
    f = copy.copy(fleet)
    f.replicas = copy.deepcopy(fleet.replicas, memo)
    f.routable = [f.replicas[r.rid] for r in fleet.routable]
    f.router = copy.deepcopy(fleet.router)
    f.pending = copy.deepcopy(fleet.pending, memo)
    f.heap = []
    f.seq = 0
    f.arrivals = arrivals
    f.ai = 0
    for r in f.replicas:
        if r.state != GONE:
            f._touch(r, t0)
    return f


def _attainment(fleet: Fleet, arrivals: list[Request], t_end: float, t_limit: float, joint: bool) -> float:
    fleet.run_until(t_end)
    todo = [r for r in arrivals if not r.rejected]
    if not todo:
        return 1.0
    t = t_end
    while t < t_limit and any((r.done if joint else r.ttft) == math.inf for r in todo):
        t += 5.0
        fleet.run_until(t)
    ok = sum(1 for r in todo if meets_slo(r, joint))
    return ok / len(todo)


def _start_fleet(reqs: list[Request], sm: ServiceModel, router: str, n0: int) -> Fleet:
    fleet = Fleet(sm, 0.0, router=router)
    fleet.pending = deque()
    fleet.arrivals = reqs
    for _ in range(n0):
        fleet.add_pod(0.0, instant=True)
    return fleet


def _window_end(reqs: list[Request], idx: int, t1: float) -> int:
    """Index just past the requests from ``idx`` on that arrive before ``t1``."""
    j = idx
    while j < len(reqs) and reqs[j].arrival < t1:
        j += 1
    return j


def _probe(fleet: Fleet, window: list[Request], n: int, t0: float, t1: float, goal: float, joint: bool) -> bool:
    """Whether ``n`` replicas from ``t0`` on serve the window's arrivals within the goal (on a copy of the fleet)."""
    arr = [copy.copy(r) for r in window]
    f = _clone(fleet, t0, arr)
    f.set_desired(n, t0, instant=True)
    f.flush_pending(t0)
    return _attainment(f, arr, t1, t1 + 600.0, joint) >= goal


def _search(prev: int, n_max: int, ok: Callable[[int], bool]) -> int:
    """The smallest n with ok(n) if ok is monotone: galloping search around the previous answer, then bisection."""
    if ok(prev):
        hi = prev
        lo = prev - 1
        step = 1
        while lo >= 1 and ok(lo):
            hi = lo
            step *= 2
            lo = hi - step
        lo = max(lo, 0)
    else:
        lo = prev
        step = 1
        hi = prev + 1
        while hi < n_max and not ok(hi):
            lo = hi
            step *= 2
            hi = min(n_max, hi + step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid >= 1 and ok(mid):
            hi = mid
        else:
            lo = mid
    return max(1, hi)


def _choose_count(
    fleet: Fleet,
    window: list[Request],
    t0: float,
    t1: float,
    prev: int,
    *,
    n_max: int,
    goal: float,
    joint: bool,
) -> tuple[int, int]:
    """The interval's replica count and the number of simulations it took."""
    if not window:
        n = 1 if not any(r.outstanding() for r in fleet.routable) else max(1, prev - 1)
        return max(1, min(prev, n)), 0
    cache: dict[int, bool] = {}

    def ok(n: int) -> bool:
        if n not in cache:
            cache[n] = _probe(fleet, window, n, t0, t1, goal, joint)
        return cache[n]

    return _search(prev, n_max, ok), len(cache)


def _gpu_seconds(fleet: Fleet, horizon: float) -> float:
    gpu = 0.0
    for r in fleet.replicas:
        end = min(r.ended, horizon)
        if end > r.created:
            gpu += end - r.created
    return gpu


def compute_oracle(
    requests: Sequence[Request],
    sm: ServiceModel,
    *,
    goal: float = 0.99,
    interval_s: float = 60.0,
    n_max: int = 64,
    n0: int = 1,
    router: str = "least-work",
    joint: bool = False,
) -> OracleResult:
    reqs = list(requests)
    fleet = _start_fleet(reqs, sm, router, n0)
    horizon = (reqs[-1].arrival if reqs else 0.0) + 120.0
    n_int = max(1, math.ceil(horizon / interval_s))
    counts: list[int] = []
    trials = 0
    idx = 0
    prev = n0
    for i in range(n_int):
        t0, t1 = i * interval_s, (i + 1) * interval_s
        j = _window_end(reqs, idx, t1)
        n, tried = _choose_count(fleet, reqs[idx:j], t0, t1, prev, n_max=n_max, goal=goal, joint=joint)
        trials += tried
        fleet.set_desired(n, t0, instant=True)
        fleet.flush_pending(t0)
        fleet.run_until(t1)
        counts.append(n)
        prev = n
        idx = j
    return OracleResult(interval_s, counts, _gpu_seconds(fleet, horizon), reqs, trials)
