"""A real Hugging Face-compatible server for the e2e tests: olah, offline, serving local git repos.

Pods on the test node reach it through ``HF_ENDPOINT=http://<host>:<port>`` and download with the
real huggingface_hub; the test reads olah's access log to see what they fetched.

    from e2e import hf_mirror            # or: import hf_mirror, with e2e/ on sys.path
    hf_mirror.install()                  # e2e/hf/install-olah.sh (idempotent, ~15 s the first time)
    with hf_mirror.HFMirror(tmp_path / "hf", host="10.244.0.1", port=18090) as m:
        sha = m.add_model("qwen-e2e/tiny-qwen3", model_dir)     # a git repo, reproducible commit
        since = m.log_offset()
        ...                                                     # pods download from m.endpoint
        assert m.file_downloads("qwen-e2e/tiny-qwen3", since) == ["config.json", ...]

Olah serves ``<mirrors>/models/<org>/<name>`` (a plain, non-bare git repo, no LFS needed: a file is
taken for an LFS pointer only if it is 121-149 bytes and reads like one). It reads the repo on every
request, so add_model()/add_commit() also work while it runs. Absent repos and unknown revisions
answer 401 (huggingface_hub: RepositoryNotFoundError); so does /api/models/<repo> without a
revision, offline. Version: olah 0.5.4 in ``$QWEN_OLAH_VENV`` or
``~/.cache/qwen-operator/olah-0.5.4/``. Standard library only.

olah has no gated repositories (its only access control is allow/deny rules, answered as a missing repo), and no
offline HF-compatible server on PyPI has them, so ``HubGate`` puts the Hub's gating in front of it: downloads of a
gated repo answer 401 (no token) or 403 (a token without access) with ``X-Error-Code: GatedRepo``, the answer
huggingface_hub maps to GatedRepoError (src/huggingface_hub/utils/_http.py, ``hf_raise_for_status``:
https://github.com/huggingface/huggingface_hub). Metadata and file lists stay public, as on the Hub since
2024-10 (https://github.com/huggingface/huggingface.js/issues/945); https://huggingface.co/docs/hub/models-gated.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

OLAH_VERSION = "0.5.4"
HERE = Path(__file__).resolve().parent
INSTALL_SCRIPT = HERE / "hf" / "install-olah.sh"
START_TIMEOUT = 60.0

# Fixed identity and dates: the same files give the same commit sha on every run and machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "qwen-operator e2e",
    "GIT_AUTHOR_EMAIL": "e2e@qwen-operator.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+0000",
    "GIT_COMMITTER_NAME": "qwen-operator e2e",
    "GIT_COMMITTER_EMAIL": "e2e@qwen-operator.invalid",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+0000",
    # no user/system config: signing, hooks paths, autocrlf... would change or break the commit
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

# uvicorn's access line, which olah's stdout logger prefixes with "<date> <time> | INFO | stdout | ":
#   INFO:     127.0.0.1:55408 - "GET /org/name/resolve/<sha>/f HTTP/1.1" 200 OK
_ACCESS = re.compile(r'\bINFO:\s+(?P<client>\S+) - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


class OlahNotInstalled(RuntimeError):
    """The olah virtualenv is missing; run e2e/hf/install-olah.sh (or install())."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent: URL-quoted, with any query string
    status: int
    client: str = ""  # ip:port, tells pods apart


def venv_dir() -> Path:
    return Path(os.environ.get("QWEN_OLAH_VENV") or Path.home() / ".cache" / "qwen-operator" / f"olah-{OLAH_VERSION}")


def olah_cli() -> Path:
    """The venv's olah-cli; raises OlahNotInstalled (with the fix) when it is not there."""
    cli = venv_dir() / "bin" / "olah-cli"
    if not cli.exists():
        raise OlahNotInstalled(f"olah {OLAH_VERSION} is not installed in {venv_dir()}. Run: {INSTALL_SCRIPT}")
    return cli


def install(timeout: float = 900) -> Path:
    """Run e2e/hf/install-olah.sh (a no-op when installed); return the venv."""
    r = subprocess.run([str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise OlahNotInstalled(f"{INSTALL_SCRIPT} failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-4000:]}")
    olah_cli()  # the script said yes; check the venv it left
    return venv_dir()


def git(repo: Path, *args: str) -> str:
    r = subprocess.run(
        ["git", "-C", str(repo), *args], env={**os.environ, **GIT_ENV}, capture_output=True, text=True, timeout=120
    )
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout.strip()


class HFMirror:
    """olah on host:port serving the repos added here, with its files under workdir."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int = 18090) -> None:
        self.workdir = Path(workdir).resolve()
        self.host, self.port = host, port
        self.mirrors = self.workdir / "mirrors"
        self.log_path = self.workdir / "olah.log"
        self.repo_ids: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def repo_dir(self, repo_id: str) -> Path:
        org, name = repo_id.split("/")  # olah's local mirrors are <type>/<org>/<name>
        return self.mirrors / "models" / org / name

    # ---- content

    def add_model(self, repo_id: str, src_dir: Path) -> str:
        """Copy src_dir into the mirror as a one-commit git repo on main; return the commit sha.

        Replaces a repo of that id. Built beside its place and renamed in, so a running olah never
        sees it half-made.
        """
        dest = self.repo_dir(repo_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
        try:
            shutil.copytree(src_dir, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
            git(tmp, "init", "-q", "-b", "main")
            git(tmp, "add", "-A")
            git(tmp, "commit", "-q", "-m", f"add {repo_id}")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if repo_id not in self.repo_ids:
            self.repo_ids.append(repo_id)
        return git(dest, "rev-parse", "HEAD")

    def add_commit(self, repo_id: str, files: Mapping[str, bytes | None], branch: str = "main") -> str:
        """Commit files (path -> content; None deletes) on branch, made from main if new; return the sha."""
        repo = self.repo_dir(repo_id)
        exists = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "-q", "--verify", f"refs/heads/{branch}"], capture_output=True
        )
        git(repo, "switch", "-q", *([branch] if exists.returncode == 0 else ["-c", branch, "main"]))
        try:
            for rel, data in files.items():
                path = repo / rel
                if data is None:
                    git(repo, "rm", "-q", "--", rel)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                git(repo, "add", "--", rel)
            git(repo, "commit", "-q", "--allow-empty", "-m", f"update {', '.join(files)}")
            return git(repo, "rev-parse", "HEAD")
        finally:
            git(repo, "switch", "-q", "main")  # keep the work tree at main, like a fresh add_model

    # ---- process

    def config(self) -> str:
        """olah's TOML. mirror-netloc only feeds olah's index page: clients get relative URLs."""
        s = json.dumps  # TOML basic strings take JSON's escapes
        return "\n".join(
            [
                "[basic]",
                f"host = {s(self.host)}",
                f"port = {self.port}",
                f"repos-path = {s(str(self.workdir / 'repos'))}",
                f"mirrors-path = [{s(str(self.mirrors))}]",
                f"mirror-netloc = {s(f'{self.host}:{self.port}')}",
                "[accessibility]",
                "offline = true",  # never ask huggingface.co: unknown repos are 401, not fetched
                "",
            ]
        )

    def start(self, timeout: float = START_TIMEOUT) -> HFMirror:
        """Start olah and wait until it serves the first added repo's main (or answers at all)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        cli = olah_cli()
        self.mirrors.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "olah.toml"
        cfg.write_text(self.config())
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("HF_", "HTTP_PROXY", "HTTPS_PROXY"))}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(cli), "-c", str(cfg)],
                cwd=self.workdir,  # olah writes ./logs there
                env={**env, "PYTHONUNBUFFERED": "1"},  # access lines reach the log as they happen
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        # offline, GET /api/models/<repo> without a revision answers 401: ask for main. With no
        # repo, any answer will do (olah's index page is a 500 from the pip package).
        path = f"/api/models/{self.repo_ids[0]}/revision/main" if self.repo_ids else "/"
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"olah exited with {self.proc.returncode} before it was up{self.log_tail()}")
            status = self.http_get(path)[0]
            if status == 200 or (status and not self.repo_ids):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"olah on {self.endpoint} did not answer {path} in {timeout:.0f} s{self.log_tail()}")
            time.sleep(0.3)

    def http_get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        """GET endpoint+path; (0, b"") when nothing answers. No proxies: the server is local."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.endpoint + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM olah's process group, SIGKILL after timeout; return its exit code."""
        if self.proc is None:
            return None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)  # start_new_session: group id == pid
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        return self.proc.poll()

    def __enter__(self) -> HFMirror:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- access log

    def log_offset(self) -> int:
        """Where the log ends now: pass it as `since` to see only what comes after."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def requests(self, since: int = 0) -> list[Request]:
        """The HTTP requests olah logged after byte offset `since` (complete lines only)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines(keepends=True):
            m = _ACCESS.search(line)
            if m and line.endswith("\n"):  # a line still being written is left for the next call
                out.append(Request(m["method"], m["path"], int(m["status"]), m["client"]))
        return out

    def file_downloads(self, repo_id: str, since: int = 0) -> list[str]:
        """Files of repo_id downloaded (GET .../resolve/<rev>/<file>, 2xx) after `since`, in order."""
        prefix = f"/{repo_id}/resolve/"
        out = []
        for r in self.requests(since):
            path = r.path.split("?", 1)[0]
            if r.method == "GET" and 200 <= r.status < 300 and path.startswith(prefix):
                _rev, _, file = path[len(prefix) :].partition("/")
                out.append(urllib.parse.unquote(file))
        return out

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return f"\n--- last {len(lines)} lines of {self.log_path} ---\n" + "\n".join(lines)


# ---- gating in front of olah


@dataclass(frozen=True)
class GateDecision:
    method: str
    path: str
    status: int  # what the gate answered: 401/403 refused, else the upstream's status
    authorized: bool  # whether the request carried a token (never the token itself)


# The token the e2e tests grant on a gated repository: a test value, never a real credential.
TEST_GRANTED_TOKEN = "hf_e2e_granted_0123456789"


class HubGate:
    """A reverse proxy on host:port in front of ``upstream`` (an HFMirror) that gates the downloads of some repos.

    ``gated`` maps a repo id to the tokens granted access. A download (``/<repo>/resolve/...``) of a gated repo
    without ``Authorization: Bearer <token>`` answers 401, with a token not granted 403, both with the Hub's
    ``X-Error-Code: GatedRepo``; everything else is forwarded as it is. ``decisions`` records what was answered.
    """

    def __init__(self, upstream: HFMirror, gated: Mapping[str, set[str]], host: str, port: int) -> None:
        self.upstream, self.gated = upstream, {k: set(v) for k, v in gated.items()}
        self.host, self.port = host, port
        self.decisions: list[GateDecision] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def refusal(self, method: str, path: str, authorization: str | None) -> tuple[int, str] | None:
        """(status, message) when the Hub would refuse this request, else None."""
        for repo, tokens in self.gated.items():
            if method in ("GET", "HEAD") and path.split("?", 1)[0].startswith(f"/{repo}/resolve/"):
                if not authorization:
                    return (
                        401,
                        f"Access to model {repo} is restricted. You must have access to it and be authenticated.",
                    )
                if authorization.removeprefix("Bearer ").strip() not in tokens:
                    return 403, f"Access to model {repo} is restricted and you are not in the authorized list."
        return None

    def _record(self, d: GateDecision) -> None:
        with self._lock:
            self.decisions.append(d)

    def start(self) -> HubGate:
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve()

            def do_HEAD(self) -> None:
                self._serve()

            def _serve(self) -> None:
                auth = self.headers.get("Authorization")
                refused = gate.refusal(self.command, self.path, auth)
                if refused is not None:
                    status, message = refused
                    body = json.dumps({"error": message}).encode()
                    self.send_response(status)
                    for k, v in (("X-Error-Code", "GatedRepo"), ("X-Error-Message", message)):
                        self.send_header(k, v)
                    self._send_body(body, "application/json")
                else:
                    status = self._forward()
                gate._record(GateDecision(self.command, self.path, status, auth is not None))

            def _forward(self) -> int:
                conn = http.client.HTTPConnection(gate.upstream.host, gate.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, headers=headers)
                r = conn.getresponse()
                body = r.read()  # the e2e files are small: whole bodies, sent with a length
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", r.getheader("Content-Length") or "0")
                    self.end_headers()
                else:
                    self._send_body(body, None)
                conn.close()
                return r.status

            def _send_body(self, body: bytes, content_type: str | None) -> None:
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # decisions are recorded instead
                pass

        self._server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="hub-gate", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubGate:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def refused(self, repo_id: str) -> list[GateDecision]:
        with self._lock:
            return [d for d in self.decisions if d.status in (401, 403) and f"/{repo_id}/" in d.path]
