"""Layer 4, pure: the autoscaling policy of a QwenDeployment.

``decide(observation, state, config) -> Decision`` is a pure function: no Kubernetes, no clock, no I/O.
The operator calls it on a Kopf timer (every 10-15 s) with what it read from Prometheus and from the
StatefulSet, and stores ``Decision.state`` (``PolicyState.to_dict()``) in the resource's status, so a
restarted operator keeps its stabilization windows and what it learned about replica capacity.  The
benchmark (bench/autoscaling) calls this very function, so the benchmark measures what the operator does.

Demand model
------------
vLLM exposes per replica the running sequences ``r`` (admitted: prefilling or decoding), the waiting
requests ``w`` (not admitted yet), the KV-cache usage ``k`` (0..1), the completion counter
vllm:request_success_total and the per-request token histograms (prompt tokens computed, tokens generated).
Their one-minute rates are the replica's throughput, in requests/s and in tokens/s of the requests completed.
Throughput is counted in tokens/s whenever the token rates are there: what a replica sustains in requests/s
depends on the request mix (22x between a chat mix and 15k-token prompts in the benchmark's service model), in
tokens/s far less (2.4x), so a rate learned on one mix stays roughly right on the next.  Arrivals and backlogs,
counted in requests, are converted at the mix's tokens per request (over the last 3 minutes).  The policy sizes
the fleet in one of two modes, and always adds the warm pool on top::

    desired = ceil(demand) + warm_pool,  clamped to [min_replicas + warm_pool, max_replicas]

*Throughput mode* (once a per-replica service rate ``mu`` has been learned, or from the start when
``prior_service_rate`` gives one in requests/s, e.g. from a load test; it is converted at the current mix until
evidence backs it, and learning then corrects it).  Requests are conserved, so
the arrival rate is the completion rate plus the growth of what is in flight (running + waiting, slope over
the demand window).  Then::

    demand = (arrivals + trend_ahead + backlog / drain_time_s) / (target_throughput_utilization * mu)

This is linear in the offered load, so it gives the same answer whatever the current fleet size.  ``mu``
is learned from replicas that kept a standing queue (>= ``saturation_queue`` waiting) for the demand window
plus the rate window: a saturated server completes requests at its service rate.  It is raised when the
fleet completes more without a queue, creeps up slowly (``capacity_relax_s``) so a lighter request mix is
eventually noticed, and lives in the persisted state.

*Concurrency mode* (before ``mu`` is known; Little's law in sequences)::

    demand = (min(mean_window(r), c_cap) * N_ready + excess waiting + trend_ahead) / c_target

``c_target = target_utilization * c_cap``, never above the sequences of the current mix that fit under the
KV target (``r * kv_cache_target / k``).  ``c_cap`` starts at ``prior_capacity`` (default ``max_num_seqs``)
and moves halfway down to the running sequences per replica whenever the window's mean waiting exceeds the
queue target ``q*`` on a settled fleet.  Running concurrency grows convexly with load (a larger batch slows
every step, which lengthens every request), so the estimate jumps at the knee; ``target_utilization`` 0.5
and a wide scale-down hysteresis (below) keep the controller off that knee.  Near the knee the estimate is
capped by a linear one: the arrivals over ``target_throughput_utilization`` times the *carried rate*, the
highest completions/s per replica a settled fleet has served without a queue (lowered to the rate at which a
settled fleet queues, when the request mix gets heavier).  The carried rate is a lower bound of the service
rate, so the cap never asks for fewer replicas than throughput mode would with the true rate; it stops the
convex pile-up of a burst from reading as 2-3x the demand.  The backlog part is not capped.

Common parts:

* ``trend_ahead``: capacity asked for now is Ready one cold start later, so the rising part of the demand
  trend (least-squares slope over ``trend_window_s``) is extrapolated over ``cold_start_s``, never by more
  than half the current demand (a burst is not a ramp).
* Seasonal forecast (opt-in, ``seasonal_period_s``, throughput mode only): the fleet's completion rate
  (the served arrival rate, smoother than the arrival estimate) is recorded per bucket of one cycle (96 buckets: 15
  minutes of a day); the cycle must repeat (see ``_seasonal_growth``).  One cycle later, the previous cycle's highest rate
  within one cold start (plus the demand window the estimates lag by) ahead of this phase, over its rate at this
  phase, is the growth to ask for now; it replaces the trend, which only sees a ramp once it has begun.  The
  ratio, not the level, is taken from history, so a busier or quieter day is followed.  Not in concurrency mode:
  running sequences are convex in the load, and multiplying them by a forecast overshoots (tried: oscillation).
* Waiting requests beyond ``q*`` per replica (``target_queue_per_replica``; derivable from a TTFT SLO:
  ``q* = 0.5 * slo * replica_admission_rps``) are a backlog to drain.
* Hysteresis: the size kept (recorded for the scale-down window) is what the demand asks at a lower target,
  ``down_hysteresis_* x`` the scale-up target: 0.6 in concurrency mode (convex signal), 0.9 in throughput
  mode (linear signal, only noise to absorb).
* Trust region: a scale-down whose linearly predicted load per replica exceeds the highest load the fleet
  carried without a queue (``safe_load``) is a probe: one replica, and a full stabilization window after the
  previous step.  An unknown capacity is explored slowly; a known one is used at once.

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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "AutoscalingConfig",
    "Decision",
    "Observation",
    "PolicyState",
    "ReplicaSample",
    "decide",
    "floor_replicas",
    "season_mark",
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

# units of learned service rates
RATE_TOKENS = "tokens"
RATE_REQUESTS = "requests"


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
    # throughput mode: fraction of the learned per-replica service rate to load a replica with
    target_throughput_utilization: float = 0.85
    drain_time_s: float = 120.0  # a backlog above the queue target is to be drained within this time
    # hysteresis: a scale-down must leave the replicas below this fraction of the scale-up target.  Wide in
    # concurrency mode (running grows convexly with load, so the estimate jumps at the knee), narrow in
    # throughput mode (linear in load: only noise to absorb)
    down_hysteresis_concurrency: float = 0.6
    down_hysteresis_throughput: float = 0.9
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
    # demand trend: the in-flight slope over this window, extrapolated over one cold start
    trend_window_s: float = 180.0
    cold_start_s: float = 180.0  # expected pod start to Ready (the operator knows whether the cache is baked)
    learn_capacity: bool = True
    prior_capacity: float | None = None  # a-priori c_cap (e.g. from capacity planning); default max_num_seqs
    # a-priori service rate (completions/s one replica sustains), e.g. from a load test of the model on the GPU
    # with the workload's own request mix; None: throughput mode starts only once a saturated replica is seen
    prior_service_rate: float | None = None
    capacity_relax_s: float = 21600.0  # e-folding time (log space) of the learned c_cap back to the prior
    # waiting per replica at every scrape for two minutes that proves a replica runs at its service rate
    saturation_queue: float = 2.0
    # seasonal forecast: the length of the demand cycle (86400 for a daily one; None: off).  The completion rate
    # is recorded in ``seasonal_buckets`` buckets of one cycle; one cycle later, the growth of that rate over the
    # next cold start, as the previous cycle had it, is asked for ahead of time (throughput mode only)
    seasonal_period_s: float | None = None
    seasonal_buckets: int = 96
    seasonal_max_growth: float = 3.0  # a forecast never asks for more than this times the current load

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
        if not 0.0 < self.target_throughput_utilization <= 1.0:
            raise ValueError("target_throughput_utilization must be in (0, 1]")
        if not (0.0 < self.down_hysteresis_concurrency <= 1.0 and 0.0 < self.down_hysteresis_throughput <= 1.0):
            raise ValueError("down hysteresis factors must be in (0, 1]")
        if self.drain_time_s <= 0:
            raise ValueError("drain_time_s must be > 0")
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
        if self.metrics_max_age_s <= 0 or self.demand_window_s < 0 or self.trend_window_s < 0:
            raise ValueError("metrics_max_age_s must be > 0, demand/trend windows >= 0")
        if self.cold_start_s < 0:
            raise ValueError("cold_start_s must be >= 0")
        if self.prior_capacity is not None and self.prior_capacity <= 0:
            raise ValueError("prior_capacity must be > 0")
        if self.prior_service_rate is not None and not (math.isfinite(self.prior_service_rate)
                                                        and self.prior_service_rate > 0):
            raise ValueError("prior_service_rate must be a finite number > 0")

        if self.seasonal_period_s is not None and not (math.isfinite(self.seasonal_period_s)
                                                       and self.seasonal_period_s > 0):
            raise ValueError("seasonal_period_s must be a finite number > 0")
        if self.seasonal_buckets < 4 or self.seasonal_max_growth < 1.0:
            raise ValueError("seasonal_buckets must be >= 4 and seasonal_max_growth >= 1")

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
    vllm:kv_cache_usage_perc (a fraction, 0..1), and optionally the completion rate from the
    vllm:request_success_total counter."""

    waiting: float
    running: float
    kv_cache_usage: float
    name: str = ""
    # requests completed per second over the last minute: rate(vllm:request_success_total[1m]); optional
    request_rate: float | None = None
    # tokens of the requests completed per second over the last minute: their prompt tokens computed (not served
    # from the prefix cache) plus their generated tokens, from the sums of vLLM's per-request histograms
    # vllm:request_prefill_kv_computed_tokens and vllm:request_generation_tokens; optional.  With it, service rates
    # are learned in tokens/s (see the module docstring)
    token_rate: float | None = None


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
    ``window``: (time, running, waiting, Ready replicas, completions/s or -1 when unknown, tokens/s or -1 when
    unknown): fleet totals within the demand/trend windows.
    ``rate_unit``: "tokens" or "requests": the unit of ``service_rate``, its evidence and ``carried_rate`` (tokens/s
    whenever vLLM's token counters are read; a state of another unit is relearned, not converted).
    ``service_rate`` / ``service_rate_time``: learned rate one replica sustains (None: not seen yet);
    ``service_rate_evidence``: the rate last set by evidence (or the prior), which bounds the upward creep.
    ``safe_load``: the highest running sequences per replica seen on a settled fleet without a queue (the
    trust region of scale-down).
    ``saturated_since``: (replica name, time) of replicas that have had a standing queue since that time.
    ``capacity`` / ``capacity_time``: learned c_cap and when it was computed (None: the prior applies).
    ``carried_rate``: the highest rate per replica a settled fleet served without a queue (a lower bound of the
    service rate; None: not seen yet).
    ``season``: with a seasonal period, one (time written, completions/s this cycle, the same one cycle earlier or
    -1) per bucket of the cycle.
    """

    recommendations: tuple[tuple[float, int], ...] = ()
    window: tuple[tuple[float, float, float, int, float, float], ...] = ()
    last_scale_up_time: float | None = None
    last_scale_down_time: float | None = None
    capacity: float | None = None
    capacity_time: float | None = None
    service_rate: float | None = None
    service_rate_time: float | None = None
    service_rate_evidence: float | None = None
    safe_load: float | None = None
    saturated_since: tuple[tuple[str, float], ...] = ()
    carried_rate: float | None = None
    season: tuple[tuple[float, float, float], ...] = ()
    rate_unit: str = RATE_REQUESTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendations": [[t, n] for t, n in self.recommendations],
            "window": [list(x) for x in self.window],
            "lastScaleUpTime": self.last_scale_up_time,
            "lastScaleDownTime": self.last_scale_down_time,
            "capacity": self.capacity,
            "capacityTime": self.capacity_time,
            "serviceRate": self.service_rate,
            "serviceRateTime": self.service_rate_time,
            "serviceRateEvidence": self.service_rate_evidence,
            "safeLoad": self.safe_load,
            "saturatedSince": [[n, t] for n, t in self.saturated_since],
            "carriedRate": self.carried_rate,
            "rateUnit": self.rate_unit,
            "season": [[round(t, 1), round(v, 4), round(p, 4)] for t, v, p in self.season],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> PolicyState:
        """Tolerant: a missing, partial or corrupted status gives a valid (possibly empty) state."""
        if not isinstance(d, Mapping):
            return cls()
        recs: list[tuple[float, int]] = []
        for item in d.get("recommendations") or ():
            if isinstance(item, (list, tuple)) and len(item) == 2:
                t, n = _num(item[0]), _num(item[1])
                if t is not None and n is not None and n >= 0:
                    recs.append((t, int(n)))
        win: list[tuple[float, float, float, int, float, float]] = []
        for item in d.get("window") or ():
            if isinstance(item, (list, tuple)) and len(item) in (5, 6):  # 5: written before token rates
                t, r, w, n, c, k = (_num(v) for v in (*item, -1.0)[:6])
                if (t is not None and r is not None and w is not None and n is not None and c is not None
                        and k is not None and r >= 0 and w >= 0 and n >= 1):
                    win.append((t, r, w, int(n), c if c >= 0 else -1.0, k if k >= 0 else -1.0))
        cap = _num(d.get("capacity"))
        mu = _num(d.get("serviceRate"))
        ev = _num(d.get("serviceRateEvidence"))
        carried = _num(d.get("carriedRate"))
        sat: list[tuple[str, float]] = []
        for item in d.get("saturatedSince") or ():
            if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
                t = _num(item[1])
                if t is not None:
                    sat.append((item[0], t))
        season: list[tuple[float, float, float]] = []
        for item in d.get("season") or ():
            t = v = p = None
            if isinstance(item, (list, tuple)) and len(item) == 3:
                t, v, p = (_num(x) for x in item)
            ok = t is not None and v is not None and p is not None and v >= 0
            season.append((t, v, p if p >= 0 else -1.0) if ok else _NO_SEASON_ENTRY)  # type: ignore[arg-type]
        return cls(
            recommendations=tuple(sorted(recs)),
            window=tuple(sorted(win)),
            last_scale_up_time=_num(d.get("lastScaleUpTime")),
            last_scale_down_time=_num(d.get("lastScaleDownTime")),
            capacity=cap if cap is not None and cap > 0 else None,
            capacity_time=_num(d.get("capacityTime")),
            service_rate=mu if mu is not None and mu > 0 else None,
            service_rate_time=_num(d.get("serviceRateTime")),
            service_rate_evidence=ev if ev is not None and ev > 0 else None,
            safe_load=_num(d.get("safeLoad")),
            saturated_since=tuple(sorted(sat)),
            carried_rate=carried if carried is not None and carried > 0 else None,
            season=tuple(season),
            # a state written before the unit was recorded learned in requests/s
            rate_unit=RATE_TOKENS if d.get("rateUnit") == RATE_TOKENS else RATE_REQUESTS,
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
    if not isinstance(obs.metrics_time, (int, float)) or not math.isfinite(obs.metrics_time):
        return HOLD_METRICS_MISSING, "no metrics timestamp"
    age = obs.time - obs.metrics_time
    if age > config.metrics_max_age_s:
        return HOLD_METRICS_STALE, f"metrics are {age:.0f}s old (limit {config.metrics_max_age_s:.0f}s)"
    for s in obs.samples:
        if not (_finite_nonneg(s.waiting) and _finite_nonneg(s.running) and _finite_nonneg(s.kv_cache_usage)):
            return HOLD_METRICS_INVALID, (f"garbage sample from {s.name or '?'}: waiting={s.waiting!r} "
                                          f"running={s.running!r} kv={s.kv_cache_usage!r}")
        if s.request_rate is not None and not _finite_nonneg(s.request_rate):
            return HOLD_METRICS_INVALID, f"garbage request rate {s.request_rate!r} from {s.name or '?'}"
        if s.token_rate is not None and not _finite_nonneg(s.token_rate):
            return HOLD_METRICS_INVALID, f"garbage token rate {s.token_rate!r} from {s.name or '?'}"
        if s.kv_cache_usage > 1.0 + 1e-6:
            return HOLD_METRICS_INVALID, f"kv_cache_usage {s.kv_cache_usage} > 1 from {s.name or '?'}"
    if not obs.samples or len(obs.samples) < config.min_sample_fraction * obs.ready_replicas:
        return HOLD_METRICS_MISSING, f"samples from {len(obs.samples)} of {obs.ready_replicas} Ready replicas"
    return None


def _learn_capacity(prev: float | None, prev_time: float | None, now: float, run_pr: float, wait_pr: float,
                    q_target: float, config: AutoscalingConfig, settled: bool = True) -> float:
    """Next c_cap from the window's mean running and waiting per replica (see the module docstring)."""
    prior = config.prior()
    cap = prev if prev is not None else prior
    if prev is not None and prev_time is not None and config.capacity_relax_s > 0:
        decay = math.exp(-max(0.0, now - prev_time) / config.capacity_relax_s)
        cap = math.exp(math.log(prior) + (math.log(cap) - math.log(prior)) * decay)
    if config.learn_capacity and settled and run_pr > 0:
        if wait_pr > q_target:
            cap = 0.5 * cap + 0.5 * min(cap, run_pr)  # queue target exceeded at run_pr: halfway there
        elif wait_pr <= 0.5 * q_target and run_pr > cap:
            cap = run_pr  # carried that many without a queue: c_cap is at least that
    return max(1.0, min(float(config.max_num_seqs), cap))


# how far above the last evidence the learned service rate may creep without new evidence
SERVICE_RATE_MAX_CREEP = 1.25


def _learn_service_rate(prev: float | None, prev_time: float | None, evidence: float | None, now: float,
                        tp_pr: float, saturated: bool, no_queue: bool, config: AutoscalingConfig
                        ) -> tuple[float | None, float | None, bool]:
    """Next learned service rate (what one replica sustains), the rate last backed by evidence, and whether this
    observation was evidence (a saturated replica, or more served without a queue).
    Saturated evidence moves it halfway down (or sets it the first time); completing more without a queue raises
    it; otherwise it creeps up slowly (e-folding ``capacity_relax_s``) so that a lighter request mix is eventually
    noticed, but never beyond ``SERVICE_RATE_MAX_CREEP`` x the last evidence: unbounded, a day without a
    saturation would let it grow e^4-fold and the morning ramp would meet a fleet sized for a rate no replica has."""
    mu = prev
    if evidence is None:
        evidence = prev  # the prior, or a state written before the evidence was kept
    if mu is not None and prev_time is not None and config.capacity_relax_s > 0:
        mu *= math.exp(max(0.0, now - prev_time) / config.capacity_relax_s)
        if evidence is not None and prev is not None:  # the cap stops the creep; it does not lower a rate
            mu = max(prev, min(mu, SERVICE_RATE_MAX_CREEP * evidence))
    if not config.learn_capacity or tp_pr <= 0:
        return mu, evidence, False
    if saturated:
        mu = tp_pr if mu is None else 0.5 * mu + 0.5 * min(mu, tp_pr)
        return mu, mu, True
    if no_queue and mu is not None and tp_pr > mu:
        return tp_pr, tp_pr, True
    return mu, evidence, False


def _slope(points: list[tuple[float, float]], min_points: int = 4, min_span: float = 45.0) -> float:
    """Least-squares slope (per second) of (time, value) points; 0 with too few points or too short a span."""
    if len(points) < min_points or points[-1][0] - points[0][0] < min_span:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / var if var > 0 else 0.0


_NO_SEASON_ENTRY = (-1.0, 0.0, -1.0)


def _season_update(season: tuple[tuple[float, float, float], ...], now: float, rate: float,
                   config: AutoscalingConfig) -> tuple[tuple[float, float, float], ...]:
    """Record the fleet's completion rate in the bucket of ``now`` (a running mean within the bucket).  The first
    write of a bucket in a cycle keeps the value one cycle earlier beside it."""
    period = config.seasonal_period_s
    assert period
    nb = config.seasonal_buckets
    width = period / nb
    entries = list(season) if len(season) == nb else [_NO_SEASON_ENTRY] * nb
    k = int((now % period) // width)
    t_upd, v, prev = entries[k]
    if t_upd >= 0 and 0 <= now - t_upd < 2 * width:  # written earlier in this bucket
        entries[k] = (now, v + 0.3 * (rate - v), prev)
    else:
        last_cycle = t_upd >= 0 and abs(now - period - t_upd) < 2 * width
        entries[k] = (now, rate, v if last_cycle else -1.0)
    return tuple(entries)


def _seasonal_growth(season: tuple[tuple[float, float, float], ...], now: float, config: AutoscalingConfig
                     ) -> tuple[float | None, str]:
    """(growth, why): the previous cycle's highest rate within the look-ahead over its rate at this phase, or None
    with the reason there is no forecast: the previous cycle was not recorded there (first cycle, a gap), or the
    cycle does not repeat (over the last eighth of a cycle, this cycle's rates were not a steady multiple of the
    previous cycle's: a wrong period, or traffic without a cycle)."""
    period = config.seasonal_period_s
    nb = config.seasonal_buckets
    if not period or len(season) != nb:
        return None, "no history"
    width = period / nb
    k = int((now % period) // width)

    def one_cycle_ago(j: int) -> float | None:
        t_upd, v, prev = season[(k + j) % nb]
        if t_upd >= 0 and abs(t_upd - (now + j * width - period)) < 2 * width:
            return v
        if t_upd >= 0 and abs(t_upd - (now + j * width)) < 2 * width and prev >= 0:
            return prev
        return None

    def this_cycle(j: int) -> float | None:
        t_upd, v, _ = season[(k + j) % nb]
        return v if t_upd >= 0 and abs(t_upd - (now + j * width)) < 2 * width else None

    # does the cycle repeat?  this cycle over the last one, bucket by bucket, must be a steady ratio
    m = max(4, nb // 8)
    ratios = []
    for j in range(-m, 0):
        cur, old = this_cycle(j), one_cycle_ago(j)
        if cur is not None and old is not None and old > 0:
            ratios.append(cur / old)
    if len(ratios) < m // 2:
        return None, "the previous cycle was not recorded here"
    level = sorted(ratios)[len(ratios) // 2]
    spread = sum(abs(r / level - 1.0) for r in ratios) / len(ratios) if level > 0 else math.inf
    if spread > 0.15:
        return None, f"the cycle does not repeat (this cycle's rates vary {spread:.0%} around {level:.2f}x the last)"

    # the arrival estimate lags the present by about the demand window (a windowed mean of one-minute rates), and
    # so does the history: look that much further ahead
    ahead = max(1, math.ceil((config.cold_start_s + config.demand_window_s) / width))

    def smoothed(j: int) -> float | None:
        vals = [x for x in (one_cycle_ago(j + i) for i in (-1, 0, 1)) if x is not None]
        return sum(vals) / len(vals) if vals else None

    base = smoothed(0)
    future = [smoothed(j) for j in range(1, ahead + 1)]
    if base is None or base <= 0 or any(f is None for f in future):
        return None, "the previous cycle was not recorded here"
    growth = max(f for f in future if f is not None) / base
    return max(1.0, min(config.seasonal_max_growth, growth)), f"this cycle runs at {level:.2f}x the last"


def season_mark(state: PolicyState, config: AutoscalingConfig) -> int | None:
    """The seasonal bucket last written, counted from the clock's epoch (None: no forecast, or nothing recorded).
    The operator persists the state whenever this moves, so a restart loses at most one bucket of the cycle even
    on a fleet whose decisions do not change for hours."""
    if not config.seasonal_period_s:
        return None
    times = [t for t, _, _ in state.season if t >= 0]
    return int(max(times) // (config.seasonal_period_s / config.seasonal_buckets)) if times else None


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

    # 2. Observed totals.  A Ready replica without a sample is, almost always, one that became Ready after
    # the last scrape: it counts as capacity and carries no load yet.
    ready = obs.ready_replicas
    waiting = sum(s.waiting for s in obs.samples)
    running = sum(s.running for s in obs.samples)
    kv = sum(s.kv_cache_usage for s in obs.samples)
    with_rate = [s.request_rate for s in obs.samples if s.request_rate is not None]
    # Prometheus' rate() needs two scrapes: a replica younger than that has no rate and no completions yet
    completions = sum(with_rate) if with_rate else -1.0
    with_tokens = [s.token_rate for s in obs.samples if s.token_rate is not None]
    tokens = sum(with_tokens) if with_tokens else -1.0

    # 3. Windowed means per replica, learned capacities, targets.
    keep_s = max(config.demand_window_s + 60.0, config.trend_window_s)
    window = tuple(x for x in state.window if obs.time - keep_s < x[0] < obs.time) + (
        (obs.time, running, waiting, ready, completions, tokens),)
    recent = [x for x in window if x[0] > obs.time - config.demand_window_s]
    run_pr = sum(x[1] / x[3] for x in recent) / len(recent)
    wait_pr = sum(x[2] / x[3] for x in recent) / len(recent)
    q_target = config.queue_target()
    # learn only from a settled fleet: no pod starting and the same Ready count over the window (right after
    # a scale-up, a backlog spread over fresh replicas says nothing about what one replica can carry)
    settled = obs.starting_replicas == 0 and all(x[3] == ready for x in recent) and (
        len(recent) > 1 and recent[0][0] <= obs.time - 0.75 * config.demand_window_s)
    cap = _learn_capacity(state.capacity, state.capacity_time, obs.time, run_pr, wait_pr, q_target, config,
                          settled)
    c_target = config.target_utilization * cap
    kv_bound = ""
    if kv > 1e-3 and running >= 1:
        c_kv = running * config.kv_cache_target / kv  # sequences of the current mix under the KV target
        if c_kv < c_target:
            c_target, kv_bound = c_kv, " (KV-bound)"
    c_target = max(1.0, c_target)
    tw = config.trend_window_s
    full_trend = tw > 0 and window[0][0] <= obs.time - 0.9 * tw
    excess_waiting = max(0.0, wait_pr - q_target) * ready

    # replicas with a standing queue, and since when
    prev_since = dict(state.saturated_since)
    since = {s.name: prev_since.get(s.name, obs.time) for s in obs.samples
             if s.name and s.waiting >= config.saturation_queue}

    # throughput is measured in tokens processed per second when vLLM's token counters are read over the whole
    # window, else in completions per second.  Tokens, because what a replica sustains in requests/s depends on the
    # request mix (in the benchmark's service model: 22x between a chat mix and 15k-token prompts) and in tokens/s
    # far less (2.4x): a rate learned on one mix then stays roughly right on the next.  Rates learned in the other
    # unit are relearned, not converted (a conversion would need the mix they were learned on).
    if all(x[4] >= 0 and x[5] >= 0 for x in recent):
        unit: str | None = RATE_TOKENS
    elif all(x[4] >= 0 for x in recent):
        unit = RATE_REQUESTS
    else:
        unit = None  # Prometheus has no rate yet (new replicas): concurrency mode, keeping what was learned
    col = 5 if unit == RATE_TOKENS else 4
    unit_label = "tok/s" if unit == RATE_TOKENS else "req/s"
    learned = state
    if unit is not None and unit != state.rate_unit:
        learned = replace(state, service_rate=None, service_rate_time=None, service_rate_evidence=None,
                          carried_rate=None, rate_unit=unit)
    # tokens per request of the current mix: converts what is counted in requests (the in-flight growth, the backlog)
    # and a prior given in requests/s.  The prior is converted at every decision and stored only once evidence backs
    # it, so it follows the mix instead of freezing the first minute's.  Over the whole window kept (3 minutes): tokens
    # per request are heavy-tailed, and a noisier estimate means more replicas (scale-down keeps the window's highest
    # recommendation); unknown (no throughput mode) when nothing completed at all
    per_request: float | None = 1.0 if unit == RATE_REQUESTS else None
    if unit == RATE_TOKENS:
        both = [x for x in window if x[4] >= 0 and x[5] >= 0]
        done = sum(x[4] for x in both)
        per_request = sum(x[5] for x in both) / done if done > 0 else None
    prior = (config.prior_service_rate * per_request
             if config.prior_service_rate is not None and per_request is not None else None)
    # learned, else the prior (which learning then corrects: down on saturation, up on more served)
    mu = learned.service_rate if learned.service_rate is not None else prior
    prior_since = learned.service_rate_time if learned.service_rate is None else None
    if mu is not None and learned.service_rate is None and unit == RATE_TOKENS:
        # the unstored prior creeps like a stored one (see _learn_service_rate), from when it was first used
        prior_since = obs.time if prior_since is None else prior_since
        if config.capacity_relax_s > 0:
            mu *= min(SERVICE_RATE_MAX_CREEP, math.exp(max(0.0, obs.time - prior_since) / config.capacity_relax_s))
    mu_evidence = learned.service_rate_evidence
    mu_stored = learned.service_rate
    tp_known = unit is not None
    arrivals = tp_pr = -1.0
    if tp_known:
        tp_pr = sum(x[col] / x[3] for x in recent) / len(recent)
        # arrivals = completions + growth of what is in flight (conservation of requests), in tokens at the mix's
        # tokens per request
        growth = _slope([(x[0], x[1] + x[2]) for x in recent], min_points=3, min_span=30.0)
        arrivals = max(0.0, sum(x[4] for x in recent) / len(recent) + growth) * (per_request or 0.0)
        # a replica that has had a standing queue for the demand window plus the one-minute rate window
        # (completions lag the gauges) completes at its service rate; judged per replica, because a queue
        # stuck on one replica says nothing about the others
        span = config.demand_window_s + 60.0
        proven = [r for r in ((s.token_rate if unit == RATE_TOKENS else s.request_rate) for s in obs.samples
                              if s.name in since and since[s.name] <= obs.time - span) if r is not None]
        saturated = bool(proven)
        if proven:
            tp_pr = sum(proven) / len(proven)
        no_queue = settled and wait_pr <= 0.5 * q_target
        converted_prior = unit == RATE_TOKENS and learned.service_rate is None and mu is not None
        tp_req = sum(x[4] / x[3] for x in recent) / len(recent)
        if (converted_prior and no_queue and not saturated and config.learn_capacity and per_request
                and tp_req > mu / per_request):
            # more served without a queue than a prior given in requests/s: judged in requests/s, because the mix
            # it is converted at (3 minutes) lags the last minute's tokens; the tokens/s served are the evidence
            mu = mu_evidence = tp_pr
            evidence_now = True
        else:
            mu, mu_evidence, evidence_now = _learn_service_rate(
                mu, learned.service_rate_time if learned.service_rate is not None else None, mu_evidence, obs.time,
                tp_pr, saturated, no_queue and not converted_prior, config)
        # a learned rate is kept; a prior in tokens is kept once evidence backs it (else it is reconverted)
        mu_stored = mu if (learned.service_rate is not None or evidence_now or unit == RATE_REQUESTS) else None
    carried = learned.carried_rate
    if tp_known and config.learn_capacity and settled and tp_pr > 0:
        if wait_pr <= 0.5 * q_target:
            carried = max(carried or 0.0, tp_pr)
        elif wait_pr > q_target and carried is not None and tp_pr < carried:
            carried = tp_pr  # a queue at a lower rate: the current mix is heavier than the one carried before
    # the rising part of the arrival trend over one cold start, never more than half the arrivals (a burst is
    # not a ramp); used by throughput mode and by the concurrency mode's linear cap
    arrivals_trend = 0.0
    if tp_known and full_trend:
        arrivals_trend = _slope([(x[0], x[col]) for x in window if x[0] > obs.time - tw and x[col] >= 0])
    arrivals_ahead = min(max(0.0, arrivals_trend) * config.cold_start_s, 0.5 * max(arrivals, 0.0))

    # 4. Demand (replicas): a load part, a part asked for ahead of time (the demand one cold start from now),
    # and a backlog part (the queue above target, to drain).
    if mu is not None and tp_known and per_request is not None:
        # linear in load: arrivals over what a replica sustains at the target utilization, plus draining
        # the backlog above the queue target, plus the arrival trend over one cold start
        per_replica = config.target_throughput_utilization * mu
        load, ahead_r = arrivals / per_replica, arrivals_ahead / per_replica
        backlog_r = excess_waiting * per_request / config.drain_time_s / per_replica
        hysteresis = config.down_hysteresis_throughput
        mode = (f"throughput mode: arrivals {arrivals:.1f} {unit_label} (served {max(tp_pr, 0) * ready:.1f} "
                f"{unit_label}), service rate {mu:.2f} {unit_label}/replica, target {per_replica:.2f}; trend "
                f"{arrivals_trend * 60:+.1f} {unit_label} per min")
    else:
        # concurrency (Little's law); a saturated replica holds c_cap sequences whatever the overload: count
        # no more than that (the queue term carries the rest), or the convex pile-up would read as 2-3x demand
        # a backlog is counted at most as one more fleet (the step limit would cut it there anyway)
        backlog_seqs = min(excess_waiting, c_target * ready)
        inflight = min(run_pr, cap) * ready
        # capacity asked for now is Ready one cold start later: add the rising part of the running trend,
        # never more than half the current demand (a burst is not a ramp)
        trend = _slope([(x[0], x[1]) for x in window if x[0] > obs.time - tw]) if full_trend else 0.0
        ahead = min(max(0.0, trend) * config.cold_start_s, 0.5 * (inflight + backlog_seqs))
        load, ahead_r, backlog_r = inflight / c_target, ahead / c_target, backlog_seqs / c_target
        hysteresis = config.down_hysteresis_concurrency
        mode = (f"concurrency mode: capacity {cap:.1f} seqs/replica, target {c_target:.1f}{kv_bound}; running "
                f"trend {trend * 60:+.0f}/min")
        if carried is not None and tp_known:
            # linear cap of the load part (what the arrivals need at the rate replicas were seen to carry without a
            # queue); the backlog part stays as it is, so a queue still scales up whatever the cap says
            per_carried = config.target_throughput_utilization * carried
            if (arrivals + arrivals_ahead) / per_carried < load + ahead_r:
                load, ahead_r = arrivals / per_carried, arrivals_ahead / per_carried
                mode += (f"; capped by arrivals {arrivals:.1f} {unit_label} over "
                         f"{config.target_throughput_utilization:.2f} x the carried rate {carried:.2f} "
                         f"{unit_label}/replica")
    # seasonal forecast (throughput mode only): the completion rate recorded one cycle ago tells how much it grows
    # over the next cold start; that replaces the trend, which only extrapolates what is already happening.  Not
    # in concurrency mode: running sequences are convex in the load, and a forecast multiplying them overshoots.
    season = state.season
    if config.seasonal_period_s and tp_known:
        season_growth, why = _seasonal_growth(season, obs.time, config)
        season = _season_update(season, obs.time, sum(x[4] for x in recent) / len(recent), config)
        if mu is not None:
            mode += (f"; seasonal growth over one cold start x{season_growth:.2f} ({why})" if season_growth is not None
                     else f"; no seasonal forecast: {why}")
            if season_growth is not None:
                ahead_r = load * (season_growth - 1.0)
    demand = load + ahead_r + backlog_r
    need = math.ceil(demand - 1e-9) if demand > 0 else 0
    wanted = need + config.warm_pool
    rec = _clamp(wanted, config)
    # the size to keep: what the demand asks at the scale-down target (recorded for the stabilization window)
    keep_n = _clamp((math.ceil(demand / hysteresis - 1e-9) if demand > 0 else 0) + config.warm_pool, config)
    keep = max(config.scale_down_stabilization_s, config.scale_up_stabilization_s)
    recs = tuple((t, n) for t, n in state.recommendations if obs.time - keep <= t < obs.time) + ((obs.time, keep_n),)
    safe = state.safe_load
    if settled and wait_pr <= 0.5 * q_target:
        safe = max(safe or 0.0, run_pr)
    elif settled and wait_pr > q_target and safe is not None:
        safe = min(safe, 0.8 * run_pr)  # a queue at this load: the trust region ends below it
    new_state = replace(learned, recommendations=recs, window=window, capacity=cap, capacity_time=obs.time,
                        service_rate=mu_stored,
                        service_rate_time=obs.time if mu_stored is not None else prior_since,
                        service_rate_evidence=mu_evidence if mu_stored is not None else None, safe_load=safe,
                        saturated_since=tuple(sorted(since.items())), carried_rate=carried,
                        season=season)
    numbers = (f"waiting {waiting:.0f}, running {running:.0f} (window mean {run_pr:.1f}/replica) on {ready} Ready "
               f"+ {obs.starting_replicas} starting; {mode}; demand {demand:.2f} replicas + warm pool "
               f"{config.warm_pool}")

    def out(n: int, reason: str, msg: str, st: PolicyState = new_state) -> Decision:
        return Decision(n, reason, f"{msg}; {numbers}", waiting, True, st, rec, demand, cap)

    # 5. Scale up: fast; compared with the current desired size, which already counts starting pods.
    if rec > current:
        target = rec
        if config.scale_up_stabilization_s > 0:
            target = min([rec] + [n for t, n in recs if t >= obs.time - config.scale_up_stabilization_s])
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
    if keep_n < current:
        if current > config.max_replicas:
            return out(config.max_replicas, SCALE_DOWN_CEILING, f"above max_replicas: {current} -> "
                       f"{config.max_replicas}", replace(new_state, last_scale_down_time=obs.time))
        win = config.scale_down_stabilization_s
        highest = max(n for t, n in recs if t >= obs.time - win)
        if highest >= current or not _covered(state, obs.time, win):
            return out(current, HOLD_STABILIZING, f"scale-down to {keep_n} < {current}, but within the last "
                       f"{win:.0f}s the policy asked for up to {highest} or has not watched that long")
        last = state.last_scale_down_time
        if last is not None and obs.time - last < config.scale_down_period_s:
            return out(current, HOLD_STABILIZING, f"last scale-down {obs.time - last:.0f}s ago (period "
                       f"{config.scale_down_period_s:.0f}s)")
        target = max(highest, current - config.max_scale_down_step, floor)
        # trust region: the load per replica after the step, scaled linearly, must have been carried before
        # without a queue; otherwise the step is a probe: one replica, a full window after the last step
        ready_after = max(1, min(ready, target))
        predicted = run_pr * ready / ready_after
        if run_pr > 0 and (safe is None or predicted > safe):
            if last is not None and obs.time - last < win:
                return out(current, HOLD_STABILIZING, f"scale-down to {target} would load replicas with "
                           f"{predicted:.1f} running each, beyond the {safe or 0:.1f} seen without a queue; the "
                           f"last probe was {obs.time - last:.0f}s ago")
            target = max(target, current - 1)
        reason = SCALE_DOWN_IDLE if waiting == 0 and running == 0 else SCALE_DOWN_DEMAND
        return out(target, reason, f"scaling {current} -> {target}", replace(new_state, last_scale_down_time=obs.time))

    return out(current, HOLD_AT_TARGET, f"at target {current}")
