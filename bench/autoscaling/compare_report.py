"""One variant of ours beside ours, from runs of bench.autoscaling.run made with ``--policies ours,<variant>``:

    PYTHONPATH=operator:. python -m bench.autoscaling.run --out DIR --suite S --variant V --router R \\
        --policies ours,ours-burst --skip-bounds          # for each suite, variant and router
    PYTHONPATH=operator:. python -m bench.autoscaling.compare_report DIR --policy ours-burst --out bench/results/

``--policy`` is one of COMPARISONS: ours-burst (burst headroom, issue 17 item 5), ours-estimated (the operator's
service-rate estimate as the prior, autoscaling.estimateServiceRate, before it became the default; "ours" in those
runs is the policy without it) or ours-no-estimate (the full runs since the estimate is the default: ours beside the
policy without it; ``python -m bench.autoscaling.compare_report bench/results --policy ours-no-estimate``).  The anchors are not rerun: their rows come
from the full run of the same suite, variant and router in bench/results/ (the anchors, the oracle and the traces
are the same code), to say whether the variant uses fewer GPU-hours than every anchor that meets the SLO; a
reference policy of the full run (ours-load-tested for the estimate) is shown beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run import ANCHORS


@dataclass(frozen=True)
class Comparison:
    title: str
    legend: str  # what the variant is
    report: str  # the markdown file written in --out
    keep: str | None  # the folder of --out the runs are copied to (None: they are the full runs, not copied)
    reference: str | None  # a policy of the full run shown beside the variant
    plot_prefix: str | None  # traces whose plots are drawn ("" for all, None for none)


COMPARISONS: dict[str, Comparison] = {
    "ours-burst": Comparison(
        title="Burst headroom: ours with and without it (issue 17 item 5)",
        legend="ours-burst = ours with `autoscaling.burstHeadroom.enabled` (quantile 0.9, window 3600 s).",
        report="autoscaling_burst_headroom.md",
        keep="burst_headroom",
        reference=None,
        plot_prefix="short-bursts",
    ),
    "ours-estimated": Comparison(
        title="The operator's service-rate estimate as the prior: ours with and without it",
        legend="ours-estimated = ours with `autoscaling.estimateServiceRate` (operator/qwen_operator/domain/"
        "replica_rate.py: the calibrated-v1 step in closed form, asked at the observed mix). ours-load-tested "
        "(from the full run) = ours given the saturation rate a load test of the trace's first 10 minutes measures "
        "on the true replica model.",
        report="autoscaling_estimated_prior.md",
        keep="estimated_prior",
        reference="ours-load-tested",
        plot_prefix="",
    ),
    "ours-no-estimate": Comparison(
        title="The service-rate estimate as the default: ours (with it) beside ours without it",
        legend="ours = the operator's default policy, which starts from its service-rate estimate (estimateServiceRate "
        "unset; operator/qwen_operator/domain/replica_rate.py); ours-no-estimate = estimateServiceRate false (the "
        "rate learned at the first saturation; the default before). ours-load-tested = ours given the saturation rate "
        "a load test of the trace's first 10 minutes measures on the true replica model. GPU-h change: "
        "ours-no-estimate against ours.",
        report="autoscaling_estimate_default.md",
        keep=None,
        reference="ours-load-tested",
        plot_prefix=None,
    ),
}


def _cell(r: dict[str, Any]) -> str:
    text = f"{100 * r['within_joint_slo']:.2f} % / {r['gpu_hours']:.2f} / {r['vs_oracle']:.2f}x"
    return f"**{text}**" if r["meets_slo"] else text


def _beats(variant: dict[str, Any], anchors: dict[str, Any]) -> str:
    """Whether the variant uses fewer GPU-hours than the cheapest anchor meeting the SLO in the full run."""
    meeting = {a: anchors[a]["gpu_hours"] for a in ANCHORS if a in anchors and anchors[a]["meets_slo"]}
    if not variant["meets_slo"]:
        return "n/a (misses)"
    if not anchors:
        return "no full run"
    if not meeting:
        return "yes (no anchor meets it)"
    cheapest = min(meeting, key=lambda a: meeting[a])
    ok = variant["gpu_hours"] < meeting[cheapest]
    return f"{'yes' if ok else '**no**'} ({cheapest} {meeting[cheapest]:.2f})"


def rows(run: dict[str, Any], full: dict[str, Any] | None, policy: str, reference: str | None) -> list[str]:
    out = []
    for trace, t in run["traces"].items():
        res = t["results"]
        ours, variant = res["ours"], res[policy]
        delta = 100 * (variant["gpu_hours"] / ours["gpu_hours"] - 1)
        full_rows = (full or {}).get("traces", {}).get(trace, {}).get("results", {})
        ref = ""
        if reference is not None:
            ref = f" {_cell(full_rows[reference])} |" if reference in full_rows else " no full run |"
        out.append(
            f"| {trace} | {res['oracle']['gpu_hours']:.2f} | {_cell(ours)} | {_cell(variant)} | {delta:+.1f} % |"
            f"{ref} {_beats(variant, full_rows)} |"
        )
    return out


def verdicts(paths: list[Path], policy: str) -> list[str]:
    """Per suite, router and trace: under which service-model variants ours and the variant meet the SLO. "Meets" is
    claimed only where every variant run agrees (bench/autoscaling/README.md)."""
    meets: dict[tuple[str, str, str], dict[str, dict[str, bool]]] = {}
    variants: set[str] = set()
    for path in paths:
        run = json.loads(path.read_text())
        p = run["params"]
        variants.add(p["variant"])
        for trace, t in run["traces"].items():
            cell = meets.setdefault((p["suite"], p["router"], trace), {})
            cell[p["variant"]] = {pol: bool(t["results"][pol]["meets_slo"]) for pol in ("ours", policy)}

    def word(cell: dict[str, dict[str, bool]], pol: str) -> str:
        yes = sorted(v for v, m in cell.items() if m[pol])
        if len(yes) == len(variants) == len(cell):
            return "**meets (all)**"
        return "misses (all)" if not yes else f"only {', '.join(yes)}"

    out = [
        "",
        f"## Verdicts across the service-model variants ({', '.join(sorted(variants))})",
        "",
        f"| suite | router | trace | ours | {policy} |",
        "|---|---|---|---|---|",
    ]
    for (suite, router, trace), cell in sorted(meets.items()):
        out.append(f"| {suite} | {router} | {trace} | {word(cell, 'ours')} | {word(cell, policy)} |")
    both = [c for c in meets.values() if len(c) == len(variants)]
    count = {pol: sum(all(m[pol] for m in c.values()) for c in both) for pol in ("ours", policy)}
    out += ["", f"Meets under every variant: ours {count['ours']}, {policy} {count[policy]} of {len(both)} pairs."]
    return out


def plot_runs(run: dict[str, Any], out: Path, policy: str, prefix: str) -> list[str]:
    """ours and the variant over the oracle; markdown links to the PNGs."""
    from .plots import plot_trace

    p, links = run["params"], []
    stem = "burst" if policy == "ours-burst" else policy
    for name, tr in run["traces"].items():
        if name.startswith(prefix):
            rel = Path("plots") / f"{stem}_{p['suite']}_{p['variant']}_{p['router']}_{name}.png"
            plot_trace(name, tr, p, out / rel, compare=("ours", policy))
            links.append(f"[{p['suite']} {p['router']} {name}]({rel.as_posix()})")
    return links


def runs_with(folder: Path, policy: str) -> list[Path]:
    """The runs of bench.autoscaling.run in ``folder`` that have ours and ``policy`` on every trace (a results folder
    also holds the studies' files and the summary, named autoscaling_* as well)."""
    out = []
    for path in sorted(folder.glob("autoscaling_*.json")):
        run = json.loads(path.read_text())
        traces = run.get("traces") if isinstance(run, dict) and "params" in run else None
        if (
            isinstance(traces, dict)
            and traces
            and all({"ours", policy} <= set((t or {}).get("results", {})) for t in traces.values())
        ):
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="directory with the autoscaling_<suite>_<variant>_<router>.json of the runs")
    ap.add_argument("--policy", required=True, choices=sorted(COMPARISONS))
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--full", default="bench/results/", help="where the full runs (with the anchors) are")
    args = ap.parse_args(argv)
    c = COMPARISONS[args.policy]
    out = Path(args.out)
    keep = out / c.keep if c.keep is not None else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    ref_head = f" {c.reference} (full run) |" if c.reference else ""
    lines = [
        f"# {c.title}",
        "",
        "Cells: share of requests within the joint SLO / GPU-hours / x the oracle's GPU-hours. **Bold**: meets the "
        f"99 % goal. {c.legend} Anchor column: whether {args.policy} uses fewer GPU-hours than the cheapest anchor "
        "meeting the SLO in the full run of the same suite, variant and router "
        "(bench/results/autoscaling_<suite>_<variant>_<router>.md).",
    ]
    paths = runs_with(Path(args.runs), args.policy)
    for path in paths:
        run = json.loads(path.read_text())
        full_path = Path(args.full) / path.name
        full = json.loads(full_path.read_text()) if full_path.exists() else None
        if keep is not None and path.resolve() != (keep / path.name).resolve():
            shutil.copy(path, keep / path.name)
        lines += [
            "",
            f"## {path.stem.removeprefix('autoscaling_')}",
            "",
            f"- command: `{run['command']}`",
            f"- machine: {run['machine']}; git commit: {run['git_commit']}; wall time: {run['wall_s']} s",
            "",
            f"| trace | oracle GPU-h | ours | {args.policy} | GPU-h change |{ref_head} fewer GPU-h than every anchor "
            "meeting the SLO |",
            "|---|---:|---|---|---:|" + ("---|" if c.reference else "") + "---|",
            *rows(run, full, args.policy, c.reference),
        ]
    lines += verdicts(paths, args.policy)
    if c.plot_prefix is not None:
        lines += ["", f"## Plots (calibrated-v1: ours in blue, {args.policy} in orange)", ""]
        for path in [p for p in paths if "_calibrated-v1_" in p.name]:
            lines += [f"- {link}" for link in plot_runs(json.loads(path.read_text()), out, args.policy, c.plot_prefix)]
    (out / c.report).write_text("\n".join(lines) + "\n")
    print(f"wrote {out / c.report}" + (f" and {keep}/" if keep is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
