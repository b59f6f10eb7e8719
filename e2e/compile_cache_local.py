"""Run the operator's rendered bake Job and serving pod as local processes with a real vLLM (CPU build).

Kubernetes is simulated in the local cluster (containers never run), so the compile-cache proof executes the
exact container command, args, env and mount paths the operator renders: the bake Job's `/bin/sh -c BAKE_SCRIPT`,
the serving pod's init container (`cp -a` from the baked PVC) and its `vllm serve` container. Substitutions, and
only these: the `vllm` command is a shim that starts the local vLLM install (its CPU build has no working `vllm`
entry point), the model id becomes the tiny local Qwen3 (served under the original name), and the volume mount
paths become local directories. The cache root path is the same for bake and serve, as in the pods.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import vllm_local as vl

from qwen_operator.domain.vllm_args import HF_HOME, VLLM_CACHE_ROOT, VLLM_PORT
from qwen_operator.manifests.cache import detect_cache_hit
from qwen_operator.manifests.workload import CACHE_SRC_MOUNT

HERE = Path(__file__).resolve().parent
# The pods listen on VLLM_PORT; locally a free port stands in for it (nothing else on the machine may hold 8000).
LOCAL_PORT = vl.free_port()
_SECONDS = {
    "engine_init_s": re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s"),
    "compile_total_s": re.compile(r"torch\.compile took ([\d.]+) s in total"),
    "dynamo_s": re.compile(r"Dynamo bytecode transform time: ([\d.]+) s"),
    "weights_s": re.compile(r"Loading weights took ([\d.]+) seconds"),
}

SHIM = """#!{python}
import os, sys
os.environ["QWEN_VLLM_VENV"] = {venv!r}  # HOME is the pod's, not the machine's
sys.path.insert(0, {e2e!r})
import vllm_local as vl
args = sys.argv[1:]
if not args or args[0] != "serve":
    sys.exit("vllm shim: only 'vllm serve' is supported")
argv = vl.server_argv(["vllm", "serve", *args[1:]], port={port}, model_dir={model!r})
env = vl.subprocess_env(None)
py = str(vl.vllm_python())
os.execve(py, [py, "-m", vl.SERVER_MODULE, *argv], env)
"""


_HASH_DIR = re.compile(r"torch_aot_compile/([0-9a-f]{16,})/")
_LOAD_ATTEMPT = re.compile(
    r"(Directly load AOT compilation from path|load failure from) \S*torch_aot_compile/([0-9a-f]+)/"
)


def aot_hash_dirs(log: str) -> dict[str, list[str]]:
    """vLLM's compile hash directories, as its log names them: where it saved artifacts and where it tried to
    load them from (a load attempt means vLLM found an artifact for exactly this hash)."""
    saved = sorted(
        {
            m.group(1)
            for m in re.finditer(
                r"saved AOT compiled function to \S*torch_aot_compile/"
                r"([0-9a-f]+)/",
                log,
            )
        }
    )
    loaded = sorted({m.group(2) for m in _LOAD_ATTEMPT.finditer(log)})
    return {"saved": saved, "load_attempted": loaded}


@dataclass
class RunResult:
    role: str
    rc: int | None
    seconds_to_healthy: float | None
    log_path: str
    hit: bool | None
    evidence: str
    timings: dict[str, float] = field(default_factory=dict)
    cache_files: int = 0
    hash_dirs: dict[str, list[str]] = field(default_factory=dict)
    inductor_entries_before: int = 0
    inductor_entries_after: int = 0


def _env(container: dict[str, Any], dirs: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    env.update({"HOME": str(dirs["home"]), "HF_HOME": str(dirs["hf"]), "VLLM_CACHE_ROOT": str(dirs["cache"])})
    env.update(vl.DEFAULT_ENV)
    env["PATH"] = f"{dirs['bin']}:{env.get('PATH', '')}"
    return env


def _localize(text: str, dirs: dict[str, Path]) -> str:
    return (
        text.replace(CACHE_SRC_MOUNT, str(dirs["pvc"]))
        .replace(VLLM_CACHE_ROOT, str(dirs["cache"]))
        .replace(HF_HOME, str(dirs["hf"]))
    )


def _timings(log: str) -> dict[str, float]:
    out = {}
    for k, pat in _SECONDS.items():
        m = pat.findall(log)
        if m:
            out[k] = float(m[-1])
    return out


def _inductor_entries(dirs: dict[str, Path]) -> int:
    """Compiled-kernel/graph entries in the inductor caches under the cache root (a compile adds entries;
    a cache hit adds none)."""
    n = 0
    for ic in dirs["cache"].rglob("inductor_cache"):
        n += sum(1 for p in ic.rglob("*") if p.is_file() and "locks" not in p.parts)
    return n


def _count_files(d: Path) -> int:
    return sum(1 for p in d.rglob("*") if p.is_file()) if d.exists() else 0


def prepare(work: Path) -> dict[str, Path]:
    dirs = {k: work / k for k in ("home", "hf", "cache", "pvc", "bin", "logs")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    model = vl.ensure_tiny_model()
    shim = dirs["bin"] / "vllm"
    shim.write_text(
        SHIM.format(python=sys.executable, e2e=str(HERE), port=LOCAL_PORT, model=str(model), venv=str(vl.venv_dir()))
    )
    shim.chmod(0o755)
    return dirs


def run_bake(job: dict[str, Any], dirs: dict[str, Path], timeout: float = 900) -> RunResult:
    """The bake Job's container, as rendered; then the cache dir becomes the 'PVC'."""
    c = job["spec"]["template"]["spec"]["containers"][0]
    log_path = dirs["logs"] / "bake.log"
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        cmd = [a.replace(f"127.0.0.1:{VLLM_PORT}/", f"127.0.0.1:{LOCAL_PORT}/") for a in c["command"]]
        r = subprocess.run(
            [*cmd, *c["args"]],
            env=_env(c, dirs),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            start_new_session=True,
        )
    seconds = time.monotonic() - t0
    text = log_path.read_text(errors="replace")
    hit, evidence = detect_cache_hit(text)
    res = RunResult(
        "bake",
        r.returncode,
        seconds if r.returncode == 0 else None,
        str(log_path),
        hit,
        evidence,
        _timings(text),
        _count_files(dirs["cache"]),
        aot_hash_dirs(text),
        0,
        _inductor_entries(dirs),
    )
    # The PVC holds what the bake wrote; the pod-local cache dir starts empty, as an emptyDir does.
    shutil.rmtree(dirs["pvc"])
    shutil.copytree(dirs["cache"], dirs["pvc"], symlinks=True)
    shutil.rmtree(dirs["cache"])
    dirs["cache"].mkdir()
    return res


def run_serve(sts: dict[str, Any], dirs: dict[str, Path], role: str = "serve", timeout: float = 600) -> RunResult:
    """Init container (seed from the PVC) then the vLLM container until healthy; stop it; read its log."""
    pod = sts["spec"]["template"]["spec"]
    env_base = _env(pod["containers"][0], dirs)
    for init in pod.get("initContainers", []):
        cmd = [_localize(a, dirs) for a in init["command"]]
        subprocess.run(cmd, env=env_base, check=True, timeout=300, capture_output=True)
    c = pod["containers"][0]
    before = _inductor_entries(dirs)
    log_path = dirs["logs"] / f"{role}.log"
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*c["command"], *c["args"]], env=_env(c, dirs), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        vl.wait_healthy(LOCAL_PORT, timeout=timeout, proc=proc, log_path=log_path)
        seconds: float | None = time.monotonic() - t0
    except Exception:
        seconds = None
    finally:
        vl.stop_server(proc)
    text = log_path.read_text(errors="replace")
    hit, evidence = detect_cache_hit(text)
    return RunResult(
        role,
        proc.returncode,
        seconds,
        str(log_path),
        hit,
        evidence,
        _timings(text),
        _count_files(dirs["cache"]),
        aot_hash_dirs(text),
        before,
        _inductor_entries(dirs),
    )


def as_dict(r: RunResult) -> dict[str, Any]:
    return asdict(r)


def dump(results: list[RunResult], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))
