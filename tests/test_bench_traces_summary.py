"""Short-burst traces, Mooncake prefix blocks through rate scaling, the cross-variant summary's verdict rule and
issue 17's cost goal."""

from __future__ import annotations

import random

from bench.autoscaling import run as R
from bench.autoscaling.plots import best_anchor
from bench.autoscaling.service import QWEN3_8B, cold_start_for
from bench.autoscaling.summary import cost_cell, verdict
from bench.autoscaling.traces import (
    COPY_BLOCK_OFFSET,
    burst_windows,
    copied_blocks,
    scale_trace,
    scale_trace_with_origin,
    synthetic_short_bursts,
)


def test_bursts_are_shorter_than_a_cold_start_and_within_their_ranges():
    w = burst_windows(3600.0, gap_s=(240.0, 600.0), length_s=(60.0, 120.0), factor=(4.0, 8.0), rng=random.Random(5))
    assert len(w) >= 4
    cold = cold_start_for(QWEN3_8B, "baked").total_s
    for (a, b, k), nxt in zip(w, w[1:] + [(3600.0 + 240.0, 0, 0)]):
        assert 60.0 <= b - a <= 120.0 < cold and 4.0 <= k <= 8.0
        assert nxt[0] - b >= 240.0 - 1e-9


def test_short_burst_trace_rate_jumps_during_its_bursts():
    pool = [(100, 10)]
    rows = synthetic_short_bursts(pool, base_rps=5.0, duration=3600.0, seed=5)
    w = burst_windows(3600.0, gap_s=(240.0, 600.0), length_s=(60.0, 120.0), factor=(4.0, 8.0), rng=random.Random(5))
    inside = sum(1 for t, _, _ in rows if any(a <= t < b for a, b, _ in w))
    span = sum(b - a for a, b, _ in w)
    assert inside / span > 3.0 * (len(rows) - inside) / (3600.0 - span)


def test_heldout_bursts_have_their_own_seed():
    main = {s.name: s for s in R.trace_specs()}["short-bursts"]
    held = {s.name: s for s in R.heldout_specs()}["short-bursts-b"]
    assert main.params["seed"] != held.params["seed"]


def test_copies_share_prefixes_only_within_their_own_namespace():
    rows = [(0.0, 1024, 5), (1.0, 1024, 5)]
    blocks = [(1, 2), (1, 3)]
    origin = scale_trace_with_origin(rows, rate_scale=2.0, seed=3)
    assert [(t, p, o) for t, p, o, _, _ in origin] == list(scale_trace(rows, rate_scale=2.0, seed=3))
    out = copied_blocks(blocks, origin)
    for (_, _, _, k, i), b in zip(origin, out):
        assert b == tuple(x + i * COPY_BLOCK_OFFSET for x in blocks[k])


def test_meets_only_where_every_variant_agrees_and_the_best_anchor():
    ok, miss = {"within_joint_slo": 0.995, "vs_oracle": 1.2}, {"within_joint_slo": 0.98, "vs_oracle": 1.1}
    assert verdict([ok, ok])["meets_all"] and not verdict([ok, miss])["meets_all"]
    assert verdict([ok, miss])["vs_oracle_min"] == 1.1
    res = {
        "hpa-gpu-util": {"within_slo": 0.999, "gpu_hours": 9.0},
        "kubeai": {"within_slo": 0.995, "gpu_hours": 5.0},
        "aibrix-kpa": {"within_slo": 0.90, "gpu_hours": 2.0},
    }
    assert best_anchor(res) == "kubeai"
    assert (
        best_anchor(
            {"aibrix-kpa": {"within_slo": 0.9, "gpu_hours": 1.0}, "kubeai": {"within_slo": 0.95, "gpu_hours": 3.0}}
        )
        == "kubeai"
    )


def _row(vs_oracle: float, meets: bool = True, oracle_gpu_h: float = 10.0) -> dict:
    return {"vs_oracle": vs_oracle, "gpu_hours": vs_oracle * oracle_gpu_h, "meets_slo": meets}


def test_cost_goal_is_1_25x_the_oracle_unless_the_bound_row_is_above_it():
    # no bound row (a run with --skip-bounds): the 1.25x rule alone
    assert R.cost_goal({"ours": _row(1.24)})["met"] is True
    assert R.cost_goal({"ours": _row(1.26)})["met"] is False
    # a step bound at 1.38x allows 1.1 x 1.38 = 1.518x; the step bound outranks the margin row
    rows = {"ours": _row(1.5), R.STEP_BOUND: _row(1.38), R.REACTIVE_BOUND: _row(1.2)}
    c = R.cost_goal(rows)
    assert c["bound_row"] == R.STEP_BOUND and c["met"] is True
    assert abs(c["allowed_vs_oracle"] - 1.518) < 1e-9 and abs(c["vs_bound"] - 1.5 / 1.38) < 1e-9
    assert R.cost_goal({**rows, "ours": _row(1.53)})["met"] is False
    # a margin row below 1.25 / 1.1 leaves the 1.25x rule; one that misses the SLO is no bound at all
    assert R.cost_goal({"ours": _row(1.3), R.REACTIVE_BOUND: _row(1.1)})["met"] is False
    c = R.cost_goal({"ours": _row(1.3), R.REACTIVE_BOUND: _row(2.0, meets=False)})
    assert c["bound_row"] is None and c["met"] is False
    # a policy that misses the SLO is not judged on cost
    assert R.cost_goal({"ours": _row(0.5, meets=False)})["met"] is None


def test_summary_cost_cell_names_the_rule_it_judged_by():
    assert cost_cell({"ours": _row(1.45), R.REACTIVE_BOUND: _row(1.30)}) == "missed (1.12x margin row)"
    assert cost_cell({"ours": _row(1.5), R.STEP_BOUND: _row(1.38)}) == "met (1.09x step bound)"
    assert cost_cell({"ours": _row(1.2)}) == "met (1.20x oracle)"
    assert cost_cell({"ours": _row(1.2, meets=False)}) == "-"
