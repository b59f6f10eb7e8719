"""bench/autoscaling/step_replay.py: vLLM's V1 scheduling one step at a time (issue 17 item 2's structure check),
and its fit in validate_cpu_fit.  No vLLM needed."""

from __future__ import annotations

import random

import pytest

from bench.autoscaling import validate_cpu_fit as F
from bench.autoscaling.step_replay import StepCost, replay

# a step of 2 ms, 1 ms more per prompt chunk, nothing else: step times are easy to add up by hand
FLAT = StepCost(0.002, 0.0, 0.0, 0.0, 0.0, 0.001, r_dec=1.0)


def test_a_prompt_alone_takes_one_step_per_chunk():
    """128 tokens are one chunk of the 128-token budget, 129 are two; the first token ends the last chunk's step."""
    (one,), (two,), (three,) = (replay([(0.0, p, 1)], FLAT, max_num_seqs=8, budget=128) for p in (128, 129, 384))
    assert one == pytest.approx((0.003, 0.003))
    assert two == pytest.approx((0.006, 0.006))
    assert three == pytest.approx((0.009, 0.009))


def test_decoders_go_first_and_a_request_waits_for_the_running_step():
    """A decoding request takes one token of the budget before the waiting prompt's chunk; a prompt that arrives
    mid-step starts with the next step."""
    arrivals = [(0.0, 10, 4), (0.004, 127, 1)]
    (a, b) = replay(arrivals, FLAT, max_num_seqs=8, budget=128)
    # a: prefill step 0-3 ms (first token), decode steps 3-5, 5-8 (with b's first chunk of 127), 8-10
    assert a[0] == pytest.approx(0.003) and a[1] == pytest.approx(0.010)
    # b arrived at 4 ms, mid-step: its chunk runs in the 5-8 ms step beside a's decode (1 + 127 = the budget)
    assert b[0] == pytest.approx(0.008 - 0.004)


def test_max_num_seqs_holds_the_rest_in_the_queue():
    arrivals = [(0.0, 8, 3)] * 3
    out = replay(arrivals, FLAT, max_num_seqs=2, budget=128)
    # two admitted at once (one step of two chunks: 2 + 2 * 1 ms), two decode steps; the third starts after them
    assert [round(t, 6) for t, _ in out] == [0.004, 0.004, 0.011]
    assert [round(lat, 6) for _, lat in out] == [0.008, 0.008, 0.015]


def _run(cost: StepCost, arrivals: list[tuple[float, int, int]]) -> list[F.Measured]:
    return [
        F.Measured(a, p, o, t, lat)
        for (a, p, o), (t, lat) in zip(arrivals, replay(arrivals, cost, max_num_seqs=8, budget=128))
    ]


def test_fit_steps_recovers_a_step_replays_coefficients():
    """Runs made by step_replay with known coefficients, measured as validate_cpu measures vLLM (idle rows on the
    engine clock, mean TPOT over decode windows): the fit gets the overhead and the chunk cost back."""
    true = StepCost(0.0023, 0.0, 0.000006, 0.0000003, 0.0, 0.0012, r_dec=F.r_dec())
    rows = []
    for p in (32, 128, 256, 384):
        m = _run(true, [(0.0, p, 2)])[0]
        rows.append(F.engine_idle_row(f"idle-p{p}", [p], [m.ttft], 128))
    rng = random.Random(4)
    for name, rate, prompt in (("r8", 8.0, 256), ("r16", 16.0, 64), ("r24", 24.0, 320), ("c", 40.0, 32)):
        t, arr = 0.0, []
        for _ in range(160):
            t += rng.expovariate(rate)
            arr.append((t, prompt, 48))
        rows.append(F.step_tpot_row(name, _run(true, arr), 128))
    got = F.fit_steps(rows)
    assert got["step_overhead_s"] == pytest.approx(true.step_overhead_s, rel=0.1)
    assert got["chunk_s"] == pytest.approx(true.chunk_s, rel=0.25)
    for r in rows:
        assert F.predict_steps(r, got) == pytest.approx(r.y, rel=0.1), r.source


TRUE = StepCost(0.0023, 0.0, 0.000006, 0.0000003, 0.0, 0.0012, r_dec=F.r_dec())


def _spans(cost: StepCost, arr: list[tuple[float, int, int]], api: float, per_in_flight: float = 0.0) -> dict:
    """A run as validate_cpu receives it from vLLM's spans: the engine's queue + prefill, and on top of it the API
    server's share, ``api`` plus ``per_in_flight`` for each request in the engine when the request arrived."""
    reqs = _run(cost, arr)
    shares = [api + per_in_flight * n for n in F.in_flight_at_arrival(reqs)]
    recs = [
        {"start": 1.8e9 + m.start, "ttft": m.ttft + a, "e2e": m.latency + a, "prompt": m.prompt}
        | {"output": m.output, "queue": 0.0, "prefill": m.ttft, "id": str(i)}
        for i, (m, a) in enumerate(zip(reqs, shares))
    ]
    return {"server_requests": recs, "completed": len(recs)}


def _runs(cost: StepCost, api: float, per_in_flight: float = 0.0) -> tuple[dict, dict]:
    """Fit runs (idle prompts, three Poisson rates) and a held-out trace of mixed lengths."""
    from bench.autoscaling import validate_cpu as V

    rng = random.Random(6)
    results = {
        f"idle-p{p}": (V.Spec(f"idle-p{p}", "idle", p, 2, 5, max_concurrency=1), _spans(cost, [(0.0, p, 2)], api))
        for p in (32, 128, 256, 384)
    }
    for name, rate in (("rate-a", 6.0), ("rate-b", 14.0), ("rate-c", 22.0)):
        t, arr = 0.0, []
        for _ in range(150):
            t += rng.expovariate(rate)
            arr.append((t, 256, 64))
        results[name] = (V.Spec(name, "rate", 256, 64, 150, rate=rate), _spans(cost, arr, api, per_in_flight))
    held = [(0.04 * i, 100 + 13 * (i % 20), 20 + i % 40) for i in range(400)]
    return results, _spans(cost, held, api, per_in_flight)


def test_discrete_step_report_passes_its_own_engine_and_catches_a_slower_one():
    from bench.autoscaling import validate_cpu as V

    true, api = TRUE, 0.002
    results, held = _runs(true, api)
    rep = V.discrete_step_report(results, held)
    assert rep is not None and rep["api_server_s"] == pytest.approx(api)
    assert all(r["pass"] for r in rep["engine_table"] + rep["server_table"]), rep
    text = "\n".join(V._discrete_step_section({"discrete_step": rep}))
    assert "Criteria missed: none" in text and "chunk_s" in text
    slow = StepCost(3 * true.step_overhead_s, 0.0, true.per_token_s, true.kv_token_s, 0.0, true.chunk_s, true.r_dec)
    _, slow_held = _runs(slow, api)
    rep = V.discrete_step_report(results, slow_held)
    assert rep is not None and not all(r["pass"] for r in rep["engine_table"])
    assert V.discrete_step_report(results, dict(held, server_requests=[])) is None


def test_in_flight_at_arrival_counts_the_requests_already_in_the_server():
    # (start, latency): 0-10, 1-3, 2-7, 4-5; the one that ended at 3 is gone by 4
    reqs = [F.Measured(s, 8, 2, 0.1, lat) for s, lat in ((0.0, 10.0), (1.0, 2.0), (2.0, 5.0), (4.0, 1.0))]
    assert F.in_flight_at_arrival(reqs) == [0, 1, 2, 2]
    burst = [F.Measured(0.0, 8, 2, 0.1, 1.0)] * 3  # arrivals at the same instant: none counts the others
    assert F.in_flight_at_arrival(burst) == [0, 0, 0]


def test_api_server_load_is_fitted_on_the_fit_runs_and_carries_the_held_out_server_clock():
    """An API server whose share grows by 1 ms per request in the engine: the line comes back from the fit runs; the
    held-out trace on the server's clock passes with it, and a constant idle share falls short of its p50."""
    from bench.autoscaling import validate_cpu as V

    api, per = 0.002, 0.001
    results, held = _runs(TRUE, api, per)
    rep = V.discrete_step_report(results, held)
    assert rep is not None
    assert rep["api_server_load"]["base_s"] == pytest.approx(api, abs=0.001)
    assert rep["api_server_load"]["per_in_flight_s"] == pytest.approx(per, rel=0.2)
    assert all(r["pass"] for r in rep["server_loaded_table"]), rep["server_loaded_table"]
    fitted = {r["run"]: r for r in rep["api_server_load_runs"]}
    assert fitted["held-out"]["fitted_ms"] == pytest.approx(fitted["held-out"]["measured_ms"], rel=0.2)
    constant_p50 = next(r for r in rep["server_table"] if r["metric"] == "ttft_p50_ms")
    loaded_p50 = next(r for r in rep["server_loaded_table"] if r["metric"] == "ttft_p50_ms")
    assert abs(loaded_p50["ratio"] - 1) < abs(constant_p50["ratio"] - 1)
    text = "\n".join(V._api_server_load_section({"discrete_step": rep}))
    assert "Criteria missed: none" in text and "held-out" in text
    assert V._api_server_load_section({"discrete_step": {k: v for k, v in rep.items() if k != "api_server_load"}}) == []
