"""The cold start of real vLLM pods on this machine's real node, by phase, with and without each of the product's
caches (issue 19 item 4's measured row).

    bash e2e/cluster/cluster.sh up
    PYTHONPATH=operator:. .venv/bin/python bench/coldstart_real.py [--runs 1] [--out bench/results/]

For each scenario the tiny Qwen3 is served by a fresh QwenDeployment in a fresh namespace on the real node's CPU
stand-in, its weights from a real Hugging Face-compatible server (olah, e2e/hf_mirror.py) through HF_ENDPOINT:

* ``no cache``: the pod downloads the weights at start and compiles;
* ``compile cache``: a bake Job first, then the pod seeds its compile cache from the volume (and still downloads);
* ``compile + weight cache``: a hydration Job, then a bake, then the pod mounts the weights read-only.

The phases are what the operator wrote in ``status.coldStart.latest`` (docs/cold-start.md): the product's own
measurement, not this script's.  Scenarios are interleaved when ``--runs`` > 1.  The operator runs as a pod from its
image (Helm), as in the e2e suite; nothing else should run on the node meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))

import hf_mirror as hm  # noqa: E402
import real_node as rn  # noqa: E402
import vllm_local  # noqa: E402
from operator_harness import apply_qd, cond_is, get_qd, kubectl_run, wait_for  # noqa: E402

REPO = "qwen-e2e/tiny-qwen3"
MIRROR_PORT = 19096
SCENARIOS = {
    "no cache": {"weights": False, "compile": False},
    "compile cache": {"weights": False, "compile": True},
    "compile + weight cache": {"weights": True, "compile": True},
}
PHASES = (
    "scheduled",
    "imagePulled",
    "initContainers",
    "containerStarted",
    "weightsLoaded",
    "compile",
    "engineInitialised",
    "ready",
    "other",
    "total",
)


def scenario_spec(image: str, model_dir: Path, endpoint: str, weights: bool, compile: bool) -> dict[str, Any]:
    spec = rn.standin_spec(image, model_dir, "unused", compileCache={"enabled": compile})
    cache = {"enabled": weights, "storage": {"size": "64Mi", "accessMode": "ReadWriteOnce"}}
    spec["model"] = {
        "name": REPO,
        "revision": "main",
        "source": {"type": "hf", "endpoint": endpoint, "cache": cache},
        "overrides": rn.tiny_overrides(model_dir),
    }
    return spec


def run_one(name: str, run: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Apply, wait for Ready, read what the operator measured, delete; the row."""
    ns = f"bench-cold-{run}-{name.replace(' ', '').replace('+', '-')}"
    kubectl_run("create", "namespace", ns)
    wait_for(
        "default ServiceAccount", lambda: kubectl_run("-n", ns, "get", "sa", "default", check=False).returncode == 0
    )
    t0 = time.monotonic()
    try:
        assert apply_qd(ns, "tiny", spec).returncode == 0
        wait_for(f"{name}: Ready", cond_is(ns, "tiny", "Ready", "True"), timeout=1500, interval=3)
        apply_to_ready = time.monotonic() - t0
        latest = wait_for("coldStart", lambda: (get_qd(ns, "tiny")["status"].get("coldStart") or {}).get("latest"))
        status = get_qd(ns, "tiny")["status"]
        restarts = _restarts_and_last_words(ns)
    finally:
        kubectl_run("delete", "namespace", ns, "--wait=true", "--timeout=300s", check=False)
    row: dict[str, Any] = {"scenario": name, "run": run, "apply_to_ready_s": round(apply_to_ready, 1)}
    row["phases"] = {p: latest.get(f"{p}Seconds") for p in PHASES}
    row["bake_s"] = (status.get("compileCache") or {}).get("bakeSeconds")
    row["hydration_s"] = (status.get("weightCache") or {}).get("hydrationSeconds")
    row["cache_hit"] = [p.get("hit") for p in (status.get("compileCache") or {}).get("pods") or []]
    row["restarts"], row["previous_log_tail"] = restarts
    print(json.dumps(row), flush=True)
    return row


def _restarts_and_last_words(ns: str) -> tuple[int, str]:
    """The serving container's restarts before Ready, and the end of the failed attempt's log (the phases are the
    last attempt's; an earlier one hides in containerStarted), read before the namespace takes them away."""
    pod = json.loads(kubectl_run("-n", ns, "get", "pod", "tiny-0", "-o", "json").stdout)
    restarts = int(pod["status"]["containerStatuses"][0]["restartCount"])
    if not restarts:
        return 0, ""
    prev = kubectl_run("-n", ns, "logs", "tiny-0", "--previous", "--tail=15", check=False).stdout
    return restarts, prev[-1500:]


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def med(vals: list[float | None]) -> str:
        xs = [v for v in vals if v is not None]
        return f"{statistics.median(xs):.1f}" if xs else "-"

    lines = [
        "# Cold start of real vLLM pods on this machine, by phase, with and without each cache",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}; {meta['date']}; git {meta['git_commit']}",
        f"- versions: {meta['versions']}",
        "- what: the tiny Qwen3 (0.7 MB of weights) on the real node's CPU stand-in, served by the vLLM CPU image, "
        "weights from olah (a Hugging Face-compatible server) through HF_ENDPOINT. Phases (s) are the operator's "
        "own `status.coldStart.latest` (docs/cold-start.md); `apply->Ready` includes the hydration and the bake.",
        "- every run is listed; medians per scenario below, leaving out rows whose note says not to use them.",
        "",
        "| scenario | run | "
        + " | ".join(PHASES)
        + " | hydration | bake | apply->Ready | compile-cache hit | restarts |",
        "|---|---:|" + "---:|" * (len(PHASES) + 3) + "---|---:|",
    ]
    for r in rows:
        ph = " | ".join("-" if r["phases"][p] is None else f"{r['phases'][p]:.1f}" for p in PHASES)
        lines.append(
            f"| {r['scenario']} | {r['run']} | {ph} | {r['hydration_s'] or '-'} | {r['bake_s'] or '-'} "
            f"| {r['apply_to_ready_s']} | {r['cache_hit'] or '-'} | {r.get('restarts', '?')} |"
            + f" {r.get('note', '')} |"
        )
    lines += ["", "| scenario (median) | " + " | ".join(PHASES) + " | apply->Ready |", "|---|" + "---:|" * 11]
    for name in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == name and "do not use" not in r.get("note", "")]
        cells = " | ".join(med([r["phases"][p] for r in mine]) for p in PHASES)
        lines.append(f"| {name} | {cells} | {med([r['apply_to_ready_s'] for r in mine])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of the scenarios")
    ap.add_argument("--append", action="store_true", help="add the rows to the results file instead of replacing it")
    ap.add_argument("--note", default="", help="a note for every row of this invocation (what else ran, ...)")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",")]
    assert set(chosen) <= set(SCENARIOS), f"unknown scenario in {chosen}; known: {list(SCENARIOS)}"
    os.environ.setdefault("KUBECONFIG", str(Path.home() / ".cache/qwen-operator/cluster/kubeconfig"))
    images = rn.build_and_load("operator", "vllm-cpu")
    model_dir = vllm_local.ensure_tiny_model()
    hm.install()
    prov = subprocess.Popen([sys.executable, str(ROOT / "e2e" / "cluster" / "local_provisioner.py")])
    op = rn.PodOperator(images["operator"], namespace="qwen-bench-op", release="qwen-bench")
    mirror = hm.HFMirror(Path(tempfile.mkdtemp(prefix="bench-hf-")), host=rn.NODE_IP, port=MIRROR_PORT)
    mirror.add_model(REPO, model_dir)
    rows: list[dict[str, Any]] = []
    try:
        op.start()
        with mirror:
            for run in range(1, args.runs + 1):
                for name in chosen:
                    spec = scenario_spec(images["vllm-cpu"].ref, model_dir, mirror.endpoint, **SCENARIOS[name])
                    rows.append({**run_one(name, run, spec), "note": args.note})
    finally:
        op.uninstall()
        prov.terminate()
    meta = {
        "command": f"PYTHONPATH=operator:. .venv/bin/python bench/coldstart_real.py --runs {args.runs}",
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout,
        "versions": f"vLLM CPU image {images['vllm-cpu'].ref}, operator image {images['operator'].ref}, olah 0.5.4",
    }
    meta["git_commit"] = meta["git_commit"].strip()
    results = args.out / "cold_start_real_pods.json"
    if args.append and results.exists():
        rows = json.loads(results.read_text())["rows"] + rows
        meta["command"] += " (then, appended: " + " ".join(sys.argv[1:]) + ")"
    text = render(rows, meta)
    (args.out / "cold_start_real_pods.md").write_text(text)
    results.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
