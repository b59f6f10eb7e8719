"""The pure parts of bench/autoscaling/validate_cpu.py (issue 17 item 2): the step-time fit recovers known
coefficients, the simulator replay and the sim/real comparison.  No vLLM needed."""

from __future__ import annotations

import json
import math
import random

import pytest

from bench.autoscaling import validate_cpu_fit as F

TRUE = {
    "step_overhead_s": 0.0030,
    "per_seq_s": 0.00020,
    "per_token_s": 0.000012,
    "kv_token_s": 0.0000004,
    "attn_token2_s": 0.000000004,
    "frontend_s": 0.009,
}


def _sm(theta: dict[str, float]) -> F.FittedServiceModel:
    return F.service_model(theta, max_num_seqs=8, budget=128, kv_capacity=2**21)


def _measured(arrivals: list[tuple[float, int, int]], theta: dict[str, float]) -> list[F.Measured]:
    """What a client would see if the engine were exactly the simulator with ``theta``."""
    fe = theta["frontend_s"]
    return [
        F.Measured(r.arrival, r.prompt, r.output, r.ttft + fe, r.done - r.arrival + fe)
        for r in F.simulate(arrivals, _sm(theta))
    ]


def test_nnls_recovers_exact_coefficients_from_synthetic_rows():
    rows = [F.idle_ttft_row(f"p{p}", p, 0.0, 128) for p in (32, 128, 256, 384)]
    rows += [
        F.Row(f"c{c}", (1.0, c + 0.2, F.r_dec() * c + 40, c * 90.0 * (1 + c % 3), 900.0, 0.0), 0.0)
        for c in (1, 2, 4, 8)
    ]
    rows = [F.Row(r.source, r.x, F.predict(r, TRUE)) for r in rows]
    got = F.fit(rows)
    for k, v in TRUE.items():
        assert got[k] == pytest.approx(v, rel=1e-6), k


def test_nnls_keeps_coefficients_non_negative():
    # y = 2*x0 - 1*x1 has no non-negative exact solution; NNLS must clamp x1's coefficient at 0
    x = [[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]]
    y = [2.0, 1.0, 0.0, -1.0]
    theta = F.nnls(x, y)
    assert min(theta) >= 0.0
    assert theta[1] == 0.0


def test_fit_on_simulated_runs_recovers_the_step_time():
    """Runs made by the simulator with known coefficients, measured the way validate_cpu measures vLLM: the fit
    recovers the overhead and the per-sequence cost, and the fitted model reproduces the runs' TPOT and TTFT."""
    rows = []
    for p in (32, 128, 256, 384):  # one prompt at a time on an idle engine
        m = _measured([(0.0, p, 2)], TRUE)[0]
        rows.append(F.idle_ttft_row(f"idle{p}", p, m.ttft, 128))
    rng = random.Random(3)
    runs = {}
    for name, rate, prompt, n in (("r5", 5.0, 256, 80), ("r15", 15.0, 64, 150), ("r25", 25.0, 320, 200)):
        t, arr = 0.0, []
        for _ in range(n):
            t += rng.expovariate(rate)
            arr.append((t, prompt, 64))
        runs[name] = _measured(arr, TRUE)
        rows.append(F.tpot_row(name, runs[name], 128))
    got = F.fit(rows)
    assert got["step_overhead_s"] == pytest.approx(TRUE["step_overhead_s"], rel=0.15)
    assert got["per_seq_s"] + F.r_dec() * got["per_token_s"] == pytest.approx(
        TRUE["per_seq_s"] + F.r_dec() * TRUE["per_token_s"], rel=0.25
    )
    assert got["frontend_s"] == pytest.approx(TRUE["frontend_s"], rel=0.15)
    sm = _sm(got)
    for reqs in runs.values():
        ratio = F.sim_metrics(reqs, sm, got["frontend_s"])["tpot_mean_ms"] / F.real_metrics(reqs)["tpot_mean_ms"]
        assert ratio == pytest.approx(1.0, abs=0.05)


def test_sim_metrics_of_the_true_model_match_its_own_measurements():
    arr = [(0.05 * i, 100 + 7 * (i % 40), 30 + i % 50) for i in range(200)]
    reqs = _measured(arr, TRUE)
    sim, real = F.sim_metrics(reqs, _sm(TRUE), TRUE["frontend_s"]), F.real_metrics(reqs)
    assert all(r["pass"] and r["ratio"] == pytest.approx(1.0, abs=1e-6) for r in F.compare(sim, real))


def test_a_slower_engine_is_caught_by_the_comparison():
    arr = [(0.03 * i, 300, 60) for i in range(300)]
    reqs = _measured(arr, TRUE)
    slow = dict(TRUE, step_overhead_s=3 * TRUE["step_overhead_s"])
    table = F.compare(F.sim_metrics(reqs, _sm(slow), TRUE["frontend_s"]), F.real_metrics(reqs))
    assert not all(r["pass"] for r in table)


def test_compare_bounds():
    real = {k: 100.0 for k in F.COMPARED}
    for v, ok in ((119.9, True), (80.1, True), (120.1, False), (79.9, False)):
        table = F.compare({k: v for k in F.COMPARED}, real)
        assert [r["pass"] for r in table] == [ok] * len(F.COMPARED), v
        assert table[0]["ratio"] == pytest.approx(v / 100.0)


def test_percentile_is_numpys_linear_interpolation():
    assert F.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert F.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert math.isnan(F.percentile([], 50))


def test_metrics_as_vllm_bench_serve_computes_them():
    m = F.metrics([0.0, 1.0], [0.1, 0.3], [2.0, 4.0], [11, 21])
    assert m["req_per_s"] == pytest.approx(0.5)
    assert m["output_tok_per_s"] == pytest.approx(8.0)
    assert m["tpot_mean_ms"] == pytest.approx(1e3 * (0.19 + 2.7 / 20) / 2)


def test_timed_trace_lines_give_every_prompt_blocks_of_its_own():
    lines = [json.loads(s) for s in F.timed_trace_lines([(0.0, 33, 5), (0.5, 16, 7), (1.25, 1, 2)])]
    assert [len(o["hash_ids"]) for o in lines] == [3, 1, 1]
    ids = [h for o in lines for h in o["hash_ids"]]
    assert len(ids) == len(set(ids))
    assert [o["timestamp"] for o in lines] == [0.0, 0.5, 1.25]
    assert [(o["input_length"], o["output_length"]) for o in lines] == [(33, 5), (16, 7), (1, 2)]


def test_excerpt_and_shrink():
    rows = [(10.0 + 2 * i, 1000 + i, 4000) for i in range(100)]
    ex = F.excerpt(F.shrink(rows, F.TraceShape()), rate=2.0, duration_s=20.0)
    assert len(ex) == 40
    assert ex[0][0] == 0.0 and ex[-1][0] == pytest.approx(20.0)
    assert all(p == min(384, round((1000 + i) / 4)) and o == 120 for i, (_, p, o) in enumerate(ex))


# --- the front end as a queue (validate_cpu_fit.FrontEnd) -----------------------------------------------------------
def _queued(arrivals: list[tuple[float, int, int]], fe: F.FrontEnd) -> list[F.Measured]:
    """What a client would see if the engine were the simulator with TRUE and the front end exactly ``fe``."""
    starts, first, last, _ = F.replay_with_front_end(arrivals, _sm(TRUE), fe)
    return [F.Measured(s, p, o, f - s, e - s) for s, f, e, (_, p, o) in zip(starts, first, last, arrivals)]


def test_front_end_is_one_fifo_server():
    """Two requests sent together: the second reaches the engine one request's work later, and every token waits
    for the server to be free; the delay occupies nothing."""
    engine = F.simulate([(0.0, 16, 1), (0.0, 16, 1)], _sm(TRUE))
    fe = F.FrontEnd(per_request_s=1.0, per_token_s=0.5, delay_s=0.25)
    entry, first, last = F._serve_front_end([0.0, 0.0], engine, fe)
    assert entry == [1.0, 2.0]
    # both tokens come out of the engine well before 2 s, so they queue behind the second request's work
    assert first == pytest.approx([2.75, 3.25]) and last == first


def test_a_free_front_end_changes_nothing():
    arrivals = [(0.05 * i, 64 + 8 * (i % 5), 4 + i % 7) for i in range(60)]
    _, first, last, moved = F.replay_with_front_end(arrivals, _sm(TRUE), F.FrontEnd(0.0, 0.0, 0.0))
    plain = F.simulate(arrivals, _sm(TRUE))
    assert moved < 1e-4
    assert first == pytest.approx([r.arrival + r.ttft for r in plain])
    assert last == pytest.approx([r.done for r in plain])


def test_ceiling_fit_recovers_the_per_token_work_of_a_saturating_run():
    """A saturating run made by a known front end: the bisection finds its split of the idle constant again, and
    a slower front end shows as a lower throughput ceiling."""
    # 4 ms + 64 x 1.2 ms of front-end work a request: about 12 req/s, below the engine's own 20
    truth = F.FrontEnd(per_request_s=0.004, per_token_s=0.0012, delay_s=0.0)
    arrivals = [(0.0, 256, 64)] * 120
    reqs = _queued(arrivals, truth)
    got = F.fit_front_end_to_ceiling(reqs, _sm(TRUE), truth.per_request_s + truth.per_token_s)
    assert got.per_token_s == pytest.approx(truth.per_token_s, rel=0.05)
    free = F.real_metrics(_queued(arrivals, F.FrontEnd(0.0, 0.0, 0.0)))["req_per_s"]
    assert F.real_metrics(reqs)["req_per_s"] < 0.8 * free


# --- vLLM's own histograms ---------------------------------------------------------------------------------------------
EXPOSITION = """# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="tiny"} 0.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} %(ttft)s
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny"} %(n)s
vllm:time_to_first_token_seconds_created{engine="0",model_name="tiny"} 1.7e9
vllm:request_queue_time_seconds_sum{engine="0",model_name="tiny"} %(queue)s
vllm:request_queue_time_seconds_count{engine="0",model_name="tiny"} %(n)s
vllm:request_prefill_time_seconds_sum{engine="0",model_name="tiny"} %(prefill)s
vllm:request_prefill_time_seconds_count{engine="0",model_name="tiny"} %(n)s
vllm:e2e_request_latency_seconds_sum{engine="1",model_name="tiny"} 2.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="tiny"} 3.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="tiny"} %(n)s
vllm:request_queue_time_seconds_created{engine="0",model_name="tiny"} 1.7e9
"""


def test_server_histograms_split_a_run_mean_ttft():
    """Two scrapes around a run of 10 requests: their deltas give per-request means, and the client's mean TTFT
    splits into client + HTTP, API server, engine queue and prefill, which add back up to it."""
    before = F.histogram_totals(EXPOSITION % {"ttft": 1.0, "n": 5, "queue": 0.5, "prefill": 0.1})
    after = F.histogram_totals(EXPOSITION % {"ttft": 3.0, "n": 15, "queue": 1.7, "prefill": 0.3})
    assert before["vllm:e2e_request_latency_seconds"] == (5.0, 5.0), (
        "label sets (engines) add up; _created is not a sum"
    )
    m = F.server_means(before, after)
    assert m["requests"] == 10
    assert m["time_to_first_token_mean_ms"] == pytest.approx(200.0)
    assert m["request_queue_time_mean_ms"] == pytest.approx(120.0)
    assert m["request_prefill_time_mean_ms"] == pytest.approx(20.0)
    assert math.isnan(m["request_decode_time_mean_ms"]), "a histogram the server did not expose has no mean"
    b = F.ttft_breakdown(250.0, m)
    assert b["client_and_http_ms"] == pytest.approx(50.0) and b["api_server_ms"] == pytest.approx(60.0)
    parts = ("client_and_http_ms", "api_server_ms", "engine_queue_ms", "engine_prefill_ms")
    assert sum(b[k] for k in parts) == pytest.approx(b["client_ttft_mean_ms"])


def test_ceiling_fit_charges_no_token_work_when_the_engine_is_the_ceiling():
    arrivals = [(0.0, 256, 64)] * 120
    reqs = _queued(arrivals, F.FrontEnd(0.0, 0.0, 0.0))
    assert F.fit_front_end_to_ceiling(reqs, _sm(TRUE), 0.005) == F.FrontEnd(0.005, 0.0, 0.0)


def _spans(reqs: list[F.Measured], t0: float = 1.8e9) -> list[dict]:
    """The requests as otlp_receiver.span_records gives vLLM's spans (wall clock, the server's own timings)."""
    # the engine core's part of the TTFT (queue + prefill) is the TTFT less the front end's constant
    fe = TRUE["frontend_s"]
    return [
        {"start": t0 + m.start, "ttft": m.ttft, "e2e": m.latency, "prompt": m.prompt, "output": m.output, "id": str(i)}
        | {"queue": 0.0, "prefill": m.ttft - fe}
        for i, m in enumerate(reqs)
    ]


def test_span_records_read_vllm_request_spans_in_protobufs_json_mapping():
    from bench.autoscaling.otlp_receiver import span_records

    def attr(key: str, **value: object) -> dict:
        return {"key": key, "value": value}

    span = {
        "name": "llm_request",
        "startTimeUnixNano": "1796585893289890800",
        "attributes": [
            attr("gen_ai.latency.time_to_first_token", doubleValue=0.012),
            attr("gen_ai.latency.e2e", doubleValue=0.5),
            attr("gen_ai.usage.prompt_tokens", intValue="100"),  # int64 travels as a string
            attr("gen_ai.usage.completion_tokens", intValue="5"),
            attr("gen_ai.request.id", stringValue="cmpl-1"),
            attr("gen_ai.request.top_p", doubleValue=1.0),  # not wanted
        ],
    }
    export = {"resourceSpans": [{"scopeSpans": [{"spans": [span, {"name": "other", "startTimeUnixNano": "1"}]}]}]}
    (rec,) = span_records(export)
    assert rec == {
        "start": pytest.approx(1796585893.2898908),
        "ttft": 0.012,
        "e2e": 0.5,
        "prompt": 100,
        "output": 5,
        "id": "cmpl-1",
    }
    assert span_records({}) == []


def test_server_spans_read_as_a_bench_serve_result():
    reqs = _measured([(0.1 * i, 64, 8) for i in range(20)], TRUE)
    spans = _spans(reqs) + [{"start": 1.8e9, "prompt": 10, "output": 0, "ttft": None, "e2e": 0.1}]  # an aborted one
    res = F.bench_result_of_spans(spans)
    back = F.requests_of(res)
    assert res["completed"] == len(back) == 20
    assert [m.ttft for m in back] == [m.ttft for m in reqs] and [m.output for m in back] == [8] * 20
    assert res["median_ttft_ms"] == pytest.approx(1e3 * F.percentile([m.ttft for m in reqs], 50))


def _span_runs(theta: dict[str, float]) -> tuple[dict, dict]:
    """Fit runs (idle and Poisson) and a held-out run whose spans are exactly the simulator with ``theta``."""
    from bench.autoscaling import validate_cpu as V

    rng = random.Random(5)
    results = {}
    for p in (32, 128, 256, 384):
        reqs = [_measured([(0.0, p, 2)], theta)[0]] * 5
        results[f"idle-p{p}"] = (V.Spec(f"idle-p{p}", "idle", p, 2, 5, max_concurrency=1), reqs)
    for name, rate in (("rate-a", 5.0), ("rate-b", 15.0), ("rate-c", 25.0)):
        t, arr = 0.0, []
        for _ in range(150):
            t += rng.expovariate(rate)
            arr.append((t, 256, 64))
        results[name] = (V.Spec(name, "rate", 256, 64, 150, rate=rate), _measured(arr, theta))
    held = _measured([(0.04 * i, 100 + 13 * (i % 20), 20 + i % 40) for i in range(400)], theta)
    as_res = lambda reqs: {"server_requests": _spans(reqs), "completed": len(reqs), "failed": 0}  # noqa: E731
    return {n: (s, as_res(r)) for n, (s, r) in results.items()}, as_res(held)


def test_server_clock_report_refits_on_spans_and_replays_the_held_out_run():
    """Fit runs and a held-out run whose spans are exactly the simulator with TRUE: the refit on the spans
    reproduces the held-out run (every compared figure within 20 %); a slower engine's spans are caught."""
    from bench.autoscaling import validate_cpu as V

    runs = _span_runs
    results, held = runs(TRUE)
    rep = V.server_clock_report(results, held, kv_cap=2**21)
    assert rep is not None and rep["requests"] == 400
    assert all(r["pass"] for r in rep["table"] if r["metric"] in F.COMPARED), rep["table"]
    assert [r["metric"] for r in rep["engine_table"]] == ["engine_ttft_p50_ms", "engine_ttft_p95_ms"]
    assert all(r["pass"] for r in rep["engine_table"]), rep["engine_table"]
    assert "Validation on the server's clock" in "\n".join(V._server_clock_section({"server_clock": rep}))
    # the fit runs from one engine, the held-out run from a three times slower one: the replay misses
    _, slow_held = runs(dict(TRUE, step_overhead_s=3 * TRUE["step_overhead_s"]))
    rep = V.server_clock_report(results, slow_held, kv_cap=2**21)
    assert rep is not None and not all(r["pass"] for r in rep["table"] if r["metric"] in F.COMPARED)
    assert not all(r["pass"] for r in rep["engine_table"])
    # a receiver that got nothing (the run's span list empty): no server-clock view, not a crash
    assert V.server_clock_report(results, dict(held, server_requests=[]), kv_cap=2**21) is None
    # runs saved before the spans were received: no server-clock view
    del held["server_requests"]
    assert V.server_clock_report(results, held, kv_cap=2**21) is None


def test_replays_report_each_replay_against_the_first_and_the_fit():
    """The held-out trace replayed twice, the second time by an engine with twice the step overhead: the report
    puts the second replay's real TTFTs above the first's and reruns both models on each replay's own spans."""
    from bench.autoscaling import validate_cpu as V

    results, held = _span_runs(TRUE)
    _, slow = _span_runs(dict(TRUE, step_overhead_s=2 * TRUE["step_overhead_s"]))
    rows = V.replays_report(results, [held, held, slow], kv_cap=2**21)
    assert [r["replay"] for r in rows] == [1, 2, 3] and rows[0]["requests"] == 400
    assert rows[1]["real_vs_first"] == pytest.approx({k: 1.0 for k in rows[0]["real"]})
    assert rows[2]["real_vs_first"]["engine_ttft_p50_ms"] > 1.2 and rows[2]["real_vs_first"]["ttft_p95_ms"] > 1.0
    assert rows[1]["step_replay_engine"] == rows[0]["step_replay_engine"]
    assert rows[2]["step_replay_engine"]["engine_ttft_p50_ms"] < rows[0]["step_replay_engine"]["engine_ttft_p50_ms"]
    assert set(rows[0]["fluid_engine"]) == {"engine_ttft_p50_ms", "engine_ttft_p95_ms"}
    text = "\n".join(V._replays_section({"replays": rows}))
    assert "replayed 3 times" in text and "moved by up to" in text and text.count("\n| ") == 4
    assert V._replays_section({"replays": rows[:1]}) == []  # one replay: nothing to compare
    # a run without spans: no replays view, not a crash
    assert V.replays_report(results, [dict(held, server_requests=[])], kv_cap=2**21) == []


def test_step_sensitivity_replays_the_held_out_run_with_a_scaled_step():
    """Requests measured from TRUE near its capacity: at the fitted step the replay is exact (ratio 1), a slower
    step gives longer TTFTs, and the elasticity is their log slope."""
    from bench.autoscaling import validate_cpu as V

    rng = random.Random(11)
    t, arr = 0.0, []
    for _ in range(300):
        t += rng.expovariate(22.0)
        arr.append((t, 200, 40))
    reqs = _measured(arr, TRUE)
    sens = F.step_sensitivity(reqs, TRUE, max_num_seqs=8, budget=128, kv_capacity=2**21)
    assert [r["scale"] for r in sens] == list(F.STEP_SCALES)
    at_one = next(r for r in sens if r["scale"] == 1.0)
    assert at_one["ttft_p50_ms_ratio"] == pytest.approx(1.0, rel=1e-6)
    p50s = [r["ttft_p50_ms"] for r in sens]
    assert p50s == sorted(p50s) and p50s[-1] > p50s[0]
    slower = next(r for r in sens if r["scale"] == 1.1)
    e = F.elasticity(sens)
    assert e == pytest.approx(math.log(slower["ttft_p50_ms"] / at_one["ttft_p50_ms"]) / math.log(1.1)) and e > 0
    sc = {"step_sensitivity": sens, "elasticity": {"ttft_p50_ms": e, "ttft_p95_ms": F.elasticity(sens, "ttft_p95_ms")}}
    sc["in_sample_ratio"] = {"rate-a": {"tpot_mean_ms": 0.9}, "rate-b": {"tpot_mean_ms": 1.1}, "idle-p32": {}}
    text = "\n".join(V._sensitivity_lines(sc))
    assert f"elasticity {e:.1f}" in text and "0.90-1.10 of real" in text
    assert V._sensitivity_lines({}) == []


def test_tpot_by_in_flight_groups_requests_by_first_token():
    """Four requests, two groups: the first pair gets its first tokens while all four are in flight and decodes at
    5 ms a token, the second pair later, with two in flight, at 3 ms."""
    m = F.Measured
    reqs = [m(0.0, 8, 11, 0.10, 0.15), m(0.0, 8, 11, 0.11, 0.16), m(0.0, 8, 11, 0.30, 0.33), m(0.0, 8, 11, 0.31, 0.34)]
    groups = F.tpot_by_in_flight(reqs, groups=2)
    assert [g["requests"] for g in groups] == [2, 2]
    assert [g["in_flight"] for g in groups] == [4.0, 2.0]
    assert [round(g["tpot_ms"], 6) for g in groups] == [5.0, 3.0]


def test_saturation_note_says_whether_the_capacity_holds():
    from bench.autoscaling import validate_cpu as V

    def note(real_rps: float, sim_rps: float, decoding: float = 7.5) -> str:
        run = lambda rps: {"req_per_s": rps, "mean_decoding": decoding, "tpot_mean_ms": 64 / rps}  # noqa: E731
        return V._saturation_note({"real": run(real_rps), "sim": run(sim_rps)})

    assert "the model's capacity holds" in note(32.8, 35.1)
    assert "does not hold" in note(28.5, 42.0) and "sim/real is 1.474" in note(28.5, 42.0)
    assert "free slots" in note(30.0, 31.0, decoding=3.0)
