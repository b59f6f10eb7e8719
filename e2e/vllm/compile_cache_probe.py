"""Measure vLLM's torch.compile cache with the real server (CPU build) and the tiny Qwen3.

Runs in the MAIN environment (stdlib only); the server runs in the vLLM venv through
e2e/vllm_local.py. Each scenario starts `python -m vllm.entrypoints.openai.api_server` with
VLLM_CACHE_ROOT=<cache root>, waits for /health, sends one completion, stops the server, and reads
vLLM's own log lines (LOG_PATTERNS) and the files under the cache root.

    python3 e2e/vllm/compile_cache_probe.py --out /tmp/probe.json [--cache-root DIR]
        [--scenarios cold,warm,force_aot,env_change,max_num_seqs,no_hash_change,fresh_force_aot]
        [--log-dir DIR] [--port 18123]

Scenarios run in the order given and share the cache root (so "cold" must come first for a cold
measurement; the cache root is emptied first unless --keep-cache). Output: one JSON document with,
per scenario, the argv/env, time to healthy, engine-init time, the log lines matched, the hash
directories that appeared, and (at the end) the tree of the cache root. The benchmark can reuse
run_scenario() and parse_log().
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import vllm_local as vl

# Exact vLLM 0.32.0 log formats (printf-style in vLLM's source) turned into regexes. Keys are
# what the operator's cache-hit detector can use. The (mode 3) lines come from the VLLM_COMPILE
# backend (GPU default); the CPU platform runs mode 2 (DYNAMO_TRACE_ONCE) and only prints the AOT
# lines, engine init and profiling lines.
LOG_PATTERNS: dict[str, str] = {
    # AOT artifact (VLLM_USE_AOT_COMPILE=1, the default on torch >= 2.10): decorators.py
    "aot_loaded": r"Directly load AOT compilation from path (?P<path>\S+)",
    "aot_load_failed": r"Compiling model again due to a load failure from (?P<path>\S+), reason: (?P<reason>.*)",
    "aot_saved": r"saved AOT compiled function to (?P<path>\S+)",
    "aot_save_failed": r"unable to save AOT compiled function to (?P<path>\S+): (?P<reason>.*)",
    # VLLM_FORCE_AOT_LOAD=1: a miss (no artifact) or a failed load is raised; the engine dies with
    "aot_forced_missing": r"FileNotFoundError: \[Errno 2\] No such file or directory: '(?P<path>[^']+/rank_\d+_\d+/model)'",
    "engine_init_failed": r"RuntimeError: Engine core initialization failed\. See root cause above\.",
    # mode 3 (VLLM_COMPILE) backend: backends.py / monitor.py
    "cache_dir": r"Using cache directory: (?P<path>\S+) for vLLM's torch\.compile",
    "cache_disabled": r"vLLM's torch\.compile cache is disabled\.",
    "graph_loaded": r"Directly load the compiled graph\(s\) for compile range (?P<range>.+?) from the cache, took (?P<s>[\d.]+) s",
    "graph_compiled": r"Compiling a graph for compile range (?P<range>.+?) takes (?P<s>[\d.]+) s",
    "graph_cached": r"Cache the graph of compile range (?P<range>.+?) for later use",
    "dynamo_time": r"Dynamo bytecode transform time: (?P<s>[\d.]+) s",
    "compile_start": r"Starting torch\.compile",
    "compile_total": r"torch\.compile took (?P<s>[\d.]+) s in total",
    "compile_and_warmup_total": r"torch\.compile and initial profiling/warmup run together took (?P<s>[\d.]+) s in total",
    # every platform
    "profiling_run": r"Initial profiling/warmup run took (?P<s>[\d.]+) s",
    "warmup_start": r"Warming up model for the compilation\.\.\.",
    "warmup_done": r"Warming up done\.",
    # GPU/mode 3 adds " (compilation: X s)" (and language_model/encoder parts for multimodal)
    "engine_init": r"init engine \(profile, create kv cache, warmup model\) took (?P<s>[\d.]+) s(?: \(compilation: (?P<compile_s>[\d.]+) s)?",
    "weights_loaded": r"Loading weights took (?P<s>[\d.]+) seconds",
    "startup_complete": r"Application startup complete\.",
}
_TS = re.compile(r"(?P<md>\d\d-\d\d) (?P<hms>\d\d:\d\d:\d\d)")


def parse_log(text: str) -> dict:
    """{key: [{"line": full line, **named groups, "ts": "MM-DD HH:MM:SS" | None}]} for LOG_PATTERNS."""
    found: dict[str, list[dict]] = {}
    compiled = {k: re.compile(p) for k, p in LOG_PATTERNS.items()}
    for line in text.splitlines():
        for key, rx in compiled.items():
            m = rx.search(line)
            if m:
                ts = _TS.search(line)
                entry = {"line": line.strip(), **m.groupdict(), "ts": f"{ts['md']} {ts['hms']}" if ts else None}
                found.setdefault(key, []).append(entry)
    return found


def verdict(found: dict) -> str:
    """hit | miss | miss-after-load-failure | disabled | unknown, from the matched lines."""
    if "cache_disabled" in found:
        return "disabled"
    if "engine_init_failed" in found:
        return "engine-failed"
    if "aot_loaded" in found or ("graph_loaded" in found and "graph_compiled" not in found):
        return "hit"
    if "aot_load_failed" in found:
        return "miss-after-load-failure"
    if "aot_saved" in found or "graph_compiled" in found:
        return "miss"
    return "unknown"


def _secs(ts_a: str | None, ts_b: str | None) -> float | None:
    if not ts_a or not ts_b:
        return None
    a = time.strptime("2000-" + ts_a, "%Y-%m-%d %H:%M:%S")
    b = time.strptime("2000-" + ts_b, "%Y-%m-%d %H:%M:%S")
    return time.mktime(b) - time.mktime(a)


def hash_dirs(cache_root: Path) -> list[str]:
    """The hash-level directories, relative to cache_root.

    AOT (mode 2 on CPU, and GPU with VLLM_USE_AOT_COMPILE): torch_compile_cache/torch_aot_compile/<h>;
    mode 3 backend: torch_compile_cache/<h> (with rank_<r>_<dp>/<prefix> below).
    """
    out = set()
    tcc = cache_root / "torch_compile_cache"
    if tcc.is_dir():
        for p in tcc.iterdir():
            if p.is_dir() and p.name != "torch_aot_compile":
                out.add(str(p.relative_to(cache_root)))
        aot = tcc / "torch_aot_compile"
        if aot.is_dir():
            out.update(str(p.relative_to(cache_root)) for p in aot.iterdir() if p.is_dir())
    return sorted(out)


def tree(cache_root: Path, max_files: int = 600) -> list[dict]:
    rows = []
    for p in sorted(cache_root.rglob("*")):
        if p.is_file():
            rows.append({"path": str(p.relative_to(cache_root)), "bytes": p.stat().st_size})
            if len(rows) >= max_files:
                break
    return rows


def served_name(argv: list[str]) -> str | None:
    """The name clients use: the first --served-model-name, else the model."""
    for i, tok in enumerate(argv):
        if tok == "--served-model-name" and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith("--served-model-name="):
            return tok.split("=", 1)[1]
    return vl.split_model(argv)[0]


def run_scenario(
    name: str,
    argv: list[str],
    env: dict[str, str],
    cache_root: Path,
    log_dir: Path,
    port: int,
    timeout: float = 900,
    tmpdir: Path | None = None,
) -> dict:
    """One server start. tmpdir: TMPDIR for the server's processes.

    vLLM points TORCHINDUCTOR_CACHE_DIR at <hash>/inductor_cache, but on CPU inductor also writes
    a ~150 MB precompiled header of its C++ prelude to
    $TMPDIR/torchinductor_<user>/precompiled_headers/ (torch's default_cache_dir(), which ignores
    TORCHINDUCTOR_CACHE_DIR): outside VLLM_CACHE_ROOT, shared by every run on the machine. The
    probe gives the server a TMPDIR of its own so that "cold" is cold.
    """
    before = set(hash_dirs(cache_root))
    log_path = log_dir / f"{name}.log"
    if log_path.exists():
        log_path.unlink()
    full_env = {"VLLM_CACHE_ROOT": str(cache_root), **env}
    if tmpdir is not None:
        full_env.setdefault("TMPDIR", str(tmpdir))
    t0 = time.monotonic()
    load_before = os.getloadavg()
    proc = vl.start_server(argv, full_env, port, log_path)
    res: dict = {"name": name, "argv": argv, "env": env, "log": str(log_path)}
    try:
        try:
            res["time_to_healthy_s"] = round(vl.wait_healthy(port, timeout, proc=proc), 1)
            status, _body = vl.http_post_json(
                f"http://127.0.0.1:{port}/v1/completions",
                {"model": served_name(argv), "prompt": "Hello", "max_tokens": 8, "temperature": 0},
                timeout=120,
            )
            res["completion_status"] = status
            res["healthy"] = True
        except (RuntimeError, TimeoutError) as e:
            res["healthy"] = False
            res["error"] = str(e)[-3000:]
    finally:
        vl.stop_server(proc)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    res["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    text = log_path.read_text(errors="replace")
    found = parse_log(text)
    res["verdict"] = verdict(found)
    res["lines"] = {k: [e["line"] for e in v] for k, v in found.items()}
    if "engine_init" in found:
        res["engine_init_s"] = float(found["engine_init"][-1]["s"])
    if "warmup_start" in found and "warmup_done" in found:
        res["warmup_s_from_timestamps"] = _secs(found["warmup_start"][0]["ts"], found["warmup_done"][-1]["ts"])
    after = set(hash_dirs(cache_root))
    res["hash_dirs_new"] = sorted(after - before)
    res["hash_dirs_used"] = sorted(
        {
            str(Path(e["path"]).parent.parent.relative_to(cache_root))
            for k in ("aot_loaded", "aot_saved", "aot_load_failed")
            for e in found.get(k, [])
        }
    )
    return res


def scenarios(model: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    base = ["vllm", "serve", model, "--max-model-len", "2048", "--max-num-seqs", "16"]
    return {
        "cold": (base, {}),
        "warm": (base, {}),
        "force_aot": (base, {"VLLM_FORCE_AOT_LOAD": "1"}),
        # a variable vLLM 0.32 knows and hashes (it only relaxes a max_model_len check)
        "env_change": (base, {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}),
        # a VLLM_* name vLLM 0.32 does not know (it logs "Unknown vLLM environment variable")
        "unknown_env": (base, {"VLLM_QWEN_OPERATOR_POD": "pod-0"}),
        "max_num_seqs": (["vllm", "serve", model, "--max-model-len", "2048", "--max-num-seqs", "32"], {}),
        "no_hash_change": (base + ["--gpu-memory-utilization", "0.5", "--served-model-name", "tiny"], {}),
        "fresh_force_aot": (base + ["--max-num-batched-tokens", "4096"], {"VLLM_FORCE_AOT_LOAD": "1"}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache-root", type=Path)
    ap.add_argument("--keep-cache", action="store_true", help="do not empty the cache root first")
    ap.add_argument("--log-dir", type=Path)
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument(
        "--shared-tmp",
        action="store_true",
        help="leave TMPDIR alone (inductor's precompiled headers in /tmp are shared with other runs)",
    )
    ap.add_argument(
        "--scenarios", default="cold,warm,force_aot,env_change,unknown_env,max_num_seqs,no_hash_change,fresh_force_aot"
    )
    a = ap.parse_args(argv)

    model = str(vl.ensure_tiny_model(a.model_dir))
    cache_root = a.cache_root or Path(tempfile.mkdtemp(prefix="vllm-cache-root-"))
    if cache_root.exists() and not a.keep_cache:
        shutil.rmtree(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    log_dir = a.log_dir or cache_root.parent / (cache_root.name + "-logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    tmpdir = None
    if not a.shared_tmp:
        tmpdir = cache_root.parent / (cache_root.name + "-tmp")
        if tmpdir.exists() and not a.keep_cache:
            shutil.rmtree(tmpdir)
        tmpdir.mkdir(parents=True, exist_ok=True)
    table = scenarios(model)
    report = {"cache_root": str(cache_root), "model": model, "nproc": os.cpu_count(), "scenarios": []}
    for name in [s for s in a.scenarios.split(",") if s]:
        argv_s, env_s = table[name]
        port = a.port or vl.free_port()
        r = run_scenario(name, argv_s, env_s, cache_root, log_dir, port, a.timeout, tmpdir)
        report["scenarios"].append(r)
        print(
            f"{name:16s} healthy={r.get('healthy')} t_healthy={r.get('time_to_healthy_s')}s "
            f"engine_init={r.get('engine_init_s')}s warmup={r.get('warmup_s_from_timestamps')}s "
            f"verdict={r['verdict']} load={r['loadavg_1m_before_after']} "
            f"new_hash_dirs={[d[-12:] for d in r['hash_dirs_new']]} used={[d[-12:] for d in r['hash_dirs_used']]}",
            flush=True,
        )
        a.out.write_text(json.dumps(report, indent=2))
    report["tree"] = tree(cache_root)
    if tmpdir is not None:
        report["tmpdir"] = str(tmpdir)
        report["tmpdir_tree"] = tree(tmpdir)
    a.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
