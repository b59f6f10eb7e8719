"""qwenctl: the operator's knowledge, offline, on the command line.

  qwenctl validate FILE...        check QwenDeployments like the operator does (exit 1 if any is invalid)
  qwenctl render FILE             the objects the operator would create (like `helm template`)
  qwenctl fit MODEL --gpu H100 [--quant awq] [--tp 2] [--max-model-len 32768] [--kv-cache-dtype fp8]
  qwenctl plan --daily-users N --turns T --input-tokens I --output-tokens O [--peak 5] [--share 0.3]
               [--calls-per-request 3] ...   size a fleet (model calls per request: agent fan-out)
  qwenctl status [-n NAMESPACE | -A]   QwenDeployments with conditions and last scaling decision

Bad input gets a clear message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ..api.models import GROUP, KIND, PLURAL
from ..domain.capacity import FleetDemand, size_fleet
from ..domain.catalog import resolve_arch
from ..domain.gpus import GPU_PRODUCTS, lookup_gpu
from ..domain.speculative import expected_speedup
from ..domain.validation import validate
from ..manifests.cache import ANNOTATION_BAKED
from ..manifests.plan import ClusterView, plan


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _fail(msg: str) -> NoReturn:
    raise UsageError(msg)


def _load_docs(path: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        _fail(f"cannot read {path}: {e.strerror}")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        _fail(f"{path} is not valid YAML: {str(e).splitlines()[0]}")
    qds = []
    for d in docs:
        if not isinstance(d, dict):
            _fail(f"{path}: expected a YAML mapping, got {type(d).__name__}")
        if d.get("kind") != KIND or not str(d.get("apiVersion", "")).startswith(GROUP + "/"):
            _fail(f"{path}: not a {KIND} (kind={d.get('kind')!r}, apiVersion={d.get('apiVersion')!r})")
        if not isinstance(d.get("spec"), dict):
            _fail(f"{path}: {KIND} has no spec")
        qds.append(d)
    if not qds:
        _fail(f"{path}: no {KIND} found")
    return qds


def cmd_validate(a: argparse.Namespace) -> int:
    bad = 0
    for path in a.files:
        for d in _load_docs(path):
            name = (d.get("metadata") or {}).get("name", "?")
            rep = validate(d["spec"])
            reason, message = rep.summary()
            mark = "ok  " if rep.ok else "FAIL"
            print(f"{mark} {path} {name}: {reason}: {message}")
            bad += 0 if rep.ok else 1
    return 1 if bad else 0


def cmd_render(a: argparse.Namespace) -> int:
    out: list[dict[str, Any]] = []
    for d in _load_docs(a.file):
        meta = d.get("metadata") or {}
        body = {
            **d,
            "metadata": {
                "name": meta.get("name", "example"),
                "namespace": a.namespace or meta.get("namespace", "default"),
                "uid": "00000000-render",
                "generation": 1,
            },
        }
        view = ClusterView(statefulset=None, services={}, pods=[], nodes_with_product=1, max_gpus_on_a_node=8)
        p = plan(body, view, "1970-01-01T00:00:00Z")
        rep = p.report
        if rep is None or not rep.ok:
            reason, message = rep.summary() if rep else ("InvalidSpec", "")
            _fail(f"{meta.get('name', '?')}: {reason}: {message}")
        if p.ensure_shared and not a.skip_bake:
            # Before the bake finishes the operator creates only the cache objects; show the serving objects as
            # they will be once it is baked, too.
            out += p.ensure_shared
            baked = [o for o in p.ensure_shared if o["kind"] == "PersistentVolumeClaim"]
            pvc = {**baked[0], "metadata": {**baked[0]["metadata"], "annotations": {ANNOTATION_BAKED: "true"}}}
            view = ClusterView(
                statefulset=None,
                services={},
                pods=[],
                nodes_with_product=1,
                max_gpus_on_a_node=8,
                cache_lookup=lambda _n: (pvc, None),  # noqa: B023 (called before the loop moves on)
            )
            p = plan(body, view, "1970-01-01T00:00:00Z")
        out += p.apply
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, width=120))
    return 0


def cmd_fit(a: argparse.Namespace) -> int:
    arch = resolve_arch(a.model)
    if arch is None:
        known = ", ".join(sorted(c.name for c in _catalog()))
        _fail(f"unknown model {a.model!r}; known: {known}")
    gpu = lookup_gpu(a.gpu)
    if gpu is None:
        _fail(f"unknown GPU {a.gpu!r}; known: {', '.join(g.product for g in GPU_PRODUCTS)}")
    if a.tp < 1 or a.pp < 1:
        _fail("--tp and --pp must be at least 1")
    spec = {
        "model": {"name": a.model},
        "quantization": a.quant,
        "parallelism": {"tensor": a.tp, "pipeline": a.pp},
        "gpu": {"product": gpu.product},
        "serving": {"kvCacheDtype": a.kv_cache_dtype, "gpuMemoryUtilization": a.gpu_memory_utilization},
    }
    if a.max_model_len:
        spec["serving"]["maxModelLen"] = a.max_model_len
    rep = validate(spec)
    if rep.fit is None:
        reason, message = rep.summary()
        print(f"{reason}: {message}")
        return 1
    f = rep.fit
    if a.json:
        print(json.dumps(f.__dict__, indent=2))
    else:
        print(f.message)
        for p in rep.problems:
            if p.reason != "DoesNotFit":
                print(f"{'error' if p.fatal else 'warning'}: {p.reason}: {p.message}")
    return 0 if rep.ok else 1


def _catalog() -> list[Any]:
    from ..domain.catalog_data import CATALOG

    return list(CATALOG)


def cmd_plan(a: argparse.Namespace) -> int:
    try:
        cp = size_fleet(
            FleetDemand(
                daily_users=a.daily_users,
                turns_per_user=a.turns,
                input_tokens=a.input_tokens,
                output_tokens=a.output_tokens,
                peak_factor=a.peak,
                routed_share=a.share,
                calls_per_request=a.calls_per_request,
                replica_output_tps=a.replica_tps,
                failover_replicas=a.failover,
            )
        )
    except ValueError as e:
        _fail(str(e))
    print("\n".join(cp.lines()))
    if a.acceptance is not None:
        try:
            s = expected_speedup(a.acceptance, a.k, a.t_draft, a.t_verify, a.t_plain)
        except ValueError as e:
            _fail(str(e))
        print(
            f"speculative decoding (a={a.acceptance}, K={a.k}): {s['tokens_per_step']:.2f} tokens per step, "
            f"{s['wall_per_step'] * 1000:.1f} ms per step, {s['speedup']:.2f}x decode speed"
        )
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    cmd = ["kubectl", "get", f"{PLURAL}.{GROUP}", "-o", "json"]
    cmd += ["-A"] if a.all_namespaces else (["-n", a.namespace] if a.namespace else [])
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        _fail("kubectl not found on PATH")
    if res.returncode != 0:
        _fail(f"kubectl failed: {res.stderr.strip()}")
    items = json.loads(res.stdout).get("items", [])
    rows = [("NAMESPACE", "NAME", "MODEL", "READY", "STATUS", "CONDITIONS", "LAST SCALING")]
    for it in items:
        st = it.get("status") or {}
        conds = " ".join(
            f"{c['type']}={c['status']}"
            + (f"({c['reason']})" if c["status"] != "True" or c["type"] == "Degraded" else "")
            for c in st.get("conditions", [])
        )
        auto = st.get("autoscaling") or {}
        last = f"{auto.get('lastReason')}: {auto.get('lastMessage', '')}" if auto.get("lastReason") else "-"
        rows.append(
            (
                it["metadata"]["namespace"],
                it["metadata"]["name"],
                it["spec"]["model"]["name"],
                st.get("ready", "-"),
                st.get("phase", "-"),
                conds or "-",
                last,
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) + "  " + str(r[-1]))
    return 0


def _add_fit(sub: Any) -> None:
    f = sub.add_parser("fit", help="does a model fit a GPU, with its KV cache")
    f.add_argument("model", help="model name, as in the catalog (e.g. Qwen/Qwen3-8B)")
    f.add_argument("--gpu", default="H100", help="GPU product (default %(default)s)")
    f.add_argument(
        "--quant",
        default="none",
        choices=["none", "fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "compressed-tensors"],
        help="weight quantization",
    )
    f.add_argument("--tp", type=int, default=1, help="tensor-parallel size: GPUs per pipeline stage")
    f.add_argument("--pp", type=int, default=1, help="pipeline-parallel size: pipeline stages")
    f.add_argument("--max-model-len", type=int, help="context length to fit (default: the model's)")
    f.add_argument(
        "--kv-cache-dtype",
        default="auto",
        choices=["auto", "fp8", "fp8_e4m3", "fp8_e5m2"],
        help="KV-cache data type (fp8 halves it)",
    )
    f.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=0.9,
        help="fraction of GPU memory vLLM may use (default %(default)s)",
    )
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    f.set_defaults(fn=cmd_fit)


def _add_plan(sub: Any) -> None:
    pl = sub.add_parser(
        "plan",
        help="size a fleet from users and tokens",
        description="Size a fleet: model calls/day = users x turns x share x calls per request; "
        "output tokens/s at peak = calls/day x output tokens / 86,400 s x peak.",
    )
    pl.add_argument("--daily-users", type=int, required=True, help="users per day")
    pl.add_argument("--turns", type=float, required=True, help="turns per user per day")
    pl.add_argument(
        "--calls-per-request",
        type=float,
        default=1.0,
        help="model calls per user request (agent fan-out: planning, tool calls, the answer); "
        "multiplies the load (default %(default)s)",
    )
    pl.add_argument("--input-tokens", type=float, required=True, help="input (prompt) tokens per model call")
    pl.add_argument("--output-tokens", type=float, required=True, help="output (generated) tokens per model call")
    pl.add_argument("--peak", type=float, default=5.0, help="peak / average load (default %(default)s)")
    pl.add_argument(
        "--share", type=float, default=1.0, help="fraction of turns routed to this fleet (default %(default)s)"
    )
    pl.add_argument(
        "--replica-tps",
        type=float,
        default=500.0,
        help="output tokens/s one replica sustains at the target latency (default %(default)s)",
    )
    pl.add_argument("--failover", type=int, default=1, help="replicas added for failover (default %(default)s)")
    pl.add_argument("--acceptance", type=float, help="speculative decoding acceptance rate (0..1); prints the gain")
    pl.add_argument("--k", type=int, default=3, help="speculative tokens per step (default %(default)s)")
    pl.add_argument("--t-draft", type=float, default=0.002, help="draft cost per token (s)")
    pl.add_argument("--t-verify", type=float, default=0.025, help="verify step cost (s)")
    pl.add_argument("--t-plain", type=float, help="plain decode step (s), default t-verify")
    pl.set_defaults(fn=cmd_plan)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qwenctl", description="qwen-operator's checks and plans, offline.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check QwenDeployment files")
    v.add_argument("files", nargs="+", help="YAML files with QwenDeployments (several documents each allowed)")
    v.set_defaults(fn=cmd_validate)
    r = sub.add_parser("render", help="objects the operator would create")
    r.add_argument("file", help="a YAML file with QwenDeployments")
    r.add_argument("-n", "--namespace", help="namespace to render into (default: the file's, else default)")
    r.add_argument("--skip-bake", action="store_true", help="show only what is created before the bake")
    r.set_defaults(fn=cmd_render)
    _add_fit(sub)
    _add_plan(sub)
    s = sub.add_parser("status", help="QwenDeployments with conditions")
    s.add_argument("-n", "--namespace", help="namespace (default: kubectl's current one)")
    s.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    s.set_defaults(fn=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage error
        return 2 if e.code else 0
    try:
        return int(a.fn(a))
    except UsageError as e:
        print(f"qwenctl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
