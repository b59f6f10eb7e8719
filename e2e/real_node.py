"""Helpers for tests on the real node of the local cluster (e2e/cluster/real-node.sh): images built and loaded,
the operator installed by Helm from its own image, the tiny Qwen3 on a volume, and requests to Services.

Pods scheduled to the real node run for real (kubelet, containerd, runc); the product label QWEN-CPU-STANDIN says
what its "GPUs" are: a CPU standing in for one, running the vLLM CPU image.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from operator_harness import kubectl_json, kubectl_run, sum_metric, wait_for

ROOT = Path(__file__).resolve().parents[1]
IMAGES_SH = ROOT / "images" / "build.sh"
CLUSTER_SH = ROOT / "e2e" / "cluster" / "cluster.sh"
CHART = ROOT / "charts" / "qwen-operator"
CRD = ROOT / "crds" / "qwendeployments.yaml"
REAL_NODE = "real-0"
STANDIN_PRODUCT = "QWEN-CPU-STANDIN"
NODE_IP = "10.244.0.1"
# hostPath root of volumes prepared by tests on the real node (the local provisioner uses /var/lib/qwen-local).
MODELS_ROOT = Path("/var/lib/qwen-local/models")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Image:
    name: str
    ref: str
    archive: Path

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.ref.rsplit(":", 1)[1]


def build_and_load(*names: str, timeout: float = 1800) -> dict[str, Image]:
    """Build the images (cached by content: unchanged sources build nothing) and import them into the node."""
    out = subprocess.run([str(IMAGES_SH), *names], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"images/build.sh {' '.join(names)} failed:\n{out.stderr[-4000:]}")
    images = {}
    for line in out.stdout.splitlines():
        name, ref, archive = line.split()
        images[name] = Image(name, ref, Path(archive))
    load = subprocess.run(
        [str(CLUSTER_SH), "load-image", *(str(i.archive) for i in images.values())],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if load.returncode != 0:
        raise AssertionError(f"cluster.sh load-image failed:\n{load.stderr[-4000:]}")
    return images


def tiny_model_volume(namespace: str, model_dir: Path, name: str = "tiny-model", subdir: str = "tiny-qwen3") -> str:
    """A read-only PersistentVolume (hostPath on the real node) holding the tiny Qwen3 under ``subdir``, and its
    claim ``name`` in ``namespace``, bound. Returns the claim's name."""
    host_dir = MODELS_ROOT / namespace
    shutil.rmtree(host_dir, ignore_errors=True)
    shutil.copytree(model_dir, host_dir / subdir)
    pv_name = f"models-{namespace}"[:63]
    docs = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": {"qwen-operator.e2e/models": namespace}},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(host_dir), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": name},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    kubectl_run("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    wait_for(
        f"claim {namespace}/{name} Bound",
        lambda: (kubectl_json("-n", namespace, "get", "pvc", name).get("status") or {}).get("phase") == "Bound",
        timeout=60,
    )
    return name


def delete_model_volume(namespace: str) -> None:
    kubectl_run("delete", "pv", f"models-{namespace}"[:63], "--ignore-not-found", "--wait=false", check=False)
    shutil.rmtree(MODELS_ROOT / namespace, ignore_errors=True)


def tiny_overrides(model_dir: Path) -> dict[str, Any]:
    """spec.model.overrides from the tiny model's own config.json (the operator's catalog does not know it)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    return {
        "totalParamsB": 0.001,
        "numLayers": cfg["num_hidden_layers"],
        "numKvHeads": cfg["num_key_value_heads"],
        "numAttentionHeads": cfg["num_attention_heads"],
        "headDim": cfg["head_dim"],
        "vocabSize": cfg["vocab_size"],
        "maxContext": cfg["max_position_embeddings"],
    }


def standin_spec(image: str, model_dir: Path, claim: str, /, **extra: Any) -> dict[str, Any]:
    """A QwenDeployment spec for the tiny Qwen3 on the real node's CPU stand-in (small CPU and memory requests:
    the node has two cores)."""
    spec: dict[str, Any] = {
        "model": {
            "name": "tiny-qwen3",
            "source": {"type": "pvc", "pvcName": claim},
            "overrides": tiny_overrides(model_dir),
        },
        "image": image,
        "gpu": {"product": STANDIN_PRODUCT},
        "resources": {"cpu": "250m", "memory": "3Gi", "shmSize": "256Mi"},
        "serving": {"maxModelLen": 512, "maxNumSeqs": 4},
        "compileCache": {"storage": {"size": "1Gi", "accessMode": "ReadWriteOnce"}},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


class PodOperator:
    """The operator installed by `helm install charts/qwen-operator` from its own image, running as a pod on the
    real node under the chart's ServiceAccount, RBAC, securityContext and probes."""

    def __init__(
        self,
        image: Image,
        namespace: str = "qwen-real-op",
        release: str = "qwen-real",
        prometheus_url: str = "",
        autoscale_tick_seconds: float = 5,
    ) -> None:
        self.image, self.namespace, self.release = image, namespace, release
        self.prometheus_url = prometheus_url
        self.autoscale_tick_seconds = autoscale_tick_seconds
        self.prometheus_host = NODE_IP  # a Prometheus the operator pod can reach listens on the node's bridge
        # (pod log directory's first sighting, restart number) -> the longest text seen in that file (log_text)
        self._log_parts: dict[tuple[int, int], str] = {}
        self._pod_dirs_seen: dict[str, int] = {}
        self._restarts_at_start = 0
        self._container_id = ""  # the operator container's, as of the last start()
        self._installed = False
        self._killed_at: int | None = None

    def values(self) -> dict[str, Any]:
        return {
            "image": {"repository": self.image.repository, "tag": self.image.tag, "pullPolicy": "Never"},
            "nodeSelector": {"qwen.local/real-node": "true"},
            "tolerations": [GPU_TOLERATION],
            "resyncSeconds": 5,
            "autoscaleTickSeconds": self.autoscale_tick_seconds,
            "prometheusUrl": self.prometheus_url,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        }

    def install(self, timeout: int = 300) -> None:
        kubectl_run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        kubectl_run("wait", "--for=condition=Established", "crd/qwendeployments.qwenops.dev", "--timeout=60s")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(self.values(), f)
        res = subprocess.run(
            [
                "helm",
                "upgrade",
                "--install",
                self.release,
                str(CHART),
                "-n",
                self.namespace,
                "--create-namespace",
                "-f",
                f.name,
                "--wait",
                f"--timeout={timeout}s",
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
        Path(f.name).unlink()
        if res.returncode != 0:
            raise AssertionError(f"helm install failed:\n{res.stderr}\n{self.describe()}")

    def uninstall(self) -> None:
        remove_release(self.namespace, self.release)

    def pods(self) -> list[dict[str, Any]]:
        return kubectl_json("-n", self.namespace, "get", "pods", "-l", "app.kubernetes.io/name=qwen-operator")["items"]

    def running_pod(self) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            for p in self.pods():
                conds = {c["type"]: c["status"] for c in (p.get("status") or {}).get("conditions") or []}
                if conds.get("Ready") == "True" and not p["metadata"].get("deletionTimestamp"):
                    return p
            return None

        return wait_for("a Ready operator pod", ready, timeout=180)

    def describe(self) -> str:
        return kubectl_run("-n", self.namespace, "describe", "pods", check=False).stdout[-4000:]

    # ---- the interface the e2e suite drives (operator_harness.operator), the same as OperatorProcess's ----------

    def start(self) -> None:
        """Installed and Ready; after stop(SIGKILL), once the kubelet has restarted the container and it is Ready."""
        if not self._installed:  # helm upgrade --install: also takes over a release left by an aborted run
            self.install()
            self._installed = True
        if self._killed_at is not None:
            killed_at = self._killed_at
            wait_for("the operator container restarted by the kubelet", lambda: self._restarts() > killed_at)
            self._killed_at = None
        pod = self.running_pod()
        self._restarts_at_start = self._restarts(pod)
        self._container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGKILL: every process of the operator's container is killed from the node, as by the kernel; no shutdown
        handler runs and the kubelet restarts the container (start() waits for that). Otherwise: uninstall."""
        if sig != signal.SIGKILL:
            self.uninstall()
            self._installed = False
            return
        killed = _kill_cgroup_processes(self._container_id)  # the id start() saw: no API call before the kill
        assert killed, f"no process of container {self._container_id[:12]} found on this host"
        self._killed_at = self._restarts_at_start

    def alive(self) -> bool:
        """Running and Ready, and not restarted since start(): the operator did not die."""
        pods = [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]
        if len(pods) != 1:
            return False
        status = (pods[0].get("status") or {}).get("containerStatuses") or [{}]
        return bool(status[0].get("ready")) and self._restarts(pods[0]) == self._restarts_at_start

    @property
    def audit_user(self) -> str:
        """Who the operator is in the API server's audit log: the chart's ServiceAccount."""
        pod = self.running_pod()
        return f"system:serviceaccount:{self.namespace}:{pod['spec']['serviceAccountName']}"

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a counter/gauge from the operator pod's /metrics (the bridge reaches pod addresses)."""
        pod = self.running_pod()
        port = next(p["containerPort"] for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5) as r:
            return sum_metric(r.read().decode(), name, labels)

    def log_text(self) -> str:
        """Everything the operator's containers printed, in order, across kubelet restarts and pods: read from the
        kubelet's log files (the CRI format: time, stream, tag, text). The kubelet deletes a dead container's log
        when it collects the container, so each file's text is kept here once seen, and an offset into this text
        stays valid for the session."""
        for pod_dir in sorted(POD_LOGS.glob(f"{self.namespace}_*")):
            pod_order = self._pod_dirs_seen.setdefault(pod_dir.name, len(self._pod_dirs_seen))
            for f in (pod_dir / "operator").glob("*.log"):
                text = _cri_log_text(f.read_text(errors="replace"))
                key = (pod_order, int(f.stem))
                seen = self._log_parts.get(key, "")
                # The kubelet rotates a container log at 10 MiB (containerLogMaxSize); a session writes < 1 MiB.
                assert text.startswith(seen), f"{f} was rotated or rewritten: offsets into log_text() would lie"
                self._log_parts[key] = text
        return "".join(self._log_parts[k] for k in sorted(self._log_parts))

    def _restarts(self, pod: dict[str, Any] | None = None) -> int:
        pod = pod or self.running_pod()
        return int(pod["status"]["containerStatuses"][0]["restartCount"])


# The kubelet's default podLogsDir: /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
POD_LOGS = Path("/var/log/pods")


def _cri_log_text(raw: str) -> str:
    """The text of a CRI container log: each line is `<time> <stream> <P|F> <text>`; P marks a partial line."""
    out: list[str] = []
    complete = raw[: raw.rfind("\n") + 1]  # a line still being written is read next time, whole
    for line in complete.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else ""
        out.append(text if parts[2] == "P" else text + "\n")
    return "".join(out)


def _kill_cgroup_processes(container_id: str) -> list[int]:
    """SIGKILL every process on this host whose cgroup path names the container (cgroupfs driver, cgroup v1)."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if container_id in (proc / "cgroup").read_text():
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
        except (OSError, ProcessLookupError):
            continue
    return killed


# The e2e suite's operator releases, (namespace, release): e2e/test_01_real_node.py's own, and the session's
# operator (operator_harness.operator).
MODULE_RELEASE = ("qwen-real-op", "qwen-real")
SESSION_RELEASE = ("qwen-e2e-op", "qwen-e2e")
# `make demo` leaves its operator running (e2e/demo_real.py); a cluster-wide operator beside the suite's would
# reconcile the tests' namespaces too, so the suite removes it first (and says so).
DEMO_RELEASE = ("qwen-system", "qwen-operator")
# ... and its deployments, whose vLLM pod would hold the real node's CPU that the suite's pods need.
DEMO_NAMESPACES = ("demo", "demo-real")
SUITE_RELEASES = (MODULE_RELEASE, SESSION_RELEASE, DEMO_RELEASE)


def remove_release(namespace: str, release: str) -> bool:
    """Uninstall, and return only once the operator pod is gone: a terminating operator pod would still reconcile
    beside whatever operator the next tests start. A release that is not there is not an error. True when there
    was one."""
    res = subprocess.run(
        ["helm", "uninstall", release, "-n", namespace, "--wait", "--timeout=120s"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    wait_pods_gone(namespace, "app.kubernetes.io/name=qwen-operator", timeout=120)
    kubectl_run("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)
    return res.returncode == 0


def service_url(namespace: str, service: str, port: int = 8000) -> str:
    svc = kubectl_json("-n", namespace, "get", "service", service)
    return f"http://{svc['spec']['clusterIP']}:{port}"


def post_json(url: str, body: dict[str, Any], timeout: float = 120) -> tuple[int, dict[str, Any] | str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def chat(base_url: str, model: str, prompt: str = "Say hello.", max_tokens: int = 16) -> dict[str, Any]:
    """One chat completion; asserts a 200 with a non-empty choice."""
    status, body = post_json(
        f"{base_url}/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0},
    )
    assert status == 200 and isinstance(body, dict) and body.get("choices"), (status, body)
    return body


def pod_events(namespace: str, pod: str) -> list[dict[str, Any]]:
    return kubectl_json("-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={pod}")["items"]


def wait_pods_gone(namespace: str, selector: str, timeout: float = 120) -> None:
    wait_for(
        f"pods {selector} gone in {namespace}",
        lambda: not kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"],
        timeout=timeout,
    )


def now() -> float:
    return time.monotonic()


def prometheus_value(url: str, query: str, at: float | None = None) -> float | None:
    """The sum of an instant query's samples (now, or at the Unix time `at`), or None when it returns none."""
    q = urllib.request.quote(query)
    when = f"&time={at:.3f}" if at is not None else ""
    with urllib.request.urlopen(f"{url}/api/v1/query?query={q}{when}", timeout=5) as r:
        data = json.loads(r.read())["data"]["result"]
    return sum(float(s["value"][1]) for s in data) if data else None
