"""bench/autoscaling/compare_report.py: ours beside one variant of it, with the anchors and a reference from the
full run, and verdicts claimed only where every service-model variant agrees."""

from __future__ import annotations

import json
from pathlib import Path

from bench.autoscaling.compare_report import main


def result(within: float, gpu_hours: float, oracle: float = 2.0) -> dict[str, object]:
    return {
        "within_joint_slo": within,
        "gpu_hours": gpu_hours,
        "vs_oracle": gpu_hours / oracle,
        "meets_slo": within >= 0.99,
    }


def run(variant: str, traces: dict[str, dict[str, dict[str, object]]]) -> dict[str, object]:
    return {
        "params": {"suite": "main", "variant": variant, "router": "random"},
        "command": "run ...",
        "machine": "test",
        "git_commit": "abc",
        "wall_s": 1,
        "traces": {t: {"results": {"oracle": result(0.995, 2.0), **r}} for t, r in traces.items()},
    }


def test_the_report_sets_the_variant_beside_ours_the_reference_and_the_cheapest_anchor(tmp_path: Path):
    runs, full, out = tmp_path / "runs", tmp_path / "full", tmp_path / "out"
    runs.mkdir()
    full.mkdir()
    for variant, ramp_estimated in (("roofline", 0.999), ("calibrated-v060", 0.98)):
        doc = run(
            variant,
            {
                "ramp": {"ours": result(0.95, 5.0), "ours-estimated": result(ramp_estimated, 4.0)},
                "steady": {"ours": result(0.999, 3.0), "ours-estimated": result(0.999, 3.3)},
            },
        )
        (runs / f"autoscaling_main_{variant}_random.json").write_text(json.dumps(doc))
    anchors = run(
        "roofline",
        {
            "ramp": {"ours-load-tested": result(0.999, 4.2), "hpa-gpu-util": result(0.999, 9.0)},
            "steady": {"ours-load-tested": result(0.999, 3.1), "hpa-gpu-util": result(0.999, 3.2)},
        },
    )
    (full / "autoscaling_main_roofline_random.json").write_text(json.dumps(anchors))
    assert main([str(runs), "--policy", "ours-estimated", "--out", str(out), "--full", str(full)]) == 0
    text = (out / "autoscaling_estimated_prior.md").read_text()
    # roofline: ours misses, the estimate meets 20 % cheaper, the load-tested reference, the cheapest anchor beaten
    assert (
        "| ramp | 2.00 | 95.00 % / 5.00 / 2.50x | **99.90 % / 4.00 / 2.00x** | -20.0 % | **99.90 % / 4.20 / 2.10x** | "
        "yes (hpa-gpu-util 9.00) |"
    ) in text
    assert "| +10.0 % | **99.90 % / 3.10 / 1.55x** | **no** (hpa-gpu-util 3.20) |" in text
    # no full run for calibrated-v060: said so
    assert "| 98.00 % / 4.00 / 2.00x | -20.0 % | no full run | n/a (misses) |" in text
    # the ramp meets under roofline only: not claimed; steady meets under both
    assert "| main | random | ramp | misses (all) | only roofline |" in text
    assert "| main | random | steady | **meets (all)** | **meets (all)** |" in text
    assert "Meets under every variant: ours 1, ours-estimated 1 of 2 pairs." in text
    assert (out / "estimated_prior" / "autoscaling_main_roofline_random.json").exists()


def test_the_default_report_reads_the_full_runs_in_place_and_draws_no_plots(tmp_path: Path):
    """ours-no-estimate: the runs are the full runs (ours, the policy without the estimate, the anchors), compared
    where they lie: nothing is copied and no plot is drawn."""
    results = tmp_path / "results"
    results.mkdir()
    doc = run(
        "roofline",
        {
            "ramp": {
                "ours": result(0.999, 4.0),
                "ours-no-estimate": result(0.95, 3.0),
                "ours-load-tested": result(0.999, 4.2),
                "hpa-gpu-util": result(0.999, 3.5),
            }
        },
    )
    (results / "autoscaling_main_roofline_random.json").write_text(json.dumps(doc))
    # the studies' files and the summary lie beside the runs: not runs of this policy, so not read as such
    (results / "autoscaling_summary.json").write_text(json.dumps({"main": {}}))
    (results / "autoscaling_sensitivity_main_roofline_random.json").write_text(json.dumps({"rows": [], "params": {}}))
    (results / "autoscaling_heldout_roofline_random.json").write_text(json.dumps(run("roofline", {"a": {"ours": {}}})))
    before = sorted(p.name for p in results.iterdir())
    assert main([str(results), "--policy", "ours-no-estimate", "--out", str(results), "--full", str(results)]) == 0
    text = (results / "autoscaling_estimate_default.md").read_text()
    assert "| ramp | 2.00 | **99.90 % / 4.00 / 2.00x** | 95.00 % / 3.00 / 1.50x | -25.0 % |" in text
    assert "| **99.90 % / 4.20 / 2.10x** | n/a (misses) |" in text  # the variant misses: no anchor verdict
    assert "Plots" not in text and "## heldout" not in text and "summary" not in text
    assert sorted(p.name for p in results.iterdir()) == sorted([*before, "autoscaling_estimate_default.md"])
