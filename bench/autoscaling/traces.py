"""Request traces: loaders for the Azure LLM inference CSV and Mooncake JSONL formats, rate/time
scaling, and synthetic stress traces (demand step, agent fan-out, diurnal cycle).

Every function is deterministic for a given seed.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class Request:
    """One request of a trace.  Mutable fields are filled in by the simulator."""

    __slots__ = ("arrival", "blocks", "done", "output", "prompt", "rejected", "slo", "ttft", "work")

    def __init__(self, arrival: float, prompt: int, output: int, blocks: tuple[int, ...] | None = None) -> None:
        self.arrival = arrival
        self.prompt = max(1, int(prompt))
        self.output = max(1, int(output))
        self.slo = 0.0
        self.ttft = math.inf
        self.done = math.inf
        self.rejected = False
        # ids of the prompt's 512-token prefix blocks (Mooncake's hash_ids), None when the trace has none
        self.blocks = blocks
        # prompt tokens the replica must compute: the prompt less what its prefix cache held (set when routed)
        self.work = self.prompt

    @property
    def tpot(self) -> float:
        """Mean time per output token after the first, as vLLM's benchmark computes it (0 for one token)."""
        if self.output <= 1:
            return 0.0
        return (self.done - self.arrival - self.ttft) / (self.output - 1)


@dataclass(frozen=True)
class Trace:
    name: str
    source: str
    rows: tuple[tuple[float, int, int], ...]  # (arrival s from start, prompt tokens, output tokens)
    notes: str = ""
    blocks: tuple[tuple[int, ...] | None, ...] | None = None  # per row, when the trace carries prefix blocks

    @property
    def duration(self) -> float:
        return self.rows[-1][0] if self.rows else 0.0

    def requests(self) -> list[Request]:
        if self.blocks is None:
            return [Request(a, p, o) for a, p, o in self.rows]
        return [Request(a, p, o, b) for (a, p, o), b in zip(self.rows, self.blocks)]

    def stats(self) -> dict[str, float]:
        n = len(self.rows)
        d = max(self.duration, 1e-9)
        return {
            "requests": n,
            "duration_s": round(d, 1),
            "mean_rate_rps": round(n / d, 3),
            "mean_prompt": round(sum(r[1] for r in self.rows) / max(n, 1), 1),
            "mean_output": round(sum(r[2] for r in self.rows) / max(n, 1), 1),
        }


def load_azure_csv(path: str | Path) -> list[tuple[float, int, int]]:
    """Azure LLM inference trace 2023 (`TIMESTAMP,ContextTokens,GeneratedTokens`); timestamps like
    `2023-11-16 18:17:03.9799600` (7 fractional digits: the first 26 characters are parsed)."""
    rows: list[tuple[float, int, int]] = []
    t0: datetime | None = None
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if [h.strip() for h in header[:3]] != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
            raise ValueError(f"{path}: not an Azure trace header: {header}")
        for rec in reader:
            if not rec:
                continue
            ts = datetime.strptime(rec[0].strip()[:26], "%Y-%m-%d %H:%M:%S.%f")
            if t0 is None:
                t0 = ts
            rows.append(((ts - t0).total_seconds(), int(rec[1]), int(rec[2])))
    rows.sort(key=lambda r: r[0])
    return rows


def load_mooncake_jsonl(path: str | Path) -> list[tuple[float, int, int]]:
    """Mooncake trace: JSON lines with `timestamp` (ms from start), `input_length`, `output_length`."""
    rows: list[tuple[float, int, int]] = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            rows.append((float(o["timestamp"]) / 1000.0, int(o["input_length"]), int(o["output_length"])))
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0] if rows else 0.0
    return [(a - t0, p, o) for a, p, o in rows]


def load_mooncake_blocks(path: str | Path) -> list[tuple[int, ...]]:
    """Mooncake's ``hash_ids`` (ids of 512-token prefix blocks) of every request, in ``load_mooncake_jsonl``'s order."""
    rows: list[tuple[float, tuple[int, ...]]] = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                o = json.loads(line)
                rows.append((float(o["timestamp"]), tuple(int(h) for h in o.get("hash_ids", ()))))
    rows.sort(key=lambda r: r[0])
    return [b for _, b in rows]


def load_trace(path: str | Path) -> list[tuple[float, int, int]]:
    """Load any file in either format (chosen by content, not by name)."""
    with open(path) as f:
        first = f.readline()
    if first.lstrip().startswith("{"):
        return load_mooncake_jsonl(path)
    return load_azure_csv(path)


def scale_trace(
    rows: Sequence[tuple[float, int, int]],
    *,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    jitter_s: float = 10.0,
    seed: int = 0,
) -> tuple[tuple[float, int, int], ...]:
    """Scale a trace.

    * ``time_scale`` multiplies every timestamp (0.5 plays the trace twice as fast, so the rate doubles
      and every burst is half as long).
    * ``rate_scale`` keeps the time axis and multiplies the request rate: each request is replaced by
      floor(k) copies, plus one more with probability frac(k), each copy moved by an independent
      uniform offset in [-jitter_s/2, +jitter_s/2].  Rate structure slower than ``jitter_s`` (what an
      autoscaler reacts to) is preserved; copies are not synchronised bursts.  k < 1 thins the trace.
    """
    return tuple(
        (t, p, o)
        for t, p, o, _, _ in scale_trace_with_origin(
            rows, time_scale=time_scale, rate_scale=rate_scale, jitter_s=jitter_s, seed=seed
        )
    )


def scale_trace_with_origin(
    rows: Sequence[tuple[float, int, int]],
    *,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    jitter_s: float = 10.0,
    seed: int = 0,
) -> list[tuple[float, int, int, int, int]]:
    """``scale_trace``'s rows (the same ones, in the same order), each with the index of the row it copies and
    which copy of that row it is (0, 1, ...)."""
    rng = random.Random(seed)
    out: list[tuple[float, int, int, int, int]] = []
    whole = math.floor(rate_scale)
    frac = rate_scale - whole
    for k, (a, p, o) in enumerate(rows):
        t = a * time_scale
        n = whole + (1 if rng.random() < frac else 0)
        for i in range(n):
            if rate_scale == 1.0:
                out.append((t, p, o, k, i))
            else:
                out.append((max(0.0, t + (rng.random() - 0.5) * jitter_s), p, o, k, i))
    out.sort(key=lambda r: r[0])
    return out


COPY_BLOCK_OFFSET = 10**7  # block ids of copy i are shifted by i * this: each copy is a tenant of its own


def copied_blocks(
    blocks: Sequence[tuple[int, ...]], origin: Sequence[tuple[float, int, int, int, int]]
) -> tuple[tuple[int, ...], ...]:
    """Prefix blocks of the rows of ``scale_trace_with_origin``: copy ``i`` of a request gets its blocks shifted into a
    namespace of its own, so copies share prefixes as the original requests did among themselves (the same reuse
    structure) and never with each other (a copy is another user, not the same prompt sent twice)."""
    return tuple(tuple(b + i * COPY_BLOCK_OFFSET for b in blocks[k]) for _, _, _, k, i in origin)


def _lengths_sampler(pool: Sequence[tuple[int, int]], rng: random.Random):
    def draw() -> tuple[int, int]:
        return pool[rng.randrange(len(pool))]

    return draw


def _poisson_arrivals(rate_fn, t_end: float, rate_max: float, rng: random.Random) -> Iterable[float]:
    """Non-homogeneous Poisson arrivals by thinning (Lewis-Shedler)."""
    t = 0.0
    while True:
        t += rng.expovariate(rate_max)
        if t >= t_end:
            return
        if rng.random() * rate_max <= rate_fn(t):
            yield t


def synthetic_step(
    pool: Sequence[tuple[int, int]],
    *,
    base_rps: float,
    factor: float = 10.0,
    t_before: float = 900.0,
    t_high: float = 1200.0,
    t_after: float = 900.0,
    seed: int = 1,
) -> tuple[tuple[float, int, int], ...]:
    """Poisson arrivals at ``base_rps``, then a sudden ``factor``x step for ``t_high`` s, then back."""
    rng = random.Random(seed)
    draw = _lengths_sampler(pool, rng)
    t1, t2, t_end = t_before, t_before + t_high, t_before + t_high + t_after

    def rate(t: float) -> float:
        return base_rps * factor if t1 <= t < t2 else base_rps

    return tuple((t, *draw()) for t in _poisson_arrivals(rate, t_end, base_rps * factor, rng))


def synthetic_fanout(
    pool: Sequence[tuple[int, int]],
    *,
    sessions_per_s: float,
    fanout: int = 10,
    burst_s: float = 0.5,
    duration: float = 3600.0,
    wave_period: float = 1200.0,
    wave_amp: float = 0.5,
    seed: int = 2,
) -> tuple[tuple[float, int, int], ...]:
    """Agent fan-out: user requests arrive as a Poisson process whose rate swings +-``wave_amp`` over
    ``wave_period``; each user request triggers ``fanout`` model calls within ``burst_s`` seconds
    (parallel tool/sub-agent calls), so the instantaneous load is 10x burstier than the session rate."""
    rng = random.Random(seed)
    draw = _lengths_sampler(pool, rng)

    def rate(t: float) -> float:
        return sessions_per_s * (1.0 + wave_amp * math.sin(2 * math.pi * t / wave_period))

    out: list[tuple[float, int, int]] = []
    for t in _poisson_arrivals(rate, duration, sessions_per_s * (1 + wave_amp), rng):
        for _ in range(fanout):
            out.append((t + rng.random() * burst_s, *draw()))
    out.sort(key=lambda r: r[0])
    return tuple(out)


def synthetic_diurnal(
    pool: Sequence[tuple[int, int]],
    *,
    mean_rps: float,
    peak_to_trough: float = 4.0,
    period: float = 7200.0,
    duration: float = 7200.0,
    seed: int = 3,
) -> tuple[tuple[float, int, int], ...]:
    """One compressed day: rate = mean * (1 + a*sin(...)) with (1+a)/(1-a) = ``peak_to_trough``,
    starting at the trough.  A 24 h cycle compressed to ``period`` seconds (ramps are steeper than in
    reality, which is harder for an autoscaler, not easier)."""
    rng = random.Random(seed)
    draw = _lengths_sampler(pool, rng)
    a = (peak_to_trough - 1) / (peak_to_trough + 1)

    def rate(t: float) -> float:
        return mean_rps * (1 - a * math.cos(2 * math.pi * t / period))

    return tuple((t, *draw()) for t in _poisson_arrivals(rate, duration, mean_rps * (1 + a), rng))


def synthetic_diurnal_days(
    pool: Sequence[tuple[int, int]],
    *,
    mean_rps: float,
    levels: Sequence[float],
    peak_to_trough: float = 4.0,
    period: float = 2400.0,
    seed: int = 20,
) -> tuple[tuple[float, int, int], ...]:
    """Several compressed days in a row, day ``d`` at ``levels[d]`` times ``mean_rps`` (a busier or quieter day),
    each with its own seed: the same shape, not the same requests."""
    out: list[tuple[float, int, int]] = []
    for d, level in enumerate(levels):
        day = synthetic_diurnal(
            pool,
            mean_rps=mean_rps * level,
            peak_to_trough=peak_to_trough,
            period=period,
            duration=period,
            seed=seed + d,
        )
        out.extend((t + d * period, p, o) for t, p, o in day)
    return tuple(out)


def burst_windows(
    duration: float,
    *,
    gap_s: tuple[float, float],
    length_s: tuple[float, float],
    factor: tuple[float, float],
    rng: random.Random,
) -> list[tuple[float, float, float]]:
    """(start, end, factor) of bursts: quiet gaps and burst lengths and heights drawn uniformly from the ranges."""
    out = []
    t = rng.uniform(*gap_s)
    while t < duration:
        length = rng.uniform(*length_s)
        out.append((t, min(duration, t + length), rng.uniform(*factor)))
        t += length + rng.uniform(*gap_s)
    return out


def synthetic_short_bursts(
    pool: Sequence[tuple[int, int]],
    *,
    base_rps: float,
    duration: float = 3600.0,
    gap_s: tuple[float, float] = (240.0, 600.0),
    length_s: tuple[float, float] = (60.0, 120.0),
    factor: tuple[float, float] = (4.0, 8.0),
    seed: int = 5,
) -> tuple[tuple[float, int, int], ...]:
    """Bursts shorter than a pod's cold start: Poisson arrivals at ``base_rps``, jumping to ``factor`` times that
    for ``length_s`` seconds, at random moments ``gap_s`` apart (all uniform in the given ranges)."""
    rng = random.Random(seed)
    windows = burst_windows(duration, gap_s=gap_s, length_s=length_s, factor=factor, rng=rng)
    draw = _lengths_sampler(pool, rng)

    def rate(t: float) -> float:
        for a, b, k in windows:
            if a <= t < b:
                return base_rps * k
        return base_rps

    return tuple((t, *draw()) for t in _poisson_arrivals(rate, duration, base_rps * factor[1], rng))


def synthetic_mix_shift(
    light: Sequence[tuple[int, int]],
    heavy: Sequence[tuple[int, int]],
    *,
    rps: float,
    heavy_share: float,
    t_before: float = 900.0,
    t_shift: float = 1200.0,
    t_after: float = 900.0,
    seed: int = 4,
) -> tuple[tuple[float, int, int], ...]:
    """A change of request mix at a constant request rate: Poisson arrivals at ``rps`` with lengths from
    ``light``, except that for ``t_shift`` s a ``heavy_share`` of them take lengths from ``heavy`` (a RAG feature
    or a batch of long documents going live).  The request rate says nothing; the work per request does."""
    rng = random.Random(seed)
    draw_light, draw_heavy = _lengths_sampler(light, rng), _lengths_sampler(heavy, rng)
    t1, t2 = t_before, t_before + t_shift
    out = []
    for t in _poisson_arrivals(lambda t: rps, t2 + t_after, rps, rng):
        draw = draw_heavy if t1 <= t < t2 and rng.random() < heavy_share else draw_light
        out.append((t, *draw()))
    return tuple(out)
