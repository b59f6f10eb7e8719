"""Run the operator (and the local volume provisioner) against the e2e cluster: a pod installed by Helm, or a process.

On the local cluster the session's operator is a pod (real_node.PodOperator); OperatorProcess runs it as a local
process, as Kopf's own kopf.testing.KopfRunner does, for tests of specific identities (test_00_helm_rbac) and for
foreign clusters. Either can be SIGKILLed and started again. The `operator` fixture is registered once, in
e2e/conftest.py; test modules import only the helpers (importing a session fixture into several modules makes
pytest run one instance per module, and cluster-wide operators would then fight over the same objects):
    from operator_harness import wait_for, get_qd, condition
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_log import AuditMark

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "qwendeployments.yaml"
LOG_DIR = Path(os.environ.get("QWEN_E2E_LOGS", "/tmp/qwen-e2e-logs"))
# The session operator reads vLLM metrics from here; the autoscaling test starts a real Prometheus on it.
PROMETHEUS_PORT = int(os.environ.get("QWEN_E2E_PROMETHEUS_PORT", "19090"))
# The local-process operator's identity (a client certificate), so the audit log can attribute its calls.
OPERATOR_USER = "qwen-operator-e2e"


def die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no operator outlives its pytest run."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    def __init__(self, kubeconfig: Path, extra_env: dict[str, str] | None = None, name: str = "operator") -> None:
        self.kubeconfig = kubeconfig
        self.extra_env = extra_env or {}
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{name}.log"
        self.metrics_port = _free_port()

    def start(self) -> None:
        if self.alive():
            return
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT / "operator"),
            "QWEN_RESYNC_SECONDS": "5",
            "QWEN_METRICS_PORT": str(self.metrics_port),
            "QWEN_HEALTH_PORT": "0",
            "QWEN_PROMETHEUS_URL": f"http://127.0.0.1:{PROMETHEUS_PORT}",
            "QWEN_AUTOSCALE_TICK_SECONDS": "1",
            **self.extra_env,
        }
        log = open(self.log_path, "ab")
        log.write(f"\n===== {self.name} started at {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwen_operator.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # Who the operator is in the audit log: a client certificate of its own (see the `operator` fixture).
    audit_user = OPERATOR_USER
    # Where a Prometheus the operator reads must listen (QWEN_PROMETHEUS_URL above).
    prometheus_host = "127.0.0.1"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a counter/gauge from the operator's own /metrics (0 when absent)."""
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        return sum_metric(text, name, labels)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def sum_metric(text: str, name: str, labels: dict[str, str]) -> float:
    """Sum of the samples of ``name`` in a Prometheus text exposition whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def kubectl_json(*args: str, check: bool = True) -> Any:
    res = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        if check:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr}")
        return None
    return json.loads(res.stdout)


def kubectl_run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["kubectl", *args], capture_output=True, text=True, input=input, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr}")
    return res


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 120, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def get_qd(namespace: str, name: str) -> dict[str, Any]:
    return kubectl_json("-n", namespace, "get", "qwendeployments.qwenops.dev", name)


def condition(qd: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (qd.get("status") or {}).get("conditions", []) or []:
        if c["type"] == ctype:
            return c
    return None


def cond_is(
    namespace: str, name: str, ctype: str, status: str, reason: str | None = None
) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        qd = get_qd(namespace, name)
        c = condition(qd, ctype)
        if c and c["status"] == status and (reason is None or c["reason"] == reason):
            return qd
        return None

    return check


WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def operator_writes(
    operator: Any, local_cluster: Any, since: AuditMark, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The operator's completed write calls in the apiserver's audit log after the mark ``since`` (in
    ``namespace`` when given)."""
    user = operator.audit_user
    return [
        e
        for e in local_cluster.audit_events(since)
        if e.get("user", {}).get("username") == user
        and e.get("stage") == "ResponseComplete"
        and e.get("verb") in WRITE_VERBS
        and (namespace is None or e.get("objectRef", {}).get("namespace") == namespace)
    ]


def wait_operator_quiet(
    operator: Any, local_cluster: Any, namespace: str | None = None, quiet_s: float = 3.0, timeout: float = 60
) -> AuditMark:
    """Wait until the operator made no write (in ``namespace``) for ``quiet_s`` seconds, and return the audit
    mark from then on. A condition seen True is written before that transition's Event, so a test that measures
    "what comes next" must first let the tail of the last reconcile land."""
    deadline = time.monotonic() + timeout
    since = local_cluster.audit_mark()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = local_cluster.audit_mark()
        if operator_writes(operator, local_cluster, since, namespace):
            quiet_since = time.monotonic()
        since = now
        if time.monotonic() - quiet_since >= quiet_s:
            return since
    raise AssertionError(f"the operator kept writing{f' in {namespace}' if namespace else ''} for {timeout}s")


@pytest.fixture(scope="session")
def operator(kubeconfig: Path, local_cluster: Any) -> Iterator[Any]:
    """CRD installed, local provisioner and the operator running, for the whole session.

    On the local cluster the operator is the product as a user runs it: a pod from its own image, installed by
    `helm install charts/qwen-operator` on the real node, under the chart's ServiceAccount and RBAC
    (real_node.PodOperator). On a foreign cluster (no real node to import the image into) it is a local process with
    a client certificate of its own. Both offer the same interface: start, stop (SIGKILL included), alive, metric,
    log_text, audit_user, prometheus_host."""
    kubectl_run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl_run("wait", "--for=condition=Established", "crd/qwendeployments.qwenops.dev", "--timeout=60s")
    prov_log = open(LOG_DIR / "provisioner.log", "ab") if LOG_DIR.mkdir(parents=True, exist_ok=True) is None else None
    prov = subprocess.Popen(
        [sys.executable, str(ROOT / "e2e" / "cluster" / "local_provisioner.py")],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=prov_log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    op = _session_operator(kubeconfig, local_cluster)
    try:
        op.start()
        yield op
    finally:
        if hasattr(op, "release"):
            (LOG_DIR / "operator-session-pod.log").write_text(op.log_text())
        op.stop()
        prov.terminate()
        prov.wait(timeout=10)


def _session_operator(kubeconfig: Path, local_cluster: Any) -> Any:
    if not local_cluster.is_local:
        return OperatorProcess(kubeconfig)
    import real_node

    image = real_node.build_and_load("operator")["operator"]
    namespace, release = real_node.SESSION_RELEASE
    return real_node.PodOperator(
        image,
        namespace=namespace,
        release=release,
        prometheus_url=f"http://{real_node.NODE_IP}:{PROMETHEUS_PORT}",
        autoscale_tick_seconds=1,
    )


def apply_qd(namespace: str, name: str, spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    doc = {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kubectl_run("apply", "-f", "-", input=json.dumps(doc), check=False)
