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
``prior_service_rate`` gives one in requests/s, e.g. from a load test, or else ``prior_rate_model`` estimates one
at the current request mix from the model and the GPU; it is converted at the current mix until evidence backs
it; learning lowers a prior set too high at the first saturation and raises one set too low only by the slow creep
below: bench/results/autoscaling_prior_error_all_*.md).  Requests are conserved, so
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
every step, which lengthens every request), so the estimate jumps at the knee; ``target_utilization`` 0.4
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

__all__ = [
    "AutoscalingConfig",
    "BurstPoint",
    "Decision",
    "DemandEstimate",
    "Observation",
    "PolicyState",
    "ReplicaSample",
    "SeasonEntry",
    "WindowRow",
    "decide",
    "default_scale_down_window_s",
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

# how the demand was estimated (Decision.mode; "" when the policy held without estimating)
MODE_THROUGHPUT = "throughput"
MODE_CONCURRENCY = "concurrency"


# the scale-down windows an unset spec gets (default_scale_down_window_s)
REACTIVE_SCALE_DOWN_WINDOW_S = 600.0
SEASONAL_SCALE_DOWN_WINDOW_S = 300.0


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
    # 0.4 with a 600 s scale-down window: the corner of the benchmark's sensitivity grid that met the joint SLO in
    # 54 of 90 cells against 32 for (0.5, 300 s) (bench/autoscaling/README.md, "A corner of the sensitivity grid")
    target_utilization: float = 0.4
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
    # >= a cold start, so a scale-down is not regretted within one; 600 s keeps one wave's replicas for the next.
    # With a seasonal forecast and a warm pool the default is 300 s instead (default_scale_down_window_s)
    scale_down_stabilization_s: float = REACTIVE_SCALE_DOWN_WINDOW_S
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
    # a-priori service rate as a function of the request mix, used like prior_service_rate when that is unset: per
    # request (prompt tokens, prompt tokens computed, generated tokens) -> completions/s of a saturated replica (the
    # operator's estimate from the model and the GPU, domain/replica_rate.py); None: no estimate
    prior_rate_model: Callable[[float, float, float], float] | None = None
    capacity_relax_s: float = 21600.0  # e-folding time (log space) of the learned c_cap back to the prior
    # waiting per replica at every scrape for two minutes that proves a replica runs at its service rate
    saturation_queue: float = 2.0
    # seasonal forecast: the length of the demand cycle (86400 for a daily one; None: off).  The completion rate
    # is recorded in ``seasonal_buckets`` buckets of one cycle; one cycle later, the growth of that rate over the
    # next cold start, as the previous cycle had it, is asked for ahead of time (throughput mode only)
    seasonal_period_s: float | None = None
    seasonal_buckets: int = 96
    seasonal_max_growth: float = 3.0  # a forecast never asks for more than this times the current load
    # burst headroom (None: off): the warm pool is sized by evidence instead of the constant alone.  Each demand
    # estimate, once a cold start has passed after it, gives the shortfall that cold start brought: the peak load
    # within it beyond what the replicas asked for then (load + trend + warm pool) carry at full utilization and
    # beyond the load still there one cold start later (a new level is what reacting catches up with).  This quantile of
    # the shortfalls recorded over ``burst_window_s`` (the largest per minute) is added to the warm pool, so bursts
    # that recur within the window find their capacity warm (_burst_headroom)
    burst_headroom_quantile: float | None = None
    burst_window_s: float = 3600.0

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
        if self.prior_service_rate is not None and not (
            math.isfinite(self.prior_service_rate) and self.prior_service_rate > 0
        ):
            raise ValueError("prior_service_rate must be a finite number > 0")

        if self.seasonal_period_s is not None and not (
            math.isfinite(self.seasonal_period_s) and self.seasonal_period_s > 0
        ):
            raise ValueError("seasonal_period_s must be a finite number > 0")
        if self.seasonal_buckets < 4 or self.seasonal_max_growth < 1.0:
            raise ValueError("seasonal_buckets must be >= 4 and seasonal_max_growth >= 1")
        if self.burst_headroom_quantile is not None and not 0.0 < self.burst_headroom_quantile <= 1.0:
            raise ValueError("burst_headroom_quantile must be in (0, 1]")
        if not self.burst_window_s > 0:
            raise ValueError("burst_window_s must be > 0")

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
    # requests vLLM's router (spec.routing) has sent to this replica and not seen answered, summed over the router
    # pods: vllm_router_running_requests{worker}; None without a router or its series.  See queued().
    router_in_flight: float | None = None
    # the two halves of the request mix a prior_rate_model needs (optional): the prompt tokens of the requests
    # completed per second, cached or not (vllm:request_prompt_tokens), and their generated tokens
    # (vllm:request_generation_tokens); token_rate minus the latter is the prompt tokens computed
    prompt_token_rate: float | None = None
    generation_token_rate: float | None = None

    def queued(self) -> float:
        """Requests waiting for this replica.  vLLM's own queue; with a router in front, the requests the router has
        in flight on the replica beyond those vLLM runs, when that is more: requests on the wire, or accepted by
        vLLM's HTTP server and not yet in its scheduler, wait as surely as those in its queue."""
        if self.router_in_flight is None:
            return self.waiting
        return max(self.waiting, self.router_in_flight - self.running)


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


class WindowRow(NamedTuple):
    """Fleet totals at one decision: one row of ``PolicyState.window`` (a list of six numbers in status)."""

    time: float
    running: float
    waiting: float
    ready: int
    completions: float  # completions/s (vllm:request_success_total), -1 when unknown
    tokens: float  # tokens/s of the requests completed, -1 when unknown

    def rate(self, unit: str) -> float:
        """The throughput in ``unit`` (RATE_TOKENS: tokens/s, else completions/s)."""
        return self.tokens if unit == RATE_TOKENS else self.completions


class BurstPoint(NamedTuple):
    """A demand estimate waiting for its cold start to pass (burst headroom): when, the load in replicas, and the
    load that what was asked for then (load + the trend's look-ahead + the warm pool) carries at full utilization."""

    time: float
    load: float
    carries: float


class SeasonEntry(NamedTuple):
    """One bucket of the seasonal cycle: when it was last written (-1: never), the completion rate this cycle, and
    the rate one cycle earlier (-1: not recorded)."""

    time: float
    rate: float
    previous: float


class RequestMix(NamedTuple):
    """Per request completed, smoothed over a few minutes (see _smooth_mix): when last updated, its prompt tokens,
    those of them computed (not served from the prefix cache), and its generated tokens."""

    time: float
    prompt: float
    computed: float
    generated: float


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
    window: tuple[WindowRow, ...] = ()
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
    season: tuple[SeasonEntry, ...] = ()
    rate_unit: str = RATE_REQUESTS
    burst_pending: tuple[BurstPoint, ...] = ()
    burst_shortfalls: tuple[tuple[float, float], ...] = ()
    request_mix: RequestMix | None = None

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
            "burstPending": [[round(t, 1), round(a, 4), round(b, 4)] for t, a, b in self.burst_pending],
            "burstShortfalls": [[round(t, 1), round(v, 4)] for t, v in self.burst_shortfalls],
            **({"requestMix": [round(x, 2) for x in self.request_mix]} if self.request_mix is not None else {}),
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
        win: list[WindowRow] = []
        for item in d.get("window") or ():
            if isinstance(item, (list, tuple)) and len(item) in (5, 6):  # 5: written before token rates
                t, r, w, n, c, k = (_num(v) for v in (*item, -1.0)[:6])
                if (
                    t is not None
                    and r is not None
                    and w is not None
                    and n is not None
                    and c is not None
                    and k is not None
                    and r >= 0
                    and w >= 0
                    and n >= 1
                ):
                    win.append(WindowRow(t, r, w, int(n), c if c >= 0 else -1.0, k if k >= 0 else -1.0))
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
        season: list[SeasonEntry] = []
        for item in d.get("season") or ():
            t = v = p = None
            if isinstance(item, (list, tuple)) and len(item) == 3:
                t, v, p = (_num(x) for x in item)
            if t is not None and v is not None and p is not None and v >= 0:
                season.append(SeasonEntry(t, v, p if p >= 0 else -1.0))
            else:
                season.append(_NO_SEASON_ENTRY)
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
            burst_pending=tuple(sorted(BurstPoint(*x) for x in _number_rows(d.get("burstPending"), 3))),
            burst_shortfalls=tuple(sorted((t, v) for t, v in _number_rows(d.get("burstShortfalls"), 2) if v >= 0)),
            request_mix=next((RequestMix(*m) for m in _number_rows([d.get("requestMix")], 4) if min(m[1:]) >= 0), None),
        )


def _number_rows(items: Any, width: int) -> list[tuple[float, ...]]:
    """The rows of ``width`` finite numbers in a status list; anything else is dropped."""
    out: list[tuple[float, ...]] = []
    for item in items or ():
        if isinstance(item, (list, tuple)) and len(item) == width:
            row = tuple(_num(x) for x in item)
            if all(v is not None for v in row):
                out.append(tuple(float(v) for v in row if v is not None))
    return out


@dataclass(frozen=True)
class DemandEstimate:
    """The numbers a demand estimate used, in replicas (load, ahead, backlog) and in the units of the mode.

    ``rate_unit``: the unit of the rates (RATE_TOKENS, RATE_REQUESTS, or None before any throughput is measured);
    ``arrivals``, ``served`` (fleet-wide), ``service_rate`` and ``per_replica_target`` are in that unit per second.
    ``trend_per_min``: the arrival trend (throughput mode) or the running-sequences trend (concurrency mode).
    """

    mode: str  # MODE_THROUGHPUT or MODE_CONCURRENCY
    load: float  # replicas for the current load
    ahead: float  # replicas asked for ahead of time (the trend, or the seasonal forecast)
    backlog: float  # replicas to drain the queue above its target
    rate_unit: str | None = None
    arrivals: float = -1.0
    served: float = 0.0
    service_rate: float | None = None  # throughput mode: mu, per replica
    per_replica_target: float | None = None  # throughput mode: target_throughput_utilization * mu
    carried_rate: float | None = None
    capacity: float = 0.0  # c_cap, sequences per replica
    concurrency_target: float | None = None  # concurrency mode: sequences per replica to aim for
    kv_bound: bool = False  # concurrency mode: the target is bound by the KV cache
    capped_by_carried_rate: bool = False  # concurrency mode: the load was capped by the carried rate
    trend_per_min: float = 0.0
    seasonal_growth: float | None = None  # the seasonal forecast's growth over one cold start (None: none)
    # burst headroom: replicas held warm for the shortfalls recent cold starts brought (0 when off or none seen)
    burst_headroom: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What to do.  ``desired_replicas`` is the StatefulSet size to set; ``recommendation`` the raw,
    unstabilized size the demand model asks for; ``active`` is False when the metrics could not be
    trusted and the policy held the current size.  ``mode`` and ``estimate`` say how the demand was
    estimated ("" and None when the policy held without estimating)."""

    desired_replicas: int
    reason: str
    message: str
    observed_queue: float
    active: bool
    state: PolicyState
    recommendation: int = 0
    demand: float = 0.0
    capacity: float = 0.0
    mode: str = ""
    estimate: DemandEstimate | None = None
    # replicas held above the demand: the warm pool plus the burst headroom (None: held without deciding)
    warm_pool: int | None = None


def default_scale_down_window_s(seasonal_period_s: float | None, warm_pool: int) -> float:
    """The scale-down window when the user sets none. Reacting alone, 600 s: the last wave's replicas are the
    warm capacity for the next (the sensitivity grid's corner, bench/autoscaling/README.md). With a seasonal
    forecast and a warm pool, 300 s: the forecast asks for the next ramp one cold start ahead and the warm pool
    takes what it misses, so holding the last wave's replicas for ten minutes pays for the same wave twice. Without
    a warm pool the held replicas are the only spare capacity, and 300 s lost the SLO on more seasonal draws than it
    saved GPU-hours on (bench/autoscaling/README.md, "Repeating cycles")."""
    if seasonal_period_s is not None and warm_pool > 0:
        return SEASONAL_SCALE_DOWN_WINDOW_S
    return REACTIVE_SCALE_DOWN_WINDOW_S


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
    for name, v in (
        ("ready", obs.ready_replicas),
        ("starting", obs.starting_replicas),
        ("desired", obs.current_desired),
    ):
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
            return HOLD_METRICS_INVALID, (
                f"garbage sample from {s.name or '?'}: waiting={s.waiting!r} "
                f"running={s.running!r} kv={s.kv_cache_usage!r}"
            )
        if s.request_rate is not None and not _finite_nonneg(s.request_rate):
            return HOLD_METRICS_INVALID, f"garbage request rate {s.request_rate!r} from {s.name or '?'}"
        if s.token_rate is not None and not _finite_nonneg(s.token_rate):
            return HOLD_METRICS_INVALID, f"garbage token rate {s.token_rate!r} from {s.name or '?'}"
        for what, x in (("prompt", s.prompt_token_rate), ("generated", s.generation_token_rate)):
            if x is not None and not _finite_nonneg(x):
                return HOLD_METRICS_INVALID, f"garbage {what} token rate {x!r} from {s.name or '?'}"
        if s.router_in_flight is not None and not _finite_nonneg(s.router_in_flight):
            return HOLD_METRICS_INVALID, f"garbage router in-flight count {s.router_in_flight!r} for {s.name or '?'}"
        if s.kv_cache_usage > 1.0 + 1e-6:
            return HOLD_METRICS_INVALID, f"kv_cache_usage {s.kv_cache_usage} > 1 from {s.name or '?'}"
    if not obs.samples or len(obs.samples) < config.min_sample_fraction * obs.ready_replicas:
        return HOLD_METRICS_MISSING, f"samples from {len(obs.samples)} of {obs.ready_replicas} Ready replicas"
    return None


def _learn_capacity(
    prev: float | None,
    prev_time: float | None,
    now: float,
    run_pr: float,
    wait_pr: float,
    q_target: float,
    config: AutoscalingConfig,
    settled: bool = True,
) -> float:
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


def _learn_service_rate(
    prev: float | None,
    prev_time: float | None,
    evidence: float | None,
    now: float,
    tp_pr: float,
    saturated: bool,
    no_queue: bool,
    config: AutoscalingConfig,
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


_NO_SEASON_ENTRY = SeasonEntry(-1.0, 0.0, -1.0)


def _season_update(
    season: tuple[SeasonEntry, ...], now: float, rate: float, config: AutoscalingConfig
) -> tuple[SeasonEntry, ...]:
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
        entries[k] = SeasonEntry(now, v + 0.3 * (rate - v), prev)
    else:
        last_cycle = t_upd >= 0 and abs(now - period - t_upd) < 2 * width
        entries[k] = SeasonEntry(now, rate, v if last_cycle else -1.0)
    return tuple(entries)


def _seasonal_growth(
    season: tuple[SeasonEntry, ...], now: float, config: AutoscalingConfig
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


# ---- decide(), in stages -------------------------------------------------------------------------------------------
#
# validate the observation -> update the windows -> learn the rates -> estimate the demand (one function per mode,
# then the seasonal forecast) -> stabilise (the size to recommend and to keep) -> choose the step and its reason.
# Each stage is a pure function of what the previous ones computed.


@dataclass(frozen=True)
class _Windows:
    """Stage 2: this observation's fleet totals, the windows kept in the state, and their means per replica."""

    ready: int
    waiting: float
    running: float
    kv: float
    rows: tuple[WindowRow, ...]  # within the longest window kept, this observation last
    recent: tuple[WindowRow, ...]  # within the demand window
    run_pr: float  # mean running per Ready replica over the demand window
    wait_pr: float  # mean waiting per Ready replica over the demand window
    q_target: float
    excess_waiting: float  # waiting above the queue target, fleet-wide
    settled: bool  # no pod starting, and the same Ready count over the demand window
    full_trend: bool  # the window reaches back (almost) a full trend window
    saturated_since: dict[str, float]  # replicas with a standing queue, and since when


@dataclass(frozen=True)
class _Rates:
    """Stage 3: what was learned about one replica's capacity, in the unit of the current observation."""

    capacity: float  # c_cap (sequences)
    unit: str | None  # RATE_TOKENS, RATE_REQUESTS, or None when no throughput is measured yet
    learned: PolicyState  # the state, with rates of another unit dropped
    per_request: float | None  # tokens per request of the current mix (1 in requests/s; None: unknown)
    service_rate: float | None  # mu, used now (learned, else the converted prior)
    stored: float | None  # the service rate to persist
    evidence: float | None  # the rate last backed by evidence
    prior_since: float | None  # when an unstored prior was first used
    served: float  # completions (or tokens) per second per replica; -1 when unknown
    carried: float | None  # the highest rate per replica carried without a queue
    arrivals: float  # arrival rate (tokens/s or requests/s); -1 when unknown
    arrivals_trend: float  # least-squares slope of the rate over the trend window (per second)
    arrivals_ahead: float  # the rising part of the trend over one cold start


@dataclass(frozen=True)
class _Demand:
    """Stage 4: replicas the demand asks for, in parts, and the words that say how they were estimated."""

    estimate: DemandEstimate
    hysteresis: float
    text: str

    @property
    def total(self) -> float:
        return self.estimate.load + self.estimate.ahead + self.estimate.backlog


@dataclass(frozen=True)
class _Burst:
    """Stage 4b: the burst headroom (replicas), the estimates still waiting for their cold start to pass, the
    per-minute shortfalls within the window, and the words for the decision's message."""

    headroom: float
    pending: tuple[BurstPoint, ...]
    shortfalls: tuple[tuple[float, float], ...]
    text: str


@dataclass(frozen=True)
class _Target:
    """Stage 5: the recommendation, the size to keep, and the next state."""

    pool: int  # replicas above the demand: the warm pool plus the burst headroom
    need: int
    wanted: int
    recommendation: int
    keep: int
    recommendations: tuple[tuple[float, int], ...]
    safe_load: float | None
    state: PolicyState


def _hold_untrusted(obs: Observation, state: PolicyState, config: AutoscalingConfig, current: int) -> Decision | None:
    """Stage 1: trust nothing we cannot check: hold the current size (clamped into bounds; never 0 or max)."""
    held = _clamp(current, config)
    bad = _validate(obs, config)
    if bad is not None:
        reason, why = bad
        return Decision(held, reason, f"holding {held} replicas: {why}", 0.0, False, state, held)
    if obs.ready_replicas == 0:
        if obs.starting_replicas > 0:
            return Decision(
                held,
                HOLD_WAITING_FOR_PODS,
                f"no Ready replica yet, {obs.starting_replicas} starting: holding {held}",
                0.0,
                False,
                state,
                held,
            )
        return Decision(
            held,
            HOLD_METRICS_MISSING if held == current else SCALE_UP_FLOOR,
            f"no Ready or starting replica: holding the floor-clamped size {held}",
            0.0,
            False,
            state,
            held,
        )
    return None


def _update_windows(obs: Observation, state: PolicyState, config: AutoscalingConfig) -> _Windows:
    """Stage 2: observed totals, appended to the windows.  A Ready replica without a sample is, almost always, one
    that became Ready after the last scrape: it counts as capacity and carries no load yet."""
    ready = obs.ready_replicas
    waiting = sum(s.queued() for s in obs.samples)
    running = sum(s.running for s in obs.samples)
    kv = sum(s.kv_cache_usage for s in obs.samples)
    with_rate = [s.request_rate for s in obs.samples if s.request_rate is not None]
    # Prometheus' rate() needs two scrapes: a replica younger than that has no rate and no completions yet
    completions = sum(with_rate) if with_rate else -1.0
    with_tokens = [s.token_rate for s in obs.samples if s.token_rate is not None]
    tokens = sum(with_tokens) if with_tokens else -1.0
    keep_s = max(config.demand_window_s + 60.0, config.trend_window_s)
    rows = tuple(WindowRow(*x) for x in state.window if obs.time - keep_s < x[0] < obs.time) + (
        WindowRow(obs.time, running, waiting, ready, completions, tokens),
    )
    recent = tuple(x for x in rows if x.time > obs.time - config.demand_window_s)
    run_pr = sum(x.running / x.ready for x in recent) / len(recent)
    wait_pr = sum(x.waiting / x.ready for x in recent) / len(recent)
    q_target = config.queue_target()
    # learn only from a settled fleet: no pod starting and the same Ready count over the window (right after
    # a scale-up, a backlog spread over fresh replicas says nothing about what one replica can carry)
    settled = (
        obs.starting_replicas == 0
        and all(x.ready == ready for x in recent)
        and (len(recent) > 1 and recent[0].time <= obs.time - 0.75 * config.demand_window_s)
    )
    tw = config.trend_window_s
    prev_since = dict(state.saturated_since)
    return _Windows(
        ready=ready,
        waiting=waiting,
        running=running,
        kv=kv,
        rows=rows,
        recent=recent,
        run_pr=run_pr,
        wait_pr=wait_pr,
        q_target=q_target,
        excess_waiting=max(0.0, wait_pr - q_target) * ready,
        settled=settled,
        full_trend=tw > 0 and rows[0].time <= obs.time - 0.9 * tw,
        saturated_since={
            s.name: prev_since.get(s.name, obs.time)
            for s in obs.samples
            if s.name and s.queued() >= config.saturation_queue
        },
    )


def _rate_unit(recent: tuple[WindowRow, ...]) -> str | None:
    """Throughput is measured in tokens processed per second when vLLM's token counters are read over the whole
    window, else in completions per second.  Tokens, because what a replica sustains in requests/s depends on the
    request mix (in the benchmark's service model: 22x between a chat mix and 15k-token prompts) and in tokens/s
    far less (2.4x): a rate learned on one mix then stays roughly right on the next.  None: Prometheus has no rate
    yet (new replicas): concurrency mode, keeping what was learned."""
    if all(x.completions >= 0 and x.tokens >= 0 for x in recent):
        return RATE_TOKENS
    if all(x.completions >= 0 for x in recent):
        return RATE_REQUESTS
    return None


def _tokens_per_request(rows: tuple[WindowRow, ...], unit: str | None) -> float | None:
    """Tokens per request of the current mix: converts what is counted in requests (the in-flight growth, the
    backlog) and a prior given in requests/s.  Over the whole window kept (3 minutes): tokens per request are
    heavy-tailed, and a noisier estimate means more replicas (scale-down keeps the window's highest recommendation);
    unknown (no throughput mode) when nothing completed at all."""
    if unit == RATE_REQUESTS:
        return 1.0
    if unit != RATE_TOKENS:
        return None
    both = [x for x in rows if x.completions >= 0 and x.tokens >= 0]
    done = sum(x.completions for x in both)
    per_request = sum(x.tokens for x in both) / done if done > 0 else math.nan
    # a vanishing completion rate (1e-309/s: a counter read across a reset) makes the ratio overflow: unknown
    return per_request if math.isfinite(per_request) else None


MIX_SMOOTHING_S = 180.0  # the time constant of the smoothed request mix: the window of the tokens per request


def _mix_now(obs: Observation) -> tuple[float, float, float] | None:
    """Per request completed over the last minute, fleet-wide: (prompt tokens, prompt tokens computed, generated
    tokens); None unless every sample with completions has all three rates."""
    done = [s for s in obs.samples if s.request_rate]
    if not done or any(
        s.token_rate is None or s.prompt_token_rate is None or s.generation_token_rate is None for s in done
    ):
        return None
    n = sum(s.request_rate or 0.0 for s in done)
    generated = sum(s.generation_token_rate or 0.0 for s in done)
    prompt = sum(s.prompt_token_rate or 0.0 for s in done)
    computed = sum(s.token_rate or 0.0 for s in done) - generated
    mix = (prompt / n, max(0.0, computed) / n, generated / n)
    return mix if all(math.isfinite(x) for x in mix) else None  # a vanishing rate: no reading


def _smooth_mix(previous: RequestMix | None, obs: Observation) -> RequestMix | None:
    """The request mix, smoothed exponentially over MIX_SMOOTHING_S: a minute's mean lengths are noisy (heavy-tailed
    outputs), and a replica's rate moves with them almost one for one.  A mix older than four time constants is
    replaced, not averaged; without a new reading the last one is kept."""
    now = _mix_now(obs)
    if now is None:
        return previous
    if previous is None or not 0.0 <= obs.time - previous.time <= 4 * MIX_SMOOTHING_S:
        return RequestMix(obs.time, *now)
    a = 1.0 - math.exp(-(obs.time - previous.time) / MIX_SMOOTHING_S)
    return RequestMix(obs.time, *(p + a * (x - p) for p, x in zip(previous[1:], now, strict=True)))


def _prior_rate(mix: RequestMix | None, config: AutoscalingConfig) -> float | None:
    """The prior in requests/s: the user's, else the estimate at the smoothed mix (None when neither is known, or the
    estimate is not a positive number)."""
    if config.prior_service_rate is not None:
        return config.prior_service_rate
    if config.prior_rate_model is None or mix is None:
        return None
    rate = config.prior_rate_model(mix.prompt, mix.computed, mix.generated)
    return rate if math.isfinite(rate) and rate > 0 else None


def _service_rate_now(
    learned: PolicyState,
    unit: str | None,
    per_request: float | None,
    prior_rate: float | None,
    now: float,
    config: AutoscalingConfig,
) -> tuple[float | None, float | None]:
    """(mu, prior_since): the learned service rate, else the prior converted at the current mix (which learning then
    corrects: down on saturation, up on more served).  The prior is converted at every decision and stored only once
    evidence backs it, so it follows the mix instead of freezing the first minute's."""
    prior = prior_rate * per_request if prior_rate is not None and per_request is not None else None
    mu = learned.service_rate if learned.service_rate is not None else prior
    prior_since = learned.service_rate_time if learned.service_rate is None else None
    if mu is not None and learned.service_rate is None and unit == RATE_TOKENS:
        # the unstored prior creeps like a stored one (see _learn_service_rate), from when it was first used
        prior_since = now if prior_since is None else prior_since
        if config.capacity_relax_s > 0:
            mu *= min(SERVICE_RATE_MAX_CREEP, math.exp(max(0.0, now - prior_since) / config.capacity_relax_s))
    return mu, prior_since


def _arrivals(
    obs: Observation, w: _Windows, unit: str | None, per_request: float | None, config: AutoscalingConfig
) -> tuple[float, float, float]:
    """(arrivals, trend, ahead): arrivals = completions + growth of what is in flight (conservation of requests), in
    tokens at the mix's tokens per request; the slope of the rate over the trend window; and its rising part over
    one cold start, never more than half the arrivals (a burst is not a ramp).  -1, 0, 0 when nothing is measured."""
    if unit is None:
        return -1.0, 0.0, 0.0
    growth = _slope([(x.time, x.running + x.waiting) for x in w.recent], min_points=3, min_span=30.0)
    arrivals = max(0.0, sum(x.completions for x in w.recent) / len(w.recent) + growth) * (per_request or 0.0)
    trend = 0.0
    if w.full_trend:
        trend = _slope(
            [(x.time, x.rate(unit)) for x in w.rows if x.time > obs.time - config.trend_window_s and x.rate(unit) >= 0]
        )
    return arrivals, trend, min(max(0.0, trend) * config.cold_start_s, 0.5 * max(arrivals, 0.0))


def _learn_throughput(
    obs: Observation,
    w: _Windows,
    learned: PolicyState,
    unit: str,
    per_request: float | None,
    mu: float | None,
    config: AutoscalingConfig,
) -> tuple[float, float | None, float | None, float | None]:
    """(served per replica, mu, its evidence, mu to store) after this observation."""
    served = sum(x.rate(unit) / x.ready for x in w.recent) / len(w.recent)
    # a replica that has had a standing queue for the demand window plus the one-minute rate window
    # (completions lag the gauges) completes at its service rate; judged per replica, because a queue
    # stuck on one replica says nothing about the others
    span = config.demand_window_s + 60.0
    proven = [
        r
        for r in (
            (s.token_rate if unit == RATE_TOKENS else s.request_rate)
            for s in obs.samples
            if s.name in w.saturated_since and w.saturated_since[s.name] <= obs.time - span
        )
        if r is not None
    ]
    saturated = bool(proven)
    if proven:
        served = sum(proven) / len(proven)
    no_queue = w.settled and w.wait_pr <= 0.5 * w.q_target
    converted_prior = unit == RATE_TOKENS and learned.service_rate is None and mu is not None
    served_requests = sum(x.completions / x.ready for x in w.recent) / len(w.recent)
    evidence = learned.service_rate_evidence
    if (
        mu is not None
        and converted_prior
        and no_queue
        and not saturated
        and config.learn_capacity
        and per_request
        and served_requests > mu / per_request
    ):
        # more served without a queue than a prior given in requests/s: judged in requests/s, because the mix
        # it is converted at (3 minutes) lags the last minute's tokens; the tokens/s served are the evidence
        mu = evidence = served
        evidence_now = True
    else:
        mu, evidence, evidence_now = _learn_service_rate(
            mu,
            learned.service_rate_time if learned.service_rate is not None else None,
            evidence,
            obs.time,
            served,
            saturated,
            no_queue and not converted_prior,
            config,
        )
    # a learned rate is kept; a prior in tokens is kept once evidence backs it (else it is reconverted)
    stored = mu if (learned.service_rate is not None or evidence_now or unit == RATE_REQUESTS) else None
    return served, mu, evidence, stored


def _carried_rate(
    w: _Windows, carried: float | None, unit: str | None, served: float, config: AutoscalingConfig
) -> float | None:
    """The highest rate per replica a settled fleet served without a queue (lowered to the rate at which a settled
    fleet queues: the current mix is heavier than the one carried before)."""
    if unit is not None and config.learn_capacity and w.settled and served > 0:
        if w.wait_pr <= 0.5 * w.q_target:
            return max(carried or 0.0, served)
        if w.wait_pr > w.q_target and carried is not None and served < carried:
            return served
    return carried


def _learn_rates(obs: Observation, state: PolicyState, config: AutoscalingConfig, w: _Windows) -> _Rates:
    """Stage 3: c_cap, the service rate (and its unit), the carried rate, and the arrivals they are compared with.
    Rates learned in another unit are relearned, not converted (a conversion would need the mix they were learned
    on)."""
    cap = _learn_capacity(
        state.capacity, state.capacity_time, obs.time, w.run_pr, w.wait_pr, w.q_target, config, w.settled
    )
    unit = _rate_unit(w.recent)
    learned = state
    if unit is not None and unit != state.rate_unit:
        learned = replace(
            state,
            service_rate=None,
            service_rate_time=None,
            service_rate_evidence=None,
            carried_rate=None,
            rate_unit=unit,
        )
    per_request = _tokens_per_request(w.rows, unit)
    if config.prior_rate_model is not None:
        learned = replace(learned, request_mix=_smooth_mix(learned.request_mix, obs))
    mu, prior_since = _service_rate_now(
        learned, unit, per_request, _prior_rate(learned.request_mix, config), obs.time, config
    )
    evidence, stored, served = learned.service_rate_evidence, learned.service_rate, -1.0
    if unit is not None:
        served, mu, evidence, stored = _learn_throughput(obs, w, learned, unit, per_request, mu, config)
    arrivals, trend, ahead = _arrivals(obs, w, unit, per_request, config)
    return _Rates(
        capacity=cap,
        unit=unit,
        learned=learned,
        per_request=per_request,
        service_rate=mu,
        stored=stored,
        evidence=evidence,
        prior_since=prior_since,
        served=served,
        carried=_carried_rate(w, learned.carried_rate, unit, served, config),
        arrivals=arrivals,
        arrivals_trend=trend,
        arrivals_ahead=ahead,
    )


def _unit_label(unit: str | None) -> str:
    return "tok/s" if unit == RATE_TOKENS else "req/s"


def _throughput_demand(w: _Windows, r: _Rates, mu: float, per_request: float, config: AutoscalingConfig) -> _Demand:
    """Throughput mode, linear in load: arrivals over what a replica sustains at the target utilization, plus
    draining the backlog above the queue target, plus the arrival trend over one cold start."""
    per_replica = config.target_throughput_utilization * mu
    unit = _unit_label(r.unit)
    estimate = DemandEstimate(
        mode=MODE_THROUGHPUT,
        load=r.arrivals / per_replica,
        ahead=r.arrivals_ahead / per_replica,
        backlog=w.excess_waiting * per_request / config.drain_time_s / per_replica,
        rate_unit=r.unit,
        arrivals=r.arrivals,
        served=max(r.served, 0) * w.ready,
        service_rate=mu,
        per_replica_target=per_replica,
        trend_per_min=r.arrivals_trend * 60,
        carried_rate=r.carried,
        capacity=r.capacity,
    )
    text = (
        f"throughput mode: arrivals {r.arrivals:.1f} {unit} (served {estimate.served:.1f} {unit}), service rate "
        f"{mu:.2f} {unit}/replica, target {per_replica:.2f}; trend {estimate.trend_per_min:+.1f} {unit} per min"
    )
    return _Demand(estimate, config.down_hysteresis_throughput, text)


def _concurrency_demand(obs: Observation, w: _Windows, r: _Rates, config: AutoscalingConfig) -> _Demand:
    """Concurrency mode (Little's law); a saturated replica holds c_cap sequences whatever the overload: count no
    more than that (the queue term carries the rest), or the convex pile-up would read as 2-3x demand.  A backlog is
    counted at most as one more fleet (the step limit would cut it there anyway)."""
    cap = r.capacity
    c_target = config.target_utilization * cap
    kv_bound = False
    if w.kv > 1e-3 and w.running >= 1:
        c_kv = w.running * config.kv_cache_target / w.kv  # sequences of the current mix under the KV target
        if c_kv < c_target:
            c_target, kv_bound = c_kv, True
    c_target = max(1.0, c_target)
    backlog_seqs = min(w.excess_waiting, c_target * w.ready)
    inflight = min(w.run_pr, cap) * w.ready
    # capacity asked for now is Ready one cold start later: add the rising part of the running trend,
    # never more than half the current demand (a burst is not a ramp)
    trend = (
        _slope([(x.time, x.running) for x in w.rows if x.time > obs.time - config.trend_window_s])
        if w.full_trend
        else 0.0
    )
    ahead = min(max(0.0, trend) * config.cold_start_s, 0.5 * (inflight + backlog_seqs))
    load, ahead_r = inflight / c_target, ahead / c_target
    text = (
        f"concurrency mode: capacity {cap:.1f} seqs/replica, target {c_target:.1f}"
        f"{' (KV-bound)' if kv_bound else ''}; running trend {trend * 60:+.0f}/min"
    )
    capped = False
    if r.carried is not None and r.unit is not None:
        # linear cap of the load part (what the arrivals need at the rate replicas were seen to carry without a
        # queue); the backlog part stays as it is, so a queue still scales up whatever the cap says
        per_carried = config.target_throughput_utilization * r.carried
        if (r.arrivals + r.arrivals_ahead) / per_carried < load + ahead_r:
            load, ahead_r, capped = r.arrivals / per_carried, r.arrivals_ahead / per_carried, True
            text += (
                f"; capped by arrivals {r.arrivals:.1f} {_unit_label(r.unit)} over "
                f"{config.target_throughput_utilization:.2f} x the carried rate {r.carried:.2f} "
                f"{_unit_label(r.unit)}/replica"
            )
    estimate = DemandEstimate(
        mode=MODE_CONCURRENCY,
        load=load,
        ahead=ahead_r,
        backlog=backlog_seqs / c_target,
        rate_unit=r.unit,
        arrivals=r.arrivals,
        served=max(r.served, 0) * w.ready,
        carried_rate=r.carried,
        capacity=cap,
        concurrency_target=c_target,
        kv_bound=kv_bound,
        trend_per_min=trend * 60,
        capped_by_carried_rate=capped,
    )
    return _Demand(estimate, config.down_hysteresis_concurrency, text)


def _seasonal(
    obs: Observation, state: PolicyState, w: _Windows, r: _Rates, demand: _Demand, config: AutoscalingConfig
) -> tuple[_Demand, tuple[SeasonEntry, ...]]:
    """Seasonal forecast (throughput mode only): the completion rate recorded one cycle ago tells how much it grows
    over the next cold start; that replaces the trend, which only extrapolates what is already happening.  Not in
    concurrency mode: running sequences are convex in the load, and a forecast multiplying them overshoots."""
    season = state.season
    if not (config.seasonal_period_s and r.unit is not None):
        return demand, season
    growth, why = _seasonal_growth(season, obs.time, config)
    season = _season_update(season, obs.time, sum(x.completions for x in w.recent) / len(w.recent), config)
    if r.service_rate is None:
        return demand, season
    text = demand.text + (
        f"; seasonal growth over one cold start x{growth:.2f} ({why})"
        if growth is not None
        else f"; no seasonal forecast: {why}"
    )
    estimate = replace(demand.estimate, seasonal_growth=growth)
    if growth is not None:
        estimate = replace(estimate, ahead=estimate.load * (growth - 1.0))
    return replace(demand, estimate=estimate, text=text), season


def _estimate_demand(
    obs: Observation, state: PolicyState, w: _Windows, r: _Rates, config: AutoscalingConfig
) -> tuple[_Demand, tuple[SeasonEntry, ...]]:
    """Stage 4: replicas for the load, for what comes one cold start from now, and to drain the backlog."""
    if r.service_rate is not None and r.unit is not None and r.per_request is not None:
        demand = _throughput_demand(w, r, r.service_rate, r.per_request, config)
    else:
        demand = _concurrency_demand(obs, w, r, config)
    return _seasonal(obs, state, w, r, demand, config)


_BURST_BUCKET_S = 60.0  # shortfalls are kept as the largest per minute: a sample per minute of the window


def _burst_headroom(obs: Observation, state: PolicyState, demand: _Demand, config: AutoscalingConfig) -> _Burst:
    """Stage 4b: the shortfalls of the cold starts that have passed, and the headroom they ask for now.

    A demand estimate made at t asked for load(t) + ahead(t) + the warm pool, which carry that sum over
    ``target_throughput_utilization`` at full utilization. Two cold starts later the loads estimated within
    (t, t + cold_start_s] are known, and the load one cold start after that: the peak beyond both what was carried
    and that later load is a burst that no replica asked for at t or after could have met, and that was gone before
    reacting helped. Over the last ``burst_window_s`` those shortfalls (the largest per minute) are the evidence;
    their ``burst_headroom_quantile`` is held warm on top of the warm pool. Causal: a shortfall is known two cold
    starts late, so the first burst of a kind is always missed."""
    q = config.burst_headroom_quantile
    if q is None:
        return _Burst(0.0, (), (), "")
    est = demand.estimate
    pending = tuple(p for p in state.burst_pending if p.time < obs.time)
    # the margin the utilization target keeps (0.85 of the service rate) absorbs noise: it is not a shortfall
    carries = (est.load + est.ahead + config.warm_pool) / config.target_throughput_utilization
    pending += (BurstPoint(obs.time, est.load, carries),)
    worst = dict(state.burst_shortfalls)
    waiting: list[BurstPoint] = []
    c = config.cold_start_s
    for p in pending:
        if p.time > obs.time - 2 * c:
            waiting.append(p)
            continue
        within = [x.load for x in pending if p.time < x.time <= p.time + c]
        after = [x.load for x in pending if p.time + c < x.time <= p.time + 2 * c]
        if within:
            # a load still there one more cold start later is a level the reactive path catches up with (a ramp, a
            # step): only the part of the peak that is gone by then is a burst that nothing asked for later can meet
            level = after[-1] if after else within[-1]
            bucket = math.floor(p.time / _BURST_BUCKET_S) * _BURST_BUCKET_S
            worst[bucket] = max(worst.get(bucket, 0.0), max(0.0, max(within) - max(p.carries, level)))
    kept = tuple(sorted((t, v) for t, v in worst.items() if t > obs.time - config.burst_window_s))
    if not kept:
        return _Burst(0.0, tuple(waiting), kept, "; burst headroom: no cold start has passed yet")
    # minutes of the window not observed yet count as none: one event in the first minutes is not yet a pattern
    unseen = max(0, math.ceil(config.burst_window_s / _BURST_BUCKET_S) - len(kept))
    values = [0.0] * unseen + sorted(v for _, v in kept)
    headroom = values[max(0, math.ceil(q * len(values)) - 1)]  # nearest-rank quantile
    text = (
        f"; burst headroom {headroom:.2f} replicas (the {q:.0%} quantile of {len(values)} per-minute shortfalls "
        f"beyond what the fleet carried, the largest {values[-1]:.2f})"
    )
    return _Burst(headroom, tuple(waiting), kept, text)


def _stabilise(
    obs: Observation,
    state: PolicyState,
    w: _Windows,
    r: _Rates,
    demand: _Demand,
    season: tuple[SeasonEntry, ...],
    burst: _Burst,
    config: AutoscalingConfig,
) -> _Target:
    """Stage 5: the recommendation (demand + warm pool, clamped), the size to keep (what the demand asks at the
    scale-down target, recorded for the stabilization window), the trust region, and the next state.  The warm
    pool is the configured one plus the burst headroom."""
    # an estimate that overflowed (a rate near zero in a denominator) asks for everything, not for a crash
    total = demand.total if math.isfinite(demand.total) else float(config.max_replicas)
    pool = config.warm_pool + math.ceil(burst.headroom - 1e-9)
    need = math.ceil(total - 1e-9) if total > 0 else 0
    wanted = need + pool
    keep_n = _clamp((math.ceil(total / demand.hysteresis - 1e-9) if total > 0 else 0) + pool, config)
    keep = max(config.scale_down_stabilization_s, config.scale_up_stabilization_s)
    recs = tuple((t, n) for t, n in state.recommendations if obs.time - keep <= t < obs.time) + ((obs.time, keep_n),)
    safe = state.safe_load
    if w.settled and w.wait_pr <= 0.5 * w.q_target:
        safe = max(safe or 0.0, w.run_pr)
    elif w.settled and w.wait_pr > w.q_target and safe is not None:
        safe = min(safe, 0.8 * w.run_pr)  # a queue at this load: the trust region ends below it
    new_state = replace(
        r.learned,
        recommendations=recs,
        window=w.rows,
        capacity=r.capacity,
        capacity_time=obs.time,
        service_rate=r.stored,
        service_rate_time=obs.time if r.stored is not None else r.prior_since,
        service_rate_evidence=r.evidence if r.stored is not None else None,
        safe_load=safe,
        saturated_since=tuple(sorted(w.saturated_since.items())),
        carried_rate=r.carried,
        season=season,
        burst_pending=burst.pending,
        burst_shortfalls=burst.shortfalls,
    )
    return _Target(
        pool=pool,
        need=need,
        wanted=wanted,
        recommendation=_clamp(wanted, config),
        keep=keep_n,
        recommendations=recs,
        safe_load=safe,
        state=new_state,
    )


# (desired replicas, reason, what was done, next state)
_Step = tuple[int, str, str, PolicyState]


def _scale_up(obs: Observation, w: _Windows, t: _Target, current: int, config: AutoscalingConfig) -> _Step:
    """Fast; compared with the current desired size, which already counts starting pods."""
    rec, floor = t.recommendation, floor_replicas(config)
    target = rec
    if config.scale_up_stabilization_s > 0:
        target = min([rec] + [n for ts, n in t.recommendations if ts >= obs.time - config.scale_up_stabilization_s])
    target = min(target, current + (config.max_scale_up_step or max(4, current)))
    target = max(target, min(rec, floor))  # the floor is a bound, not a step
    if target <= current:
        return current, HOLD_STABILIZING, f"scale-up to {rec} is stabilizing", t.state
    if t.wanted > config.max_replicas and target == config.max_replicas:
        reason = CLAMPED_TO_MAX
    elif current < floor:
        reason = SCALE_UP_FLOOR
    elif w.excess_waiting > 0:
        reason = SCALE_UP_QUEUE
    elif t.need <= current:
        reason = SCALE_UP_WARM_POOL
    else:
        reason = SCALE_UP_DEMAND
    return (
        target,
        reason,
        f"scaling {current} -> {target} (wanted {t.wanted})",
        replace(t.state, last_scale_up_time=obs.time),
    )


def _scale_down(
    obs: Observation, state: PolicyState, w: _Windows, t: _Target, current: int, config: AutoscalingConfig
) -> _Step:
    """Only after a full window of lower recommendations, one step at a time, within the trust region."""
    if current > config.max_replicas:
        return (
            config.max_replicas,
            SCALE_DOWN_CEILING,
            f"above max_replicas: {current} -> {config.max_replicas}",
            replace(t.state, last_scale_down_time=obs.time),
        )
    win = config.scale_down_stabilization_s
    highest = max(n for ts, n in t.recommendations if ts >= obs.time - win)
    if highest >= current or not _covered(state, obs.time, win):
        return (
            current,
            HOLD_STABILIZING,
            f"scale-down to {t.keep} < {current}, but within the last {win:.0f}s the "
            f"policy asked for up to {highest} or has not watched that long",
            t.state,
        )
    last = state.last_scale_down_time
    if last is not None and obs.time - last < config.scale_down_period_s:
        return (
            current,
            HOLD_STABILIZING,
            f"last scale-down {obs.time - last:.0f}s ago (period {config.scale_down_period_s:.0f}s)",
            t.state,
        )
    target = max(highest, current - config.max_scale_down_step, floor_replicas(config))
    # trust region: the load per replica after the step, scaled linearly, must have been carried before
    # without a queue; otherwise the step is a probe: one replica, a full window after the last step
    ready_after = max(1, min(w.ready, target))
    predicted = w.run_pr * w.ready / ready_after
    if w.run_pr > 0 and (t.safe_load is None or predicted > t.safe_load):
        if last is not None and obs.time - last < win:
            return (
                current,
                HOLD_STABILIZING,
                f"scale-down to {target} would load replicas with {predicted:.1f} "
                f"running each, beyond the {t.safe_load or 0:.1f} seen without a queue; the last probe was "
                f"{obs.time - last:.0f}s ago",
                t.state,
            )
        target = max(target, current - 1)
    reason = SCALE_DOWN_IDLE if w.waiting == 0 and w.running == 0 else SCALE_DOWN_DEMAND
    return target, reason, f"scaling {current} -> {target}", replace(t.state, last_scale_down_time=obs.time)


def _choose(
    obs: Observation, state: PolicyState, w: _Windows, t: _Target, current: int, config: AutoscalingConfig
) -> _Step:
    """Stage 6: the step and its reason."""
    if t.recommendation > current:
        return _scale_up(obs, w, t, current, config)
    if t.keep < current:
        return _scale_down(obs, state, w, t, current, config)
    return current, HOLD_AT_TARGET, f"at target {current}", t.state


def decide(obs: Observation, state: PolicyState, config: AutoscalingConfig) -> Decision:
    """Map an observation and the previous state to a replica count, a reason and the next state."""
    floor = floor_replicas(config)
    current = obs.current_desired if isinstance(obs.current_desired, int) and obs.current_desired >= 0 else floor
    held = _hold_untrusted(obs, state, config, current)
    if held is not None:
        return held
    w = _update_windows(obs, state, config)
    rates = _learn_rates(obs, state, config, w)
    demand, season = _estimate_demand(obs, state, w, rates, config)
    burst = _burst_headroom(obs, state, demand, config)
    target = _stabilise(obs, state, w, rates, demand, season, burst, config)
    n, reason, what, next_state = _choose(obs, state, w, target, current, config)
    numbers = (
        f"waiting {w.waiting:.0f}, running {w.running:.0f} (window mean {w.run_pr:.1f}/replica) on "
        f"{w.ready} Ready + {obs.starting_replicas} starting; {demand.text}{burst.text}; demand "
        f"{demand.total:.2f} replicas + warm pool {target.pool}"
    )
    return Decision(
        n,
        reason,
        f"{what}; {numbers}",
        w.waiting,
        True,
        next_state,
        target.recommendation,
        demand.total,
        rates.capacity,
        mode=demand.estimate.mode,
        estimate=replace(demand.estimate, burst_headroom=burst.headroom),
        warm_pool=target.pool,
    )
