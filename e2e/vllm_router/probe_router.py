"""Probe the pinned vLLM router as local processes, without any cluster: the facts docs/routing.md reports.

    e2e/vllm_router/install-vllm-router.sh
    .venv/bin/python e2e/vllm_router/probe_router.py [--router ~/.cache/qwen-operator/vllm-router-0.1.17/bin/vllm-router]

The router's Kubernetes service discovery is pointed at a fake API server started here (a kubeconfig written to a
temporary directory, HOME moved there too, KUBERNETES_SERVICE_HOST removed), so the router can never reach a real
cluster; fake vLLM workers answer /health and the OpenAI routes. Everything listens on 127.0.0.1. It prints what
the router asked the API server, what a client gets with no worker, how pods come and go, each policy's answers
and the metric names. Takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DEFAULT_ROUTER = Path.home() / ".cache" / "qwen-operator" / "vllm-router-0.1.17" / "bin" / "vllm-router"
SELECTOR = ["app.kubernetes.io/name=qwen-vllm", "app.kubernetes.io/instance=demo"]
POLICIES = [
    "random",
    "round_robin",
    "cache_aware",
    "power_of_two",
    "consistent_hash",
    "sticky_least_loaded",
    "kv_aware",
]
CHAT = {"model": "qwen", "messages": [{"role": "user", "content": "hello"}]}


class FakeAPI:
    """Serves the pods of namespace `ns` (list and watch) and records every request the router makes."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.watchers: list[queue.Queue[dict[str, Any]]] = []
        self.requests: list[str] = []
        self.rv = 100
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_pod(self, name: str, port_ip: str, ready: bool, terminating: bool = False) -> None:
        self.rv += 1
        meta: dict[str, Any] = {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": str(self.rv),
            "labels": dict(s.split("=", 1) for s in SELECTOR),
        }
        if terminating:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {"containers": [{"name": "vllm"}]},
            "status": {
                "phase": "Running",
                "podIP": port_ip,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        kind = "MODIFIED" if name in self.pods else "ADDED"
        self.pods[name] = pod
        for w in self.watchers:
            w.put({"type": kind, "object": pod})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.requests.append(f"GET {self.path}")
                u = urlparse(self.path)
                q = parse_qs(u.query)
                if not u.path.endswith("/pods"):
                    self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                elif q.get("watch", ["false"])[0] in ("1", "true"):
                    self._watch(int(q.get("timeoutSeconds", ["290"])[0]))
                else:
                    items = list(api.pods.values())
                    self._json(200, {"kind": "PodList", "metadata": {"resourceVersion": str(api.rv)}, "items": items})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _watch(self, seconds: int) -> None:
                w: queue.Queue[dict[str, Any]] = queue.Queue()
                api.watchers.append(w)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                end = time.time() + seconds
                try:
                    while time.time() < end:
                        try:
                            data = (json.dumps(w.get(timeout=1)) + "\n").encode()
                        except queue.Empty:
                            continue
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    api.watchers.remove(w)

        return Handler


def fake_worker(name: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A vLLM stand-in: /health, /v1/models, chat and completions (answers with its own name)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.startswith("/health"):
                self._reply(200, {})
            elif self.path.startswith("/v1/models"):
                self._reply(200, {"object": "list", "data": [{"id": "qwen", "object": "model"}]})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            message = {"role": "assistant", "content": name}
            self._reply(200, {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message}]})

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as s:
        return int(s.server_address[1])


def http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
    """Status, the headers that matter, the body (first 200 characters) and the seconds it took."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            code, headers, text = r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        code, headers, text = e.code, dict(e.headers), e.read().decode(errors="replace")
    keep = {k: v for k, v in headers.items() if k.lower() in ("retry-after", "content-type")}
    return {"status": code, "headers": keep, "body": text[:200], "seconds": round(time.monotonic() - t0, 2)}


@contextmanager
def router(exe: Path, tmp: Path, api: FakeAPI, worker_port: int, *extra: str) -> Iterator[tuple[str, str]]:
    """The router with service discovery against the fake API server; yields its URL and its metrics URL."""
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "ns"}}],
                "current-context": "fake",
                "users": [{"name": "fake", "user": {"token": "fake"}}],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(HOME=str(tmp), KUBECONFIG=str(kubeconfig))
    port, mport = free_port(), free_port()
    argv = [str(exe), "--host", "127.0.0.1", "--port", str(port), "--prometheus-port", str(mport)]
    argv += ["--service-discovery", "--selector", *SELECTOR, "--service-discovery-namespace", "ns"]
    argv += ["--service-discovery-port", str(worker_port), *extra]
    log = (tmp / f"router-{port}.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                http("GET", f"{base}/liveness", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base, f"http://127.0.0.1:{mport}/metrics"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def metric_names(url: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return sorted({line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")})


def probe_no_worker(exe: Path, tmp: Path) -> dict[str, Any]:
    api = FakeAPI()
    with router(exe, tmp, api, 1) as (base, metrics):
        out: dict[str, Any] = {p: http("GET", base + p) for p in ("/liveness", "/readiness", "/health")}
        out["chat with no worker"] = http("POST", f"{base}/v1/chat/completions", CHAT)
        out["models with no worker"] = http("GET", f"{base}/v1/models")
        out["metric names"] = metric_names(metrics)
    out["api requests"] = api.requests
    return out


def probe_pods(exe: Path, tmp: Path) -> dict[str, Any]:
    """Which pods the router takes, and a request sent before the first pod is Ready (long retries)."""
    api, worker = FakeAPI(), fake_worker("w0")
    wport = worker.server_address[1]
    retries = ["--retry-max-retries", "30", "--retry-initial-backoff-ms", "1000", "--retry-max-backoff-ms", "1000"]
    retries += ["--retry-backoff-multiplier", "1.0", "--retry-jitter-factor", "0"]
    out: dict[str, Any] = {}
    with router(exe, tmp, api, int(wport), *retries) as (base, _):
        api.set_pod("demo-0", "127.0.0.1", ready=False)
        time.sleep(2)
        out["not Ready pod"] = http("GET", f"{base}/list_workers")["body"]
        held: dict[str, Any] = {}
        t = threading.Thread(target=lambda: held.update(http("POST", f"{base}/v1/chat/completions", CHAT)))
        t.start()
        time.sleep(3)
        api.set_pod("demo-0", "127.0.0.1", ready=True)
        t.join()
        out["request sent 3 s before the pod turned Ready (30 retries, 1 s apart)"] = held
        out["Ready pod"] = http("GET", f"{base}/list_workers")["body"]
        api.set_pod("demo-0", "127.0.0.1", ready=True, terminating=True)
        time.sleep(2)
        out["pod with deletionTimestamp"] = http("GET", f"{base}/list_workers")["body"]
    worker.shutdown()
    return out


def probe_policies(exe: Path, tmp: Path) -> dict[str, Any]:
    """Each policy in regular mode with two discovered workers: the answers to six requests."""
    out: dict[str, Any] = {}
    # Service discovery gives every pod the same port: the two workers are told apart by IP (127.0.0.1, .2).
    wport = free_port()
    workers = [fake_worker(f"w{i}", f"127.0.0.{i + 1}", wport) for i in range(2)]
    for policy in POLICIES:
        api = FakeAPI()
        with router(exe, tmp, api, wport, "--policy", policy) as (base, metrics):
            api.set_pod("demo-0", "127.0.0.1", ready=True)
            api.set_pod("demo-1", "127.0.0.2", ready=True)
            time.sleep(2)
            answers = [http("POST", f"{base}/v1/chat/completions", CHAT, timeout=30) for _ in range(6)]
            out[policy] = [
                json.loads(a["body"])["choices"][0]["message"]["content"]
                if a["status"] == 200
                else f"{a['status']} {a['body']}"
                for a in answers
            ]
            out["metric names"] = sorted(set(out.get("metric names", [])) | set(metric_names(metrics)))
    for w in workers:
        w.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--router", type=Path, default=DEFAULT_ROUTER)
    a = ap.parse_args()
    if not a.router.exists():
        print(f"{a.router} is missing: run e2e/vllm_router/install-vllm-router.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="probe-router-") as d:
        tmp = Path(d)
        report = {
            "no worker": probe_no_worker(a.router, tmp),
            "pods": probe_pods(a.router, tmp),
            "policies": probe_policies(a.router, tmp),
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
