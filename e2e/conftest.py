"""Fixtures of the end-to-end suite: a real Kubernetes API, any kubeconfig.

The cluster is whatever ``KUBECONFIG_E2E`` (or ``QWEN_E2E_KUBECONFIG``) points at; when neither is set,
the local cluster of ``e2e/cluster/cluster.sh`` is started (or reused) and used.

Fixtures:
  kubeconfig     (session) Path of the kubeconfig; also exported as KUBECONFIG, and the tools dir
                 (kubectl, helm, kwokctl...) is put first on PATH, for subprocesses.
  kubectl        (session) kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess (text).
  kube           (session) kubernetes.client.ApiClient for the kubeconfig.
  namespace      (function) a fresh namespace (name str) deleted after the test, without waiting.
  local_cluster  (session) LocalCluster: audit log, node helpers; ``.is_local`` False for a foreign cluster.
  wait_until     (session) wait_until(predicate, timeout=60, interval=0.5, message="") -> predicate's value.
  operator       (session) the real operator as a local process (operator_harness.py); registered here only,
                 so that the whole session shares one operator.
Every test under e2e/ gets the ``e2e`` marker.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from audit_log import AuditMark, events_since, mark

E2E_DIR = Path(__file__).resolve().parent
CLUSTER_DIR = E2E_DIR / "cluster"
CLUSTER_SH = CLUSTER_DIR / "cluster.sh"
BUILD_TOOLS_SH = CLUSTER_DIR / "build-tools.sh"
NAMESPACE_LABEL = "qwen-operator.e2e/test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if E2E_DIR == path or E2E_DIR in path.parents:
            item.add_marker(pytest.mark.e2e)


def tools_bin_dir() -> Path:
    """The directory of the locally built tools (it may not exist yet)."""
    out = subprocess.run([str(BUILD_TOOLS_SH), "--print-dir"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def external_kubeconfig() -> Path | None:
    for var in ("KUBECONFIG_E2E", "QWEN_E2E_KUBECONFIG"):
        value = os.environ.get(var)
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise pytest.UsageError(f"{var}={value}: no such kubeconfig file")
            return path
    return None


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (
            f"kubectl {' '.join(map(str, self.cmd[1:]))} exited {self.returncode}\n"
            f"stderr: {self.stderr}\nstdout: {self.stdout}"
        )


@dataclass
class LocalCluster:
    """The local kwok cluster, or a stand-in describing a foreign cluster (is_local False)."""

    kubeconfig: Path
    is_local: bool
    audit_log: Path | None = None
    tools_bin: Path | None = None
    _user_kubeconfigs: dict[str, Path] = field(default_factory=dict)

    def _sh(self, *args: str, timeout: float = 300) -> str:
        if not self.is_local:
            raise RuntimeError("this needs the local cluster of e2e/cluster/cluster.sh")
        out = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{out.stderr}")
        return out.stdout.strip()

    def delete_node(self, name: str) -> None:
        """Delete a simulated node (as if the machine went away). kube-controller-manager's pod garbage
        collector deletes the pods bound to it about 40 s later, as on a real cluster."""
        self._sh("delete-node", name)

    def add_node(self, name: str) -> None:
        """(Re)create a node of e2e/cluster/nodes.yaml with its GPU capacity; returns once it is Ready."""
        self._sh("add-node", name)

    def restart(self, down_s: int = 5) -> None:
        """Stop the whole control plane (etcd included) for ``down_s`` seconds and start it again on the same
        state; returns once the apiserver is ready and the controllers run."""
        self._sh("restart", str(down_s), timeout=240)

    def pause_etcd(self, seconds: int) -> None:
        """Freeze etcd (SIGSTOP) for ``seconds``: the apiserver is up but every read and write stalls."""
        self._sh("pause-etcd", str(seconds), timeout=seconds + 60)

    def reset_nodes(self) -> None:
        """Re-apply every node of nodes.yaml (labels, taints, capacity)."""
        self._sh("nodes")

    def user_kubeconfig(self, user: str, *groups: str) -> Path:
        """A kubeconfig for client-certificate user ``user`` (default group system:masters): its requests
        carry that user name in the audit log."""
        key = "\0".join((user, *groups))
        if key not in self._user_kubeconfigs:
            self._user_kubeconfigs[key] = Path(self._sh("user-kubeconfig", user, *groups))
        return self._user_kubeconfigs[key]

    def audit_events(self, since: AuditMark | None = None) -> list[dict[str, Any]]:
        """Audit events (dicts) written after ``since`` (from audit_mark()), across a rotation of the log."""
        if self.audit_log is None:
            raise RuntimeError("no audit log for a foreign cluster")
        return events_since(self.audit_log, since or AuditMark(0, 0))

    def audit_mark(self) -> AuditMark:
        """Where the audit log ends now: pass it to audit_events() to see only later events."""
        if self.audit_log is None:
            raise RuntimeError("no audit log for a foreign cluster")
        return mark(self.audit_log)


@pytest.fixture(scope="session")
def local_cluster() -> LocalCluster:
    bin_dir = tools_bin_dir()
    if bin_dir.is_dir():
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    ext = external_kubeconfig()
    if ext is not None:
        cluster = LocalCluster(kubeconfig=ext, is_local=False, tools_bin=bin_dir if bin_dir.is_dir() else None)
    else:
        # Starts the cluster, or reuses a healthy one; builds the tools first if they are missing.
        up = subprocess.run([str(CLUSTER_SH), "up"], capture_output=True, text=True)
        if up.returncode != 0:
            raise RuntimeError(f"e2e/cluster/cluster.sh up failed:\n{up.stderr[-4000:]}")
        path = Path(up.stdout.strip().splitlines()[-1])
        audit = subprocess.run(
            [str(CLUSTER_SH), "audit-log"], check=True, capture_output=True, text=True
        ).stdout.strip()
        bin_dir = tools_bin_dir()
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        cluster = LocalCluster(kubeconfig=path, is_local=True, audit_log=Path(audit), tools_bin=bin_dir)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    return cluster


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: LocalCluster) -> Path:
    return local_cluster.kubeconfig


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(kubeconfig), *map(str, args)]
        try:
            out = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise RuntimeError("kubectl not found: run e2e/cluster/build-tools.sh or put kubectl on PATH") from None
        if check and out.returncode != 0:
            raise KubectlError(out.returncode, cmd, out.stdout, out.stderr)
        return out

    return run


@pytest.fixture(scope="session")
def kube(kubeconfig: Path):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    def wait(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5, message: str = "") -> Any:
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except Exception as exc:
                last_exc = exc
            if time.monotonic() > deadline:
                detail = f" (last error: {last_exc!r})" if last_exc else ""
                raise AssertionError(f"timed out after {timeout}s: {message or predicate}{detail}")
            time.sleep(interval)

    return wait


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube, wait_until) -> str:
    from kubernetes import client

    core = client.CoreV1Api(kube)
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{stem}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"})))
    # Pods are refused until the service account controller made the namespace's default account
    # (the ServiceAccount admission plugin is on), as on any real cluster.
    wait_until(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        message=f"default ServiceAccount in {name}",
    )
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status != 404:
            raise


# Registered here, once: a session fixture imported into several test modules gets one instance per module.
from operator_harness import operator  # noqa: E402,F401
