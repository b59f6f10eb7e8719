"""Control-plane benchmark: apply-to-StatefulSet latency, idle write calls and operator memory, for N deployments.

Runs the real operator (local process, its own client-certificate identity so the kube-apiserver audit log can
attribute its calls) against the local control plane, creates N QwenDeployments at once, and measures:
  - latency from the create call returning to the StatefulSet being seen by a watch (p50/p95/max),
  - time until all N are Ready,
  - write calls by the operator (from the apiserver's audit log) during an idle period of several resyncs,
  - the operator's peak RSS.

  python -m bench.reconcile_bench --count 1 --count 200 --count 500 --out bench/results/
(500 is issue 7's load case: all converge, bounded memory, no request storm: requests/s from the audit log.)
Needs the local cluster tools (make tools); starts the cluster if it is not running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))
sys.path.insert(0, str(ROOT / "operator"))

from audit_log import all_lines  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

CLUSTER = ROOT / "e2e" / "cluster" / "cluster.sh"
USER = "qwen-operator-bench"


def sh(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout.strip()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def audit_events(audit_log: Path, user: str, since: float, until: float) -> Iterator[dict]:
    """Completed requests ``user`` made in [since, until] (unix seconds), from the apiserver's audit log and the
    files it rotated to (a run can straddle a rotation)."""
    for line in all_lines(audit_log):
        ev = json.loads(line)
        if ev.get("stage") != "ResponseComplete" or ev.get("user", {}).get("username") != user:
            continue
        ts = datetime.fromisoformat(ev["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
        if since <= ts <= until:
            yield ev


def audit_requests(audit_log: Path, user: str, since: float, until: float) -> int:
    """Every request (reads, watches and writes): the load on the apiserver."""
    return sum(1 for _ in audit_events(audit_log, user, since, until))


def audit_writes(audit_log: Path, user: str, since: float, until: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ev in audit_events(audit_log, user, since, until):
        if ev.get("verb") in ("create", "update", "patch", "delete"):
            key = f"{ev['verb']} {ev.get('objectRef', {}).get('resource', '?')}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def deployment_body(i: int) -> dict:
    """The i-th QwenDeployment of a run: the first 20 with one replica (pods to bind), the rest scaled to zero."""
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": f"qd-{i}"},
        "spec": {
            "model": {"name": "Qwen/Qwen3-8B"},
            "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
            "compileCache": {"enabled": False},
            "replicas": 1 if i < 20 else 0,
        },
    }


def watch_statefulsets(ns: str, count: int, stop: threading.Event) -> tuple[threading.Thread, dict[str, float]]:
    """A thread that records when each StatefulSet of the namespace first appears (monotonic clock)."""
    seen: dict[str, float] = {}

    def watch_sts() -> None:
        apps = client.AppsV1Api()
        for ev in watch.Watch().stream(apps.list_namespaced_stateful_set, ns, timeout_seconds=600):
            seen.setdefault(ev["object"].metadata.name, time.monotonic())
            if len(seen) >= count or stop.is_set():
                return

    t = threading.Thread(target=watch_sts, daemon=True)
    t.start()
    return t, seen


def sample_peak_rss(op: Any, stop: threading.Event) -> list[float]:
    """Samples the operator process' RSS every 0.5 s in a thread; the one-element list holds the peak (MiB)."""
    peak = [0.0]

    def sample() -> None:
        while not stop.is_set() and op.proc and op.proc.poll() is None:
            peak[0] = max(peak[0], rss_mib(op.proc.pid))
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    return peak


def wait_all_ready(crd_api: Any, ns: str, count: int, timeout: float) -> bool:
    def all_ready() -> bool:
        items = crd_api.list_namespaced_custom_object("qwenops.dev", "v1alpha1", ns, "qwendeployments")["items"]
        return sum(1 for it in items if (it.get("status") or {}).get("phase") == "Ready") == count

    deadline = time.monotonic() + timeout
    while True:
        ok = all_ready()
        if ok or time.monotonic() >= deadline:
            return ok
        time.sleep(1)


def latency_summary(lat: list[float]) -> dict:
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else [lat[0]] * 19 if lat else [float("nan")] * 19
    return {"p50": statistics.median(lat) if lat else None, "p95": q[18], "max": max(lat) if lat else None}


def run(count: int, resync: float, idle_resyncs: int, admin_kubeconfig: str) -> dict:
    from operator_harness import OperatorProcess

    user_kc = sh("bash", str(CLUSTER), "user-kubeconfig", USER)
    audit = Path(sh("bash", str(CLUSTER), "audit-log"))
    config.load_kube_config(admin_kubeconfig)
    core, crd_api = client.CoreV1Api(), client.CustomObjectsApi()
    ns = f"bench-{count}-{int(time.time())}"
    core.create_namespace({"metadata": {"name": ns}})
    op = OperatorProcess(
        Path(user_kc),
        extra_env={"QWEN_RESYNC_SECONDS": str(resync), "QWEN_WATCH_NAMESPACES": ns},
        name=f"bench-operator-{count}",
    )
    op.start()
    stop = threading.Event()
    peak = sample_peak_rss(op, stop)
    time.sleep(5)  # operator start-up (indexes filled)
    wt, seen = watch_statefulsets(ns, count, stop)
    time.sleep(1)
    created: dict[str, float] = {}
    t_start, wall_start = time.monotonic(), time.time()
    for i in range(count):
        body = deployment_body(i)
        crd_api.create_namespaced_custom_object("qwenops.dev", "v1alpha1", ns, "qwendeployments", body)
        created[body["metadata"]["name"]] = time.monotonic()
    wt.join(timeout=600)
    lat = sorted(seen[n] - created[n] for n in created if n in seen)
    ready_ok = wait_all_ready(crd_api, ns, count, timeout=900)
    converged_s, wall_converged = time.monotonic() - t_start, time.time()
    time.sleep(resync + 2)  # let the last status writes land
    idle_from = time.time()
    time.sleep(resync * idle_resyncs)
    idle_to = time.time()
    time.sleep(2)  # audit log flush
    writes = audit_writes(audit, USER, idle_from, idle_to)
    total_writes = audit_writes(audit, USER, wall_start - 10, idle_to)  # this run only (the user is shared)
    busy_requests = audit_requests(audit, USER, wall_start, wall_converged)
    idle_requests = audit_requests(audit, USER, idle_from, idle_to)
    stop.set()
    op.stop()
    core.delete_namespace(ns)
    return {
        "deployments": count,
        "statefulsets_seen": len(lat),
        "apply_to_statefulset_s": latency_summary(lat),
        "all_ready_s": round(converged_s, 2),
        "all_ready": ready_ok,
        "idle_window_s": round(idle_to - idle_from, 1),
        "resync_interval_s": resync,
        "idle_resyncs": idle_resyncs,
        "idle_write_calls": sum(writes.values()),
        "idle_write_calls_by_kind": writes,
        "write_calls_per_idle_resync": sum(writes.values()) / idle_resyncs,
        "write_calls_total": sum(total_writes.values()),
        "write_calls_total_by_kind": total_writes,
        "write_calls_per_deployment": round(sum(total_writes.values()) / count, 2),
        "operator_peak_rss_mib": round(peak[0], 1),
        "operator_requests_while_converging": busy_requests,
        "operator_rps_while_converging": round(busy_requests / max(converged_s, 1e-9), 2),
        "operator_rps_idle": round(idle_requests / max(idle_to - idle_from, 1e-9), 3),
    }


def render_md(meta: dict, results: list[dict]) -> str:
    k8s = json.loads(meta["versions"]["kubernetes"]).get("serverVersion", {}).get("gitVersion", "?")
    lines = [
        "# Reconcile benchmark",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}  ",
        f"Machine: {meta['machine']}  ",
        f"Versions: Python {meta['versions']['python']}, Kubernetes {k8s} (local kwok cluster), git "
        f"{meta['versions']['git']}",
        "",
        "| deployments | apply->StatefulSet p50 s | p95 s | max s | all Ready s | idle writes per resync "
        "| writes per deployment | operator req/s converging | operator req/s idle | operator peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r["apply_to_statefulset_s"]
        lines.append(
            f"| {r['deployments']} | {lat['p50']:.3f} | {lat['p95']:.3f} | {lat['max']:.3f} "
            f"| {r['all_ready_s']} | {r['write_calls_per_idle_resync']:.2f} "
            f"| {r['write_calls_per_deployment']} | {r['operator_rps_while_converging']} "
            f"| {r['operator_rps_idle']} | {r['operator_peak_rss_mib']} |"
        )
    lines += [
        "",
        "How to read it: the QwenDeployments are created back to back, as fast as one client can (the first "
        "20 with one replica each, the rest with 0, since the cluster has 32 simulated H100s). apply->StatefulSet "
        "is from a deployment's create call returning to its StatefulSet showing up in a watch; all Ready is "
        "until every deployment reports phase Ready. Writes and requests are the operator's own calls, counted "
        "in the kube-apiserver's audit log by its client-certificate identity: writes per deployment include "
        "the StatefulSet, two Services, status patches and Events, and no-op re-applies made while the "
        "operator's watch still lagged behind its own writes; 'idle' is three resync periods (10 s each) "
        "after everything is Ready. Requests per second count reads, watches and writes. The operator, "
        "kube-apiserver and etcd share the machine's cores, so the latencies are an upper bound.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, action="append", default=[])
    ap.add_argument("--resync", type=float, default=10.0)
    ap.add_argument("--idle-resyncs", type=int, default=3)
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--render", metavar="JSON", help="only re-render the markdown from a results JSON")
    a = ap.parse_args()
    if a.render:
        data = json.loads(Path(a.render).read_text())
        md = render_md(data["meta"], data["results"])
        (Path(a.out) / "reconcile.md").write_text(md)
        print(md)
        return 0
    counts = a.count or [1, 200]
    kc = sh("bash", str(CLUSTER), "up").splitlines()[-1]
    os.environ["KUBECONFIG"] = kc
    os.environ["PATH"] = (
        sh("bash", str(ROOT / "e2e" / "cluster" / "build-tools.sh"), "--print-dir") + ":" + os.environ["PATH"]
    )
    sh("kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "qwendeployments.yaml"))
    results = [run(c, a.resync, a.idle_resyncs, kc) for c in counts]
    meta = {
        "command": "python -m bench.reconcile_bench " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "versions": {
            "python": platform.python_version(),
            "kubernetes": sh("kubectl", "version", "-o", "json"),
            "git": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        },
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reconcile.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    md = render_md(meta, results)
    (out / "reconcile.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
