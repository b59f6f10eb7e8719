"""How wrong may the policy's prior service rate be?  The policy sized linearly in the arrival rate from the first
minute (``ours-load-tested``: a prior from a load test with the trace's first 10 minutes) meets the joint SLO on
the ramps and fan-outs where the policy without a prior misses (it sizes by running sequences until a replica
saturates).  A product default for that prior (serviceRatePerReplica left unset) would come from somewhere less
exact than the user's own load test: published figures for the model on the GPU, or a probe with a stock request
mix.  This study runs the same policy with the load-tested prior times a factor, and with the prior a load test
under each *other* replica model would have measured (a prior taken from the wrong calibration), on every trace of
both suites.

  PYTHONPATH=operator:. python -m bench.autoscaling.prior_error --out bench/results/ [--variant ...] [--router ...]

The oracle's GPU-hours come from the suite's results file of the same variant and router (run bench.autoscaling.run
first); nothing here is tuned: the factors are a fixed grid and the cross-variant priors are what they are.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from . import run as R
from .loadtest import replica_throughput, sample_pairs
from .policies import Ours
from .service import SERVICE_VARIANTS

FACTORS = (0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0)
SUITES = ("main", "heldout")


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--traces", default="", help="comma-separated subset of trace names")
    R.add_context_args(ap)
    args = ap.parse_args(argv)
    return args, R.apply_context(args)


def _priors(spec: R.TraceSpec) -> dict[str, float]:
    """The load-tested prior under every replica model, with the trace's first 10 minutes as the sample."""
    pairs = sample_pairs(R.build_trace(spec).rows)
    return {v: replica_throughput(pairs, sm) for v, sm in sorted(SERVICE_VARIANTS.items())}


def _run_cell(spec: R.TraceSpec, label: str, prior: float, oracle: dict[str, Any]) -> dict[str, Any]:
    """The policy with this prior on this trace, from the oracle's warm start, as a results row."""
    entry = (lambda: Ours(R.ours_config(prior_service_rate=prior), name="prior-error"), "baked")
    r = R.job_policy(spec, "prior-error", R.initial_replicas(oracle["counts"]), oracle["counts"], entry)
    return {
        "trace": spec.name,
        "prior": label,
        "prior_service_rate": round(prior, 3),
        "within_slo": r["within_slo"],
        "meets_slo": r["within_slo"] >= R.SLO_GOAL,
        "gpu_hours": r["gpu_hours"],
        "vs_oracle": r["gpu_hours"] / oracle["gpu_hours"],
    }


def _cells(spec: R.TraceSpec) -> list[tuple[str, float]]:
    """(label, prior): the factors on the true load-tested prior, then the other replica models' load tests."""
    priors = _priors(spec)
    true = priors[R.CTX.variant]
    cells = [(f"x{f:g}", true * f) for f in FACTORS]
    cells += [(f"from {v} (x{p / true:.2f})", p) for v, p in priors.items() if v != R.CTX.variant]
    return cells


def _run_suite(suite: str, out: Path, keep: set[str]) -> list[dict[str, Any]]:
    base = json.loads((out / (R.results_stem(suite) + ".json")).read_text())
    rows: list[dict[str, Any]] = []
    for spec in R.SUITES[suite]():
        if keep and spec.name not in keep:
            continue
        oracle = base["traces"][spec.name]["results"]["oracle"]
        for label, prior in _cells(spec):
            row = {"suite": suite, **_run_cell(spec, label, prior, oracle)}
            rows.append(row)
            print(f"{suite:7s} {spec.name:20s} {label:28s} {row['within_slo']:.2%} x{row['vs_oracle']:.2f}", flush=True)
    return rows


def _render_md(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    labels = list(dict.fromkeys(r["prior"] for r in rows if r["prior"].startswith("x")))
    L = [
        "# How wrong may the prior service rate be?",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']['platform']}, {meta['machine']['cpus']} CPUs, Python "
        f"{meta['machine']['python']}; git commit {meta['git_commit']}; wall {meta['wall_s']} s; {meta['date']}",
        f"- variant {R.CTX.variant}, router {R.CTX.router}, SLO {R.CTX.slo}. The policy is ours with "
        "`prior_service_rate` (spec: serviceRatePerReplica) = the load-tested prior (`ours-load-tested`: a saturated "
        "replica's completions/s with the trace's first 10 minutes as the sample) times the column's factor. Cells: "
        "share of requests within the SLO / GPU-hours vs the oracle of the suite's results file; **bold** = meets "
        "the 99 % goal. Below 1 the prior understates the replica (more replicas), above 1 overstates it.",
        "",
        "| suite | trace | " + " | ".join(labels) + " | a prior from another replica model |",
        "|---|---|" + "---:|" * len(labels) + "---|",
    ]
    for suite in SUITES:
        for trace in dict.fromkeys(r["trace"] for r in rows if r["suite"] == suite):
            mine = [r for r in rows if r["suite"] == suite and r["trace"] == trace]
            cells = [_cell(next(r for r in mine if r["prior"] == lab)) for lab in labels]
            other = "; ".join(f"{r['prior']}: {_cell(r)}" for r in mine if not r["prior"].startswith("x"))
            L.append(f"| {suite} | {trace} | " + " | ".join(cells) + f" | {other} |")
    L.append("")
    return "\n".join(L)


def _cell(r: dict[str, Any]) -> str:
    c = f"{r['within_slo']:.2%} / {r['vs_oracle']:.2f}x"
    return f"**{c}**" if r["meets_slo"] else c


def main(argv: list[str] | None = None) -> int:
    args, ctx_args = _parse_args(argv)
    out = Path(args.out)
    keep = set(filter(None, args.traces.split(",")))
    t0 = time.time()
    rows = [row for suite in SUITES for row in _run_suite(suite, out, keep)]
    command = f"python -m bench.autoscaling.prior_error --out {args.out} {ctx_args}"
    meta = R.study_meta(command + (f" --traces {args.traces}" if args.traces else ""), t0)
    stem = R.results_stem("all", kind="prior_error")
    R.write_study(out, stem, {"meta": meta, "rows": rows}, _render_md(meta, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
