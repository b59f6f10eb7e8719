"""A real Prometheus (Debian's package) as a local process, scraping given targets as the pods of a deployment.

Containers do not run in the simulated cluster, so each scrape target stands for one replica: its series carry
the `namespace` and `pod` labels the operator's queries select on (operator/qwen_operator/adapters/prometheus.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from operator_harness import wait_for


def scrape_config(namespace: str, name: str, port: int, replicas: int) -> str:
    """Prometheus config: the endpoint on ``port`` scraped once per replica label ``<name>-<i>``, every second."""
    groups = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": namespace, "pod": f"{name}-{i}"}}
        for i in range(replicas)
    ]
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "vllm", "metrics_path": "/metrics", "static_configs": groups}],
    }
    return json.dumps(cfg)


def kubernetes_sd_config(
    api_server: str, ca_file: Path, token_file: Path, namespace: str | None, interval: str = "2s"
) -> str:
    """Prometheus config that discovers the vLLM pods and the routers (of ``namespace``, or all) through the API
    server (role pod, no static targets), as a cluster's Prometheus does, and labels each series with its namespace
    and pod."""
    meta = "__meta_kubernetes_"
    relabel = [
        {"source_labels": [f"{meta}pod_label_app_kubernetes_io_name"], "regex": "qwen-vllm", "action": "keep"},
        {"source_labels": [f"{meta}pod_container_port_number"], "regex": "8000", "action": "keep"},
        {"source_labels": [f"{meta}namespace"], "target_label": "namespace"},
        {"source_labels": [f"{meta}pod_name"], "target_label": "pod"},
    ]
    sd: dict[str, object] = {
        "role": "pod",
        "api_server": api_server,
        "tls_config": {"ca_file": str(ca_file)},
        "authorization": {"credentials_file": str(token_file)},
    }
    if namespace:
        sd["namespaces"] = {"names": [namespace]}
    # The routers the operator runs (spec.routing): their in-flight count per replica, on their metrics port.
    router_relabel = [
        {"source_labels": [f"{meta}pod_label_app_kubernetes_io_name"], "regex": "qwen-router", "action": "keep"},
        {"source_labels": [f"{meta}pod_container_port_name"], "regex": "metrics", "action": "keep"},
        *relabel[2:],
    ]
    cfg = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "vllm-pods",
                "metrics_path": "/metrics",
                "kubernetes_sd_configs": [sd],
                "relabel_configs": relabel,
            },
            {
                "job_name": "router-pods",
                "metrics_path": "/metrics",
                "kubernetes_sd_configs": [sd],
                "relabel_configs": router_relabel,
            },
        ],
    }
    return json.dumps(cfg)


class Prometheus:
    def __init__(self, config: str, port: int, workdir: Path, host: str = "127.0.0.1") -> None:
        self.port, self.workdir, self.host = port, workdir, host
        (workdir / "prometheus.yml").write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("prometheus")
        assert exe, "prometheus is not on PATH (make tools builds it)"
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=open(self.workdir / "prometheus.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for("prometheus ready", self._ready, timeout=60)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


class ScriptedVllmMetrics:
    """An HTTP endpoint serving vLLM's gauges with values the test sets (for fault-injection tests that need an
    exact queue at an exact moment; the real vLLM serves them in test_autoscaling_real.py)."""

    def __init__(self) -> None:
        self.waiting = 0.0
        self.running = 0.0
        self.kv = 0.0
        self.completed = 0.0
        # Set to a Unix time: every sample carries that explicit timestamp (a stuck exporter, a federation that
        # stopped). Prometheus keeps the sample it has and answers queries with it, ever older, for 5 minutes.
        self.frozen_at: float | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                labels = '{model_name="tiny"}'
                waiting = "NaN" if outer.waiting != outer.waiting else outer.waiting  # garbage on purpose
                ts = "" if outer.frozen_at is None else f" {int(outer.frozen_at * 1000)}"
                body = (
                    f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{labels} {waiting}{ts}\n"
                    f"# TYPE vllm:num_requests_running gauge\n"
                    f"vllm:num_requests_running{labels} {outer.running}{ts}\n"
                    f"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{labels} {outer.kv}{ts}\n"
                    "# TYPE vllm:request_success_total counter\n"
                    f'vllm:request_success_total{{finished_reason="stop",model_name="tiny"}} {outer.completed}{ts}\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
