"""Unit tests of the pure autoscaling policy (operator/qwen_operator/autoscaling/policy.py)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest

from qwen_operator.autoscaling.policy import (
    MODE_CONCURRENCY,
    MODE_THROUGHPUT,
    RATE_TOKENS,
    AutoscalingConfig,
    Decision,
    DemandEstimate,
    Observation,
    PolicyState,
    ReplicaSample,
    decide,
    floor_replicas,
)

# target 0.5 of a 256-sequence replica (128) keeps the arithmetic below readable; the default is 0.4
CFG = AutoscalingConfig(min_replicas=1, max_replicas=10, warm_pool=1, target_utilization=0.5)


def obs(
    t: float = 1000.0,
    samples=(),
    ready: int | None = None,
    starting: int = 0,
    desired: int | None = None,
    mt: float | None = None,
    missing: bool = False,
) -> Observation:
    samples = tuple(ReplicaSample(*s) if not isinstance(s, ReplicaSample) else s for s in samples)
    ready = len(samples) if ready is None else ready
    desired = ready + starting if desired is None else desired
    return Observation(
        time=t,
        samples=samples,
        ready_replicas=ready,
        starting_replicas=starting,
        current_desired=desired,
        metrics_time=t - 5 if mt is None else mt,
        metrics_missing=missing,
    )


def _estimate(d: Decision) -> DemandEstimate:
    assert d.estimate is not None, d.message
    return d.estimate


def idle(n: int) -> tuple[tuple[float, float, float], ...]:
    return tuple((0.0, 0.0, 0.0) for _ in range(n))


def run(samples_fn, times, cfg=CFG, state=None, desired=None, ready=None, starting=0):
    """Drive decide() over ``times`` feeding back desired replicas; returns the decisions."""
    state = state or PolicyState()
    out: list[Decision] = []
    cur = desired
    for t in times:
        s = samples_fn(t)
        r = len(s) if ready is None else ready
        d = decide(obs(t, s, ready=r, starting=starting, desired=cur if cur is not None else r + starting), state, cfg)
        state = d.state
        cur = d.desired_replicas
        out.append(d)
    return out


# --- configuration -------------------------------------------------------------------------------


def test_defaults_are_safe():
    c = AutoscalingConfig()
    assert c.min_replicas >= 1 and c.max_replicas >= c.min_replicas
    assert c.warm_pool >= 1
    assert c.scale_down_stabilization_s >= 180  # longer than a cold start
    assert c.scale_up_stabilization_s == 0
    assert 0 < c.metrics_max_age_s <= 120


@pytest.mark.parametrize(
    "kw",
    [
        {"min_replicas": -1},
        {"max_replicas": 0},
        {"min_replicas": 5, "max_replicas": 4},
        {"warm_pool": -1},
        {"target_utilization": 0},
        {"target_utilization": 1.5},
        {"kv_cache_target": 0},
        {"target_queue_per_replica": 0},
        {"max_scale_down_step": 0},
        {"metrics_max_age_s": 0},
        {"max_num_seqs": 0},
        {"ttft_slo_seconds": -1},
        {"prior_capacity": 0},
    ],
)
def test_config_rejects_nonsense(kw):
    with pytest.raises(ValueError):
        AutoscalingConfig(**kw)


def test_queue_target_derived_from_slo():
    c = AutoscalingConfig(ttft_slo_seconds=2.0, replica_admission_rps=20.0)
    assert c.queue_target() == pytest.approx(20.0)  # half the SLO budget at 20 admissions/s
    assert AutoscalingConfig(ttft_slo_seconds=2.0).queue_target() == c.target_queue_per_replica
    assert AutoscalingConfig(ttft_slo_seconds=0.1, replica_admission_rps=0.5).queue_target() == 0.25


def test_floor_is_min_plus_warm_pool_capped_at_max():
    assert floor_replicas(AutoscalingConfig(min_replicas=2, warm_pool=1, max_replicas=10)) == 3
    assert floor_replicas(AutoscalingConfig(min_replicas=2, warm_pool=5, max_replicas=4)) == 4
    assert floor_replicas(AutoscalingConfig(min_replicas=0, warm_pool=0, max_replicas=4)) == 0


# --- garbage in: hold ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        (math.nan, 1, 0.1),
        (1, math.nan, 0.1),
        (1, 1, math.nan),
        (-1, 1, 0.1),
        (1, -3, 0.1),
        (1, 1, -0.1),
        (math.inf, 1, 0.1),
        (1, math.inf, 0.2),
        (1, 1, 1.7),
    ],
)
def test_garbage_samples_hold_current_size(bad):
    d = decide(obs(samples=[(0, 10, 0.1), bad, (0, 10, 0.1)], desired=5, ready=3, starting=2), PolicyState(), CFG)
    assert d.desired_replicas == 5
    assert d.active is False
    assert d.reason == "HoldMetricsInvalid"
    assert d.state == PolicyState()  # nothing learned from garbage


def test_missing_metrics_hold_never_zero_never_max():
    for desired in (3, 7):
        d = decide(obs(samples=[], ready=desired, desired=desired, missing=True), PolicyState(), CFG)
        assert (d.desired_replicas, d.active, d.reason) == (desired, False, "HoldMetricsMissing")
    # a huge queue reported by a failed query must not move anything either
    d = decide(obs(samples=[(10_000, 256, 1.0)] * 3, desired=3, missing=True), PolicyState(), CFG)
    assert d.desired_replicas == 3 and not d.active


def test_stale_metrics_hold():
    d = decide(
        obs(t=1000, samples=[(500, 256, 0.9)] * 2, desired=2, mt=1000 - CFG.metrics_max_age_s - 1), PolicyState(), CFG
    )
    assert (d.desired_replicas, d.active, d.reason) == (2, False, "HoldMetricsStale")
    assert "old" in d.message


def test_no_metrics_timestamp_holds():
    o = Observation(
        time=10.0,
        samples=(ReplicaSample(1, 1, 0.1),),
        ready_replicas=1,
        starting_replicas=0,
        current_desired=4,
        metrics_time=None,
    )
    d = decide(o, PolicyState(), CFG)
    assert (d.desired_replicas, d.active) == (4, False)


def test_too_few_samples_hold():
    d = decide(obs(samples=[(50, 256, 0.9)], ready=4, desired=4), PolicyState(), CFG)
    assert (d.desired_replicas, d.active, d.reason) == (4, False, "HoldMetricsMissing")


def test_hold_on_garbage_is_clamped_into_bounds():
    # spec.replicas below the floor (0) or above max: hold means the nearest allowed size, never 0 / beyond max
    d = decide(obs(samples=[], ready=0, desired=0, missing=True), PolicyState(), CFG)
    assert d.desired_replicas == floor_replicas(CFG) and not d.active
    d = decide(obs(samples=[], ready=12, desired=12, missing=True), PolicyState(), CFG)
    assert d.desired_replicas == CFG.max_replicas and not d.active


def test_no_ready_replica_waits_for_starting_pods():
    d = decide(obs(samples=[], ready=0, starting=3, desired=3), PolicyState(), CFG)
    assert (d.desired_replicas, d.reason, d.active) == (3, "HoldWaitingForStartingPods", False)


# --- bounds ----------------------------------------------------------------------------------------


def test_idle_fleet_goes_to_floor_not_below():
    cfg = AutoscalingConfig(
        min_replicas=2,
        warm_pool=1,
        max_replicas=10,
        scale_down_stabilization_s=60,
        scale_down_period_s=0,
        max_scale_down_step=10,
    )
    ds = run(lambda t: idle(6), range(0, 600, 15), cfg=cfg, desired=6, ready=6)
    assert ds[-1].desired_replicas == 3
    assert min(d.desired_replicas for d in ds) == 3
    assert ds[-1].reason in ("HoldAtTarget",)


def test_never_above_max_and_clamped_reason():
    d = decide(obs(samples=[(5000, 256, 0.95)] * 4, desired=4), PolicyState(), AutoscalingConfig(max_replicas=6))
    assert d.desired_replicas == 6
    assert d.reason == "ClampedToMax"
    assert d.recommendation == 6


def test_scale_up_to_floor():
    d = decide(obs(samples=[(0, 0, 0.0)], desired=1), PolicyState(), AutoscalingConfig(min_replicas=1, warm_pool=2))
    assert d.desired_replicas == 3 and d.reason == "ScaleUpToFloor"


# --- scale up ----------------------------------------------------------------------------------------


def test_demand_formula():
    # 300 running over 2 replicas, prior capacity 256 seqs, target 0.5 -> 128 per replica:
    # demand 300/128 = 2.34 -> 3, plus warm pool 1 = 4
    d = decide(obs(samples=[(0, 150, 0.05), (0, 150, 0.05)], desired=2), PolicyState(), CFG)
    assert d.demand == pytest.approx(300 / 128)
    assert d.desired_replicas == 4
    assert d.reason == "ScaleUpDemand"
    e = _estimate(d)
    assert d.mode == MODE_CONCURRENCY and e.concurrency_target == pytest.approx(128.0) and e.load == d.demand
    assert "running 300" in d.message and "demand 2.34" in d.message  # the numbers are in the message too


def test_warm_pool_reason():
    # demand 1.2 -> 2 replicas needed, we have 2: the warm pool asks for the third
    d = decide(obs(samples=[(0, 77, 0.05), (0, 77, 0.05)], desired=2), PolicyState(), CFG)
    assert d.desired_replicas == 3 and d.reason == "ScaleUpWarmPool"


def test_scale_up_is_immediate_and_step_limited():
    cfg = AutoscalingConfig(max_replicas=100, max_num_seqs=256)
    d = decide(obs(samples=[(2000, 256, 0.6)] * 2, desired=2), PolicyState(), cfg)
    assert d.desired_replicas == 2 + 4  # max(+4, +100 %) from 2
    assert d.reason == "ScaleUpQueue"
    d = decide(obs(samples=[(2000, 256, 0.6)] * 10, desired=10), PolicyState(), cfg)
    assert d.desired_replicas == 20  # +100 % from 10
    d = decide(
        obs(samples=[(2000, 256, 0.6)] * 10, desired=10),
        PolicyState(),
        AutoscalingConfig(max_replicas=100, max_scale_up_step=3),
    )
    assert d.desired_replicas == 13


def test_scale_up_stabilization_window_uses_lowest_recommendation():
    cfg = AutoscalingConfig(max_replicas=20, scale_up_stabilization_s=60)
    st = PolicyState(recommendations=((960.0, 3),))
    d = decide(obs(t=1000, samples=[(0, 400, 0.1)] * 3, desired=3), st, cfg)
    assert d.desired_replicas == 3 and d.reason == "HoldStabilizing"
    d2 = decide(obs(t=1061, samples=[(0, 400, 0.1)] * 3, desired=3), d.state, cfg)
    assert d2.desired_replicas > 3


def test_starting_pods_count_as_capacity_no_double_scale_up():
    # demand for 5 (4 + warm pool); 2 Ready, 3 starting -> desired 5 already: hold, whatever the repetitions
    samples = [(0, 250, 0.3), (0, 250, 0.3)]  # 500 running / 128 = 3.9
    state = PolicyState()
    for i in range(10):
        d = decide(obs(t=1000 + 15 * i, samples=samples, ready=2, starting=3, desired=5), state, CFG)
        state = d.state
        assert d.desired_replicas == 5, d.message
    # same load, no pods starting and only 2 desired: scale to 5 in one go, not 2 + 5
    d = decide(obs(t=2000, samples=samples, ready=2, starting=0, desired=2), PolicyState(), CFG)
    assert d.desired_replicas == 5


def test_kv_cache_bound_raises_demand():
    # 10 running sequences fill 0.9 of the KV cache: the KV target (0.8) allows 8.9 per replica
    d = decide(obs(samples=[(0, 10, 0.9)] * 2, desired=2), PolicyState(), CFG)
    assert d.estimate is not None and d.estimate.kv_bound and "KV-bound" in d.message
    assert d.desired_replicas == 4  # 20 / 8.9 = 2.25 -> 3, + warm pool


# --- scale down ----------------------------------------------------------------------------------


def test_scale_down_waits_for_full_window_then_steps():
    cfg = AutoscalingConfig(
        max_replicas=10, scale_down_stabilization_s=300, scale_down_period_s=60, max_scale_down_step=1
    )
    ds = run(lambda t: idle(8), [float(t) for t in range(0, 1200, 15)], cfg=cfg, desired=8, ready=8)
    sizes = [d.desired_replicas for d in ds]
    first_drop = next(i for i, n in enumerate(sizes) if n < 8)
    assert first_drop * 15 >= 300
    # one step per period, never more than max_scale_down_step
    for a, b in zip(sizes, sizes[1:]):
        assert 0 <= a - b <= 1
    drops = [i for i in range(1, len(sizes)) if sizes[i] < sizes[i - 1]]
    assert all((j - i) * 15 >= 60 for i, j in zip(drops, drops[1:]))
    assert {d.reason for d in ds if d.desired_replicas < 8} >= {"ScaleDownIdle"}


def test_one_high_recommendation_in_window_blocks_scale_down():
    cfg = AutoscalingConfig(max_replicas=10, scale_down_stabilization_s=300, scale_down_period_s=0)
    state = PolicyState(recommendations=tuple((float(t), 2) for t in range(0, 1000, 15)) + ((1000.0, 6),))
    d = decide(obs(t=1200, samples=idle(6), desired=6), state, cfg)
    assert d.desired_replicas == 6 and d.reason == "HoldStabilizing"
    d = decide(obs(t=1301, samples=idle(6), desired=6), d.state, cfg)
    assert d.desired_replicas == 5


def test_restart_with_empty_state_does_not_scale_down_at_once():
    d = decide(obs(samples=idle(6), desired=6), PolicyState(), CFG)
    assert d.desired_replicas == 6 and d.reason == "HoldStabilizing"


def test_scale_down_when_above_max():
    d = decide(obs(samples=idle(12), desired=12), PolicyState(), CFG)
    assert d.desired_replicas == CFG.max_replicas


def test_no_flapping_on_alternating_load():
    cfg = AutoscalingConfig(max_replicas=10)
    ds = run(
        lambda t: [(0, 300 if int(t // 30) % 2 else 30, 0.1)] * 4,
        [float(t) for t in range(0, 3600, 15)],
        cfg=cfg,
        desired=4,
        ready=4,
    )
    changes = sum(1 for a, b in zip(ds, ds[1:]) if a.desired_replicas != b.desired_replicas)
    assert changes <= 3


# --- capacity learning ---------------------------------------------------------------------------


def feed(samples, n: int, cfg=CFG, state=None, t0: float = 1000.0, desired: int | None = None, starting: int = 0):
    """Call decide() n times, 15 s apart, with the same samples and a fixed desired size."""
    state = state or PolicyState()
    d = None
    for i in range(n):
        o = obs(
            t0 + 15 * i, samples, starting=starting, desired=desired if desired is not None else len(samples) + starting
        )
        d = decide(o, state, cfg)
        state = d.state
    return d


def test_capacity_learned_from_queue_on_settled_fleet_and_persisted():
    # replicas queue (5 waiting each) while running only 20 sequences: c_cap moves halfway towards 20
    d1 = feed([(5, 20, 0.3)] * 3, 1)
    assert d1.capacity == CFG.prior()  # one scrape proves nothing (the fleet is not known to be settled)
    d = feed([(5, 20, 0.3)] * 3, 6)
    assert d.capacity < 0.5 * CFG.prior()
    assert d.state.capacity == d.capacity
    again = PolicyState.from_dict(json.loads(json.dumps(d.state.to_dict())))
    assert again == d.state


def test_capacity_not_learned_while_pods_start():
    d = feed([(5, 20, 0.3)] * 3, 6, starting=2, desired=5)
    assert d.capacity == pytest.approx(CFG.prior())


def test_capacity_grows_when_carried_without_queue_and_relaxes_to_prior():
    st = PolicyState(capacity=40.0, capacity_time=1000.0)
    d = feed([(0, 60, 0.2)] * 2, 6, state=st, desired=4)
    assert d.capacity == pytest.approx(60, rel=0.01)
    st2 = PolicyState(capacity=40.0, capacity_time=0.0)
    d2 = decide(obs(t=CFG.capacity_relax_s * 10, samples=idle(2), desired=3), st2, CFG)
    assert d2.capacity == pytest.approx(CFG.prior(), rel=1e-3)


def test_learning_can_be_disabled():
    cfg = AutoscalingConfig(learn_capacity=False)
    d = feed([(5, 20, 0.3)] * 3, 6, cfg=cfg)
    assert d.capacity == pytest.approx(cfg.prior())


# --- throughput mode -------------------------------------------------------------------------------


def rs(w: float, r: float, k: float, rate: float | None, name: str) -> ReplicaSample:
    return ReplicaSample(waiting=w, running=r, kv_cache_usage=k, name=name, request_rate=rate)


def test_throughput_mode_is_linear_in_arrivals():
    st = PolicyState(service_rate=20.0, service_rate_time=1000.0)
    samples = [rs(0, 80, 0.3, 17.0, "a"), rs(0, 80, 0.3, 17.0, "b"), rs(0, 80, 0.3, 17.0, "c")]
    d = feed(samples, 4, state=st)
    # 51 req/s completed, nothing accumulating: 51 / (0.85 * 20) = 3.0 replicas, + warm pool
    assert d.demand == pytest.approx(3.0, rel=0.02)
    assert d.desired_replicas == 4
    assert d.mode == MODE_THROUGHPUT


def test_service_rate_learned_per_replica_after_a_standing_queue():
    # replica "a" queues for over two minutes at 21 req/s; "b" is fine: mu comes from "a" only
    samples = [rs(30, 256, 0.5, 21.0, "a"), rs(0, 40, 0.1, 9.0, "b")]
    d = feed(samples, 6)
    assert d.state.service_rate is None  # 75 s of queue is not proof yet
    d = feed(samples, 12)
    assert d.state.service_rate == pytest.approx(21.0, rel=0.01)
    assert dict(d.state.saturated_since)["a"] == 1000.0 and "b" not in dict(d.state.saturated_since)


def test_service_rate_creeps_up_and_rises_on_evidence():
    st = PolicyState(service_rate=10.0, service_rate_time=0.0)
    d = decide(obs(t=0.1 * CFG.capacity_relax_s, samples=[rs(0, 5, 0.1, 1.0, "a")], desired=2), st, CFG)
    assert d.state.service_rate == pytest.approx(10.0 * math.exp(0.1), rel=1e-6)
    assert d.state.service_rate_evidence == 10.0  # creeping is not evidence
    # a day without evidence: the creep stops at 1.25x the last evidence instead of growing e^4-fold
    d = decide(obs(t=86400.0, samples=[rs(0, 5, 0.1, 1.0, "a")], desired=2), st, CFG)
    assert d.state.service_rate == pytest.approx(12.5)
    st2 = PolicyState.from_dict(json.loads(json.dumps(d.state.to_dict())))
    d = decide(obs(t=2 * 86400.0, samples=[rs(0, 5, 0.1, 1.0, "a")], desired=2), st2, CFG)
    assert d.state.service_rate == pytest.approx(12.5) and d.state.service_rate_evidence == 10.0
    # a state from before the evidence was kept, already above the cap: held, not lowered, not raised further
    d = decide(
        obs(t=86400.0, samples=[rs(0, 5, 0.1, 1.0, "a")], desired=2),
        PolicyState(service_rate=30.0, service_rate_time=0.0, service_rate_evidence=10.0),
        CFG,
    )
    assert d.state.service_rate == pytest.approx(30.0)
    d = feed(
        [rs(0, 50, 0.1, 14.0, "a"), rs(0, 50, 0.1, 14.0, "b")],
        6,
        state=PolicyState(service_rate=10.0, service_rate_time=1000.0),
        desired=3,
    )
    assert d.state.service_rate == pytest.approx(14.0, rel=0.01)


def test_prior_service_rate_sizes_linearly_from_the_start_and_learning_corrects_it():
    cfg = AutoscalingConfig(prior_service_rate=20.0)
    samples = [rs(0, 80, 0.3, 17.0, "a"), rs(0, 80, 0.3, 17.0, "b"), rs(0, 80, 0.3, 17.0, "c")]
    d = feed(samples, 4, cfg=cfg)  # nothing learned yet: the prior is the service rate
    assert d.mode == MODE_THROUGHPUT and d.demand == pytest.approx(3.0, rel=0.02)
    assert feed(samples, 4).mode == MODE_CONCURRENCY  # without a prior
    # replicas that keep a queue at 12 req/s prove the prior too high: halfway down at every proof, towards 12
    sat = [rs(30, 256, 0.5, 12.0, "a"), rs(30, 256, 0.5, 12.0, "b")]
    assert feed(sat, 8, cfg=cfg).state.service_rate == pytest.approx(20.0, rel=0.01)  # not proven yet (< 2 min)
    d = feed(sat, 12, cfg=cfg)
    assert 12.0 <= d.state.service_rate < 14.0
    with pytest.raises(ValueError):
        AutoscalingConfig(prior_service_rate=0.0)
    with pytest.raises(ValueError):
        AutoscalingConfig(prior_service_rate=math.inf)


def ts(w: float, r: float, k: float, rate: float, tokens_per_request: float, name: str) -> ReplicaSample:
    """A sample with vLLM's token histograms read: the completed requests' tokens per second."""
    return ReplicaSample(
        waiting=w, running=r, kv_cache_usage=k, name=name, request_rate=rate, token_rate=rate * tokens_per_request
    )


def test_service_rate_is_learned_in_tokens_and_follows_the_request_mix():
    """Learned on a heavy mix (4,000 tokens per request, saturated at 2 req/s = 8,000 tok/s), the rate still fits
    when the mix turns light (500 tokens per request) at the same request rate: in requests/s it would keep a fleet
    sized for the heavy mix (8x too many replicas), since nothing without a queue can raise it."""
    heavy = [ts(30, 256, 0.9, 2.0, 4000.0, "a"), ts(30, 256, 0.9, 2.0, 4000.0, "b")]
    d = feed(heavy, 12)
    assert d.state.rate_unit == "tokens" and d.state.service_rate == pytest.approx(8000.0, rel=0.01)
    assert d.estimate is not None and d.estimate.rate_unit == RATE_TOKENS and "tok/s" in d.message
    light = [ts(0, 10, 0.05, 2.0, 500.0, "a"), ts(0, 10, 0.05, 2.0, 500.0, "b")]
    d_tok = feed(light, 16, state=d.state, t0=1200.0, desired=2)
    # 4 req/s x 500 tokens over 0.85 x 8,000 tok/s: 0.29 replicas (requests/s would say 4 / (0.85 x 2) = 2.4)
    assert d_tok.demand == pytest.approx(4 * 500 / (0.85 * 8000), rel=0.05)
    req_only = [rs(30, 256, 0.9, 2.0, "a"), rs(30, 256, 0.9, 2.0, "b")]
    d_req = feed(
        [rs(0, 10, 0.05, 2.0, "a"), rs(0, 10, 0.05, 2.0, "b")], 16, state=feed(req_only, 12).state, t0=1200.0, desired=2
    )
    assert d_req.state.rate_unit == "requests" and d_req.demand == pytest.approx(4 / (0.85 * 2.0), rel=0.05)


def test_rates_of_another_unit_are_relearned_not_misread():
    """A state learned in requests/s (an older operator, or vLLM without the token histograms) meets token rates:
    20 req/s must not be read as 20 tok/s (a 1,000x overestimate of demand); it is dropped and relearned."""
    st = PolicyState(service_rate=20.0, service_rate_time=1000.0, service_rate_evidence=20.0, carried_rate=15.0)
    d = feed([ts(0, 80, 0.3, 17.0, 1000.0, n) for n in "abc"], 4, state=st)
    assert d.state.rate_unit == "tokens" and d.state.service_rate is None and d.state.carried_rate is not None
    assert d.state.carried_rate > 1000  # relearned, in tokens/s
    assert d.mode == MODE_CONCURRENCY  # nothing learned in tokens yet, no prior


def test_a_prior_in_requests_is_converted_at_the_current_mix_until_evidence_backs_it():
    cfg = AutoscalingConfig(prior_service_rate=20.0)
    light = [ts(0, 80, 0.3, 17.0, 500.0, n) for n in "abc"]
    d = feed(light, 4, cfg=cfg)
    assert d.mode == MODE_THROUGHPUT and d.demand == pytest.approx(3.0, rel=0.02)  # 51 / (0.85 x 20)
    assert d.state.service_rate is None  # not stored: a stored conversion would freeze this mix
    # the same prior at a heavier mix is the same 20 req/s, i.e. more tokens/s: the demand in replicas is unchanged
    heavy = [ts(0, 80, 0.3, 17.0, 3000.0, n) for n in "abc"]
    d2 = feed(heavy, 16, cfg=cfg, state=d.state, t0=1060.0, desired=4)
    assert d2.demand == pytest.approx(3.0, rel=0.03)
    assert d2.state.service_rate is None  # 17 req/s served: no evidence against (or above) the 20 req/s prior
    # serving more than the prior without a queue is evidence, judged in requests/s, stored in tokens/s
    busy = [ts(0, 80, 0.3, 25.0, 500.0, n) for n in "abc"]
    assert feed(busy, 6, cfg=cfg).state.service_rate == pytest.approx(25.0 * 500.0, rel=0.01)
    # saturation evidence is stored, in tokens/s
    sat = [ts(30, 256, 0.5, 12.0, 3000.0, "a"), ts(30, 256, 0.5, 12.0, 3000.0, "b")]
    d3 = feed(sat, 12, cfg=cfg)
    assert d3.state.rate_unit == "tokens" and 36000.0 <= d3.state.service_rate < 42000.0


def test_carried_rate_is_learned_only_without_a_queue_on_a_settled_fleet():
    calm = [rs(0, 60, 0.2, 12.0, "a"), rs(0, 60, 0.2, 12.0, "b")]
    assert feed(calm, 1).state.carried_rate is None  # one scrape: the fleet is not known to be settled
    assert feed(calm, 6).state.carried_rate == pytest.approx(12.0)
    assert feed(calm, 6, starting=1, desired=3).state.carried_rate is None  # pods starting: not settled
    queued = [rs(5, 60, 0.2, 15.0, "a"), rs(5, 60, 0.2, 15.0, "b")]
    assert feed(queued, 6).state.carried_rate is None  # a queue: not carried within the SLO
    # it only rises: a lighter minute does not lower what was carried before
    d = feed([rs(0, 10, 0.05, 3.0, "a"), rs(0, 10, 0.05, 3.0, "b")], 6, state=PolicyState(carried_rate=12.0))
    assert d.state.carried_rate == pytest.approx(12.0)
    assert feed(calm, 6, cfg=AutoscalingConfig(learn_capacity=False)).state.carried_rate is None
    # a queue on a settled fleet at a lower rate: the mix got heavier, the carried rate drops to that rate
    heavy = [rs(6, 8, 0.6, 1.5, "a"), rs(6, 8, 0.6, 1.5, "b")]
    assert feed(heavy, 6, state=PolicyState(carried_rate=12.0)).state.carried_rate == pytest.approx(1.5)


def test_convex_concurrency_estimate_is_capped_by_the_carried_rate():
    # 3 replicas near the knee: 200 running each reads as 3 * 200 / 128 = 4.7 replicas in concurrency mode, while
    # the 45 req/s they complete need 45 / (0.85 * 15) = 3.5 replicas at the rate replicas carried before
    # (one scrape each: a fleet seen settled for a window would learn the 15 req/s as carried by itself)
    hot = [rs(0, 200, 0.5, 15.0, n) for n in "abc"]
    plain = feed(hot, 1)
    assert plain.demand == pytest.approx(3 * 200 / 128, rel=0.02) and not _estimate(plain).capped_by_carried_rate
    capped = feed(hot, 1, state=PolicyState(carried_rate=15.0))
    assert capped.demand == pytest.approx(45.0 / (0.85 * 15.0), rel=0.02)
    assert _estimate(capped).capped_by_carried_rate and _estimate(capped).carried_rate == pytest.approx(15.0)
    assert "capped by arrivals 45.0 req/s" in capped.message and "carried rate 15.00" in capped.message
    assert capped.desired_replicas == 5 < plain.desired_replicas == 6  # ceil(3.5) + warm pool vs ceil(4.7) + 1
    assert feed(hot, 6).state.carried_rate == pytest.approx(15.0)  # and settled without a queue, it is learned
    # a cap, never a raise: at low concurrency the concurrency estimate stays
    light = [rs(0, 20, 0.05, 4.0, n) for n in "abc"]
    d = feed(light, 1, state=PolicyState(carried_rate=2.0))
    assert d.demand == pytest.approx(3 * 20 / 128, rel=0.02) and not _estimate(d).capped_by_carried_rate
    # the backlog is not capped: a queue beyond the target still asks for replicas whatever the carried rate says
    queued = [rs(40, 200, 0.5, 15.0, n) for n in "abc"]
    d = feed(queued, 1, state=PolicyState(carried_rate=15.0))
    backlog = (40 - CFG.queue_target()) * 3 / 128
    assert _estimate(d).capped_by_carried_rate and d.demand == pytest.approx(45.0 / (0.85 * 15.0) + backlog, rel=0.02)


def test_garbage_request_rate_holds():
    d = decide(obs(samples=[rs(0, 5, 0.1, math.nan, "a")], desired=2), PolicyState(), CFG)
    assert not d.active and d.reason == "HoldMetricsInvalid"


def test_fresh_replica_without_sample_counts_as_capacity_not_load():
    # 3 Ready, 2 scraped: the unscraped one is new; totals are not extrapolated to it
    d = decide(obs(samples=[(0, 100, 0.2), (0, 100, 0.2)], ready=3, desired=3), PolicyState(), CFG)
    assert d.state.window[-1].running == 200 and d.state.window[-1].ready == 3
    assert _estimate(d).load == pytest.approx(200 / 128)


# --- hysteresis, trend, trust region --------------------------------------------------------------


def test_hysteresis_keeps_more_than_it_would_add():
    # concurrency mode: demand 300/128 = 2.34 -> up-target asks 3 + 1; the kept size asks ceil(2.34 / 0.6) + 1
    d = decide(obs(samples=[(0, 150, 0.1)] * 2, desired=5), PolicyState(), CFG)
    assert d.recommendation == 4
    assert d.state.recommendations[-1][1] == 5
    assert d.desired_replicas == 5 and d.reason in ("HoldAtTarget", "HoldStabilizing")


def test_rising_trend_adds_capacity_ahead_of_a_cold_start():
    cfg = AutoscalingConfig(max_replicas=20, cold_start_s=180)
    flat = feed([(0, 100, 0.1)] * 4, 14, cfg=cfg, desired=4)
    state = PolicyState()
    d = None
    for i in range(14):
        d = decide(obs(1000 + 15 * i, [(0, 60 + 6 * i, 0.1)] * 4, desired=4), state, cfg)
        state = d.state
    assert d is not None and _estimate(d).trend_per_min > 0
    assert d.demand > flat.demand  # same load now (~138 vs 100 per replica), but rising


def test_scale_down_beyond_experience_is_a_slow_probe():
    cfg = AutoscalingConfig(max_replicas=20, scale_down_stabilization_s=300, scale_down_period_s=60)
    # 10 replicas carrying 2 sequences each; never seen more than 2 per replica without a queue
    sizes = [
        d.desired_replicas
        for d in run(
            lambda t: [(0, 20 / 10, 0.05)] * 10, [1000.0 + 15 * i for i in range(80)], cfg=cfg, desired=10, ready=10
        )
    ]
    drops = [i for i in range(1, len(sizes)) if sizes[i] < sizes[i - 1]]
    assert drops, sizes
    assert all((j - i) * 15 >= 300 for i, j in zip(drops, drops[1:]))  # probes a window apart


def test_scale_down_within_experience_is_not_slowed():
    cfg = AutoscalingConfig(max_replicas=20, scale_down_stabilization_s=300, scale_down_period_s=60)
    st = PolicyState(safe_load=200.0)
    ds = run(
        lambda t: [(0, 2, 0.05)] * 10, [1000.0 + 15 * i for i in range(60)], cfg=cfg, desired=10, ready=10, state=st
    )
    sizes = [d.desired_replicas for d in ds]
    drops = [i for i in range(1, len(sizes)) if sizes[i] < sizes[i - 1]]
    assert len(drops) >= 5 and all((j - i) * 15 >= 60 for i, j in zip(drops, drops[1:]))


# --- state serialisation ---------------------------------------------------------------------------


def test_state_json_round_trip():
    st = PolicyState(
        recommendations=((1.0, 3), (16.0, 4)),
        window=((1.0, 10.0, 0.5, 2, 3.5, 4200.0), (16.0, 9.0, 0.0, 2, -1.0, -1.0)),
        last_scale_up_time=16.0,
        last_scale_down_time=None,
        capacity=120.5,
        capacity_time=16.0,
        service_rate=20.5,
        service_rate_time=16.0,
        safe_load=44.0,
        saturated_since=(("pod-0", 1.0),),
        carried_rate=14.5,
        rate_unit="tokens",
    )
    assert PolicyState.from_dict(json.loads(json.dumps(st.to_dict()))) == st


def test_state_written_before_token_rates_reads_as_requests():
    """A status written by an operator that learned in requests/s: its 5-column window gets an unknown token rate
    and its rates keep their unit (the next decision with token rates relearns them rather than misreading them)."""
    old = {"window": [[1.0, 10.0, 0.5, 2, 3.5]], "serviceRate": 20.5, "carriedRate": 14.5}
    st = PolicyState.from_dict(old)
    assert st.window == ((1.0, 10.0, 0.5, 2, 3.5, -1.0),)
    assert st.rate_unit == "requests" and st.service_rate == 20.5


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        {},
        [],
        "x",
        {"recommendations": "nope"},
        {"capacity": "NaN"},
        {"recommendations": [[1, 2, 3], ["a", 1], [5, -1]], "window": [[1, 2]]},
        {"window": [[1, 2, 3, 0, 1], [1, "x", 3, 1, 1]], "saturatedSince": [[1, 2], "x"]},
        {"capacity": -5, "lastScaleUpTime": "later"},
        {"carriedRate": "fast"},
        {"carriedRate": -3},
        {"carriedRate": "inf"},
    ],
)
def test_state_from_corrupted_status_is_valid(garbage):
    st = PolicyState.from_dict(garbage)
    assert isinstance(st, PolicyState)
    d = decide(obs(samples=idle(2), desired=2), st, CFG)
    assert CFG.min_replicas <= d.desired_replicas <= CFG.max_replicas


def test_reason_is_camel_case_and_message_has_numbers():
    for o in (
        obs(samples=idle(3), desired=3),
        obs(samples=[(50, 256, 0.9)] * 2, desired=2),
        obs(samples=[], ready=2, missing=True),
    ):
        d = decide(o, PolicyState(), CFG)
        assert re.fullmatch(r"(?:[A-Z][a-z]+)+", d.reason), d.reason
        assert re.search(r"\d", d.message)


def test_decide_is_pure():
    o = obs(samples=[(3, 100, 0.4), (1, 90, 0.3)], desired=2)
    st = PolicyState(recommendations=((900.0, 2),), capacity=200.0, capacity_time=900.0)
    assert decide(o, st, CFG) == decide(o, st, CFG)


# --- seasonal forecast ---------------------------------------------------------------------------

PERIOD = 2400.0


def _cycle_rate(t: float) -> float:
    """Fleet arrivals (req/s): 20, a ramp to 60 between phases 1200 and 1400 s, 60 until 1800 s, then 20."""
    ph = t % PERIOD
    if ph < 1200:
        return 20.0
    if ph < 1400:
        return 20.0 + 40.0 * (ph - 1200) / 200
    return 60.0 if ph < 1800 else 20.0


def _cycle_samples(t: float, scale: float = 1.0) -> list[ReplicaSample]:
    r = _cycle_rate(t) * scale / 4
    return [rs(0, 3 * r, 0.1, r, n) for n in "abcd"]  # residence 3 s, no queue: arrivals == completions


def _demands(
    cfg: AutoscalingConfig,
    until: float,
    scale_after: float = 1.0,
    gap: tuple[float, float] | None = None,
    wobble: float = 0.0,
) -> dict[float, Decision]:
    state, out = PolicyState(), {}
    t = 0.0
    while t <= until:
        if gap is None or not gap[0] <= t < gap[1]:
            scale = scale_after if t >= PERIOD else 1.0
            if t >= PERIOD and wobble:  # the second cycle is not the first one again: +-wobble, minute by minute
                scale *= 1.0 + (wobble if int(t // 60) % 2 else -wobble)
            d = decide(obs(t, _cycle_samples(t, scale), desired=4), state, cfg)
            state = PolicyState.from_dict(json.loads(json.dumps(d.state.to_dict())))  # as the status keeps it
            out[t] = d
        t += 15.0
    return out


def test_seasonal_forecast_asks_one_cold_start_ahead_from_the_second_cycle():
    base = AutoscalingConfig(min_replicas=1, max_replicas=20, warm_pool=0, prior_service_rate=20.0, cold_start_s=160.0)
    seasonal = AutoscalingConfig(**{**base.__dict__, "seasonal_period_s": PERIOD})
    plain, fc = _demands(base, 2 * PERIOD), _demands(seasonal, 2 * PERIOD)
    # first cycle: nothing recorded yet, no forecast; the same decisions as without it
    assert fc[1110.0].demand == pytest.approx(plain[1110.0].demand) and _estimate(fc[1110.0]).seasonal_growth is None
    # second cycle, 90 s before the ramp: the previous cycle says the load grows within a cold start
    d = fc[PERIOD + 1110.0]
    assert _estimate(d).seasonal_growth is not None and _estimate(d).seasonal_growth > 1.0
    p = plain[PERIOD + 1110.0]
    assert p.demand == pytest.approx(20.0 / (0.85 * p.state.service_rate), rel=0.05)  # the load alone
    assert d.demand > 2.0 * p.demand  # the rate 225 s ahead (cold start + demand window) is 2.1-2.4x
    assert d.recommendation >= p.recommendation + 1
    # on the flat part, far from any change, it asks for the load and nothing more
    assert fc[PERIOD + 600.0].demand == pytest.approx(plain[PERIOD + 600.0].demand, rel=0.02)
    # a ramp down is not forecast as growth: at the end of the peak the demand is the load's
    assert fc[PERIOD + 1695.0].demand == pytest.approx(plain[PERIOD + 1695.0].demand, rel=0.05)


def test_seasonal_forecast_follows_the_level_of_the_day_not_of_the_history():
    cfg = AutoscalingConfig(
        min_replicas=1,
        max_replicas=20,
        warm_pool=0,
        prior_service_rate=20.0,
        cold_start_s=160.0,
        seasonal_period_s=PERIOD,
    )
    same, busier = _demands(cfg, 2 * PERIOD), _demands(cfg, 2 * PERIOD, scale_after=1.5)
    t = PERIOD + 1110.0
    # the growth comes from history, the level from now: a day 1.5x busier asks for 1.5x
    assert busier[t].demand == pytest.approx(1.5 * same[t].demand, rel=0.05)


def test_seasonal_forecast_needs_a_service_rate_and_a_recent_cycle():
    conc = AutoscalingConfig(min_replicas=1, max_replicas=20, warm_pool=0, cold_start_s=160.0, seasonal_period_s=PERIOD)
    d = _demands(conc, 2 * PERIOD)[PERIOD + 1110.0]
    assert d.mode == MODE_CONCURRENCY and _estimate(d).seasonal_growth is None  # convex signal: no forecast
    assert "seasonal" not in d.message
    assert len(d.state.season) == 96  # but the history is recorded, for when a service rate is known
    thr = AutoscalingConfig(**{**conc.__dict__, "prior_service_rate": 20.0})
    # the operator was away for the part of the previous cycle the forecast would read: no forecast
    d = _demands(thr, 2 * PERIOD, gap=(900.0, 1500.0))[PERIOD + 1110.0]
    assert "no seasonal forecast: the previous cycle was not recorded here" in d.message
    # a cycle that does not repeat (a wrong period, traffic without a cycle) gives no forecast either
    d = _demands(thr, 2 * PERIOD, wobble=0.4)[PERIOD + 1110.0]
    assert "no seasonal forecast: the cycle does not repeat" in d.message
    assert _estimate(_demands(thr, 2 * PERIOD, wobble=0.03)[PERIOD + 1110.0]).seasonal_growth is not None  # noise
    # a corrupted history in the status is ignored entry by entry, never an error
    st = PolicyState.from_dict({"season": [["x", 1, 1], [5.0, -2, 1], [1.0], [2.0, 3.0, -5]]})
    assert st.season == ((-1.0, 0.0, -1.0),) * 3 + ((2.0, 3.0, -1.0),)
    assert decide(obs(1000.0, _cycle_samples(1000.0)), st, thr).active
    for bad in (
        {"seasonal_period_s": 0.0},
        {"seasonal_period_s": math.nan},
        {"seasonal_buckets": 2},
        {"seasonal_max_growth": 0.5},
    ):
        with pytest.raises(ValueError):
            AutoscalingConfig(**bad)


def test_a_decision_carries_its_mode_and_numbers_as_fields():
    cfg = AutoscalingConfig(min_replicas=1, max_replicas=10, warm_pool=1, prior_service_rate=10.0)
    held = decide(obs(samples=[(0, 1, 0.1)], missing=True), PolicyState(), cfg)
    assert held.mode == "" and held.estimate is None and not held.active
    d = decide(obs(samples=[ReplicaSample(0, 4, 0.1, name="a", request_rate=5.0)] * 2), PolicyState(), cfg)
    e = _estimate(d)
    assert d.mode == e.mode == MODE_THROUGHPUT and e.rate_unit == "requests"
    assert e.service_rate == pytest.approx(10.0) and e.per_replica_target == pytest.approx(0.85 * 10.0)
    assert e.arrivals == pytest.approx(10.0) and e.served == pytest.approx(10.0)
    assert d.demand == pytest.approx(e.load + e.ahead + e.backlog)
    assert e.load == pytest.approx(10.0 / (0.85 * 10.0))
    c = decide(obs(samples=[(0, 40, 0.2)] * 2), PolicyState(), AutoscalingConfig())
    ce = _estimate(c)
    assert c.mode == MODE_CONCURRENCY and ce.rate_unit is None and ce.service_rate is None
    assert ce.capacity == pytest.approx(256.0) and ce.concurrency_target == pytest.approx(0.4 * 256.0)
    assert ce.load == pytest.approx(80 / (0.4 * 256.0))


# --- burst headroom ------------------------------------------------------------------------------

BURSTY = AutoscalingConfig(
    min_replicas=1, max_replicas=40, warm_pool=1, prior_service_rate=10.0, cold_start_s=160.0,
    burst_headroom_quantile=0.9,
)  # fmt: skip


def _bursts(t: float) -> float:
    """Fleet arrivals (req/s): 10, and 50 for 90 s every 420 s (bursts shorter than the 160 s cold start)."""
    return 50.0 if t % 420.0 < 90.0 and t >= 420.0 else 10.0


def _ramp(t: float) -> float:
    return 10.0 + 30.0 * min(t, 3600.0) / 3600.0  # 10 -> 40 req/s over an hour: what the trend covers


def _drive(cfg: AutoscalingConfig, rate, until: float) -> dict[float, Decision]:
    """Four replicas answering `rate` without a queue (residence 3 s), 15 s apart, the state through JSON."""
    state, out, t = PolicyState(), {}, 0.0
    while t <= until:
        r = rate(t) / 4
        d = decide(obs(t, [rs(0, 3 * r, 0.1, r, n) for n in "abcd"], desired=4), state, cfg)
        state = PolicyState.from_dict(json.loads(json.dumps(d.state.to_dict())))  # as the status keeps it
        out[t] = d
        t += 15.0
    return out


def test_burst_headroom_holds_recurring_bursts_warm():
    plain = _drive(replace(BURSTY, burst_headroom_quantile=None), _bursts, 3000.0)
    bursty = _drive(BURSTY, _bursts, 3000.0)
    quiet = 2520.0 + 300.0  # between two bursts, after five of them
    assert _bursts(quiet) == 10.0
    # without it: the constant warm pool; with it, the burst's height over the quiet load, held between bursts
    assert plain[quiet].warm_pool == 1 and _estimate(plain[quiet]).burst_headroom == 0.0
    d = bursty[quiet]
    e = _estimate(d)
    assert e.per_replica_target is not None
    # the burst's load, in replicas at the learned rate, beyond what the quiet load + warm pool carry at 100 %
    shortfall = 50.0 / e.per_replica_target - (10.0 / e.per_replica_target + 1) / 0.85
    assert 0.8 * shortfall <= e.burst_headroom <= 1.25 * shortfall, d.message
    assert d.warm_pool == 1 + math.ceil(e.burst_headroom - 1e-9)
    assert d.recommendation == plain[quiet].recommendation - 1 + d.warm_pool
    assert "burst headroom" in d.message and "quantile of" in d.message
    # before the first burst's cold start has passed there is no evidence, and nothing is added
    assert bursty[300.0].warm_pool == 1 and "no cold start has passed yet" in bursty[105.0].message


def test_burst_headroom_adds_nothing_on_a_ramp_the_trend_covers():
    d = _drive(BURSTY, _ramp, 3600.0)
    plain = _drive(replace(BURSTY, burst_headroom_quantile=None), _ramp, 3600.0)
    assert all(x.warm_pool == 1 for x in d.values())
    assert [x.recommendation for x in d.values()] == [x.recommendation for x in plain.values()]
    assert _estimate(d[3600.0]).burst_headroom < 0.5


def test_burst_headroom_ignores_a_step_that_stays():
    """A step is a new level: still there one cold start after the peak, it is what reacting catches up with, and
    holding more warm replicas after it would not have met it earlier."""
    d = _drive(BURSTY, lambda t: 50.0 if t >= 600.0 else 10.0, 2400.0)
    assert all(x.warm_pool == 1 for x in d.values())
    assert max(v for _, v in d[2400.0].state.burst_shortfalls) < 0.5


def test_burst_headroom_forgets_bursts_older_than_its_window():
    cfg = replace(BURSTY, burst_window_s=900.0)
    d = _drive(cfg, lambda t: 50.0 if 600.0 <= t < 690.0 else 10.0, 2400.0)  # one burst, never again
    assert d[1005.0].warm_pool >= 3  # the burst's shortfalls, recorded one cold start after each estimate
    assert d[2400.0].warm_pool == 1 and all(t > 2400.0 - 900.0 for t, _ in d[2400.0].state.burst_shortfalls)


def test_burst_state_round_trips_and_tolerates_garbage():
    d = _drive(BURSTY, _bursts, 900.0)[900.0]
    st = d.state
    assert st.burst_pending and st.burst_shortfalls
    assert all(900.0 - 2 * 160.0 < p.time <= 900.0 for p in st.burst_pending)  # only those not judged yet
    again = PolicyState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again.burst_shortfalls == tuple((round(t, 1), round(v, 4)) for t, v in st.burst_shortfalls)
    bad = PolicyState.from_dict({"burstPending": [[1, "x", 2], [3.0, 1.0]], "burstShortfalls": [[5.0, -1.0], "x"]})
    assert bad.burst_pending == () and bad.burst_shortfalls == ()
    for kw in ({"burst_headroom_quantile": 0.0}, {"burst_headroom_quantile": 1.5}, {"burst_window_s": 0.0}):
        with pytest.raises(ValueError):
            AutoscalingConfig(**kw)


def mix(rate: float, prompt: float, computed: float, generated: float, name: str, w: float = 0.0) -> ReplicaSample:
    """A sample with the request mix read: per completed request, its prompt tokens (``computed`` of them not
    served from the prefix cache) and its generated tokens."""
    return ReplicaSample(
        waiting=w,
        running=80,
        kv_cache_usage=0.3,
        name=name,
        request_rate=rate,
        token_rate=rate * (computed + generated),
        prompt_token_rate=rate * prompt,
        generation_token_rate=rate * generated,
    )


def test_a_prior_rate_model_is_asked_at_the_observed_mix_and_a_user_prior_wins_over_it():
    """estimateServiceRate: the operator's estimate is a function of the mix; the policy asks it with the last
    minute's prompt, computed-prompt and generated tokens per request, and uses the answer like a prior in
    requests/s.  A rate the user set (serviceRatePerReplica) is used instead; without the mix there is no prior."""
    asked: list[tuple[float, float, float]] = []

    def model(prompt: float, computed: float, generated: float) -> float:
        asked.append((prompt, computed, generated))
        return 20.0 if generated < 300 else 10.0

    cfg = AutoscalingConfig(prior_rate_model=model)
    chat = [mix(17.0, 1000.0, 400.0, 200.0, n) for n in "abc"]
    d = feed(chat, 4, cfg=cfg)
    assert asked[-1] == pytest.approx((1000.0, 400.0, 200.0))
    assert d.mode == MODE_THROUGHPUT and d.demand == pytest.approx(51 / (0.85 * 20.0), rel=0.02)
    assert d.state.service_rate is None  # a prior: not stored until evidence backs it
    long_answers = [mix(8.0, 1000.0, 400.0, 600.0, n) for n in "abc"]  # 8 req/s each: below the 10 the model says
    assert feed(long_answers, 4, cfg=cfg).demand == pytest.approx(24 / (0.85 * 10.0), rel=0.02)
    user = replace(cfg, prior_service_rate=17.0)
    assert feed(chat, 4, cfg=user).demand == pytest.approx(51 / (0.85 * 17.0), rel=0.02)
    no_mix = [ts(0, 80, 0.3, 17.0, 600.0, n) for n in "abc"]  # token rate only: vLLM without the histograms
    assert feed(no_mix, 4, cfg=cfg).mode == MODE_CONCURRENCY
    # a model that has no answer (0, NaN) gives no prior
    assert feed(chat, 4, cfg=AutoscalingConfig(prior_rate_model=lambda p, c, g: math.nan)).mode == MODE_CONCURRENCY
    # saturation still corrects it, in tokens/s
    sat = [mix(12.0, 1000.0, 400.0, 200.0, n, w=30.0) for n in "ab"]
    d = feed(sat, 12, cfg=cfg)
    assert d.state.rate_unit == "tokens" and 12.0 * 600 <= d.state.service_rate < 14.0 * 600


def test_garbage_mix_rates_hold_the_fleet():
    bad = ReplicaSample(
        waiting=0, running=10, kv_cache_usage=0.1, name="a", request_rate=1.0, token_rate=500.0, prompt_token_rate=-3.0
    )
    d = decide(obs(samples=[bad]), PolicyState(), CFG)
    assert not d.active and "prompt token rate" in d.message


def test_the_mix_the_estimate_is_asked_at_is_smoothed_and_survives_a_restart():
    """A minute's mean lengths are noisy and the estimate moves with them almost one for one: the policy asks it at
    the mix smoothed over three minutes (persisted in status as requestMix), so one odd minute moves it a little."""
    asked: list[tuple[float, float, float]] = []

    def model(prompt: float, computed: float, generated: float) -> float:
        asked.append((prompt, computed, generated))
        return 20.0

    cfg = AutoscalingConfig(prior_rate_model=model)
    d = feed([mix(17.0, 1000.0, 400.0, 200.0, n) for n in "abc"], 8, cfg=cfg)
    assert d.state.request_mix is not None and d.state.request_mix.generated == pytest.approx(200.0)
    restored = PolicyState.from_dict(json.loads(json.dumps(d.state.to_dict())))
    assert restored.request_mix == pytest.approx(d.state.request_mix, abs=0.01)
    # one scrape 15 s later with twice the output: the smoothed mix moves by 1 - exp(-15/180), about 8 %
    feed([mix(17.0, 1000.0, 400.0, 400.0, n) for n in "abc"], 1, cfg=cfg, state=restored, t0=1000.0 + 15 * 8)
    assert asked[-1][2] == pytest.approx(200.0 + 200.0 * (1 - math.exp(-15 / 180)), rel=0.01)
    # a mix older than 12 minutes is replaced, not averaged
    feed([mix(17.0, 1000.0, 400.0, 400.0, n) for n in "abc"], 1, cfg=cfg, state=restored, t0=1000.0 + 15 * 8 + 800)
    assert asked[-1][2] == pytest.approx(400.0)
    # the default policy keeps no mix
    assert "requestMix" not in feed([mix(17.0, 1000.0, 400.0, 200.0, n) for n in "abc"], 2).state.to_dict()


def test_a_vanishing_completion_rate_does_not_overflow_the_demand():
    """Found by the property test (hypothesis): a completion rate of 2.2e-309/s beside a token rate made the tokens per
    request infinite, the arrivals infinite, and int() of the demand raised OverflowError: the tokens per request are
    then unknown instead."""
    samples = (
        ReplicaSample(waiting=1.0, running=0.0, kv_cache_usage=0.0, name="r0", request_rate=2.225073858507203e-309),
        ReplicaSample(waiting=0.0, running=0.0, kv_cache_usage=0.0, name="r1"),
        ReplicaSample(waiting=0.0, running=0.0, kv_cache_usage=0.0, name="r2", token_rate=1.0),
    )
    cfg = AutoscalingConfig(
        min_replicas=0, max_replicas=1, warm_pool=0, max_num_seqs=1, target_utilization=1.0,
        scale_down_stabilization_s=0, scale_down_period_s=0,
    )  # fmt: skip
    st = PolicyState(service_rate=1.0, service_rate_time=0.0, rate_unit="tokens")
    d = decide(obs(t=2000.0, samples=samples, desired=0, mt=2000.0), st, cfg)
    assert 0 <= d.desired_replicas <= 1


def test_a_vanishing_completion_rate_gives_no_mix_reading():
    """Per request = rate / completions: with 1e-320 completions/s that overflows; no reading, nothing persisted."""
    tiny = ReplicaSample(
        waiting=0, running=10, kv_cache_usage=0.1, name="a", request_rate=1e-320, token_rate=500.0,
        prompt_token_rate=400.0, generation_token_rate=100.0,
    )  # fmt: skip
    d = decide(obs(samples=[tiny]), PolicyState(), AutoscalingConfig(prior_rate_model=lambda p, c, g: 10.0))
    assert d.state.request_mix is None
    json.dumps(d.state.to_dict(), allow_nan=False)  # status JSON stays valid
