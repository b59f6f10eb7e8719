"""Burst headroom (issue 17 item 5): ours with and without it, side by side, from runs of bench.autoscaling.run.

    PYTHONPATH=operator:. python -m bench.autoscaling.run --out DIR --suite S --variant V --router R \\
        --policies ours,ours-burst --skip-bounds          # for each suite and router
    PYTHONPATH=operator:. python -m bench.autoscaling.burst_report DIR --out bench/results/

The anchors are not rerun: their rows come from the full run of the same suite, variant and router in
bench/results/ (the anchors, the oracle and the traces are the same code), to say whether ours-burst uses fewer
GPU-hours than every anchor that meets the SLO.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from .run import ANCHORS


def _cell(r: dict[str, Any]) -> str:
    text = f"{100 * r['within_joint_slo']:.2f} % / {r['gpu_hours']:.2f} / {r['vs_oracle']:.2f}x"
    return f"**{text}**" if r["meets_slo"] else text


def rows(run: dict[str, Any], full: dict[str, Any] | None) -> list[str]:
    out = []
    for trace, t in run["traces"].items():
        res = t["results"]
        ours, burst = res["ours"], res["ours-burst"]
        delta = 100 * (burst["gpu_hours"] / ours["gpu_hours"] - 1)
        anchors = (full or {}).get("traces", {}).get(trace, {}).get("results", {})
        meeting = {a: anchors[a]["gpu_hours"] for a in ANCHORS if a in anchors and anchors[a]["meets_slo"]}
        if not burst["meets_slo"]:
            beats = "n/a (misses)"
        elif not anchors:
            beats = "no full run"
        elif not meeting:
            beats = "yes (no anchor meets it)"
        else:
            cheapest = min(meeting, key=lambda a: meeting[a])
            ok = burst["gpu_hours"] < meeting[cheapest]
            beats = f"{'yes' if ok else '**no**'} ({cheapest} {meeting[cheapest]:.2f})"
        out.append(
            f"| {trace} | {res['oracle']['gpu_hours']:.2f} | {_cell(ours)} | {_cell(burst)} | {delta:+.1f} % | {beats} |"
        )
    return out


def verdicts(paths: list[Path]) -> list[str]:
    """Per suite, router and trace: under which service-model variants ours and ours-burst meet the SLO. "Meets" is
    claimed only where every variant run agrees (bench/autoscaling/README.md)."""
    meets: dict[tuple[str, str, str], dict[str, dict[str, bool]]] = {}
    variants: set[str] = set()
    for path in paths:
        run = json.loads(path.read_text())
        p = run["params"]
        variants.add(p["variant"])
        for trace, t in run["traces"].items():
            cell = meets.setdefault((p["suite"], p["router"], trace), {})
            cell[p["variant"]] = {pol: bool(t["results"][pol]["meets_slo"]) for pol in ("ours", "ours-burst")}

    def word(cell: dict[str, dict[str, bool]], pol: str) -> str:
        yes = sorted(v for v, m in cell.items() if m[pol])
        if len(yes) == len(variants) == len(cell):
            return "**meets (all)**"
        return "misses (all)" if not yes else f"only {', '.join(yes)}"

    out = [
        "",
        f"## Verdicts across the service-model variants ({', '.join(sorted(variants))})",
        "",
        "| suite | router | trace | ours | ours-burst |",
        "|---|---|---|---|---|",
    ]
    for (suite, router, trace), cell in sorted(meets.items()):
        out.append(f"| {suite} | {router} | {trace} | {word(cell, 'ours')} | {word(cell, 'ours-burst')} |")
    return out


def plot_bursts(run: dict[str, Any], out: Path) -> list[str]:
    """ours and ours-burst over the oracle, on the short-burst traces; markdown links to the PNGs."""
    from .plots import plot_trace

    p, links = run["params"], []
    for name, tr in run["traces"].items():
        if name.startswith("short-bursts"):
            rel = Path("plots") / f"burst_{p['suite']}_{p['variant']}_{p['router']}_{name}.png"
            plot_trace(name, tr, p, out / rel, compare=("ours", "ours-burst"))
            links.append(f"[{p['suite']} {p['router']} {name}]({rel.as_posix()})")
    return links


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="directory with the autoscaling_<suite>_<variant>_<router>.json of the runs")
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--full", default="bench/results/", help="where the full runs (with the anchors) are")
    args = ap.parse_args(argv)
    out = Path(args.out)
    keep = out / "burst_headroom"
    keep.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Burst headroom: ours with and without it (issue 17 item 5)",
        "",
        "Cells: share of requests within the joint SLO / GPU-hours / x the oracle's GPU-hours. **Bold**: meets the "
        "99 % goal. ours-burst = ours with `autoscaling.burstHeadroom.enabled` (quantile 0.9, window 3600 s). "
        "Anchor column: whether ours-burst uses fewer GPU-hours than the cheapest anchor meeting the SLO in the full "
        "run of the same suite, variant and router (bench/results/autoscaling_<suite>_<variant>_<router>.md).",
    ]
    for path in sorted(Path(args.runs).glob("autoscaling_*.json")):
        run = json.loads(path.read_text())
        full_path = Path(args.full) / path.name
        full = json.loads(full_path.read_text()) if full_path.exists() else None
        shutil.copy(path, keep / path.name)
        lines += [
            "",
            f"## {path.stem.removeprefix('autoscaling_')}",
            "",
            f"- command: `{run['command']}`",
            f"- machine: {run['machine']}; git commit: {run['git_commit']}; wall time: {run['wall_s']} s",
            "",
            "| trace | oracle GPU-h | ours | ours-burst | GPU-h change | fewer GPU-h than every anchor meeting the SLO |",
            "|---|---:|---|---|---:|---|",
            *rows(run, full),
        ]
    lines += verdicts(sorted(Path(args.runs).glob("autoscaling_*.json")))
    lines += ["", "## Plots (calibrated-v1: ours in blue, ours-burst in orange)", ""]
    for path in sorted(Path(args.runs).glob("autoscaling_*_calibrated-v1_*.json")):
        lines += [f"- {link}" for link in plot_bursts(json.loads(path.read_text()), out)]
    (out / "autoscaling_burst_headroom.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'autoscaling_burst_headroom.md'} and {keep}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
