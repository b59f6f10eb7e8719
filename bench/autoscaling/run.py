"""Autoscaling benchmark entry point.

    PYTHONPATH=operator:. python -m bench.autoscaling.run --out bench/results/

Writes <out>/autoscaling.json and <out>/autoscaling.md.  See bench/autoscaling/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qwen_operator.api.models import QwenDeploymentSpec
from qwen_operator.autoscaling.policy import AutoscalingConfig, default_scale_down_window_s
from qwen_operator.domain.replica_rate import service_rate_prior
from qwen_operator.domain.validation import validate_spec

from .loadtest import replica_throughput, sample_pairs
from .oracle import TPOT_SLO_S, compute_oracle, meets_slo
from .policies import AibrixKpa, HpaGpuUtil, KedaQueue, KubeAI, Ours
from .routing import ROUTERS
from .service import QWEN3_8B, SERVICE_VARIANTS, ServiceModel, cold_start_for
from .sim import FixedSchedule, SimConfig, SimResult, run_sim
from .traces import (
    Trace,
    copied_blocks,
    load_mooncake_blocks,
    load_trace,
    scale_trace_with_origin,
    synthetic_diurnal,
    synthetic_diurnal_days,
    synthetic_fanout,
    synthetic_mix_shift,
    synthetic_short_bursts,
    synthetic_step,
)

TRACE_DIR = Path(os.environ.get("QWEN_TRACES", "/work/shared/traces"))
AZURE = TRACE_DIR / "AzureLLMInferenceTrace_conv.csv"
MOONCAKE = TRACE_DIR / "mooncake_synthetic_trace.jsonl"

SLO_DELAY_S = 2.0  # TTFT SLO: 2 s on top of the prompt's own prefill time on an idle replica
SLO_GOAL = 0.99
MIN_REPLICAS = 1
MAX_REPLICAS = 40  # 20 before the calibrated replica (about 30 % slower): Mooncake now needs up to ~29


@dataclass
class Context:
    """What a run is measured under: the replica model (service.SERVICE_VARIANTS), the router (routing.ROUTERS) and
    the SLO ('joint': TTFT and per-request TPOT; 'ttft': TTFT only).  The defaults are the original benchmark's
    (the roofline model, least-work routing, TTFT only), which the unit tests pin; the command line's defaults are
    the headline's: calibrated-v1, cache-aware, joint."""

    variant: str = "roofline"
    router: str = "least-work"
    slo: str = "ttft"

    @property
    def joint(self) -> bool:
        return self.slo == "joint"


CTX = Context()


def service_model() -> ServiceModel:
    return SERVICE_VARIANTS[CTX.variant]


def sim_config(**kw: Any) -> SimConfig:
    return SimConfig(router=CTX.router, **kw)


def results_stem(suite: str, ctx: Context | None = None, kind: str = "") -> str:
    """File stem of a run's results: autoscaling[_<kind>]_<suite>_<variant>_<router>."""
    c = ctx or CTX
    return "autoscaling" + (f"_{kind}" if kind else "") + f"_{suite}_{c.variant}_{c.router}"


def add_context_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--variant",
        choices=sorted(SERVICE_VARIANTS),
        default="calibrated-v1",
        help="replica service model (bench/autoscaling/service.py)",
    )
    ap.add_argument("--router", choices=ROUTERS, default="cache-aware", help="request routing (routing.py)")
    ap.add_argument(
        "--slo",
        choices=("joint", "ttft"),
        default="joint",
        help="the SLO that 'meets' and every search use: joint (TTFT and TPOT) or TTFT only",
    )


def apply_context(args: argparse.Namespace) -> str:
    """Set CTX from the parsed arguments; returns them as command-line text for the results' headers."""
    CTX.variant, CTX.router, CTX.slo = args.variant, args.router, args.slo
    return f"--variant {args.variant} --router {args.router} --slo {args.slo}"


@dataclass(frozen=True)
class TraceSpec:
    name: str
    kind: str  # azure | mooncake | step | fanout | diurnal | diurnal-days | mix-shift
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def trace_specs(quick: bool = False) -> list[TraceSpec]:
    q = 0.25 if quick else 1.0
    return [
        TraceSpec(
            "azure-conv",
            "azure",
            {"rate_scale": 15.0 * q, "time_scale": 1.0},
            "Azure LLM inference 2023, conversation; rate x15 (each request -> 15 copies, +-5 s jitter)",
        ),
        TraceSpec(
            "mooncake",
            "mooncake",
            {"rate_scale": 2.0 * q, "time_scale": 1.0},
            "Mooncake FAST'25 synthetic trace; rate x2 (each request -> 2 copies, +-5 s jitter)",
        ),
        TraceSpec(
            "step-10x",
            "step",
            {"base_rps": 15.0 * q, "factor": 10.0, "t_before": 600.0, "t_high": 900.0, "t_after": 900.0},
            "Poisson 15 req/s, then 150 req/s for 15 min, then 15 req/s (Azure conv length pairs)",
        ),
        TraceSpec(
            "agent-fanout",
            "fanout",
            {"sessions_per_s": 6.0 * q, "fanout": 10, "duration": 1800.0, "wave_period": 1200.0, "wave_amp": 0.5},
            "6 user requests/s (+-50 % over 20 min), each fanning out to 10 model calls within 0.5 s "
            "(Azure conv length pairs)",
        ),
        TraceSpec(
            "diurnal",
            "diurnal",
            {"mean_rps": 60.0 * q, "peak_to_trough": 4.0, "period": 2400.0, "duration": 2400.0},
            "a day compressed into 40 min: 24 -> 96 -> 24 req/s (Azure conv length pairs)",
        ),
        TraceSpec(
            "short-bursts",
            "bursts",
            {
                "base_rps": 8.0 * q,
                "duration": 3600.0,
                "gap_s": [240.0, 600.0],
                "length_s": [60.0, 120.0],
                "factor": [4.0, 8.0],
                "seed": 5,
            },
            "Poisson 8 req/s with bursts shorter than a cold start: 4-8x for 60-120 s, every 4-10 min at random "
            "(Azure conv length pairs)",
        ),
        TraceSpec(
            "mix-shift",
            "mix-shift",
            {"rps": 40.0 * q, "heavy_share": 0.1, "t_before": 900.0, "t_shift": 1200.0, "t_after": 900.0},
            "Poisson 40 req/s throughout (Azure conv length pairs); for 20 min in the middle, 10 % of the "
            "requests have Mooncake's lengths (15k-token prompts): about 3x the work at the same request "
            "rate",
        ),
    ]


def heldout_specs() -> list[TraceSpec]:
    """Variants nothing in the policy was looked at against (other rates, speeds, shapes and seeds): a check that
    the main results are not an artefact of the five traces above."""
    return [
        TraceSpec(
            "azure-conv-x8-fast",
            "azure",
            {"rate_scale": 8.0, "time_scale": 0.5, "seed": 31},
            "Azure conversation played twice as fast (bursts half as long), rate x8: about 88 req/s",
        ),
        TraceSpec(
            "azure-conv-x25",
            "azure",
            {"rate_scale": 25.0, "time_scale": 1.0, "seed": 32},
            "Azure conversation, rate x25: a fleet about twice the main run's",
        ),
        TraceSpec(
            "mooncake-x3", "mooncake", {"rate_scale": 3.0, "time_scale": 1.0, "seed": 33}, "Mooncake synthetic, rate x3"
        ),
        TraceSpec(
            "step-3x",
            "step",
            {"base_rps": 20.0, "factor": 3.0, "t_before": 600.0, "t_high": 900.0, "t_after": 900.0, "seed": 34},
            "Poisson 20 req/s, then 60 req/s for 15 min, then 20 req/s",
        ),
        TraceSpec(
            "agent-fanout-20",
            "fanout",
            {
                "sessions_per_s": 3.0,
                "fanout": 20,
                "duration": 1800.0,
                "wave_period": 600.0,
                "wave_amp": 0.6,
                "seed": 35,
            },
            "3 user requests/s (+-60 % over 10 min), each fanning out to 20 model calls within 0.5 s",
        ),
        TraceSpec(
            "diurnal-2x-steep",
            "diurnal",
            {"mean_rps": 45.0, "peak_to_trough": 6.0, "period": 1200.0, "duration": 2400.0, "seed": 36},
            "two compressed days of 20 min each: 13 -> 77 -> 13 req/s",
        ),
        TraceSpec(
            "short-bursts-b",
            "bursts",
            {
                "base_rps": 10.0,
                "duration": 3600.0,
                "gap_s": [180.0, 480.0],
                "length_s": [60.0, 120.0],
                "factor": [4.0, 8.0],
                "seed": 38,
            },
            "Poisson 10 req/s with 4-8x bursts of 60-120 s every 3-8 min at random (its own seed)",
        ),
        TraceSpec(
            "mix-shift-20pct",
            "mix-shift",
            {"rps": 30.0, "heavy_share": 0.2, "t_before": 600.0, "t_shift": 900.0, "t_after": 900.0, "seed": 37},
            "Poisson 30 req/s; for 15 min, 20 % of the requests have Mooncake's lengths",
        ),
    ]


SUITES = {"main": trace_specs, "heldout": lambda quick=False: heldout_specs()}

_TRACE_CACHE: dict[str, Trace] = {}


Rows = tuple[tuple[float, int, int], ...]
LengthPool = list[tuple[int, int]]


def _replayed_trace(spec: TraceSpec) -> tuple[Rows, tuple[tuple[int, ...] | None, ...] | None, str]:
    """A recorded trace (Azure or Mooncake) rescaled in time and rate: its rows, prefix blocks (Mooncake only)
    and source."""
    p = spec.params
    path = AZURE if spec.kind == "azure" else MOONCAKE
    origin = scale_trace_with_origin(
        load_trace(path),
        time_scale=p.get("time_scale", 1.0),
        rate_scale=p.get("rate_scale", 1.0),
        seed=int(p.get("seed", 0)),
    )
    rows = tuple((t, pp, o) for t, pp, o, _, _ in origin)
    blocks = copied_blocks(load_mooncake_blocks(path), origin) if spec.kind == "mooncake" else None
    return rows, blocks, str(path)


def _step_rows(pool: LengthPool, p: dict[str, Any]) -> Rows:
    return synthetic_step(
        pool,
        base_rps=p["base_rps"],
        factor=p["factor"],
        t_before=p["t_before"],
        t_high=p["t_high"],
        t_after=p["t_after"],
        seed=int(p.get("seed", 1)),
    )


def _fanout_rows(pool: LengthPool, p: dict[str, Any]) -> Rows:
    return synthetic_fanout(
        pool,
        sessions_per_s=p["sessions_per_s"],
        fanout=int(p["fanout"]),
        duration=p["duration"],
        wave_period=p["wave_period"],
        wave_amp=p["wave_amp"],
        seed=int(p.get("seed", 2)),
    )


def _diurnal_days_rows(pool: LengthPool, p: dict[str, Any]) -> Rows:
    return synthetic_diurnal_days(
        pool,
        mean_rps=p["mean_rps"],
        levels=p["levels"],
        peak_to_trough=p["peak_to_trough"],
        period=p["period"],
        seed=int(p.get("seed", 20)),
    )


def _mix_shift_rows(pool: LengthPool, p: dict[str, Any]) -> Rows:
    heavy = [(pp, o) for _, pp, o in load_trace(MOONCAKE)]
    return synthetic_mix_shift(
        pool,
        heavy,
        rps=p["rps"],
        heavy_share=p["heavy_share"],
        t_before=p["t_before"],
        t_shift=p["t_shift"],
        t_after=p["t_after"],
        seed=int(p.get("seed", 4)),
    )


def _bursts_rows(pool: LengthPool, p: dict[str, Any]) -> Rows:
    return synthetic_short_bursts(
        pool,
        base_rps=p["base_rps"],
        duration=p["duration"],
        gap_s=tuple(p["gap_s"]),
        length_s=tuple(p["length_s"]),
        factor=tuple(p["factor"]),
        seed=int(p.get("seed", 5)),
    )


def _diurnal_rows(pool: LengthPool, p: dict[str, Any]) -> Rows:
    return synthetic_diurnal(
        pool,
        mean_rps=p["mean_rps"],
        peak_to_trough=p["peak_to_trough"],
        period=p["period"],
        duration=p["duration"],
        seed=int(p.get("seed", 3)),
    )


# Synthetic trace kinds: each draws its requests' (prompt, output) lengths from the Azure conversation trace.
_SYNTHETIC_ROWS: dict[str, Callable[[LengthPool, dict[str, Any]], Rows]] = {
    "step": _step_rows,
    "fanout": _fanout_rows,
    "diurnal-days": _diurnal_days_rows,
    "mix-shift": _mix_shift_rows,
    "bursts": _bursts_rows,
    "diurnal": _diurnal_rows,
}


def _synthetic_trace(spec: TraceSpec) -> tuple[Rows, str]:
    """A synthetic trace's rows and source."""
    pool = [(pp, o) for _, pp, o in load_trace(AZURE)]
    make_rows = _SYNTHETIC_ROWS.get(spec.kind)
    if make_rows is None:
        raise ValueError(spec.kind)
    rows = make_rows(pool, spec.params)
    if spec.kind == "mix-shift":
        return rows, f"synthetic ({AZURE.name} and {MOONCAKE.name} length pairs)"
    return rows, f"synthetic ({AZURE.name} length pairs)"


def build_trace(spec: TraceSpec) -> Trace:
    if spec.name in _TRACE_CACHE:
        return _TRACE_CACHE[spec.name]
    blocks = None
    if spec.kind in ("azure", "mooncake"):
        rows, blocks, src = _replayed_trace(spec)
    else:
        rows, src = _synthetic_trace(spec)
    tr = Trace(spec.name, src, tuple(rows), spec.description, blocks=blocks)
    _TRACE_CACHE[spec.name] = tr
    return tr


_ISO: dict[tuple[str, int], float] = {}


def fresh_requests(trace: Trace, sm: ServiceModel):
    reqs = trace.requests()
    for r in reqs:
        key = (sm.variant, r.prompt)
        iso = _ISO.get(key)
        if iso is None:
            iso = _ISO[key] = sm.isolated_ttft(r.prompt)
        r.slo = SLO_DELAY_S + iso
    return reqs


# The benchmark's replica as a spec: what the operator validates, and estimates a service rate for
# (domain/replica_rate.py; handlers/autoscaler.py policy_config does the same with the user's spec).
BENCH_SPEC: dict[str, Any] = {
    "model": {"name": "Qwen/Qwen3-8B"},
    "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
    "serving": {"maxNumSeqs": 256, "maxNumBatchedTokens": 8192},
    "autoscaling": {"enabled": True},
}


def estimated_rate_model() -> Callable[[float, float, float], float]:
    """The operator's estimate of the service rate at a mix, for the benchmark's replica (autoscaling.estimateServiceRate,
    on by default where the estimate exists, as it does for this spec)."""
    report = validate_spec(QwenDeploymentSpec.model_validate(BENCH_SPEC))
    assert report.spec is not None and not report.errors, report.errors
    prior = service_rate_prior(report.spec, report.arch, report.gpu, report.fit)
    if prior.costs is None:
        raise ValueError(prior.message)
    return prior.costs.saturation_rate


def ours_config(**over: Any) -> AutoscalingConfig:
    """The operator's default policy for the benchmark's fleet, with ``over`` on top; as the operator does
    (handlers/autoscaler.py policy_config), the scale-down window left unset follows the seasonal forecast and the warm
    pool, and the service-rate prior is the operator's estimate unless ``over`` gives a rate (serviceRatePerReplica)
    or a ``prior_rate_model`` (None: estimateServiceRate false)."""
    base: dict[str, Any] = dict(
        min_replicas=MIN_REPLICAS,
        max_replicas=MAX_REPLICAS,
        max_num_seqs=256,
        cold_start_s=round(cold_start_for(QWEN3_8B, "baked").total_s),
        scale_down_stabilization_s=default_scale_down_window_s(
            over.get("seasonal_period_s"), over.get("warm_pool", AutoscalingConfig.warm_pool)
        ),
        prior_rate_model=None if over.get("prior_service_rate") is not None else estimated_rate_model(),
    )
    base.update(over)
    return AutoscalingConfig(**base)


def described_config(config: AutoscalingConfig) -> dict[str, Any]:
    """The config as JSON: the prior-rate model (a function) by the spec it estimates for."""
    out = asdict(config)
    if out.get("prior_rate_model") is not None:
        out["prior_rate_model"] = f"the operator's estimate for {json.dumps(BENCH_SPEC, sort_keys=True)}"
    return out


POLICIES: dict[str, tuple[Callable[[], Any] | None, str]] = {
    "ours": (lambda: Ours(ours_config()), "baked"),
    "ours-no-warm-pool": (lambda: Ours(ours_config(warm_pool=0), name="ours-no-warm-pool"), "baked"),
    # the warm pool sized by the recent shortfalls of cold starts (policy.py: burst headroom)
    "ours-burst": (lambda: Ours(ours_config(burst_headroom_quantile=0.9), name="ours-burst"), "baked"),
    "ours-unbaked": (
        lambda: Ours(ours_config(cold_start_s=round(cold_start_for(QWEN3_8B, "unbaked").total_s)), name="ours-unbaked"),
        "unbaked",
    ),
    "ours-unbaked-a10g-penalty": (
        lambda: Ours(
            ours_config(cold_start_s=round(cold_start_for(QWEN3_8B, "unbaked-a10g").total_s)),
            name="ours-unbaked-a10g-penalty",
        ),
        "unbaked-a10g",
    ),
    # ours given a load-tested service rate as its prior (built per trace in job_policy)
    "ours-load-tested": (None, "baked"),
    # ours without the service-rate estimate (estimateServiceRate false): the policy learns the rate at the first
    # saturation, the default until the estimate became one
    "ours-no-estimate": (lambda: Ours(ours_config(prior_rate_model=None), name="ours-no-estimate"), "baked"),
    "hpa-gpu-util": (lambda: HpaGpuUtil(MIN_REPLICAS, MAX_REPLICAS), "baked"),
    "keda-prodstack": (lambda: KedaQueue(MIN_REPLICAS, MAX_REPLICAS), "baked"),
    "aibrix-kpa": (lambda: AibrixKpa(MIN_REPLICAS, MAX_REPLICAS, target=5.0), "baked"),
    "kubeai": (lambda: KubeAI(MIN_REPLICAS, MAX_REPLICAS), "baked"),
}
ANCHORS = ("hpa-gpu-util", "keda-prodstack", "aibrix-kpa", "kubeai")
# Reference rows, not policies: the oracle's schedule replayed through the simulator.
REFERENCE_SCHEDULES = ("oracle-sizes-on-time", "oracle-sizes-ahead")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo = math.floor(k)
    hi = min(len(xs) - 1, lo + 1)
    a, b = xs[lo], xs[hi]
    if math.isinf(a) or math.isinf(b):
        return math.inf if (k - lo > 0 and math.isinf(b)) or math.isinf(a) else a
    return a + (b - a) * (k - lo)


def summarize(requests, gpu_seconds: float, events: int) -> dict[str, Any]:
    """Latency and SLO shares of the served requests.  ``within_slo`` is the share under the run's SLO (CTX.slo);
    both the TTFT-only and the joint share are always reported beside it."""
    served = [r for r in requests if not r.rejected]
    n = len(served)
    tt = sorted(r.ttft for r in served)
    tp = sorted(r.tpot for r in served if r.output > 1)
    ok_ttft = sum(1 for r in served if meets_slo(r, False)) / n if n else float("nan")
    ok_joint = sum(1 for r in served if meets_slo(r, True)) / n if n else float("nan")
    prompt = sum(r.prompt for r in served)
    return {
        "requests": len(requests),
        "rejected": len(requests) - n,
        "ttft_p50_s": pct(tt, 0.50),
        "ttft_p95_s": pct(tt, 0.95),
        "ttft_p99_s": pct(tt, 0.99),
        "tpot_p50_s": pct(tp, 0.50),
        "tpot_p99_s": pct(tp, 0.99),
        "within_slo": ok_joint if CTX.joint else ok_ttft,
        "within_ttft_slo": ok_ttft,
        "within_joint_slo": ok_joint,
        "prefix_hit_share": (prompt - sum(r.work for r in served)) / prompt if prompt else 0.0,
        "gpu_hours": gpu_seconds / 3600.0,
        "scaling_events": events,
    }


def series(res: SimResult, interval_s: float = 60.0) -> dict[str, list[float]]:
    """Per minute: GPUs held (pods alive at the minute's middle) and the TTFT p99 of the requests arriving in it."""
    n = max(1, math.ceil(res.horizon / interval_s))
    held = [sum(1 for a, b in res.pod_spans if a <= (i + 0.5) * interval_s < b) for i in range(n)]
    by_min: list[list[float]] = [[] for _ in range(n)]
    for r in res.requests:
        if not r.rejected:
            by_min[min(n - 1, int(r.arrival // interval_s))].append(r.ttft)
    ttft = [pct(sorted(x), 0.99) if x else float("nan") for x in by_min]
    return {"replicas": held, "ttft_p99_s": ttft}


def initial_replicas(counts: list[int]) -> int:
    """Every policy starts with the same warm fleet: the oracle's largest count over the first 10 min,
    plus one, so that no policy pays for a cold start the trace's opening would otherwise force."""
    return max(MIN_REPLICAS, (max(counts[:10]) + 1) if counts else 1)


def job_oracle(spec: TraceSpec) -> dict[str, Any]:
    sm = service_model()
    tr = build_trace(spec)
    t0 = time.time()
    reqs = fresh_requests(tr, sm)
    orc = compute_oracle(reqs, sm, goal=SLO_GOAL, interval_s=60.0, router=CTX.router, joint=CTX.joint)
    out = summarize(orc.requests, orc.gpu_seconds, sum(1 for a, b in zip(orc.counts, orc.counts[1:]) if a != b))
    out.update({"counts": orc.counts, "trials": orc.trials, "wall_s": round(time.time() - t0, 1)})
    return out


PolicyEntry = tuple[Callable[[], Any] | None, str]  # (factory, cold-start scenario), as in POLICIES


def job_policy(
    spec: TraceSpec, pname: str, n0: int, oracle_counts: list[int] | None, entry: PolicyEntry | None = None
) -> dict[str, Any]:
    """One policy (or reference schedule) on one trace.  ``entry`` runs a policy that is not in POLICIES under the
    name ``pname`` (the studies' settings), so that nothing registers itself in the module's table."""
    sm = service_model()
    tr = build_trace(spec)
    t0 = time.time()
    reqs = fresh_requests(tr, sm)
    if pname == "oracle-replay":
        assert oracle_counts is not None
        pol: Any = FixedSchedule("oracle-replay", 60.0, oracle_counts)
        cold = 0.0
        cfg = sim_config(cold_start_s=0.0, cold_start_jitter=0.0, min_replicas=1, max_replicas=64, initial_replicas=n0)
    elif pname in REFERENCE_SCHEDULES:
        # The oracle's sizes, paying the baked cold start: asked for when needed (what perfect knowledge of the
        # current need buys a reactive policy) or one cold start ahead (a perfect forecast).
        assert oracle_counts is not None
        cold = cold_start_for(QWEN3_8B, "baked").total_s
        pol = FixedSchedule(pname, 60.0, oracle_counts, lead_s=cold if pname == "oracle-sizes-ahead" else 0.0)
        cfg = sim_config(cold_start_s=cold, min_replicas=1, max_replicas=64, initial_replicas=n0)
    else:
        factory, scenario = entry if entry is not None else POLICIES[pname]
        if factory is None:  # ours-load-tested: the prior comes from a load test with the trace's first 10 min
            prior = replica_throughput(sample_pairs(tr.rows), sm)
            pol = Ours(ours_config(prior_service_rate=prior), name=pname)
        else:
            pol = factory()
        cold = cold_start_for(QWEN3_8B, scenario).total_s
        cfg = sim_config(cold_start_s=cold, min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS, initial_replicas=n0)
    res = run_sim(reqs, pol, sm, cfg)
    out = summarize(res.requests, res.gpu_seconds, res.scaling_events)
    if isinstance(pol, Ours) and pol.config.prior_service_rate is not None:
        out["prior_service_rate"] = round(pol.config.prior_service_rate, 3)
    ready = [x[2] for x in res.timeline]
    out.update(
        {
            "cold_start_s": round(cold, 1),
            "max_desired": max((x[1] for x in res.timeline), default=n0),
            "mean_ready": sum(ready) / len(ready) if ready else float("nan"),
            "reasons": res.reasons,
            "series": series(res),
            "wall_s": round(time.time() - t0, 1),
        }
    )
    return out


STEP_BOUND = "causal-step-bound"


def step_bound_counts(counts: list[int], t_step: float, cold_s: float, n: int, interval_s: float = 60.0) -> list[int]:
    """The schedule of the causal bound for an unannounced step at ``t_step``: ``n`` replicas until the first
    replica asked for at the step is Ready (``t_step + cold_s``), the oracle's sizes from the interval in which
    it becomes Ready (that interval gets the larger of the two: the bound stays optimistic)."""
    out = []
    for i, c in enumerate(counts):
        if (i + 1) * interval_s <= t_step + cold_s:
            out.append(n)
        elif i * interval_s < t_step + cold_s:
            out.append(max(n, c))
        else:
            out.append(c)
    return out


def job_step_bound(spec: TraceSpec, oracle_counts: list[int]) -> dict[str, Any]:
    """A lower bound for any causal policy on a step trace (computed, not assumed).  Nothing before the step
    announces it, so until one cold start after it only the fleet held before the step serves; and since the
    step could come at any moment, a policy that meets the SLO must hold that fleet all along the base load.
    The bound replays, with zero cold start and the oracle's hindsight sizes after that first cold start, the
    smallest pre-step fleet ``n`` for which the whole trace still has >= the goal within the SLO."""
    sm = service_model()
    tr = build_trace(spec)
    cold = cold_start_for(QWEN3_8B, "baked").total_s
    t_step = float(spec.params["t_before"])
    t0 = time.time()
    best: dict[str, Any] | None = None
    for n in range(max(MIN_REPLICAS, min(oracle_counts[: int(t_step // 60)] or [1])), MAX_REPLICAS + 1):
        sched = step_bound_counts(oracle_counts, t_step, cold, n)
        pol = FixedSchedule(STEP_BOUND, 60.0, sched)
        cfg = sim_config(cold_start_s=0.0, cold_start_jitter=0.0, min_replicas=1, max_replicas=64, initial_replicas=n)
        res = run_sim(fresh_requests(tr, sm), pol, sm, cfg)
        best = summarize(res.requests, res.gpu_seconds, res.scaling_events)
        best.update(
            {
                "cold_start_s": 0.0,
                "max_desired": max(sched),
                "fleet_before_step": n,
                "step_time_s": t_step,
                "cold_start_assumed_s": round(cold, 1),
            }
        )
        if best["within_slo"] >= SLO_GOAL:
            break
    assert best is not None
    best["wall_s"] = round(time.time() - t0, 1)
    return best


REACTIVE_BOUND = "oracle-sizes-on-time+margin"
MARGIN_ADD = tuple(range(0, 9))
MARGIN_MUL = (1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0)


def margin_counts(counts: list[int], add: int = 0, mul: float = 1.0) -> list[int]:
    """The oracle's sizes with a constant safety margin: ``ceil(mul * c) + add`` replicas for a need of ``c``."""
    return [math.ceil(mul * c - 1e-9) + add for c in counts]


def job_reactive_bound(
    spec: TraceSpec, oracle_counts: list[int], n0: int, cold_s: float | None = None
) -> dict[str, Any]:
    """What a reactive policy with a constant safety margin can reach at best (computed, not assumed).  It knows
    each minute's exact need at that minute (no causal policy knows more about the present), asks for it with a
    margin, and pays the baked cold start.  Two margin shapes are searched, each from the smallest up until the
    goal is met: ``add`` replicas on top, or ``mul`` times the need; the cheaper of the two is reported, with the
    margin chosen in hindsight.  A policy whose margin varies with time could do better, so this is not a bound
    on every causal policy: it says what headroom the cold start forces when the present is known exactly.
    ``cold_s``: the cold start to pay (default: the baked one)."""
    sm = service_model()
    tr = build_trace(spec)
    cold = cold_start_for(QWEN3_8B, "baked").total_s if cold_s is None else cold_s
    t0 = time.time()
    best: dict[str, Any] | None = None
    tried = 0
    for shape, values in (("add", MARGIN_ADD), ("mul", MARGIN_MUL)):
        for v in values:
            sched = (
                margin_counts(oracle_counts, add=int(v))
                if shape == "add"
                else margin_counts(oracle_counts, mul=float(v))
            )
            res = run_sim(
                fresh_requests(tr, sm),
                FixedSchedule(REACTIVE_BOUND, 60.0, sched),
                sm,
                sim_config(cold_start_s=cold, min_replicas=1, max_replicas=64, initial_replicas=max(n0, sched[0])),
            )
            tried += 1
            out = summarize(res.requests, res.gpu_seconds, res.scaling_events)
            if out["within_slo"] >= SLO_GOAL:
                out.update({"cold_start_s": round(cold, 1), "max_desired": max(sched), "margin": {shape: v}})
                if best is None or out["gpu_hours"] < best["gpu_hours"]:
                    best = out
                break
    if best is None:  # no margin tried meets the goal: report the largest one's result
        best = out
        best.update({"cold_start_s": round(cold, 1), "max_desired": max(sched), "margin": {"mul": MARGIN_MUL[-1]}})
    best.update({"runs": tried, "wall_s": round(time.time() - t0, 1)})
    return best


def _run_job(args: tuple) -> tuple[str, str, dict[str, Any]]:
    kind = args[0]
    if kind == "oracle":
        spec = args[1]
        return spec.name, "oracle", job_oracle(spec)
    if kind == "step-bound":
        _, spec, counts = args
        return spec.name, STEP_BOUND, job_step_bound(spec, counts)
    if kind == "reactive-bound":
        _, spec, counts, n0 = args
        return spec.name, REACTIVE_BOUND, job_reactive_bound(spec, counts, n0)
    _, spec, pname, n0, counts = args
    return spec.name, pname, job_policy(spec, pname, n0, counts)


def demand_per_minute(tr: Trace, interval_s: float = 60.0) -> list[float]:
    """Arrivals per second in each minute of the trace."""
    n = max(1, math.ceil((tr.duration + 1e-9) / interval_s))
    counts = [0] * n
    for a, _, _ in tr.rows:
        counts[min(n - 1, int(a // interval_s))] += 1
    return [c / interval_s for c in counts]


def git_commit(root: Path) -> str | None:
    """HEAD, with "+modified" when the code a run imports (the Python files of operator/ and bench/autoscaling/)
    differs from it: results made on an uncommitted change must not name a commit that lacks it."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if out.returncode != 0 or not out.stdout.strip():
            return None
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(glob)operator/**/*.py"]
            + [":(glob)bench/autoscaling/*.py"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("+modified" if changed.stdout.strip() else "")
    except Exception:
        return None


def study_meta(command: str, t0: float) -> dict[str, Any]:
    """The header of a study's results (sensitivity, prior_error): its command, date, machine, commit and wall time."""
    return {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "git_commit": git_commit(Path(__file__).resolve().parents[2]),
        "wall_s": round(time.time() - t0, 1),
    }


def write_study(out: Path, stem: str, doc: dict[str, Any], md: str) -> None:
    """A study's results as <stem>.json and <stem>.md under ``out``; the table also to stdout."""
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / f"{stem}.md").write_text(md)
    print(md)


def fmt(x: float | str, nd: int = 2) -> str:
    if isinstance(x, str):  # a non-finite number read back from the JSON ("inf")
        return x
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.{nd}f}"


def _md_header(doc: dict[str, Any]) -> list[str]:
    """The report's title and the run's settings: command, machine, replica model, SLO."""
    m = doc["machine"]
    p = doc["params"]
    suite = p.get("suite", "main")
    return [
        "# Autoscaling benchmark results" + ("" if suite == "main" else f" ({suite} traces)") + "\n",
        f"- command: `{doc['command']}`",
        f"- machine: {m['platform']}, {m['cpu_count']} CPUs; Python {m['python']}; git commit: {doc['git_commit'] or 'none'}",
        f"- wall time: {doc['wall_s']:.0f} s; jobs: {doc['params']['jobs']}",
        f"- service model variant: **{p.get('variant', 'roofline')}**; router: **{p.get('router', 'least-work')}**; "
        f"SLO judged: **{p.get('slo_mode', 'ttft')}**",
        f"- service model: {p['service_model']['model']} on {p['service_model']['gpu']}, "
        f"max_num_seqs {p['service_model']['max_num_seqs']}, KV {p['service_model']['kv_capacity_tokens']} tokens; "
        f"cold start baked {p['cold_start_s']['baked']:.1f} s, unbaked {p['cold_start_s']['unbaked']:.1f} s, "
        f"unbaked with the A10G compile penalty {p['cold_start_s']['unbaked-a10g']:.1f} s",
        f"- SLO: TTFT <= {SLO_DELAY_S:.0f} s + the prompt's prefill time on an idle replica (TTFT-only); joint: "
        f"that and the request's mean time per output token <= {TPOT_SLO_S * 1e3:.0f} ms; goal {SLO_GOAL:.0%} "
        f"of requests; 'meets SLO' and every search (oracle, bounds) use the SLO judged; replicas in "
        f"[{MIN_REPLICAS}, {MAX_REPLICAS}]; Prometheus scrape 15 s",
    ]


def _md_legend() -> list[str]:
    """What the 'vs oracle' and 'beats anchors' columns and the reference rows mean."""
    return [
        "- 'vs oracle' = GPU-hours / oracle GPU-hours (oracle: fewest replicas per 60 s meeting the goal, "
        "future known, zero cold start). 'beats anchors' = fewer GPU-hours than every anchor that meets the SLO.",
        "- reference rows: 'oracle-replay' replays the oracle's schedule with zero cold start (a check of the "
        "oracle); 'oracle-sizes-on-time' asks for the oracle's size of each minute at that minute and pays the "
        "baked cold start (what perfect knowledge of the current need buys any reactive policy); "
        "'oracle-sizes-ahead' asks one cold start ahead and keeps a replica until the oracle drops it (a perfect forecast); "
        f"'{STEP_BOUND}' (step traces) is a lower bound for any causal policy: the smallest fleet held from the "
        "start until one baked cold start after the unannounced step (nothing before it can announce it) for which "
        "the whole trace still meets the goal, with zero cold start and the oracle's sizes afterwards; "
        f"'{REACTIVE_BOUND}' asks for each minute's exact need at that minute plus the cheapest constant margin "
        f"(+{MARGIN_ADD[0]}..{MARGIN_ADD[-1]} replicas, or x{MARGIN_MUL[0]}..{MARGIN_MUL[-1]}, chosen in hindsight) "
        "that meets the goal while paying the baked cold start: what a reactive policy with a constant margin "
        "reaches at best when it knows the present exactly.\n",
    ]


def _md_results_table(results: dict[str, Any]) -> list[str]:
    """One row per policy, reference schedule and bound."""
    lines = [
        "| policy | cold start s | TTFT p50 s | p95 s | p99 s | TPOT p99 ms | within TTFT-only SLO | within joint SLO "
        "| meets SLO | GPU-h | vs oracle | scale events | max replicas | prefix hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---:|",
    ]
    for pname, r in results.items():
        lines.append(
            f"| {pname} | {fmt(r.get('cold_start_s', 0.0), 1)} | {fmt(r['ttft_p50_s'])} | {fmt(r['ttft_p95_s'])} | "
            f"{fmt(r['ttft_p99_s'])} | {fmt(1e3 * r.get('tpot_p99_s', float('nan')), 0)} | "
            f"{100 * r.get('within_ttft_slo', r['within_slo']):.2f}% | {100 * r.get('within_joint_slo', float('nan')):.2f}% | "
            f"{'yes' if r['meets_slo'] else 'no'} | {fmt(r['gpu_hours'])} | {fmt(r['vs_oracle'])} | {r['scaling_events']} | "
            f"{r.get('max_desired', max(r.get('counts', [0])))} | {100 * r.get('prefix_hit_share', 0.0):.0f}% |"
        )
    return lines


def _md_bound_notes(results: dict[str, Any]) -> list[str]:
    """What the causal step bound and the reactive margin bound say, where the trace has them."""
    lines: list[str] = []
    sb = results.get(STEP_BOUND)
    if sb:
        lines.append(
            f"\n{STEP_BOUND}: no causal policy can meet the SLO here with fewer than {sb['fleet_before_step']} "
            f"replicas held before the step at t={sb['step_time_s']:.0f} s (the first {sb['cold_start_assumed_s']:.0f} s "
            f"after it are served by that fleet alone), i.e. >= {fmt(sb['gpu_hours'])} GPU-h = "
            f"{fmt(sb['vs_oracle'])}x the oracle even with hindsight and zero cold start afterwards."
        )
    rb = results.get(REACTIVE_BOUND)
    if rb and rb["meets_slo"]:
        ((shape, mv),) = rb["margin"].items()
        margin = (f"+{mv} replica" + ("s" if mv != 1 else "")) if shape == "add" else f"x{mv} the need"
        lines.append(
            f"\n{REACTIVE_BOUND}: knowing each minute's need exactly at that minute, the cheapest constant "
            f"margin that meets the SLO with the {rb['cold_start_s']:.0f} s cold start is {margin}: "
            f"{fmt(rb['gpu_hours'])} GPU-h = {fmt(rb['vs_oracle'])}x the oracle."
        )
    return lines


def _md_cost_goal(c: dict[str, Any]) -> str:
    """The cost goal's rule as applied to this trace, and whether ours met it."""
    if not c:
        return ""
    met = {True: "met", False: "missed", None: "not judged (the SLO is missed)"}[c["met"]]
    if c["bound_row"] is None:
        return f"cost goal (<= {COST_GOAL_X_ORACLE}x the oracle; no bound row in this run): {met}"
    return (
        f"cost goal (<= {fmt(c['allowed_vs_oracle'])}x the oracle: the larger of {COST_GOAL_X_ORACLE}x and "
        f"{COST_GOAL_X_BOUND}x {c['bound_row']}'s {fmt(c['bound_vs_oracle'])}x; ours is {fmt(c['vs_bound'])}x "
        f"that row): {met}"
    )


def _md_verdict(v: dict[str, Any], params: dict[str, Any]) -> str:
    """Ours against the SLO, the oracle and the anchors that meet the SLO."""
    cost = _md_cost_goal(v.get("ours_cost_goal", {}))
    return (
        f"\nours: meets SLO {v['ours_meets_slo']}, {fmt(v['ours_vs_oracle'])}x oracle GPU-h "
        f"(goal <= 1.25x: {v['ours_within_1_25x_oracle']}{'; ' + cost if cost else ''}), fewer GPU-h than every "
        "anchor meeting the SLO: "
        f"{v['ours_beats_anchors_meeting_slo']} (anchors meeting SLO: {', '.join(v['anchors_meeting_slo']) or 'none'}). "
        f"The warm pool of {params['ours_config']['warm_pool']} alone is "
        f"{fmt(v['warm_pool_share_of_oracle'])}x the oracle's GPU-h here.\n"
    )


def _md_trace_section(tname: str, tr: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """One trace: its description and stats, the results table, the bounds' notes and the verdict."""
    st = tr["stats"]
    return [
        f"## {tname}\n",
        f"{tr['description']}. {st['requests']} requests over {st['duration_s']:.0f} s "
        f"({st['mean_rate_rps']:.1f} req/s; prompt {st['mean_prompt']:.0f}, output {st['mean_output']:.0f} tokens mean); "
        f"scaling: {json.dumps(tr['params'])}.\n",
        *_md_results_table(tr["results"]),
        *_md_bound_notes(tr["results"]),
        _md_verdict(tr["verdict"], params),
    ]


def render_md(doc: dict[str, Any]) -> str:
    L: list[str] = [*_md_header(doc), *_md_legend()]
    for tname, tr in doc["traces"].items():
        L.extend(_md_trace_section(tname, tr, doc["params"]))
    return "\n".join(L) + "\n"


# The anchors' settings as the benchmark runs them (policies.py), recorded beside the results.
ANCHOR_PARAMS: dict[str, dict[str, Any]] = {
    "hpa-gpu-util": {"target_util": 0.70, "tolerance": 0.1, "down_stabilization_s": 300, "up": "max(+4,+100%)/15s"},
    "keda-prodstack": {
        "metric": "sum(vllm:num_requests_waiting)",
        "threshold": 5,
        "polling_s": 15,
        "cooldown_s": 360,
        "tolerance": 0.1,
        "down_stabilization_s": 300,
    },
    "aibrix-kpa": {
        "metric": "vllm:num_requests_waiting",
        "target_per_replica": 5,
        "stable_s": 180,
        "panic_s": 60,
        "panic_threshold": 2.0,
        "resync_s": 10,
        "scale_down_delay_s": 300,
    },
    "kubeai": {
        "metric": "in-flight requests (proxy)",
        "target_requests": 100,
        "window_s": 600,
        "interval_s": 10,
        "scale_down_delay_s": 30,
    },
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results/", help="output directory")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--traces", default="", help="comma-separated subset of trace names")
    ap.add_argument("--policies", default="", help="comma-separated subset of policies")
    ap.add_argument("--quick", action="store_true", help="4x lighter traces (smoke test)")
    ap.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default="main",
        help="main: the main traces; heldout: variants never looked at while designing the policy. Results "
        "go to autoscaling_<suite>_<variant>_<router>.{json,md}",
    )
    ap.add_argument(
        "--skip-bounds",
        action="store_true",
        help="leave out the two searched bounds (margin bound, causal step bound), the slowest jobs",
    )
    add_context_args(ap)
    return ap.parse_args(argv)


Mapper = Callable[[Callable[[tuple[Any, ...]], Any], list[tuple[Any, ...]]], Iterable[Any]]


def _run_oracles(specs: list[TraceSpec], mapper: Mapper, t_start: float) -> dict[str, dict[str, Any]]:
    oracle: dict[str, dict[str, Any]] = {}
    for name, _, res in mapper(_run_job, [("oracle", s) for s in specs]):
        oracle[name] = res
        print(
            f"[{time.time() - t_start:6.0f}s] {name:14s} oracle: {res['gpu_hours']:.2f} GPU-h, "
            f"{100 * res['within_slo']:.2f}% within SLO, {res['trials']} trials, {res['wall_s']} s",
            flush=True,
        )
    return oracle


def _policy_jobs(
    specs: list[TraceSpec], pnames: list[str], oracle: dict[str, dict[str, Any]], skip_bounds: bool
) -> list[tuple[Any, ...]]:
    """Every policy, the oracle's replay and the reference schedules on every trace; the searched bounds unless
    skipped (the slowest job first)."""
    jobs: list[tuple[Any, ...]] = []
    for s in specs:
        counts = oracle[s.name]["counts"]
        n0 = initial_replicas(counts)
        for pn in pnames + ["oracle-replay", *REFERENCE_SCHEDULES]:
            jobs.append(("policy", s, pn, n0, counts))
        if skip_bounds:
            continue
        jobs.insert(0, ("reactive-bound", s, counts, n0))
        if s.kind == "step":
            jobs.append(("step-bound", s, counts))
    return jobs


def _run_policies(
    specs: list[TraceSpec], jobs: list[tuple[Any, ...]], mapper: Mapper, t_start: float
) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {s.name: {} for s in specs}
    for name, pn, res in mapper(_run_job, jobs):
        results[name][pn] = res
        print(
            f"[{time.time() - t_start:6.0f}s] {name:14s} {pn:26s} {100 * res['within_slo']:6.2f}% "
            f"{res['gpu_hours']:7.2f} GPU-h p99 {fmt(res['ttft_p99_s'])} s events {res['scaling_events']} "
            f"({res['wall_s']} s)",
            flush=True,
        )
    return results


def _params_doc(args: argparse.Namespace, sm: Any) -> dict[str, Any]:
    """The run's settings: suite, context, SLO, fleet limits, the replica model, cold starts, every policy's."""
    return {
        "jobs": args.jobs,
        "quick": args.quick,
        "suite": args.suite,
        "variant": CTX.variant,
        "router": CTX.router,
        "slo_mode": CTX.slo,
        "slo": {
            "ttft_delay_s": SLO_DELAY_S,
            "definition": "ttft <= delay + isolated prefill time",
            "goal": SLO_GOAL,
            "tpot_s": TPOT_SLO_S,
            "joint": "ttft SLO and the request's mean time per output token <= tpot_s",
        },
        "replicas": {"min": MIN_REPLICAS, "max": MAX_REPLICAS},
        "scrape_interval_s": 15.0,
        "service_model": sm.describe(),
        "cold_start_s": {
            k: round(cold_start_for(QWEN3_8B, k).total_s, 1) for k in ("baked", "unbaked", "unbaked-a10g")
        },
        "ours_config": described_config(ours_config()),
        "anchor_params": ANCHOR_PARAMS,
    }


COST_GOAL_X_ORACLE = 1.25
COST_GOAL_X_BOUND = 1.1


def cost_goal(rows: dict[str, Any], policy: str = "ours") -> dict[str, Any]:
    """Issue 17's cost goal for one policy on one trace: GPU-hours <= 1.25x the oracle's where the bound allows it,
    otherwise <= 1.1x the bound row's.  The bound row is the causal step bound where the trace has one (a true
    lower bound for any causal policy), else the reactive margin row when it meets the SLO (what a constant margin
    needs when the present is known exactly: a reference, not a bound on every causal policy); runs made with
    --skip-bounds have neither, and only the 1.25x rule is judged there.  ``met`` is None where the policy misses
    the SLO: a cost goal is judged only on a fleet that serves."""
    r = rows.get(policy)
    if not r:
        return {}
    bound_name = next((b for b in (STEP_BOUND, REACTIVE_BOUND) if b in rows and rows[b].get("meets_slo")), None)
    bound = rows[bound_name] if bound_name else None
    allowed = COST_GOAL_X_ORACLE
    if bound is not None and bound["vs_oracle"] * COST_GOAL_X_BOUND > COST_GOAL_X_ORACLE:
        allowed = bound["vs_oracle"] * COST_GOAL_X_BOUND
    return {
        "bound_row": bound_name,
        "bound_vs_oracle": bound["vs_oracle"] if bound else None,
        "vs_bound": r["gpu_hours"] / bound["gpu_hours"] if bound and bound["gpu_hours"] > 0 else None,
        "allowed_vs_oracle": allowed,
        "met": bool(r["vs_oracle"] <= allowed) if r["meets_slo"] else None,
    }


def _verdict(rows: dict[str, Any], duration_s: float, oracle_gpu_hours: float) -> dict[str, Any]:
    """Does ours meet the SLO, at what multiple of the oracle, and against the anchors that meet it too."""
    ours = rows.get("ours")
    if not ours:
        return {}
    og = oracle_gpu_hours
    anchors_ok = [a for a in ANCHORS if a in rows and rows[a]["meets_slo"]]
    return {
        "ours_meets_slo": ours["meets_slo"],
        "ours_vs_oracle": ours["vs_oracle"],
        "ours_within_1_25x_oracle": bool(ours["vs_oracle"] <= COST_GOAL_X_ORACLE),
        "ours_cost_goal": cost_goal(rows),
        "anchors_meeting_slo": anchors_ok,
        "ours_beats_anchors_meeting_slo": bool(all(ours["gpu_hours"] < rows[a]["gpu_hours"] for a in anchors_ok)),
        # The warm pool is paid over the whole trace by definition (Ready replicas kept above demand): on a
        # small fleet it alone is a large share of the oracle's GPU-hours.
        "warm_pool_share_of_oracle": (
            ours_config().warm_pool * (duration_s + sim_config(cold_start_s=0.0).horizon_tail_s) / 3600.0 / og
            if og > 0
            else float("nan")
        ),
    }


def _trace_doc(
    s: TraceSpec, orc: dict[str, Any], results: dict[str, dict[str, Any]], pnames: list[str]
) -> dict[str, Any]:
    """One trace's section of the results: its description and stats, every row against the oracle, the verdict."""
    tr = build_trace(s)
    og = orc["gpu_hours"]
    rows: dict[str, Any] = {"oracle": orc}
    for pn in pnames + ["oracle-replay", *REFERENCE_SCHEDULES, REACTIVE_BOUND, STEP_BOUND]:
        if pn in results:
            rows[pn] = results[pn]
    for r in rows.values():
        r["meets_slo"] = bool(r["within_slo"] >= SLO_GOAL)
        r["vs_oracle"] = r["gpu_hours"] / og if og > 0 else float("nan")
    return {
        "description": s.description,
        "source": tr.source,
        "params": s.params,
        "stats": tr.stats(),
        "demand_rps": demand_per_minute(tr),
        "results": rows,
        "verdict": _verdict(rows, tr.stats()["duration_s"], og),
    }


def _json_safe(o: Any) -> Any:
    """NaN as null and infinities as strings: strict JSON."""
    if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
        return None if math.isnan(o) else ("inf" if o > 0 else "-inf")
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    apply_context(args)
    t_start = time.time()
    specs = SUITES[args.suite](args.quick)
    if args.traces:
        keep = set(args.traces.split(","))
        specs = [s for s in specs if s.name in keep]
    pnames = [p for p in args.policies.split(",") if p in POLICIES] if args.policies else list(POLICIES)
    sm = service_model()
    pool = mp.get_context("fork").Pool(args.jobs) if args.jobs > 1 else None
    mapper: Mapper = pool.imap_unordered if pool else map
    oracle = _run_oracles(specs, mapper, t_start)
    results = _run_policies(specs, _policy_jobs(specs, pnames, oracle, args.skip_bounds), mapper, t_start)
    if pool:
        pool.close()
        pool.join()
    doc: dict[str, Any] = {
        "command": "PYTHONPATH=operator:. python -m bench.autoscaling.run "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "git_commit": git_commit(Path(__file__).resolve().parents[2]),
        "params": _params_doc(args, sm),
        "traces": {s.name: _trace_doc(s, oracle[s.name], results[s.name], pnames) for s in specs},
    }
    doc["wall_s"] = time.time() - t_start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = results_stem(args.suite)
    (out / f"{stem}.json").write_text(json.dumps(_json_safe(doc), indent=1) + "\n")
    (out / f"{stem}.md").write_text(render_md(doc))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')} in {doc['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
