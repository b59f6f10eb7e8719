"""Layer 4, pure: the autoscaling policy of a QwenDeployment.

``decide(observation, state, config) -> Decision`` is a pure function: no Kubernetes, no clock, no I/O.
The operator calls it on a Kopf timer (every 10-15 s) with what it read from Prometheus and from the
StatefulSet, and stores ``Decision.state`` (``PolicyState.to_dict()``) in the resource's status, so a
restarted operator keeps its stabilization windows and what it learned about replica capacity.  The
benchmark (bench/autoscaling) calls this very function, so the benchmark measures what the operator does.

Demand model
------------
vLLM exposes per replica the running sequences ``r`` (admitted: prefilling or decoding), the waiting
requests ``w`` (not admitted yet) and the KV-cache usage ``k`` (0..1).  Little's law in concurrency
units: the sequences in flight, divided by what one replica should hold, is the number of replicas::

    demand = (mean_window(sum r) + max(0, sum w - q* * N_ready)) / c_target
    desired = ceil(demand) + warm_pool,  clamped to [min_replicas + warm_pool, max_replicas]

* ``sum r`` is averaged over ``demand_window_s`` (a single scrape of a queueing process is noisy, and a
  burst shorter than a cold start cannot be served by a scale-up anyway: the warm pool absorbs it).
  Waiting requests beyond the allowance ``q*`` (``target_queue_per_replica``) count at once: a standing
  queue is the direct symptom of a TTFT breach, and those requests need sequence slots too.
* ``c_target`` is the concurrency a replica should carry: ``target_utilization * c_cap``, and never more
  than the sequences of the current mix that fit under the KV target (``r * kv_cache_target / k``).
* ``c_cap``, the concurrency at which a replica stops meeting the queue target, is *learned*: it starts at
  ``prior_capacity`` (default ``max_num_seqs``, the slot bound), moves halfway down to the running
  sequences per replica whenever the window's mean waiting per replica exceeds ``q*``, moves up when
  replicas are seen carrying more without a queue, and relaxes (in log space, slowly) back towards the
  prior.  It lives in the persisted state.  Why learned: where a replica saturates depends on the request
  mix (short chat prompts fill the 256 slots; 15k-token prompts saturate prefill compute at a few
  sequences), and the gauges show it only when it happens.
* ``target_utilization`` is 0.5 because running concurrency grows convexly with offered load (batch
  slows the step, which lengthens every request): half the queueing concurrency is already close to the
  throughput limit, while the other half is headroom against bursts during a cold start.
* ``q*`` can be derived from a TTFT SLO: a request that finds ``q`` waiting ahead of it on a replica
  admitting ``mu`` requests/s waits ``q / mu``; giving queueing half the SLO, ``q* = 0.5 * slo * mu``.

The warm pool are Ready replicas above demand: bursts land on warm engines instead of paying a
multi-minute cold start.

Safety rules (each one unit-tested)
-----------------------------------
* Missing, stale, NaN/inf or negative metrics: hold the current size, ``active=False``; never jump to 0
  or to max on garbage, and learn nothing from it.
* Pods that are starting are capacity on its way: the recommendation is a *total* compared with the
  current desired size (which already counts them), never an increment on top of them.
* Never below ``min_replicas + warm_pool`` (capped at max), never above ``max_replicas``.
* Scale-up is immediate (optional stabilization window), limited to max(4, +100 %) per decision.
* Scale-down only when every recommendation of the last ``scale_down_stabilization_s`` is lower than the
  current size, and by at most ``max_scale_down_step`` replicas per ``scale_down_period_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

__all__ = [
    "AutoscalingConfig",
    "ReplicaSample",
    "Observation",
    "PolicyState",
    "Decision",
    "decide",
    "floor_replicas",
]

# Reason vocabulary (CamelCase, stable: used in status conditions and Kubernetes events).
SCALE_UP_QUEUE = "ScaleUpQueue"
SCALE_UP_DEMAND = "ScaleUpDemand"
SCALE_UP_WARM_POOL = "ScaleUpWarmPool"
SCALE_UP_FLOOR = "ScaleUpToFloor"
SCALE_DOWN_IDLE = "ScaleDownIdle"
SCALE_DOWN_DEMAND = "ScaleDownDemand"
SCALE_DOWN_CEILING = "ScaleDownToMax"
HOLD_STABILIZING = "HoldStabilizing"
HOLD_AT_TARGET = "HoldAtTarget"
HOLD_WAITING_FOR_PODS = "HoldWaitingForStartingPods"
HOLD_METRICS_MISSING = "HoldMetricsMissing"
HOLD_METRICS_STALE = "HoldMetricsStale"
HOLD_METRICS_INVALID = "HoldMetricsInvalid"
CLAMPED_TO_MAX = "ClampedToMax"


@dataclass(frozen=True)
class AutoscalingConfig:
    """Knobs of the policy.  Defaults come from first principles, not from fitting a trace."""

    min_replicas: int = 1
    max_replicas: int = 8
    # mean waiting requests per Ready replica to aim for (over the demand window); 0.25 = "no standing queue"
    target_queue_per_replica: float = 0.25
    ttft_slo_seconds: float | None = None
    replica_admission_rps: float | None = None  # with ttft_slo_seconds, derives the queue target
    max_num_seqs: int = 256  # vLLM --max-num-seqs: the slot bound of a replica
    target_utilization: float = 0.5
    kv_cache_target: float = 0.8  # llm-d's saturation level
    warm_pool: int = 1
    scale_up_stabilization_s: float = 0.0
    scale_down_stabilization_s: float = 300.0  # >= a cold start: a scale-down is not regretted within one
    max_scale_up_step: int = 0  # 0: max(4 replicas, +100 %) per decision (the HPA default)
    max_scale_down_step: int = 1
    scale_down_period_s: float = 60.0  # one demand window: see the effect of a step before the next
    metrics_max_age_s: float = 60.0  # four 15 s scrapes
    min_sample_fraction: float = 0.5  # fewer fresh samples than this fraction of Ready replicas: hold
    demand_window_s: float = 60.0
    learn_capacity: bool = True
    prior_capacity: float | None = None  # a-priori c_cap (e.g. from capacity planning); default max_num_seqs
    capacity_relax_s: float = 21600.0  # e-folding time (log space) of the learned c_cap back to the prior

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError("min_replicas must be >= 0")
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError("max_replicas must be >= max(1, min_replicas)")
        if self.warm_pool < 0:
            raise ValueError("warm_pool must be >= 0")
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be >= 1")
        if not 0.0 < self.target_utilization <= 1.0:
            raise ValueError("target_utilization must be in (0, 1]")
        if not 0.0 < self.kv_cache_target <= 1.0:
            raise ValueError("kv_cache_target must be in (0, 1]")
        if self.target_queue_per_replica <= 0:
            raise ValueError("target_queue_per_replica must be > 0")
        if self.ttft_slo_seconds is not None and self.ttft_slo_seconds <= 0:
            raise ValueError("ttft_slo_seconds must be > 0")
        if self.replica_admission_rps is not None and self.replica_admission_rps <= 0:
            raise ValueError("replica_admission_rps must be > 0")
        if self.max_scale_up_step < 0 or self.max_scale_down_step < 1:
            raise ValueError("max_scale_up_step must be >= 0 and max_scale_down_step >= 1")
        if self.metrics_max_age_s <= 0 or self.demand_window_s < 0:
            raise ValueError("metrics_max_age_s must be > 0 and demand_window_s >= 0")
        if self.prior_capacity is not None and self.prior_capacity <= 0:
            raise ValueError("prior_capacity must be > 0")

    def queue_target(self) -> float:
        """Waiting requests per replica to aim for, derived from the TTFT SLO when possible."""
        if self.ttft_slo_seconds is not None and self.replica_admission_rps is not None:
            return max(0.25, 0.5 * self.ttft_slo_seconds * self.replica_admission_rps)
        return self.target_queue_per_replica

    def prior(self) -> float:
        """c_cap assumed before anything was learned."""
        p = self.prior_capacity if self.prior_capacity is not None else float(self.max_num_seqs)
        return max(1.0, min(float(self.max_num_seqs), p))


@dataclass(frozen=True)
class ReplicaSample:
    """One Ready replica's gauges from one scrape: vllm:num_requests_waiting, vllm:num_requests_running,
    vllm:kv_cache_usage_perc (a fraction, 0..1)."""

    waiting: float
    running: float
    kv_cache_usage: float
    name: str = ""


@dataclass(frozen=True)
class Observation:
    """What the operator saw at ``time`` (seconds on any clock the state shares).

    ``samples``: one per Ready replica with metrics.  ``ready_replicas`` counts Ready pods (with or without
    a sample); ``starting_replicas`` counts pods created but not Ready yet (capacity on its way).
    ``current_desired`` is the StatefulSet's spec.replicas.  ``metrics_time`` is the timestamp of the
    oldest sample used; ``metrics_missing`` is set by the adapter when the query failed."""

    time: float
    samples: tuple[ReplicaSample, ...]
    ready_replicas: int
    starting_replicas: int
    current_desired: int
    metrics_time: float | None
    metrics_missing: bool = False


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class PolicyState:
    """The minimum history the policy needs; JSON-serializable for the resource's status.

    ``recommendations``: (time, recommended replicas) within the longest stabilization window.
    ``window``: (time, running per Ready replica, waiting per Ready replica) within the demand window.
    ``capacity`` / ``capacity_time``: learned c_cap and when it was computed (None: the prior applies).
    """

    recommendations: tuple[tuple[float, int], ...] = ()
    window: tuple[tuple[float, float, float], ...] = ()
    last_scale_up_time: float | None = None
    last_scale_down_time: float | None = None
    capacity: float | None = None
    capacity_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendations": [[t, n] for t, n in self.recommendations],
            "window": [[t, r, w] for t, r, w in self.window],
            "lastScaleUpTime": self.last_scale_up_time,
            "lastScaleDownTime": self.last_scale_down_time,
            "capacity": self.capacity,
            "capacityTime": self.capacity_time,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PolicyState":
        """Tolerant: a missing, partial or corrupted status gives a valid (possibly empty) state."""
        if not isinstance(d, Mapping):
            return cls()
        recs: list[tuple[float, int]] = []
        for item in d.get("recommendations") or ():
            if isinstance(item, (list, tuple)) and len(item) == 2:
                t, n = _num(item[0]), _num(item[1])
                if t is not None and n is not None and n >= 0:
                    recs.append((t, int(n)))
        win: list[tuple[float, float, float]] = []
        for item in d.get("window") or ():
            if isinstance(item, (list, tuple)) and len(item) == 3:
                t, r, w = (_num(v) for v in item)
                if t is not None and r is not None and w is not None and r >= 0 and w >= 0:
                    win.append((t, r, w))
        cap = _num(d.get("capacity"))
        return cls(
            recommendations=tuple(sorted(recs)),
            window=tuple(sorted(win)),
            last_scale_up_time=_num(d.get("lastScaleUpTime")),
            last_scale_down_time=_num(d.get("lastScaleDownTime")),
            capacity=cap if cap is not None and cap > 0 else None,
            capacity_time=_num(d.get("capacityTime")),
        )


@dataclass(frozen=True)
class Decision:
    """What to do.  ``desired_replicas`` is the StatefulSet size to set; ``recommendation`` the raw,
    unstabilized size the demand model asks for; ``active`` is False when the metrics could not be
    trusted and the policy held the current size."""

    desired_replicas: int
    reason: str
    message: str
    observed_queue: float
    active: bool
    state: PolicyState
    recommendation: int = 0
    demand: float = 0.0
    capacity: float = 0.0


def floor_replicas(config: AutoscalingConfig) -> int:
    """The size the fleet never goes below: min_replicas + warm_pool, capped at max_replicas."""
    return min(config.max_replicas, config.min_replicas + config.warm_pool)


def _clamp(n: int, config: AutoscalingConfig) -> int:
    return max(floor_replicas(config), min(config.max_replicas, n))


def _finite_nonneg(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _validate(obs: Observation, config: AutoscalingConfig) -> tuple[str, str] | None:
    """(reason, message) when the observation cannot be trusted, else None."""
    if obs.metrics_missing:
        return HOLD_METRICS_MISSING, "the metrics query failed"
    for name, v in (("ready", obs.ready_replicas), ("starting", obs.starting_replicas),
                    ("desired", obs.current_desired)):
        if not isinstance(v, int) or v < 0:
            return HOLD_METRICS_INVALID, f"bad {name} replica count {v!r}"
    if not isinstance(obs.time, (int, float)) or not math.isfinite(obs.time):
        return HOLD_METRICS_INVALID, f"bad observation time {obs.time!r}"
    if obs.ready_replicas == 0:
        return None  # nothing to measure; decide() handles it
    if obs.metrics_time is None or not _finite_nonneg(abs(obs.metrics_time)):
        return HOLD_METRICS_MISSING, "no metrics timestamp"
    age = obs.time - obs.metrics_time
    if age > config.metrics_max_age_s:
        return HOLD_METRICS_STALE, f"metrics are {age:.0f}s old (limit {config.metrics_max_age_s:.0f}s)"
    for s in obs.samples:
        if not (_finite_nonneg(s.waiting) and _finite_nonneg(s.running) and _finite_nonneg(s.kv_cache_usage)):
            return HOLD_METRICS_INVALID, (f"garbage sample from {s.name or '?'}: waiting={s.waiting!r} "
                                          f"running={s.running!r} kv={s.kv_cache_usage!r}")
        if s.kv_cache_usage > 1.0 + 1e-6:
            return HOLD_METRICS_INVALID, f"kv_cache_usage {s.kv_cache_usage} > 1 from {s.name or '?'}"
    if not obs.samples or len(obs.samples) < config.min_sample_fraction * obs.ready_replicas:
        return HOLD_METRICS_MISSING, f"samples from {len(obs.samples)} of {obs.ready_replicas} Ready replicas"
    return None


def _learn_capacity(prev: float | None, prev_time: float | None, now: float, run_pr: float, wait_pr: float,
                    q_target: float, config: AutoscalingConfig) -> float:
    """Next c_cap from the window's mean running and waiting per replica (see the module docstring)."""
    prior = config.prior()
    cap = prev if prev is not None else prior
    if prev is not None and prev_time is not None and config.capacity_relax_s > 0:
        decay = math.exp(-max(0.0, now - prev_time) / config.capacity_relax_s)
        cap = math.exp(math.log(prior) + (math.log(cap) - math.log(prior)) * decay)
    if config.learn_capacity and run_pr > 0:
        if wait_pr > q_target:
            cap = 0.5 * cap + 0.5 * min(cap, run_pr)  # queue target exceeded at run_pr: halfway there
        elif wait_pr <= 0.5 * q_target and run_pr > cap:
            cap = run_pr  # carried that many without a queue: c_cap is at least that
    return max(1.0, min(float(config.max_num_seqs), cap))


def _covered(state: PolicyState, now: float, window_s: float) -> bool:
    """True when the recommendation history reaches back a full window (a restart starts it afresh)."""
    return window_s <= 0 or any(t <= now - window_s for t, _ in state.recommendations)


def decide(obs: Observation, state: PolicyState, config: AutoscalingConfig) -> Decision:
    """Map an observation and the previous state to a replica count, a reason and the next state."""
    floor = floor_replicas(config)
    current = obs.current_desired if isinstance(obs.current_desired, int) and obs.current_desired >= 0 else floor
    held = _clamp(current, config)

    # 1. Trust nothing we cannot check: hold the current size (clamped into bounds; never 0 or max).
    bad = _validate(obs, config)
    if bad is not None:
        reason, why = bad
        return Decision(held, reason, f"holding {held} replicas: {why}", 0.0, False, state, held)
    if obs.ready_replicas == 0:
        if obs.starting_replicas > 0:
            return Decision(held, HOLD_WAITING_FOR_PODS,
                            f"no Ready replica yet, {obs.starting_replicas} starting: holding {held}",
                            0.0, False, state, held)
        return Decision(held, HOLD_METRICS_MISSING if held == current else SCALE_UP_FLOOR,
                        f"no Ready or starting replica: holding the floor-clamped size {held}", 0.0, False, state,
                        held)

    # 2. Observed totals (scaled up to every Ready replica when a few samples are missing).
    ready = obs.ready_replicas
    scale = ready / len(obs.samples)
    waiting = sum(s.waiting for s in obs.samples) * scale
    running = sum(s.running for s in obs.samples) * scale
    kv = sum(s.kv_cache_usage for s in obs.samples) * scale

    # 3. Windowed means per replica, learned capacity, target concurrency.
    win_s = config.demand_window_s
    window = tuple(x for x in state.window if obs.time - win_s < x[0] < obs.time) + ((obs.time, running / ready,
                                                                                      waiting / ready),)
    run_pr = sum(x[1] for x in window) / len(window)
    wait_pr = sum(x[2] for x in window) / len(window)
    q_target = config.queue_target()
    cap = _learn_capacity(state.capacity, state.capacity_time, obs.time, run_pr, wait_pr, q_target, config)
    c_target = config.target_utilization * cap
    kv_bound = ""
    if kv > 1e-3 and running >= 1:
        c_kv = running * config.kv_cache_target / kv  # sequences of the current mix under the KV target
        if c_kv < c_target:
            c_target, kv_bound = c_kv, " (KV-bound)"
    c_target = max(1.0, c_target)

    # 4. Demand and recommendation.
    excess_waiting = max(0.0, wait_pr - q_target) * ready
    # a saturated replica holds c_cap sequences whatever the overload: count no more than that (the
    # queue term carries the rest), or the convex pile-up of running sequences would read as 2-3x demand
    demand = (min(run_pr, cap) * ready + excess_waiting) / c_target
    need = math.ceil(demand - 1e-9) if demand > 0 else 0
    wanted = need + config.warm_pool
    rec = _clamp(wanted, config)
    keep = max(config.scale_down_stabilization_s, config.scale_up_stabilization_s)
    recs = tuple((t, n) for t, n in state.recommendations if obs.time - keep <= t < obs.time) + ((obs.time, rec),)
    new_state = replace(state, recommendations=recs, window=window, capacity=cap, capacity_time=obs.time)
    numbers = (f"waiting {waiting:.0f}, running {running:.0f} (window mean {run_pr:.1f}/replica) on {ready} Ready "
               f"+ {obs.starting_replicas} starting; capacity {cap:.1f} seqs/replica, target {c_target:.1f}"
               f"{kv_bound}; demand {demand:.2f} replicas + warm pool {config.warm_pool}")

    def out(n: int, reason: str, msg: str, st: PolicyState = new_state) -> Decision:
        return Decision(n, reason, f"{msg}; {numbers}", waiting, True, st, rec, demand, cap)

    # 5. Scale up: fast; compared with the current desired size, which already counts starting pods.
    if rec > current:
        target = rec
        if config.scale_up_stabilization_s > 0:
            target = min(n for t, n in recs if t >= obs.time - config.scale_up_stabilization_s)
        target = min(target, current + (config.max_scale_up_step or max(4, current)))
        target = max(target, min(rec, floor))  # the floor is a bound, not a step
        if target <= current:
            return out(current, HOLD_STABILIZING, f"scale-up to {rec} is stabilizing")
        if wanted > config.max_replicas and target == config.max_replicas:
            reason = CLAMPED_TO_MAX
        elif current < floor:
            reason = SCALE_UP_FLOOR
        elif excess_waiting > 0:
            reason = SCALE_UP_QUEUE
        elif need <= current:
            reason = SCALE_UP_WARM_POOL
        else:
            reason = SCALE_UP_DEMAND
        return out(target, reason, f"scaling {current} -> {target} (wanted {wanted})",
                   replace(new_state, last_scale_up_time=obs.time))

    # 6. Scale down: only after a full window of lower recommendations, one step at a time.
    if rec < current:
        if current > config.max_replicas:
            return out(config.max_replicas, SCALE_DOWN_CEILING, f"above max_replicas: {current} -> "
                       f"{config.max_replicas}", replace(new_state, last_scale_down_time=obs.time))
        win = config.scale_down_stabilization_s
        highest = max(n for t, n in recs if t >= obs.time - win)
        if highest >= current or not _covered(state, obs.time, win):
            return out(current, HOLD_STABILIZING, f"recommendation {rec} < {current}, but within the last "
                       f"{win:.0f}s the policy asked for up to {highest} or has not watched that long")
        last = state.last_scale_down_time
        if last is not None and obs.time - last < config.scale_down_period_s:
            return out(current, HOLD_STABILIZING, f"last scale-down {obs.time - last:.0f}s ago (period "
                       f"{config.scale_down_period_s:.0f}s)")
        target = max(highest, current - config.max_scale_down_step, floor)
        reason = SCALE_DOWN_IDLE if waiting == 0 and running == 0 else SCALE_DOWN_DEMAND
        return out(target, reason, f"scaling {current} -> {target}", replace(new_state, last_scale_down_time=obs.time))

    return out(current, HOLD_AT_TARGET, f"at target {current}")
