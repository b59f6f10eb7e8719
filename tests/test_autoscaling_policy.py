"""Unit tests of the pure autoscaling policy (operator/qwen_operator/autoscaling/policy.py)."""

from __future__ import annotations

import json
import math
import re

import pytest

from qwen_operator.autoscaling.policy import (
    AutoscalingConfig,
    Decision,
    Observation,
    PolicyState,
    ReplicaSample,
    decide,
    floor_replicas,
)

CFG = AutoscalingConfig(min_replicas=1, max_replicas=10, warm_pool=1)


def obs(t: float = 1000.0, samples=(), ready: int | None = None, starting: int = 0, desired: int | None = None,
        mt: float | None = None, missing: bool = False) -> Observation:
    samples = tuple(ReplicaSample(*s) if not isinstance(s, ReplicaSample) else s for s in samples)
    ready = len(samples) if ready is None else ready
    desired = ready + starting if desired is None else desired
    return Observation(time=t, samples=samples, ready_replicas=ready, starting_replicas=starting,
                       current_desired=desired, metrics_time=t - 5 if mt is None else mt, metrics_missing=missing)


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


@pytest.mark.parametrize("kw", [
    {"min_replicas": -1}, {"max_replicas": 0}, {"min_replicas": 5, "max_replicas": 4}, {"warm_pool": -1},
    {"target_utilization": 0}, {"target_utilization": 1.5}, {"kv_cache_target": 0}, {"target_queue_per_replica": 0},
    {"max_scale_down_step": 0}, {"metrics_max_age_s": 0}, {"max_num_seqs": 0}, {"ttft_slo_seconds": -1},
    {"prior_capacity": 0},
])
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

@pytest.mark.parametrize("bad", [
    (math.nan, 1, 0.1), (1, math.nan, 0.1), (1, 1, math.nan), (-1, 1, 0.1), (1, -3, 0.1), (1, 1, -0.1),
    (math.inf, 1, 0.1), (1, math.inf, 0.2), (1, 1, 1.7),
])
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
    d = decide(obs(t=1000, samples=[(500, 256, 0.9)] * 2, desired=2, mt=1000 - CFG.metrics_max_age_s - 1),
               PolicyState(), CFG)
    assert (d.desired_replicas, d.active, d.reason) == (2, False, "HoldMetricsStale")
    assert "old" in d.message


def test_no_metrics_timestamp_holds():
    o = Observation(time=10.0, samples=(ReplicaSample(1, 1, 0.1),), ready_replicas=1, starting_replicas=0,
                    current_desired=4, metrics_time=None)
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
    cfg = AutoscalingConfig(min_replicas=2, warm_pool=1, max_replicas=10, scale_down_stabilization_s=60,
                            scale_down_period_s=0, max_scale_down_step=10)
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
    assert "running 300" in d.message and "demand 2.34" in d.message


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
    d = decide(obs(samples=[(2000, 256, 0.6)] * 10, desired=10), PolicyState(),
               AutoscalingConfig(max_replicas=100, max_scale_up_step=3))
    assert d.desired_replicas == 13


def test_scale_up_stabilization_window_uses_lowest_recommendation():
    cfg = AutoscalingConfig(max_replicas=20, scale_up_stabilization_s=60)
    st = PolicyState(recommendations=((960.0, 3),))
    d = decide(obs(t=1000, samples=[(0, 400, 0.1)] * 3, desired=3), st, cfg)
    assert d.desired_replicas == 3 and d.reason == "HoldStabilizing"
    d2 = decide(obs(t=1061, samples=[(0, 400, 0.1)] * 3, desired=3), d.state, cfg)
    assert d2.desired_replicas > 3


def test_starting_pods_count_as_capacity_no_double_scale_up():
    # demand for 6 (5 + warm pool); 2 Ready, 4 starting -> desired 6 already: hold, whatever the repetitions
    samples = [(0, 320, 0.3), (0, 320, 0.3)]  # 640 running / 128 = 5
    state = PolicyState()
    for i in range(10):
        d = decide(obs(t=1000 + 15 * i, samples=samples, ready=2, starting=4, desired=6), state, CFG)
        state = d.state
        assert d.desired_replicas == 6, d.message
    # same load, no pods starting and only 2 desired: scale to 6 in one go, not 2 + 6
    d = decide(obs(t=2000, samples=samples, ready=2, starting=0, desired=2), PolicyState(), CFG)
    assert d.desired_replicas == 6


def test_kv_cache_bound_raises_demand():
    # 10 running sequences fill 0.9 of the KV cache: the KV target (0.8) allows 8.9 per replica
    d = decide(obs(samples=[(0, 10, 0.9)] * 2, desired=2), PolicyState(), CFG)
    assert "KV-bound" in d.message
    assert d.desired_replicas == 4  # 20 / 8.9 = 2.25 -> 3, + warm pool


# --- scale down ----------------------------------------------------------------------------------

def test_scale_down_waits_for_full_window_then_steps():
    cfg = AutoscalingConfig(max_replicas=10, scale_down_stabilization_s=300, scale_down_period_s=60,
                            max_scale_down_step=1)
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
    ds = run(lambda t: [(0, 300 if int(t // 30) % 2 else 30, 0.1)] * 4, [float(t) for t in range(0, 3600, 15)],
             cfg=cfg, desired=4, ready=4)
    changes = sum(1 for a, b in zip(ds, ds[1:]) if a.desired_replicas != b.desired_replicas)
    assert changes <= 3


# --- capacity learning ---------------------------------------------------------------------------

def test_capacity_learned_from_queue_and_persisted():
    # replicas queue (5 waiting each) while running only 20 sequences: c_cap moves halfway towards 20
    d = decide(obs(samples=[(5, 20, 0.3)] * 3, desired=3), PolicyState(), CFG)
    assert d.capacity == pytest.approx(0.5 * 256 + 0.5 * 20)
    assert d.state.capacity == d.capacity
    d2 = decide(obs(t=1015, samples=[(5, 20, 0.3)] * 3, desired=d.desired_replicas), d.state, CFG)
    assert d2.capacity < d.capacity
    again = PolicyState.from_dict(json.loads(json.dumps(d2.state.to_dict())))
    assert again == d2.state


def test_capacity_grows_when_carried_without_queue_and_relaxes_to_prior():
    st = PolicyState(capacity=40.0, capacity_time=1000.0)
    d = decide(obs(t=1000, samples=[(0, 60, 0.2)] * 2, desired=4), st, CFG)
    assert d.capacity == pytest.approx(60)
    st2 = PolicyState(capacity=40.0, capacity_time=0.0)
    d2 = decide(obs(t=CFG.capacity_relax_s * 10, samples=idle(2), desired=3), st2, CFG)
    assert d2.capacity == pytest.approx(CFG.prior(), rel=1e-3)


def test_learning_can_be_disabled():
    cfg = AutoscalingConfig(learn_capacity=False)
    d = decide(obs(samples=[(5, 20, 0.3)] * 3, desired=3), PolicyState(), cfg)
    assert d.capacity == cfg.prior()


# --- state serialisation ---------------------------------------------------------------------------

def test_state_json_round_trip():
    st = PolicyState(recommendations=((1.0, 3), (16.0, 4)), window=((1.0, 10.0, 0.5),), last_scale_up_time=16.0,
                     last_scale_down_time=None, capacity=120.5, capacity_time=16.0)
    assert PolicyState.from_dict(json.loads(json.dumps(st.to_dict()))) == st


@pytest.mark.parametrize("garbage", [None, {}, [], "x", {"recommendations": "nope"}, {"capacity": "NaN"},
                                     {"recommendations": [[1, 2, 3], ["a", 1], [5, -1]], "window": [[1, 2]]},
                                     {"capacity": -5, "lastScaleUpTime": "later"}])
def test_state_from_corrupted_status_is_valid(garbage):
    st = PolicyState.from_dict(garbage)
    assert isinstance(st, PolicyState)
    d = decide(obs(samples=idle(2), desired=2), st, CFG)
    assert CFG.min_replicas <= d.desired_replicas <= CFG.max_replicas


def test_reason_is_camel_case_and_message_has_numbers():
    for o in (obs(samples=idle(3), desired=3), obs(samples=[(50, 256, 0.9)] * 2, desired=2),
              obs(samples=[], ready=2, missing=True)):
        d = decide(o, PolicyState(), CFG)
        assert re.fullmatch(r"(?:[A-Z][a-z]+)+", d.reason), d.reason
        assert re.search(r"\d", d.message)


def test_decide_is_pure():
    o = obs(samples=[(3, 100, 0.4), (1, 90, 0.3)], desired=2)
    st = PolicyState(recommendations=((900.0, 2),), capacity=200.0, capacity_time=900.0)
    assert decide(o, st, CFG) == decide(o, st, CFG)


# --- property tests ------------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as hs  # noqa: E402

finite = hs.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False)
kvf = hs.floats(min_value=0, max_value=1, allow_nan=False)
garbage_f = hs.sampled_from([math.nan, math.inf, -math.inf, -1.0, -0.001])


@hs.composite
def configs(draw):
    mn = draw(hs.integers(0, 4))
    return AutoscalingConfig(
        min_replicas=mn, max_replicas=draw(hs.integers(max(1, mn), 30)), warm_pool=draw(hs.integers(0, 3)),
        max_scale_down_step=draw(hs.integers(1, 4)), max_scale_up_step=draw(hs.integers(0, 6)),
        target_utilization=draw(hs.floats(0.1, 1.0)), scale_down_stabilization_s=draw(hs.sampled_from([0, 60, 300])),
        scale_down_period_s=draw(hs.sampled_from([0, 60, 120])), max_num_seqs=draw(hs.integers(1, 512)))


@hs.composite
def states(draw):
    recs = draw(hs.lists(hs.tuples(hs.floats(0, 2000), hs.integers(0, 40)), max_size=30))
    return PolicyState(recommendations=tuple(sorted(recs)),
                       capacity=draw(hs.none() | hs.floats(1, 512)), capacity_time=draw(hs.none() | hs.floats(0, 2000)),
                       last_scale_down_time=draw(hs.none() | hs.floats(0, 2000)))


@hs.composite
def observations(draw):
    ready = draw(hs.integers(0, 30))
    samples = tuple(ReplicaSample(draw(finite), draw(finite), draw(kvf)) for _ in range(ready))
    return Observation(time=2000.0, samples=samples, ready_replicas=ready, starting_replicas=draw(hs.integers(0, 10)),
                       current_desired=draw(hs.integers(0, 40)), metrics_time=2000.0 - draw(hs.floats(0, 30)))


@settings(max_examples=400, deadline=None)
@given(observations(), states(), configs())
def test_property_bounds_and_steps(o, st, cfg):
    d = decide(o, st, cfg)
    floor = floor_replicas(cfg)
    assert floor <= d.desired_replicas <= cfg.max_replicas
    cur = o.current_desired
    if d.active and cur <= cfg.max_replicas and d.desired_replicas < cur:
        assert cur - d.desired_replicas <= cfg.max_scale_down_step  # never more than a step down
    if d.active and d.desired_replicas > cur >= floor:
        assert d.desired_replicas - cur <= (cfg.max_scale_up_step or max(4, cur))
    # the state always survives the status round trip
    assert PolicyState.from_dict(json.loads(json.dumps(d.state.to_dict()))) == d.state


@settings(max_examples=300, deadline=None)
@given(observations(), states(), configs(), garbage_f, hs.sampled_from(["waiting", "running", "kv_cache_usage"]))
def test_property_garbage_holds(o, st, cfg, bad, field):
    if not o.samples:
        return
    s0 = o.samples[0]
    broken = ReplicaSample(**{**s0.__dict__, field: bad})
    o2 = Observation(o.time, (broken,) + o.samples[1:], o.ready_replicas, o.starting_replicas, o.current_desired,
                     o.metrics_time)
    d = decide(o2, st, cfg)
    assert d.active is False
    assert d.desired_replicas == max(floor_replicas(cfg), min(cfg.max_replicas, o.current_desired))
    assert d.state == st


@settings(max_examples=200, deadline=None)
@given(observations(), configs())
def test_property_starting_pods_never_double_count(o, cfg):
    """With demand fixed, adding starting pods (already in current_desired) never raises the answer above
    what the same demand asks from an empty start."""
    d_none = decide(Observation(o.time, o.samples, o.ready_replicas, 0, o.ready_replicas, o.metrics_time),
                    PolicyState(), cfg)
    for extra in (1, 3):
        o2 = Observation(o.time, o.samples, o.ready_replicas, extra, o.ready_replicas + extra, o.metrics_time)
        d = decide(o2, PolicyState(), cfg)
        if d.active and d_none.active:
            assert d.desired_replicas <= max(d_none.recommendation, min(cfg.max_replicas, o.ready_replicas + extra))
