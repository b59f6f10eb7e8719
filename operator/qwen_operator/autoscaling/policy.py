"""Layer 4, pure: the autoscaling policy of a QwenDeployment.

``decide(observation, state, config) -> Decision`` is a pure function: no Kubernetes, no clock, no I/O.
The operator calls it on a Kopf timer (every 10-15 s) with what it read from Prometheus and the
StatefulSet, and stores ``Decision.state`` in the resource's status so that a restarted operator keeps
its stabilization windows and its learned replica capacity.  The benchmark (bench/autoscaling) calls
the very same function, so what the benchmark measures is what the operator does.

Demand model (why it looks like this)
-------------------------------------
vLLM exposes per replica the number of running sequences ``r`` (admitted: prefilling or decoding),
the number of waiting requests ``w`` (not yet admitted) and the KV-cache usage ``k``.  A replica
stops admitting, and requests start to queue, when it runs out of one of three things: sequence
slots (``max_num_seqs``), KV-cache blocks, or compute (the per-step token budget is eaten by
prefill).  We therefore describe a replica's capacity as a *concurrency* ``c_sat``: the number of
sequences it holds when it saturates.

* Slots give the a-priori bound ``c_sat <= max_num_seqs``.
* KV gives ``c_kv = r * kv_target / k``: how many sequences of the current mix fit below the KV
  target.
* Compute is learned: when a replica has a standing queue, the ``r`` it holds at that moment *is*
  its saturation concurrency for the current request mix (a saturated server cannot take more).  The
  estimate moves down quickly on such evidence, up immediately when a replica is seen holding more
  sequences without a queue, and relaxes slowly back to the slot bound (mixes change), so it stays in
  the persisted state.

Running concurrency grows convexly with offered load (latency rises with batch size), so a replica
at half its saturation concurrency is already near its throughput limit; the default target
utilization is therefore 0.5 of ``c_sat``.  Demand in replicas is

    D = (sum r + sum w) / (target_utilization * c_sat)          (Little's law in concurrency units)

and, because waiting requests are the direct symptom of a TTFT breach, a queue-tracking term in the
style of the HPA's AverageValue rule keeps the waiting requests per replica at the target:

    D_q = N_ready * (mean w) / target_queue_per_replica          (only when mean w > target)

desired = ceil(max(D, D_q)) + warm_pool, clamped to [min_replicas + warm_pool, max_replicas].
The warm pool are Ready replicas above demand: bursts land on warm engines instead of waiting for a
multi-minute cold start.

Safety rules (each one unit-tested)
-----------------------------------
* Missing, stale, NaN/inf or negative metrics: hold the current size, ``active=False``; never jump
  to 0 or to max on garbage.
* Pods that are starting are capacity on its way: a scale-up is a new *total* compared with the
  current desired size (which already includes them), never an increment on top of them.
* Never below ``min_replicas + warm_pool`` (capped at max), never above ``max_replicas``.
* Scale-up is immediate (optional stabilization window) and limited to max(4, +100%) per decision.
* Scale-down only when every recommendation in the last ``scale_down_stabilization_s`` is lower than
  the current size, by at most ``max_scale_down_step`` replicas per ``scale_down_period_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

__all__ = [
    "AutoscalingConfig",
    "ReplicaSample",
    "Observation",
    "PolicyState",
    "Decision",
    "decide",
    "floor_replicas",
]

# Reason vocabulary (CamelCase, stable: used in status conditions and events).
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
    """Knobs of the policy.  Defaults are chosen from first principles, not fitted to a trace.

    ``target_queue_per_replica``: waiting requests per Ready replica the fleet may hold before the
    queue term scales up.  When ``ttft_slo_seconds`` and ``replica_admission_rps`` are both given,
    the target is derived instead: a request that finds ``q`` requests ahead of it on a replica that
    admits ``mu`` requests/s waits about ``q / mu`` seconds, and we give queueing half the SLO, so
    ``q* = 0.5 * ttft_slo_seconds * replica_admission_rps``.
    """

    min_replicas: int = 1
    max_replicas: int = 8
    target_queue_per_replica: float = 1.0
    ttft_slo_seconds: float | None = None
    replica_admission_rps: float | None = None
    max_num_seqs: int = 256
    target_utilization: float = 0.5
    kv_cache_target: float = 0.8
    warm_pool: int = 1
    scale_up_stabilization_s: float = 0.0
    scale_down_stabilization_s: float = 300.0
    max_scale_up_step: int = 0  # 0: max(4 replicas, +100 %) per decision, the HPA default
    max_scale_down_step: int = 1
    scale_down_period_s: float = 60.0
    metrics_max_age_s: float = 60.0
    min_sample_fraction: float = 0.5  # fewer fresh samples than this fraction of Ready replicas: hold
    learn_capacity: bool = True
    saturation_queue: float = 2.0  # a replica with at least this many waiting is saturated
    capacity_relax_s: float = 3600.0  # e-folding time of the learned capacity back to max_num_seqs
    prior_capacity: float | None = None  # a-priori saturation concurrency (e.g. from capacity planning)

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
        if self.target_queue_per_replica <= 0 and self.effective_queue_target() <= 0:
            raise ValueError("target_queue_per_replica must be > 0")
        if self.max_scale_down_step < 1:
            raise ValueError("max_scale_down_step must be >= 1")
        if self.metrics_max_age_s <= 0:
            raise ValueError("metrics_max_age_s must be > 0")

    def effective_queue_target(self) -> float:
        """Waiting requests per replica to aim for (derived from the TTFT SLO when possible)."""
        if self.ttft_slo_seconds and self.replica_admission_rps:
            return max(0.5, 0.5 * self.ttft_slo_seconds * self.replica_admission_rps)
        return self.target_queue_per_replica

    def prior(self) -> float:
        """Saturation concurrency assumed before anything was learned."""
        p = self.prior_capacity if self.prior_capacity is not None else float(self.max_num_seqs)
        return max(1.0, min(float(self.max_num_seqs), p))


@dataclass(frozen=True)
class ReplicaSample:
    """One Ready replica's gauges from the same scrape: vllm:num_requests_waiting,
    vllm:num_requests_running, vllm:kv_cache_usage_perc (0..1)."""

    waiting: float
    running: float
    kv_cache_usage: float
    name: str = ""


@dataclass(frozen=True)
class Observation:
    """What the operator saw at ``time`` (seconds, any monotonic epoch shared with the state).

    ``samples``: one per Ready replica that has fresh metrics.  ``ready_replicas`` counts Ready pods
    (with or without a sample); ``starting_replicas`` counts pods created but not Ready (capacity on
    its way).  ``current_desired`` is the StatefulSet's spec.replicas.  ``metrics_time`` is the
    timestamp of the scrape the samples come from; ``metrics_missing`` is set by the adapter when
    the query failed."""

    time: float
    samples: tuple[ReplicaSample, ...]
    ready_replicas: int
    starting_replicas: int
    current_desired: int
    metrics_time: float | None
    metrics_missing: bool = False


@dataclass(frozen=True)
class PolicyState:
    """The minimum history the policy needs, JSON-serializable for the resource's status.

    ``recommendations``: (time, recommended replicas) within the longest stabilization window.
    ``capacity``/``capacity_time``: learned saturation concurrency per replica and when it was last
    updated (None until learned: the prior applies).
    """

    recommendations: tuple[tuple[float, int], ...] = ()
    last_scale_up_time: float | None = None
    last_scale_down_time: float | None = None
    capacity: float | None = None
    capacity_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendations": [[t, n] for t, n in self.recommendations],
            "lastScaleUpTime": self.last_scale_up_time,
            "lastScaleDownTime": self.last_scale_down_time,
            "capacity": self.capacity,
            "capacityTime": self.capacity_time,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PolicyState":
        """Tolerant: a missing, partial or corrupted status yields a valid (possibly empty) state."""
        if not d:
            return cls()

        def num(x: Any) -> float | None:
            try:
                v = float(x)
            except (TypeError, ValueError):
                return None
            return v if math.isfinite(v) else None

        recs: list[tuple[float, int]] = []
        for item in d.get("recommendations") or ():
            try:
                t, n = item
                tv = num(t)
                if tv is not None and int(n) >= 0:
                    recs.append((tv, int(n)))
            except (TypeError, ValueError):
                continue
        cap = num(d.get("capacity"))
        return cls(
            recommendations=tuple(sorted(recs)),
            last_scale_up_time=num(d.get("lastScaleUpTime")),
            last_scale_down_time=num(d.get("lastScaleDownTime")),
            capacity=cap if cap is not None and cap > 0 else None,
            capacity_time=num(d.get("capacityTime")),
        )


@dataclass(frozen=True)
class Decision:
    """What to do.  ``desired_replicas`` is the StatefulSet size to set; ``recommendation`` the raw
    (unstabilized) size the demand model asked for; ``active`` is False when the policy could not
    trust the metrics and held."""

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


def _finite_nonneg(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x >= 0


def _validate(obs: Observation, config: AutoscalingConfig) -> tuple[str, str] | None:
    """Return (reason, message) when the observation cannot be trusted, else None."""
    if obs.metrics_missing:
        return HOLD_METRICS_MISSING, "metrics query failed"
    if obs.ready_replicas < 0 or obs.starting_replicas < 0 or obs.current_desired < 0:
        return HOLD_METRICS_INVALID, "negative replica counts"
    if obs.ready_replicas == 0:
        return None  # nothing to measure; handled by the caller
    if obs.metrics_time is None or not math.isfinite(obs.metrics_time):
        return HOLD_METRICS_MISSING, "no metrics timestamp"
    age = obs.time - obs.metrics_time
    if age > config.metrics_max_age_s:
        return HOLD_METRICS_STALE, f"metrics are {age:.0f}s old (limit {config.metrics_max_age_s:.0f}s)"
    for s in obs.samples:
        if not (_finite_nonneg(s.waiting) and _finite_nonneg(s.running) and _finite_nonneg(s.kv_cache_usage)):
            return HOLD_METRICS_INVALID, f"garbage sample {s.name or '?'}: waiting={s.waiting} running={s.running} kv={s.kv_cache_usage}"
        if s.kv_cache_usage > 1.0 + 1e-6:
            return HOLD_METRICS_INVALID, f"kv_cache_usage {s.kv_cache_usage} > 1 on {s.name or '?'}"
    if len(obs.samples) < config.min_sample_fraction * obs.ready_replicas or not obs.samples:
        return HOLD_METRICS_MISSING, f"samples from {len(obs.samples)} of {obs.ready_replicas} Ready replicas"
    return None


def _learn_capacity(obs: Observation, state: PolicyState, config: AutoscalingConfig) -> float:
    """Update the saturation concurrency estimate from this observation (see module docstring)."""
    prior = config.prior()
    cap = state.capacity if state.capacity is not None else prior
    if state.capacity is not None and state.capacity_time is not None and config.capacity_relax_s > 0:
        dt = max(0.0, obs.time - state.capacity_time)
        cap = prior + (cap - prior) * math.exp(-dt / config.capacity_relax_s)
    if not config.learn_capacity:
        return cap
    saturated = [s.running for s in obs.samples if s.waiting >= config.saturation_queue and s.running > 0]
    if saturated:
        seen = sum(saturated) / len(saturated)
        if seen < cap:
            cap = 0.5 * cap + 0.5 * seen  # fast, not instantaneous: one noisy scrape halves the error
    unsaturated = [s.running for s in obs.samples if s.waiting < 1.0]
    if unsaturated:
        cap = max(cap, max(unsaturated))  # held that many sequences without queueing: capacity is >= it
    return max(1.0, min(float(config.max_num_seqs), cap))


def _history(state: PolicyState, now: float, rec: int, config: AutoscalingConfig) -> tuple[tuple[float, int], ...]:
    keep = max(config.scale_down_stabilization_s, config.scale_up_stabilization_s)
    recs = [(t, n) for t, n in state.recommendations if now - keep <= t < now]
    recs.append((now, rec))
    return tuple(recs)


def decide(obs: Observation, state: PolicyState, config: AutoscalingConfig) -> Decision:
    """Map an observation and the previous state to a replica count, a reason and the next state."""
    floor = floor_replicas(config)
    current = obs.current_desired
    held = _clamp(current, config)

    # 1. Trust nothing we cannot check: hold the current size (clamped into bounds, never 0 or max).
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
                        f"no Ready or starting replica: ensuring the floor ({held})", 0.0, False, state, held)

    # 2. Demand from the samples, scaled up to all Ready replicas when a few samples are missing.
    n = len(obs.samples)
    scale = obs.ready_replicas / n
    waiting = sum(s.waiting for s in obs.samples) * scale
    running = sum(s.running for s in obs.samples) * scale
    kv = sum(s.kv_cache_usage for s in obs.samples) * scale
    cap = _learn_capacity(obs, state, config)
    c_sat = cap
    if kv > 1e-3 and running >= 1:
        c_kv = running * config.kv_cache_target / kv  # sequences of the current mix that fit per replica
        c_sat = min(c_sat, max(1.0, c_kv))
    c_target = max(1.0, config.target_utilization * c_sat)
    demand = (running + waiting) / c_target
    q_target = config.effective_queue_target()
    mean_w = waiting / obs.ready_replicas
    queue_demand = obs.ready_replicas * mean_w / q_target if mean_w > q_target else 0.0
    raw = max(demand, queue_demand)
    need = math.ceil(raw - 1e-9) if raw > 0 else 0
    unclamped = need + config.warm_pool
    rec = _clamp(unclamped, config)

    new_state = replace(state, recommendations=_history(state, obs.time, rec, config), capacity=cap,
                        capacity_time=obs.time)
    numbers = (f"waiting={waiting:.0f} running={running:.0f} over {obs.ready_replicas} Ready "
               f"(+{obs.starting_replicas} starting); capacity/replica={c_sat:.1f} seqs, target "
               f"{c_target:.1f}; demand={demand:.2f} queue-demand={queue_demand:.2f} replicas; "
               f"warm pool {config.warm_pool}")

    # 3. Scale up: fast.  Compared with the current desired size, which already counts starting pods.
    if rec > current:
        target = rec
        if config.scale_up_stabilization_s > 0:
            window = [m for t, m in new_state.recommendations if t >= obs.time - config.scale_up_stabilization_s]
            target = max(current, min(window))
        step = config.max_scale_up_step or max(4, current)
        target = min(target, current + step)
        if target <= current:
            return Decision(current, HOLD_STABILIZING, f"scale-up to {rec} stabilizing; {numbers}", waiting,
                            True, new_state, rec, raw, c_sat)
        if unclamped > config.max_replicas and target == config.max_replicas:
            reason = CLAMPED_TO_MAX
        elif current < floor:
            reason = SCALE_UP_FLOOR
        elif queue_demand >= demand and queue_demand > 0:
            reason = SCALE_UP_QUEUE
        elif need + 0 <= current < target:
            reason = SCALE_UP_WARM_POOL
        else:
            reason = SCALE_UP_DEMAND
        new_state = replace(new_state, last_scale_up_time=obs.time)
        return Decision(target, reason, f"scaling {current} -> {target} (wanted {unclamped}); {numbers}", waiting,
                        True, new_state, rec, raw, c_sat)

    # 4. Scale down: only after a full window of lower recommendations, one step at a time.
    if rec < current:
        if current > config.max_replicas:
            return Decision(config.max_replicas, SCALE_DOWN_CEILING,
                            f"above max_replicas: {current} -> {config.max_replicas}", waiting, True,
                            replace(new_state, last_scale_down_time=obs.time), rec, raw, c_sat)
        win = config.scale_down_stabilization_s
        window = [m for t, m in new_state.recommendations if t >= obs.time - win]
        oldest = min(t for t, _ in new_state.recommendations)
        covered = obs.time - oldest >= win * 0.999 or win <= 0
        # the history must reach back a full window (history older than the window was pruned)
        earlier = [t for t, _ in state.recommendations if t <= obs.time - win]
        covered = covered or bool(earlier)
        highest = max(window)
        if not covered or highest >= current:
            return Decision(current, HOLD_STABILIZING,
                            f"recommendation {rec} < {current}, but the last {win:.0f}s asked up to "
                            f"{max(highest, rec)}; {numbers}", waiting, True, new_state, rec, raw, c_sat)
        if state.last_scale_down_time is not None and obs.time - state.last_scale_down_time < config.scale_down_period_s:
            return Decision(current, HOLD_STABILIZING,
                            f"last scale-down {obs.time - state.last_scale_down_time:.0f}s ago (period "
                            f"{config.scale_down_period_s:.0f}s); {numbers}", waiting, True, new_state, rec, raw, c_sat)
        target = max(highest, current - config.max_scale_down_step, floor)
        reason = SCALE_DOWN_IDLE if waiting == 0 and running == 0 else SCALE_DOWN_DEMAND
        return Decision(target, reason, f"scaling {current} -> {target}; {numbers}", waiting, True,
                        replace(new_state, last_scale_down_time=obs.time), rec, raw, c_sat)

    return Decision(current, HOLD_AT_TARGET, f"at target {current}; {numbers}", waiting, True, new_state, rec, raw,
                    c_sat)
