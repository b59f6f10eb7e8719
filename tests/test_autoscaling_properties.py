"""Property tests (hypothesis) of the pure autoscaling policy; skipped where hypothesis is not installed."""

from __future__ import annotations

import json
import math

import pytest

from qwen_operator.autoscaling.policy import (
    AutoscalingConfig,
    Observation,
    PolicyState,
    ReplicaSample,
    decide,
    floor_replicas,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402

finite = hs.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False)
kvf = hs.floats(min_value=0, max_value=1, allow_nan=False)
garbage_f = hs.sampled_from([math.nan, math.inf, -math.inf, -1.0, -0.001])


@hs.composite
def configs(draw):
    mn = draw(hs.integers(0, 4))
    return AutoscalingConfig(
        min_replicas=mn,
        max_replicas=draw(hs.integers(max(1, mn), 30)),
        warm_pool=draw(hs.integers(0, 3)),
        max_scale_down_step=draw(hs.integers(1, 4)),
        max_scale_up_step=draw(hs.integers(0, 6)),
        target_utilization=draw(hs.floats(0.1, 1.0)),
        scale_down_stabilization_s=draw(hs.sampled_from([0, 60, 300])),
        scale_down_period_s=draw(hs.sampled_from([0, 60, 120])),
        max_num_seqs=draw(hs.integers(1, 512)),
    )


@hs.composite
def states(draw):
    recs = draw(hs.lists(hs.tuples(hs.floats(0, 2000), hs.integers(0, 40)), max_size=30))
    win = draw(
        hs.lists(
            hs.tuples(
                hs.floats(1700, 1999),
                finite,
                finite,
                hs.integers(1, 30),
                hs.sampled_from([-1.0, 0.0, 5.0, 50.0]),
                hs.sampled_from([-1.0, 0.0, 900.0, 40000.0]),
            ),
            max_size=12,
        )
    )
    return PolicyState(
        recommendations=tuple(sorted(recs)),
        window=tuple(sorted(win)),
        capacity=draw(hs.none() | hs.floats(1, 512)),
        capacity_time=draw(hs.none() | hs.floats(0, 2000)),
        last_scale_down_time=draw(hs.none() | hs.floats(0, 2000)),
        service_rate=draw(hs.none() | hs.floats(0.1, 100)),
        service_rate_time=draw(hs.floats(0, 2000)),
        safe_load=draw(hs.none() | hs.floats(0, 300)),
        rate_unit=draw(hs.sampled_from(["requests", "tokens"])),
    )


@hs.composite
def observations(draw):
    ready = draw(hs.integers(0, 30))
    rate = hs.none() | hs.floats(min_value=0, max_value=100, allow_nan=False)
    tokens = hs.none() | hs.floats(min_value=0, max_value=60000, allow_nan=False)
    samples = tuple(
        ReplicaSample(draw(finite), draw(finite), draw(kvf), f"r{i}", draw(rate), draw(tokens)) for i in range(ready)
    )
    return Observation(
        time=2000.0,
        samples=samples,
        ready_replicas=ready,
        starting_replicas=draw(hs.integers(0, 10)),
        current_desired=draw(hs.integers(0, 40)),
        metrics_time=2000.0 - draw(hs.floats(0, 30)),
    )


@settings(max_examples=250, deadline=None)
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


@settings(max_examples=200, deadline=None)
@given(
    observations(),
    states(),
    configs(),
    garbage_f,
    hs.sampled_from(["waiting", "running", "kv_cache_usage", "request_rate", "token_rate"]),
)
def test_property_garbage_holds(o, st, cfg, bad, field):
    if not o.samples:
        return
    s0 = o.samples[0]
    broken = ReplicaSample(**{**s0.__dict__, field: bad})
    o2 = Observation(
        o.time, (broken,) + o.samples[1:], o.ready_replicas, o.starting_replicas, o.current_desired, o.metrics_time
    )
    d = decide(o2, st, cfg)
    assert d.active is False
    assert d.desired_replicas == max(floor_replicas(cfg), min(cfg.max_replicas, o.current_desired))
    assert d.state == st


@settings(max_examples=150, deadline=None)
@given(observations(), configs())
def test_property_starting_pods_never_double_count(o, cfg):
    """With demand fixed, adding starting pods (already in current_desired) never raises the answer above
    what the same demand asks from an empty start."""
    d_none = decide(
        Observation(o.time, o.samples, o.ready_replicas, 0, o.ready_replicas, o.metrics_time), PolicyState(), cfg
    )
    for extra in (1, 3):
        o2 = Observation(o.time, o.samples, o.ready_replicas, extra, o.ready_replicas + extra, o.metrics_time)
        d = decide(o2, PolicyState(), cfg)
        if d.active and d_none.active:
            assert d.desired_replicas <= max(d_none.recommendation, min(cfg.max_replicas, o.ready_replicas + extra))
