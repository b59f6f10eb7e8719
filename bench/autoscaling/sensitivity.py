"""How our policy's two main knobs trade SLO attainment against GPU-hours, on every trace.

  PYTHONPATH=operator:. python -m bench.autoscaling.sensitivity --out bench/results/
  #   --suite heldout --utilizations 0.4,0.5 --stabilizations 300,600   (a smaller grid on the held-out suite)

target_utilization (concurrency mode: the share of a replica's learned sequence capacity to fill) and
scale_down_stabilization_s are varied around the defaults; everything else is the operator's default policy for a
spec without a service-rate estimate (estimateServiceRate false, or a model or GPU the estimate does not cover:
target_utilization sizes the fleet only until a service rate is known), the simulator and service model of
bench.autoscaling.run, and the oracle's GPU-hours from its results file (run that first). The point is to see whether the distance to the oracle is a matter of tuning: it is not, since
filling replicas further loses the SLO on bursty traffic before it saves GPU-hours.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import run as R
from .policies import Ours

UTILIZATIONS = (0.4, 0.5, 0.6, 0.7, 0.8)
STABILIZATIONS = (163.0, 300.0, 600.0)


@dataclass(frozen=True)
class Grid:
    """The traces and the settings a study runs: every utilization with every stabilization window."""

    specs: list[R.TraceSpec]
    utilizations: tuple[float, ...]
    stabilizations: tuple[float, ...]


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """The parsed arguments (setting run.CTX) and the context arguments as command-line text."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--suite", choices=sorted(R.SUITES), default="main")
    ap.add_argument("--utilizations", default=",".join(f"{u:g}" for u in UTILIZATIONS), help="comma-separated")
    ap.add_argument(
        "--stabilizations", default=",".join(f"{s:g}" for s in STABILIZATIONS), help="seconds, comma-separated"
    )
    R.add_context_args(ap)
    args = ap.parse_args(argv)
    return args, R.apply_context(args)


def _run_cell(spec: R.TraceSpec, u: float, st: float, n0: int, oracle: dict[str, Any]) -> dict[str, Any]:
    """One policy setting on one trace, as a results row."""
    entry = (
        lambda: Ours(
            R.ours_config(target_utilization=u, scale_down_stabilization_s=st, prior_rate_model=None),
            name="sensitivity",
        ),
        "baked",
    )
    r = R.job_policy(spec, "sensitivity", n0, oracle["counts"], entry)
    row = {
        "trace": spec.name,
        "target_utilization": u,
        "scale_down_stabilization_s": st,
        "within_slo": r["within_slo"],
        "meets_slo": r["within_slo"] >= R.SLO_GOAL,
        "gpu_hours": r["gpu_hours"],
        "vs_oracle": r["gpu_hours"] / oracle["gpu_hours"],
    }
    print(
        f"{spec.name:13s} u={u:.1f} stab={st:4.0f}s within {r['within_slo']:.2%} x{row['vs_oracle']:.2f}",
        flush=True,
    )
    return row


def _run_study(base: dict[str, Any], grid: Grid) -> list[dict[str, Any]]:
    """Every (target_utilization, stabilization) pair on every trace, starting from the oracle's warm fleet."""
    rows: list[dict[str, Any]] = []
    for spec in grid.specs:
        oracle = base["traces"][spec.name]["results"]["oracle"]
        n0 = R.initial_replicas(oracle["counts"])
        for u in grid.utilizations:
            for st in grid.stabilizations:
                rows.append(_run_cell(spec, u, st, n0, oracle))
    return rows


def _meta(command: str, t0: float) -> dict[str, Any]:
    cfg = R.ours_config()
    return {
        **R.study_meta(command, t0),
        "defaults": {
            "target_utilization": cfg.target_utilization,
            "scale_down_stabilization_s": cfg.scale_down_stabilization_s,
        },
    }


def _md_trace_table(name: str, rows: list[dict[str, Any]], grid: Grid) -> list[str]:
    L = [
        f"## {name}",
        "",
        "| target_utilization | " + " | ".join(f"stab {s:.0f} s" for s in grid.stabilizations) + " |",
        "|---|" + "---|" * len(grid.stabilizations),
    ]
    for u in grid.utilizations:
        cells = []
        for st in grid.stabilizations:
            r = next(
                x
                for x in rows
                if x["trace"] == name and x["target_utilization"] == u and x["scale_down_stabilization_s"] == st
            )
            c = f"{r['within_slo']:.2%} / {r['vs_oracle']:.2f}x"
            cells.append(f"**{c}**" if r["meets_slo"] else c)
        L.append(f"| {u:.1f} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _render_md(meta: dict[str, Any], rows: list[dict[str, Any]], grid: Grid) -> str:
    L = [
        "# Autoscaling policy sensitivity",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']['platform']}, {meta['machine']['cpus']} CPUs, Python {meta['machine']['python']}; "
        f"git commit {meta['git_commit']}; wall {meta['wall_s']} s",
        f"- defaults: target_utilization {meta['defaults']['target_utilization']}, scale-down stabilization "
        f"{meta['defaults']['scale_down_stabilization_s']:.0f} s; 163 s is the baked cold start. Cells: share of "
        f"requests within the SLO judged ({R.CTX.slo}; variant {R.CTX.variant}, router {R.CTX.router}) / GPU-hours vs the oracle; **bold** = meets the 99 % goal.",
        "",
    ]
    for spec in grid.specs:
        L += _md_trace_table(spec.name, rows, grid)
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    args, ctx_args = _parse_args(argv)
    out = Path(args.out)
    grid = Grid(
        R.SUITES[args.suite](),
        tuple(float(x) for x in args.utilizations.split(",")),
        tuple(float(x) for x in args.stabilizations.split(",")),
    )
    base = json.loads((out / (R.results_stem(args.suite) + ".json")).read_text())
    t0 = time.time()
    rows = _run_study(base, grid)
    command = f"python -m bench.autoscaling.sensitivity --out {args.out} {ctx_args}"
    if args.suite != "main" or (grid.utilizations, grid.stabilizations) != (UTILIZATIONS, STABILIZATIONS):
        command += f" --suite {args.suite} --utilizations {args.utilizations} --stabilizations {args.stabilizations}"
    meta = _meta(command, t0)
    stem = R.results_stem(args.suite, kind="sensitivity")
    R.write_study(out, stem, {"meta": meta, "rows": rows}, _render_md(meta, rows, grid))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
