"""How our policy's two main knobs trade SLO attainment against GPU-hours, on every trace.

  PYTHONPATH=operator:. python -m bench.autoscaling.sensitivity --out bench/results/

target_utilization (concurrency mode: the share of a replica's learned sequence capacity to fill) and
scale_down_stabilization_s are varied around the defaults; everything else is the operator's default policy, the
simulator and service model of bench.autoscaling.run, and the oracle's GPU-hours from its results file (run
that first). The point is to see whether the distance to the oracle is a matter of tuning: it is not, since
filling replicas further loses the SLO on bursty traffic before it saves GPU-hours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import run as R
from .policies import Ours

UTILIZATIONS = (0.4, 0.5, 0.6, 0.7, 0.8)
STABILIZATIONS = (163.0, 300.0, 600.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results/")
    R.add_context_args(ap)
    args = ap.parse_args(argv)
    ctx_args = R.apply_context(args)
    out = Path(args.out)
    base = json.loads((out / (R.results_stem("main") + ".json")).read_text())
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    for spec in R.trace_specs():
        oracle = base["traces"][spec.name]["results"]["oracle"]
        counts = oracle["counts"]
        n0 = R.initial_replicas(counts)
        for u in UTILIZATIONS:
            for st in STABILIZATIONS:
                R.POLICIES["sensitivity"] = (
                    lambda u=u, st=st: Ours(
                        R.ours_config(target_utilization=u, scale_down_stabilization_s=st), name="sensitivity"
                    ),
                    "baked",
                )
                r = R.job_policy(spec, "sensitivity", n0, counts)
                rows.append(
                    {
                        "trace": spec.name,
                        "target_utilization": u,
                        "scale_down_stabilization_s": st,
                        "within_slo": r["within_slo"],
                        "meets_slo": r["within_slo"] >= R.SLO_GOAL,
                        "gpu_hours": r["gpu_hours"],
                        "vs_oracle": r["gpu_hours"] / oracle["gpu_hours"],
                    }
                )
                print(
                    f"{spec.name:13s} u={u:.1f} stab={st:4.0f}s within {r['within_slo']:.2%} "
                    f"x{rows[-1]['vs_oracle']:.2f}",
                    flush=True,
                )
    meta = {
        "command": "python -m bench.autoscaling.sensitivity --out " + args.out + " " + ctx_args,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "git_commit": R.git_commit(Path(__file__).resolve().parents[2]),
        "wall_s": round(time.time() - t0, 1),
        "defaults": {
            "target_utilization": R.ours_config().target_utilization,
            "scale_down_stabilization_s": R.ours_config().scale_down_stabilization_s,
        },
    }
    stem = R.results_stem("main", kind="sensitivity")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
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
    for spec in R.trace_specs():
        L += [
            f"## {spec.name}",
            "",
            "| target_utilization | " + " | ".join(f"stab {s:.0f} s" for s in STABILIZATIONS) + " |",
            "|---|" + "---|" * len(STABILIZATIONS),
        ]
        for u in UTILIZATIONS:
            cells = []
            for st in STABILIZATIONS:
                r = next(
                    x
                    for x in rows
                    if x["trace"] == spec.name
                    and x["target_utilization"] == u
                    and x["scale_down_stabilization_s"] == st
                )
                c = f"{r['within_slo']:.2%} / {r['vs_oracle']:.2f}x"
                cells.append(f"**{c}**" if r["meets_slo"] else c)
            L.append(f"| {u:.1f} | " + " | ".join(cells) + " |")
        L.append("")
    (out / f"{stem}.md").write_text("\n".join(L))
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
