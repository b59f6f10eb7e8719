"""Helpers for tests on the real node of the local cluster (e2e/cluster/real-node.sh): images built and loaded,
the operator installed by Helm from its own image, the tiny Qwen3 on a volume, and requests to Services.

Pods scheduled to the real node run for real (kubelet, containerd, runc); the product label QWEN-CPU-STANDIN says
what its "GPUs" are: a CPU standing in for one, running the vLLM CPU image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from operator_harness import kubectl_json, kubectl_run, wait_for

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
        self, image: Image, namespace: str = "qwen-real-op", release: str = "qwen-real", prometheus_url: str = ""
    ) -> None:
        self.image, self.namespace, self.release = image, namespace, release
        self.prometheus_url = prometheus_url

    def values(self) -> dict[str, Any]:
        return {
            "image": {"repository": self.image.repository, "tag": self.image.tag, "pullPolicy": "Never"},
            "nodeSelector": {"qwen.local/real-node": "true"},
            "tolerations": [GPU_TOLERATION],
            "resyncSeconds": 5,
            "autoscaleTickSeconds": 5,
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
        """Uninstall, and return only once the operator pod is gone: a terminating operator pod would still
        reconcile beside whatever operator the next tests start."""
        subprocess.run(
            ["helm", "uninstall", self.release, "-n", self.namespace, "--wait", "--timeout=120s"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        wait_pods_gone(self.namespace, "app.kubernetes.io/name=qwen-operator", timeout=120)
        kubectl_run("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=false", check=False)

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

    def logs(self) -> str:
        return kubectl_run(
            "-n", self.namespace, "logs", "-l", "app.kubernetes.io/name=qwen-operator", "--tail=-1", check=False
        ).stdout

    def describe(self) -> str:
        return kubectl_run("-n", self.namespace, "describe", "pods", check=False).stdout[-4000:]


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
