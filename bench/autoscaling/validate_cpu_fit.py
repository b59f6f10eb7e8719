"""Pure parts of bench/autoscaling/validate_cpu.py: the step-time fit, the simulator replay and the sim/real comparison.

No vLLM here (tests/test_validate_cpu.py runs it without one).  The fit is linear least squares with non-negative
coefficients over rows of *step features*: each measured quantity (an idle prompt's TTFT, a run's mean TPOT) is a sum
of engine steps, and a step's time is linear in the coefficients (FittedServiceModel's additive step):

    theta = (step_overhead_s, per_seq_s, per_token_s, kv_token_s, attn_token2_s, frontend_s)

frontend_s is what the simulator does not model: HTTP, tokenisation, the API server's output path and the client's
own latency, a constant added to every TTFT (it cancels out of TPOT).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .service import TINY_QWEN3, FittedServiceModel, ModelSpec
from .sim import FixedSchedule, SimConfig, run_sim
from .step_replay import StepCost
from .step_replay import replay as step_replay
from .traces import Request

THETA = ("step_overhead_s", "per_seq_s", "per_token_s", "kv_token_s", "attn_token2_s", "frontend_s")
TOLERANCE = 0.20  # issue 17 item 2: TTFT p50/p95 and throughput within 20 %


def r_dec(model: ModelSpec = TINY_QWEN3) -> float:
    """A decoded token's linear-layer cost relative to a prompt token's: it also runs the lm_head."""
    return (model.non_embedding_params + model.vocab * model.hidden) / model.non_embedding_params


def n_chunks(prompt: float, budget: int) -> int:
    return max(1, math.ceil(prompt / budget))


# --- rows ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One observation: y (seconds) = x . theta."""

    source: str
    x: tuple[float, ...]
    y: float


def idle_ttft_row(source: str, prompt: float, ttft_s: float, budget: int) -> Row:
    """A prompt alone on an idle engine: ceil(P/budget) chunk steps of one sequence each, P prompt tokens in all,
    attention P * P (the simulator charges each chunk's tokens at the whole prompt's length), plus the front end."""
    k = n_chunks(prompt, budget)
    return Row(source, (k, k, prompt, 0.0, prompt * prompt, 1.0), ttft_s)


@dataclass(frozen=True)
class Measured:
    """One request as `vllm bench serve --save-detailed` reports it (client clock, seconds)."""

    start: float
    prompt: int
    output: int
    ttft: float
    latency: float


def bench_result_of_spans(spans: Sequence[dict]) -> dict:
    """A run's requests on the server's clock (otlp_receiver.span_records: arrival in vLLM's API server, the server's
    TTFT and end-to-end latency) in the shape of a `vllm bench serve` result, so that requests_of and the fit take
    them as they are."""
    done = [r for r in spans if r.get("output") and r.get("ttft") and r.get("e2e")]
    ttfts = [float(r["ttft"]) for r in done]
    return {
        "start_times": [float(r["start"]) for r in done],
        "input_lens": [int(r["prompt"]) for r in done],
        "output_lens": [int(r["output"]) for r in done],
        "ttfts": ttfts,
        "latencies": [float(r["e2e"]) for r in done],
        "completed": len(done),
        "median_ttft_ms": 1e3 * percentile(ttfts, 50) if ttfts else math.nan,
        # the engine core's own part of each TTFT: waiting queue + prefill (scheduled to first token)
        "engine_ttfts": [float(r.get("queue") or 0.0) + float(r.get("prefill") or 0.0) for r in done],
    }


def engine_ttft_metrics(engine_ttfts: Sequence[float]) -> dict:
    return {
        "engine_ttft_p50_ms": 1e3 * percentile(engine_ttfts, 50),
        "engine_ttft_p95_ms": 1e3 * percentile(engine_ttfts, 95),
    }


def requests_of(result: dict) -> list[Measured]:
    """The successful requests of a `vllm bench serve` result JSON (start_times, ttfts, latencies, lengths)."""
    out: list[Measured] = []
    for s, p, o, t, lat, err in zip(
        result["start_times"],
        result["input_lens"],
        result["output_lens"],
        result["ttfts"],
        result["latencies"],
        result.get("errors") or [""] * len(result["ttfts"]),
    ):
        if not err and o and t and lat:
            out.append(Measured(float(s), int(p), int(o), float(t), float(lat)))
    return out


def tpot_row(source: str, reqs: Sequence[Measured], budget: int, model: ModelSpec = TINY_QWEN3) -> Row:
    """A run's mean TPOT as an average engine step, features measured from the run itself.

    For each request i (>= 3 output tokens) its decode window is [first token, last token] on the client clock,
    O_i - 1 steps.  During it: mean decoders n = 1 + the overlap of every other request's decode window; the
    prefills that finished inside it add their chunk steps' sequences, tokens and attention; the decoders' context
    is n * (mean prompt + mean output / 2).  The front end's delay shifts every window alike, so it cancels."""
    mean_x, y = _decode_window_means(source, reqs, budget, model)
    n, chunks, toks, ctx, attn = mean_x
    return Row(source, (1.0, n + chunks, toks, ctx, attn, 0.0), y)


def _decode_window_means(
    source: str, reqs: Sequence[Measured], budget: int, model: ModelSpec
) -> tuple[tuple[float, ...], float]:
    """(mean decoders, prompt chunks, tokens, decoders' context, attention) per step over the requests' decode
    windows, and the mean TPOT (tpot_row says how)."""
    rd = r_dec(model)
    dec = [(m.start + m.ttft, m.start + m.latency) for m in reqs]
    ctx = sum(m.prompt + m.output / 2 for m in reqs) / max(1, len(reqs))
    xs: list[tuple[float, ...]] = []
    ys: list[float] = []
    for i, m in enumerate(reqs):
        a, b = dec[i]
        if m.output < 3 or b <= a:
            continue
        steps = m.output - 1
        n = 1.0 + sum(max(0.0, min(b, d1) - max(a, d0)) for j, (d0, d1) in enumerate(dec) if j != i) / (b - a)
        pf = [r for j, r in enumerate(reqs) if j != i and a < dec[j][0] <= b]
        chunks = sum(n_chunks(r.prompt, budget) for r in pf) / steps
        toks = rd * n + sum(r.prompt for r in pf) / steps
        attn = sum(r.prompt * r.prompt for r in pf) / steps
        xs.append((n, chunks, toks, n * ctx, attn))
        ys.append((b - a) / steps)
    if not xs:
        raise ValueError(f"{source}: no request with >= 3 output tokens")
    return tuple(sum(x[k] for x in xs) / len(xs) for k in range(5)), sum(ys) / len(ys)


# --- non-negative least squares -----------------------------------------------------------------------------------
def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        if abs(m[p][c]) < 1e-300:
            return None
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] for i in range(n)]


def _lstsq(x: Sequence[Sequence[float]], y: Sequence[float], cols: Sequence[int]) -> list[float] | None:
    # column scaling keeps the normal equations well conditioned (features span 1 .. 1e5)
    scale = [max(abs(r[c]) for r in x) or 1.0 for c in cols]
    a = [[sum(r[ci] * r[cj] / (si * sj) for r in x) for cj, sj in zip(cols, scale)] for ci, si in zip(cols, scale)]
    b = [sum(r[ci] * yy / si for r, yy in zip(x, y)) for ci, si in zip(cols, scale)]
    s = _solve(a, b)
    return None if s is None else [v / sc for v, sc in zip(s, scale)]


def nnls(x: Sequence[Sequence[float]], y: Sequence[float]) -> list[float]:
    """min |x theta - y|^2 with theta >= 0, exactly, by trying every support set (6 unknowns: 63 solves)."""
    n = len(x[0])
    best: tuple[float, list[float]] = (math.inf, [0.0] * n)
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            s = _lstsq(x, y, cols)
            if s is None or min(s) < 0.0:
                continue
            theta = [0.0] * n
            for c, v in zip(cols, s):
                theta[c] = v
            err = sum((sum(a * t for a, t in zip(r, theta)) - yy) ** 2 for r, yy in zip(x, y))
            if err < best[0]:
                best = (err, theta)
    return best[1]


def fit(rows: Sequence[Row]) -> dict[str, float]:
    """Relative least squares (each row divided by its y: a 10 ms TPOT counts as much as a 50 ms TTFT)."""
    x = [[v / r.y for v in r.x] for r in rows]
    theta = nnls(x, [1.0] * len(rows))
    return dict(zip(THETA, theta))


def predict(row: Row, theta: dict[str, float]) -> float:
    return sum(v * theta[k] for v, k in zip(row.x, THETA))


# --- the simulator ------------------------------------------------------------------------------------------------
def service_model(theta: dict[str, float], *, max_num_seqs: int, budget: int, kv_capacity: int) -> FittedServiceModel:
    return FittedServiceModel(
        model=TINY_QWEN3,
        additive=True,
        variant="fitted-cpu-tiny-qwen3",
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=budget,
        step_overhead_s=theta["step_overhead_s"],
        per_seq_s=theta["per_seq_s"],
        per_token_s=theta["per_token_s"],
        kv_token_s=theta["kv_token_s"],
        attn_token2_s=theta["attn_token2_s"],
        kv_capacity=kv_capacity,
    )


def simulate(arrivals: Sequence[tuple[float, int, int]], sm: FittedServiceModel) -> list[Request]:
    """One replica, fixed size, no cold start (bench/autoscaling/calibration.py's _serve)."""
    reqs = [Request(a, p, o) for a, p, o in arrivals]
    cfg = SimConfig(cold_start_s=0.0, cold_start_jitter=0.0, min_replicas=1, max_replicas=1, horizon_tail_s=3600.0)
    run_sim(reqs, FixedSchedule("one replica", 1e9, [1]), sm, cfg)
    return reqs


def percentile(xs: Sequence[float], q: float) -> float:
    """numpy.percentile's default (linear interpolation), as `vllm bench serve` reports p50/p95."""
    s = sorted(xs)
    if not s:
        return math.nan
    k = (len(s) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def metrics(starts: Sequence[float], ttfts: Sequence[float], ends: Sequence[float], outputs: Sequence[int]) -> dict:
    """The figures compared, computed as `vllm bench serve` does: duration from the first send to the last reply."""
    dur = max(ends) - min(starts)
    tpots = [(e - s - t) / (o - 1) for s, t, e, o in zip(starts, ttfts, ends, outputs) if o > 1]
    return {
        "ttft_p50_ms": 1e3 * percentile(ttfts, 50),
        "ttft_p95_ms": 1e3 * percentile(ttfts, 95),
        "ttft_mean_ms": 1e3 * sum(ttfts) / max(1, len(ttfts)),
        "tpot_mean_ms": 1e3 * sum(tpots) / max(1, len(tpots)),
        "req_per_s": len(ttfts) / dur,
        "output_tok_per_s": sum(outputs) / dur,
    }


def occupancy(starts: Sequence[float], ttfts: Sequence[float], ends: Sequence[float]) -> dict:
    """Time-averaged requests in flight and in decode (after their first token): where the requests wait."""
    dur = max(ends) - min(starts)
    return {
        "mean_in_flight": sum(e - s for s, e in zip(starts, ends)) / dur,
        "mean_decoding": sum(e - s - t for s, t, e in zip(starts, ttfts, ends)) / dur,
    }


def real_metrics(reqs: Sequence[Measured]) -> dict:
    starts, ttfts, ends = [m.start for m in reqs], [m.ttft for m in reqs], [m.start + m.latency for m in reqs]
    return {**metrics(starts, ttfts, ends, _outs(reqs)), **occupancy(starts, ttfts, ends)}


def _outs(reqs: Sequence[Measured]) -> list[int]:
    return [m.output for m in reqs]


def _replay(reqs: Sequence[Measured], sm: FittedServiceModel) -> list[Request]:
    """The measured requests (their real send times and lengths) through the simulator, every one finished."""
    t0 = min(m.start for m in reqs)
    done = simulate([(m.start - t0, m.prompt, m.output) for m in reqs], sm)
    if any(r.rejected or not math.isfinite(r.done) for r in done):
        raise ValueError("the simulator rejected or did not finish a request")
    return done


def sim_ttfts(reqs: Sequence[Measured], sm: FittedServiceModel) -> list[float]:
    """The simulator's engine-only TTFT of each request, replayed at the measured arrival times."""
    return [r.ttft for r in _replay(reqs, sm)]


def sim_metrics(reqs: Sequence[Measured], sm: FittedServiceModel, frontend_s: float) -> dict:
    """Replay the measured requests through the simulator; the front end's constant is added to every TTFT and
    completion (the simulator times the engine only)."""
    done = _replay(reqs, sm)
    starts, ttfts = [r.arrival for r in done], [r.ttft + frontend_s for r in done]
    ends = [r.done + frontend_s for r in done]
    return {**metrics(starts, ttfts, ends, [r.output for r in done]), **occupancy(starts, ttfts, ends)}


@dataclass(frozen=True)
class FrontEnd:
    """vLLM's front end on this machine as one FIFO server plus a fixed delay. The API server, the engine core's
    input and output loop and the load client share the one core the CPU backend leaves free (validate_cpu.py
    prints the affinity). A request costs ``per_request_s`` of that server before the engine sees it (HTTP,
    tokenising, handing it over) and every output token ``per_token_s`` before the client sees it (detokenising,
    the SSE chunk, the client's parse); ``delay_s`` is latency that occupies nothing (the hops between processes).
    At idle a first token pays all three: their sum is the fit's constant frontend_s."""

    per_request_s: float
    per_token_s: float
    delay_s: float


def _token_times(r: Request) -> list[float]:
    """When the engine produced each of the request's tokens: the first at its TTFT, the rest evenly to the end."""
    first = r.arrival + r.ttft
    if r.output <= 1:
        return [first]
    gap = (r.done - first) / (r.output - 1)
    return [first + k * gap for k in range(r.output)]


def _serve_front_end(
    arrivals: Sequence[float], engine: Sequence[Request], fe: FrontEnd
) -> tuple[list[float], list[float], list[float]]:
    """One pass of the FIFO server over the requests' arrivals and the engine's tokens in time order: when each
    request reaches the engine, and when the client sees its first and its last token."""
    jobs: list[tuple[float, int, int, float]] = [(a, 0, i, fe.per_request_s) for i, a in enumerate(arrivals)]
    for i, r in enumerate(engine):
        times = _token_times(r)
        jobs.append((times[0], 1, i, fe.per_token_s))
        jobs.extend((t, 2, i, fe.per_token_s) for t in times[1:])
    jobs.sort()
    n = len(arrivals)
    entry, first, last = [0.0] * n, [0.0] * n, [0.0] * n
    free = -math.inf
    for t, kind, i, cost in jobs:
        free = max(t, free) + cost
        if kind == 0:
            entry[i] = free
            continue
        if kind == 1:
            first[i] = free + fe.delay_s
        last[i] = free + fe.delay_s
    return entry, first, last


def replay_with_front_end(
    arrivals: Sequence[tuple[float, int, int]], sm: FittedServiceModel, fe: FrontEnd, rounds: int = 30
) -> tuple[list[float], list[float], list[float], float]:
    """(arrival, first token seen, last token seen) per request, and the last round's largest change (s).

    The engine's token times depend on when requests reach it, which depends on the front end's queue of those
    tokens: solved by fixed-point rounds (simulate the engine from the entry times, serve the front end, repeat
    until the entry times stop moving by more than 0.1 ms)."""
    send = [a for a, _, _ in arrivals]
    entry, moved = list(send), math.inf
    first = last = send
    for _ in range(rounds):
        engine = simulate([(e, p, o) for e, (_, p, o) in zip(entry, arrivals)], sm)
        if any(r.rejected or not math.isfinite(r.done) for r in engine):
            raise ValueError("the simulator rejected or did not finish a request")
        new_entry, first, last = _serve_front_end(send, engine, fe)
        moved = max(abs(x - y) for x, y in zip(new_entry, entry))
        entry = new_entry
        if moved < 1e-4:
            break
    return send, first, last, moved


def sim_metrics_queued(reqs: Sequence[Measured], sm: FittedServiceModel, fe: FrontEnd) -> dict:
    """sim_metrics with the front end as a queue instead of a constant."""
    t0 = min(m.start for m in reqs)
    arrivals = [(m.start - t0, m.prompt, m.output) for m in reqs]
    starts, first, last, moved = replay_with_front_end(arrivals, sm, fe)
    ttfts = [f - s for f, s in zip(first, starts)]
    out = {**metrics(starts, ttfts, last, [o for _, _, o in arrivals]), **occupancy(starts, ttfts, last)}
    return {**out, "fixed_point_residual_ms": 1e3 * moved}


def fit_front_end_to_ceiling(reqs: Sequence[Measured], sm: FittedServiceModel, frontend_s: float) -> FrontEnd:
    """The front end that caps the fit's saturating run (``reqs``: every request sent at once) at its real
    throughput, with no delay: the idle constant frontend_s split into per-request and per-token work by bisection
    on the per-token part (more of it, less throughput)."""
    real = real_metrics(reqs)["req_per_s"]
    if sim_metrics_queued(reqs, sm, FrontEnd(frontend_s, 0.0, 0.0))["req_per_s"] <= real:
        return FrontEnd(frontend_s, 0.0, 0.0)  # the engine alone is no faster than the real server: nothing to cap
    lo, hi = 0.0, frontend_s
    for _ in range(24):
        mid = (lo + hi) / 2
        got = sim_metrics_queued(reqs, sm, FrontEnd(frontend_s - mid, mid, 0.0))["req_per_s"]
        lo, hi = (mid, hi) if got > real else (lo, mid)
    tok = (lo + hi) / 2
    return FrontEnd(frontend_s - tok, tok, 0.0)


FRONT_END_FIT_KEYS = ("ttft_p50_ms", "req_per_s")


def front_end_error(runs: Sequence[Sequence[Measured]], sm: FittedServiceModel, fe: FrontEnd) -> float:
    """Sum over the runs of squared log(sim/real) of TTFT p50 and throughput."""
    err = 0.0
    for reqs in runs:
        real, sim = real_metrics(reqs), sim_metrics_queued(reqs, sm, fe)
        err += sum(math.log(sim[k] / real[k]) ** 2 for k in FRONT_END_FIT_KEYS)
    return err


def fit_front_end(
    runs: Sequence[Sequence[Measured]], sm: FittedServiceModel, frontend_s: float, steps: int = 8
) -> FrontEnd:
    """The front end that best replays the fit's own runs (front_end_error), its three parts summing to the idle
    constant frontend_s: a grid over the per-request and per-token shares (each 0 .. frontend_s, the per-token
    share on a finer scale: a request has tens of tokens), the delay the rest."""
    best: tuple[float, FrontEnd] = (math.inf, FrontEnd(0.0, 0.0, frontend_s))
    for i in range(steps + 1):
        for j in range(steps + 1):
            req, tok = frontend_s * i / steps, frontend_s * j / steps / 8
            if req + tok > frontend_s:
                continue
            fe = FrontEnd(req, tok, frontend_s - req - tok)
            err = front_end_error(runs, sm, fe)
            if err < best[0]:
                best = (err, fe)
    return best[1]


def capacity(arrivals: Sequence[tuple[float, int, int]], sm: FittedServiceModel) -> float:
    """Requests/s the model serves when every request is there at once (its saturation throughput)."""
    done = simulate([(0.0, p, o) for _, p, o in arrivals], sm)
    return len(done) / max(r.done for r in done)


# --- the discrete-step engine (step_replay) ----------------------------------------------------------------------
# Its step: FittedServiceModel's additive step plus chunk_s per prompt chunk.  Fitted on the engine core's own clock
# (queue + prefill from vLLM's spans), so it has no front-end constant; the API server's share is measured apart.
STEP_THETA = ("step_overhead_s", "per_seq_s", "per_token_s", "kv_token_s", "attn_token2_s", "chunk_s")


def engine_idle_row(source: str, prompts: Sequence[int], engine_ttfts: Sequence[float], budget: int) -> Row:
    """An idle run on the engine core's clock: its median request's ceil(P/budget) chunk steps, one sequence each.
    The median, not the mean, prompt: a 128-token prompt is one chunk, a 129-token one two."""
    p = percentile([float(x) for x in prompts], 50)
    k = n_chunks(p, budget)
    return Row(source, (k, k, p, 0.0, p * p, k), percentile(engine_ttfts, 50))


def step_tpot_row(source: str, reqs: Sequence[Measured], budget: int, model: ModelSpec = TINY_QWEN3) -> Row:
    """tpot_row with the prompt chunks in the decode windows as a column of their own (chunk_s)."""
    (n, chunks, toks, ctx, attn), y = _decode_window_means(source, reqs, budget, model)
    return Row(source, (1.0, n + chunks, toks, ctx, attn, chunks), y)


def fit_steps(rows: Sequence[Row]) -> dict[str, float]:
    """fit() over STEP_THETA."""
    x = [[v / r.y for v in r.x] for r in rows]
    return dict(zip(STEP_THETA, nnls(x, [1.0] * len(rows))))


def predict_steps(row: Row, theta: dict[str, float]) -> float:
    return sum(v * theta[k] for v, k in zip(row.x, STEP_THETA))


def step_cost(theta: dict[str, float], model: ModelSpec = TINY_QWEN3) -> StepCost:
    return StepCost(**{k: theta[k] for k in STEP_THETA}, r_dec=r_dec(model))


def step_replay_requests(reqs: Sequence[Measured], cost: StepCost, *, max_num_seqs: int, budget: int) -> list[Measured]:
    """The measured requests (their arrivals and lengths) through the discrete-step engine, as Measured."""
    t0 = min(m.start for m in reqs)
    out = step_replay(
        [(m.start - t0, m.prompt, m.output) for m in reqs], cost, max_num_seqs=max_num_seqs, budget=budget
    )
    return [Measured(m.start, m.prompt, m.output, ttft, lat) for m, (ttft, lat) in zip(reqs, out)]


def api_server_share(idle_results: Sequence[dict]) -> float:
    """The API server's own part of a TTFT at idle: the median over idle runs' requests of the server's TTFT less the
    engine core's queue + prefill (bench_result_of_spans)."""
    return percentile([t - e for r in idle_results for t, e in zip(r["ttfts"], r["engine_ttfts"])], 50)


@dataclass(frozen=True)
class ApiServerLoad:
    """The API server's part of a TTFT (the server's TTFT less the engine core's queue + prefill) as a line in the
    number of requests already in the server when the request arrives.  Why that regressor: the runs' mean shares
    (vLLM's histograms, bench/results/sim_vs_vllm_cpu.md, runs C and D) rise with concurrency at a fixed output rate
    (2.1, 3.5, 5.4, 7.3 ms with 1, 2, 4, 8 decoding) and reach 78-85 ms when 160 prompts arrive at once: each request
    in the server is a stream whose outputs the API server's one event loop detokenises and writes, and each arrival is
    a prompt it tokenises, on the same two cores as the engine."""

    base_s: float
    per_in_flight_s: float

    def share(self, in_flight: int) -> float:
        return self.base_s + self.per_in_flight_s * in_flight


def in_flight_at_arrival(reqs: Sequence[Measured]) -> list[int]:
    """For each request, how many others were in the server when it arrived (arrived before it, not yet finished)."""
    starts = sorted(m.start for m in reqs)
    ends = sorted(m.start + m.latency for m in reqs)
    return [bisect.bisect_left(starts, m.start) - bisect.bisect_right(ends, m.start) for m in reqs]


def fit_api_server_load(runs: Sequence[tuple[Sequence[Measured], Sequence[float]]]) -> ApiServerLoad:
    """Least squares, non-negative, of each request's API server share on its in-flight count, over every request
    of the given runs (each: its requests on the server's clock and their engine TTFTs, in the same order)."""
    x: list[list[float]] = []
    y: list[float] = []
    for reqs, engine in runs:
        for m, e, n in zip(reqs, engine, in_flight_at_arrival(reqs)):
            x.append([1.0, float(n)])
            y.append(m.ttft - e)
    base, per = nnls(x, y)
    return ApiServerLoad(base, per)


def with_api_server_load(sim: Sequence[Measured], load: ApiServerLoad) -> list[Measured]:
    """Engine-clock replayed requests on the server's clock: each TTFT and latency plus the API server's share at the
    replay's own in-flight count (a simulator knows its own queue, not the real one's)."""
    n = in_flight_at_arrival(sim)
    return [
        Measured(m.start, m.prompt, m.output, m.ttft + load.share(k), m.latency + load.share(k)) for m, k in zip(sim, n)
    ]


# --- how much the held-out TTFT hangs on the step time ---------------------------------------------------------------
STEP_SCALES = (0.9, 1.0, 1.1, 1.2)


def scaled_theta(theta: dict[str, float], factor: float) -> dict[str, float]:
    """Every engine coefficient times ``factor`` (a uniformly slower or faster step); the front end's constant kept."""
    return {k: v if k == "frontend_s" else v * factor for k, v in theta.items()}


def step_sensitivity(
    reqs: Sequence[Measured], theta: dict[str, float], *, max_num_seqs: int, budget: int, kv_capacity: int
) -> list[dict[str, float]]:
    """The held-out requests replayed with the step scaled by each of STEP_SCALES, beside the real TTFT p50/p95: how
    exactly the step must be known for the TTFT criteria to be met at this load."""
    real = real_metrics(reqs)
    out = []
    for f in STEP_SCALES:
        sm = service_model(scaled_theta(theta, f), max_num_seqs=max_num_seqs, budget=budget, kv_capacity=kv_capacity)
        sim = sim_metrics(reqs, sm, theta["frontend_s"])
        row = {"scale": f}
        for k in ("ttft_p50_ms", "ttft_p95_ms"):
            row[k], row[k + "_ratio"] = sim[k], sim[k] / real[k]
        out.append(row)
    return out


def elasticity(sensitivity: Sequence[dict[str, float]], key: str = "ttft_p50_ms") -> float:
    """d ln(key) / d ln(step) between the fitted step and the next slower one in ``sensitivity``."""
    base = next(r for r in sensitivity if r["scale"] == 1.0)
    slower = min((r for r in sensitivity if r["scale"] > 1.0), key=lambda r: r["scale"])
    return math.log(slower[key] / base[key]) / math.log(slower["scale"])


def tpot_by_in_flight(reqs: Sequence[Measured], groups: int = 8) -> list[dict[str, float]]:
    """A run's requests in ``groups`` equal groups by first-token time: each group's mean TPOT beside the mean number
    of requests in flight in the server at its requests' first tokens.  On a machine where the API server shares the
    engine's cores, a step that slows as requests pile up in the server shows here."""
    spans = [(m.start, m.start + m.latency) for m in reqs]
    order = sorted((m for m in reqs if m.output > 1), key=lambda m: m.start + m.ttft)
    size = max(1, math.ceil(len(order) / groups))
    out = []
    for i in range(0, len(order), size):
        g = order[i : i + size]
        flight = [sum(1 for a, b in spans if a <= m.start + m.ttft < b) for m in g]
        tpot = [(m.latency - m.ttft) / (m.output - 1) for m in g]
        out.append({"in_flight": sum(flight) / len(g), "tpot_ms": 1e3 * sum(tpot) / len(g), "requests": len(g)})
    return out


# --- where the time goes, from vLLM's own histograms ----------------------------------------------------------------
# vLLM's request-phase histograms (docs.vllm.ai/en/latest/design/metrics.html): TTFT is timed in the API server from
# the request's arrival there; queue time (WAITING) and prefill time in the engine core, from when it queued the
# request to its first scheduling and on to its first token.
SERVER_HISTOGRAMS = (
    "vllm:time_to_first_token_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:request_prefill_time_seconds",
    "vllm:request_decode_time_seconds",
    "vllm:e2e_request_latency_seconds",
)


def histogram_totals(exposition: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each SERVER_HISTOGRAMS series in a Prometheus text exposition, over its label sets."""
    out = {h: (0.0, 0.0) for h in SERVER_HISTOGRAMS}
    for line in exposition.splitlines():
        name, _, rest = line.partition("{")
        if not rest:
            name, _, rest = line.partition(" ")
        for h in SERVER_HISTOGRAMS:
            if name in (f"{h}_sum", f"{h}_count"):
                value = float(line.rsplit(" ", 1)[1])
                s, c = out[h]
                out[h] = (s + value, c) if name.endswith("_sum") else (s, c + value)
    return out


def server_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean milliseconds per request of each histogram over what happened between two scrapes, and the count."""
    out: dict[str, float] = {}
    for h in SERVER_HISTOGRAMS:
        ds, dc = after[h][0] - before[h][0], after[h][1] - before[h][1]
        out[h.split(":", 1)[1].removesuffix("_seconds") + "_mean_ms"] = 1e3 * ds / dc if dc else math.nan
    out["requests"] = after[SERVER_HISTOGRAMS[0]][1] - before[SERVER_HISTOGRAMS[0]][1]
    return out


def ttft_breakdown(client_ttft_mean_ms: float, server: dict[str, float]) -> dict[str, float]:
    """A mean TTFT split into where it was spent: the client and HTTP (client TTFT less the API server's), the API
    server and its hand-offs to and from the engine core (server TTFT less queue and prefill), the engine's waiting
    queue, and the engine's prefill up to the first token."""
    queue, prefill = server["request_queue_time_mean_ms"], server["request_prefill_time_mean_ms"]
    srv = server["time_to_first_token_mean_ms"]
    return {
        "client_ttft_mean_ms": client_ttft_mean_ms,
        "client_and_http_ms": client_ttft_mean_ms - srv,
        "api_server_ms": srv - queue - prefill,
        "engine_queue_ms": queue,
        "engine_prefill_ms": prefill,
    }


# --- the comparison -----------------------------------------------------------------------------------------------
COMPARED = ("ttft_p50_ms", "ttft_p95_ms", "req_per_s", "output_tok_per_s")


def compare(sim: dict, real: dict, keys: Sequence[str] = COMPARED, tol: float = TOLERANCE) -> list[dict]:
    """sim/real per metric and whether it is within +-tol."""
    out = []
    for k in keys:
        ratio = sim[k] / real[k] if real[k] else math.inf
        out.append({"metric": k, "sim": sim[k], "real": real[k], "ratio": ratio, "pass": abs(ratio - 1.0) <= tol})
    return out


# --- the validation trace -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceShape:
    """How an Azure excerpt is shrunk to the tiny model's 512-token context."""

    length_scale: float = 0.25
    min_prompt: int = 8
    max_prompt: int = 384
    min_output: int = 2
    max_output: int = 120


def shrink(rows: Sequence[tuple[float, int, int]], shape: TraceShape) -> list[tuple[float, int, int]]:
    def clip(v: float, lo: int, hi: int) -> int:
        return int(min(hi, max(lo, round(v))))

    return [
        (
            a,
            clip(p * shape.length_scale, shape.min_prompt, shape.max_prompt),
            clip(o * shape.length_scale, shape.min_output, shape.max_output),
        )
        for a, p, o in rows
    ]


def excerpt(rows: Sequence[tuple[float, int, int]], rate: float, duration_s: float) -> list[tuple[float, int, int]]:
    """The first rate * duration_s requests of the trace, its time axis compressed so that they span duration_s
    (the trace's own burstiness, at the chosen mean rate)."""
    n = max(2, round(rate * duration_s))
    head = list(rows[:n])
    t0 = head[0][0]
    span = head[-1][0] - t0
    k = duration_s / span if span > 0 else 1.0
    return [((a - t0) * k, p, o) for a, p, o in head]


def timed_trace_lines(rows: Sequence[tuple[float, int, int]], chunk: int = 16) -> list[str]:
    """JSON lines for `vllm bench serve --dataset-name timed_trace`: it builds each prompt from hash_ids, one block
    of `chunk` random tokens per id; ids unique across the trace so that no two prompts share a prefix."""
    out, nxt = [], 0
    for a, p, o in rows:
        k = n_chunks(p, chunk)
        out.append(
            json.dumps(
                {"timestamp": round(a, 6), "input_length": p, "output_length": o, "hash_ids": list(range(nxt, nxt + k))}
            )
        )
        nxt += k
    return out
