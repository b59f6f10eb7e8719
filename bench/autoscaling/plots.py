"""Per-trace plots of a benchmark run: demand and replicas over time for ours, the best anchor and the oracle, and
TTFT p99 per minute.

    PYTHONPATH=operator:. python -m bench.autoscaling.plots --out bench/results/

Reads every autoscaling_<suite>_<variant>_<router>.json in --out (or those named with --files) and writes
<out>/plots/<suite>_<variant>_<router>_<trace>.png.  Needs matplotlib (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from .run import ANCHORS, SLO_GOAL


def best_anchor(results: dict[str, Any]) -> str | None:
    """The anchor meeting the SLO with the fewest GPU-hours; if none meets it, the one closest to the goal."""
    rows = {a: results[a] for a in ANCHORS if a in results}
    if not rows:
        return None
    meeting = [a for a, r in rows.items() if r["within_slo"] >= SLO_GOAL]
    if meeting:
        return min(meeting, key=lambda a: rows[a]["gpu_hours"])
    return max(rows, key=lambda a: rows[a]["within_slo"])


def _num(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return math.inf if x == "inf" else math.nan
    return float(x)


def plot_trace(
    name: str, tr: dict[str, Any], params: dict[str, Any], path: Path, compare: tuple[str, str] | None = None
) -> None:
    """The run's ours and its best anchor against the oracle; ``compare``: two other policies in their place."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = tr["results"]
    first, anchor = compare or ("ours", best_anchor(res))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    demand = tr["demand_rps"]
    ax1b = ax1.twinx()
    ax1b.fill_between(range(len(demand)), demand, step="post", color="0.85", label="demand (req/s)")
    ax1b.set_ylabel("demand, req/s")
    ax1.set_zorder(ax1b.get_zorder() + 1)
    ax1.patch.set_visible(False)
    lines = [("oracle", res["oracle"]["counts"], "k", "oracle (zero cold start)")]
    for pname, color in ((first, "tab:blue"), (anchor, "tab:orange")):
        if pname and pname in res and "series" in res[pname]:
            r = res[pname]
            label = f"{pname}: {100 * r['within_slo']:.1f}% in SLO, {r['vs_oracle']:.2f}x oracle GPU-h"
            lines.append((pname, r["series"]["replicas"], color, label))
    for _, ys, color, label in lines:
        ax1.step(range(len(ys)), ys, where="post", color=color, label=label)
    ax1.set_ylabel("GPUs held")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title(
        f"{name}: {params.get('variant')} replica, {params.get('router')} routing, "
        f"{params.get('slo_mode')} SLO ({params.get('suite')} suite)",
        fontsize=10,
    )
    for pname, color in (("oracle-replay", "k"), (first, "tab:blue"), (anchor, "tab:orange")):
        if pname and pname in res and "series" in res[pname]:
            ys = [_num(y) for y in res[pname]["series"]["ttft_p99_s"]]
            ys = [min(y, 1e3) for y in ys]  # a minute whose requests never got a first token is drawn at 1000 s
            ax2.step(range(len(ys)), ys, where="post", color=color, label=pname)
    ax2.axhline(2.0, color="0.5", ls="--", lw=0.8, label="2 s (SLO slack)")
    ax2.set_yscale("log")
    ax2.set_ylabel("TTFT p99 per minute, s")
    ax2.set_xlabel("minute")
    ax2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_file(f: Path, out: Path) -> list[Path]:
    doc = json.loads(f.read_text())
    p = doc["params"]
    written = []
    for name, tr in doc["traces"].items():
        path = out / "plots" / f"{p['suite']}_{p['variant']}_{p['router']}_{name}.png"
        plot_trace(name, tr, p, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--files", nargs="*", help="result files to plot (default: every autoscaling_<suite>_*.json)")
    ap.add_argument("--variant", default="calibrated-v1", help="plot only runs of this variant ('' for all)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    files = (
        [Path(f) for f in args.files]
        if args.files
        else sorted(f for f in out.glob("autoscaling_*.json") if f.stem.split("_")[1] in ("main", "heldout"))
    )
    if args.variant:
        files = [f for f in files if f"_{args.variant}_" in f.stem]
    for f in files:
        for path in plot_file(f, out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
