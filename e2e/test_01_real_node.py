"""The whole product as real pods on the real node of the local cluster (e2e/cluster/real-node.sh).

The operator is installed by `helm install charts/qwen-operator` from its own image (images/build.sh, buildah on a
debootstrap base) and runs as a pod under the chart's ServiceAccount, RBAC and securityContext. A QwenDeployment on
the node's CPU stand-in runs the vLLM CPU image: the bake Job runs vLLM in a pod and writes the compile cache to a
volume from the local provisioner, the StatefulSet's pod seeds from it, the operator reads hit or miss from that
pod's log through the API server and the kubelet, and a chat completion is answered through the Service.

This module runs before the session's local-process operator starts (operator_harness.operator is not used here,
and the pod operator is uninstalled at the end), so that exactly one operator reconciles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import real_node as rn
import vllm_local
from operator_harness import (
    LOG_DIR,
    apply_qd,
    cond_is,
    condition,
    die_with_parent,
    get_qd,
    kubectl_json,
    kubectl_run,
    wait_for,
)
from prometheus_local import Prometheus, kubernetes_sd_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def real(local_cluster: Any, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not local_cluster.is_local:
        pytest.skip("needs the local cluster's real node (e2e/cluster/real-node.sh)")
    node = kubectl_json("get", "node", rn.REAL_NODE)
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == rn.STANDIN_PRODUCT
    images = rn.build_and_load("operator", "vllm-cpu")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    prov_log = open(LOG_DIR / "provisioner-real-node.log", "ab")
    prov = subprocess.Popen(
        [sys.executable, str(ROOT / "e2e" / "cluster" / "local_provisioner.py")],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=prov_log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    prom = _prometheus(kubeconfig, tmp_path_factory.mktemp("prometheus"))
    op = rn.PodOperator(images["operator"], prometheus_url=f"http://{prom.host}:{prom.port}")
    model_dir = vllm_local.ensure_tiny_model()
    try:
        op.install()
        yield {
            "images": images,
            "operator": op,
            "model_dir": model_dir,
            "prometheus": prom,
            "prometheus_url": f"http://{prom.host}:{prom.port}",
        }
    finally:
        (LOG_DIR / "operator-pod.log").write_text(op.logs())
        op.uninstall()
        prom.stop()
        prov.terminate()
        prov.wait(timeout=10)
        prov_log.close()


def _prometheus(kubeconfig: Path, workdir: Path) -> Prometheus:
    """A real Prometheus that finds the vLLM pods through the API server (Kubernetes service discovery, with a
    ServiceAccount token allowed to list and watch pods), listening on the real node's bridge address so that the
    operator pod reaches it."""
    import base64

    import yaml

    kubectl_run("create", "namespace", "qwen-monitoring", check=False)
    kubectl_run("-n", "qwen-monitoring", "create", "serviceaccount", "prometheus", check=False)
    kubectl_run("create", "clusterrole", "qwen-prometheus", "--verb=get,list,watch", "--resource=pods", check=False)
    kubectl_run(
        "create",
        "clusterrolebinding",
        "qwen-prometheus",
        "--clusterrole=qwen-prometheus",
        "--serviceaccount=qwen-monitoring:prometheus",
        check=False,
    )
    token = kubectl_run("-n", "qwen-monitoring", "create", "token", "prometheus", "--duration=3h").stdout.strip()
    (workdir / "token").write_text(token)
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    (workdir / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    config = kubernetes_sd_config(cluster["server"], workdir / "ca.crt", workdir / "token", namespace=None)
    prom = Prometheus(config, 19092, workdir, host=rn.NODE_IP)
    prom.start()
    return prom


def test_operator_runs_as_a_pod_from_its_image_under_the_chart(real: dict[str, Any]) -> None:
    op: rn.PodOperator = real["operator"]
    pod = op.running_pod()
    assert pod["spec"]["nodeName"] == rn.REAL_NODE
    (container,) = pod["spec"]["containers"]
    assert container["image"] == real["images"]["operator"].ref
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    assert pod["spec"]["serviceAccountName"] == f"{op.release}-qwen-operator"
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["state"].get("running"), status
    # The process really runs as uid 10001 (kubelet exec through the API server).
    uid = kubectl_run("-n", op.namespace, "exec", pod["metadata"]["name"], "--", "id", "-u").stdout.strip()
    assert uid == "10001"
    # The metrics port answers from the pod's own address.
    ip = pod["status"]["podIP"]
    body = wait_for("operator metrics", lambda: _get(f"http://{ip}:8080/metrics"), timeout=60)
    assert "qwen_operator" in body


def _get(url: str) -> str:
    """The body, or "" while the server does not answer yet."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def served(real: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A compile-cached QwenDeployment of the tiny Qwen3 on the CPU stand-in, Ready."""
    ns = f"e2e-real-{os.getpid()}"
    kubectl_run("create", "namespace", ns)
    wait_for("default ServiceAccount", lambda: kubectl_json("-n", ns, "get", "sa", "default", check=False), timeout=30)
    claim = rn.tiny_model_volume(ns, real["model_dir"])
    spec = rn.standin_spec(real["images"]["vllm-cpu"].ref, real["model_dir"], claim)
    res = apply_qd(ns, "tiny", spec)
    assert res.returncode == 0, res.stderr
    try:
        qd = wait_for("QwenDeployment Ready", cond_is(ns, "tiny", "Ready", "True"), timeout=1200, interval=3)
        yield {"namespace": ns, "name": "tiny", "qd": qd, "spec": spec}
    finally:
        kubectl_run("-n", ns, "get", "all,events", "-o", "wide", check=False)
        kubectl_run("delete", "namespace", ns, "--wait=false", check=False)
        rn.delete_model_volume(ns)


def test_bake_job_ran_vllm_in_a_pod_and_wrote_the_cache(served: dict[str, Any]) -> None:
    ns = served["namespace"]
    jobs = kubectl_json("-n", ns, "get", "jobs")["items"]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    assert jobs[0]["status"].get("succeeded") == 1, jobs[0]["status"]
    (pod,) = kubectl_json("-n", ns, "get", "pods", "-l", f"job-name={jobs[0]['metadata']['name']}")["items"]
    assert pod["spec"]["nodeName"] == rn.REAL_NODE
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0, term
    log = kubectl_run("-n", ns, "logs", pod["metadata"]["name"]).stdout
    assert "torch_compile_cache" in log or "compile" in log.lower(), log[-2000:]
    cc = served["qd"]["status"]["compileCache"]
    assert cc.get("key") and cc.get("state") == "Ready", cc


def test_serving_pod_seeded_from_the_cache_and_reported_hit_or_miss(served: dict[str, Any]) -> None:
    ns, name = served["namespace"], served["name"]
    (pod,) = kubectl_json("-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=qwen-vllm")["items"]
    assert pod["spec"]["nodeName"] == rn.REAL_NODE
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0, init
    qd = wait_for(
        "per-pod cache evidence", lambda: _pod_evidence(ns, name, pod["metadata"]["name"]), timeout=180, interval=2
    )
    entry = next(p for p in qd["status"]["compileCache"]["pods"] if p["pod"] == pod["metadata"]["name"])
    # The evidence is vLLM's own log line of that pod (read through the API server from the kubelet).
    log = kubectl_run("-n", ns, "logs", pod["metadata"]["name"], "-c", "vllm").stdout
    assert entry["evidence"] and entry["evidence"].strip()[:60] in log, (entry, log[-2000:])
    cond = condition(qd, "CompileCacheReady")
    assert cond is not None, qd["status"]["conditions"]


def _pod_evidence(ns: str, name: str, pod: str) -> dict[str, Any] | None:
    qd = get_qd(ns, name)
    pods = ((qd.get("status") or {}).get("compileCache") or {}).get("pods") or []
    return qd if any(p.get("pod") == pod and p.get("evidence") for p in pods) else None


def test_chat_completion_through_the_service(served: dict[str, Any]) -> None:
    ns = served["namespace"]
    services = kubectl_json("-n", ns, "get", "services")["items"]
    client = next(s for s in services if s["spec"].get("clusterIP") not in (None, "None"))
    url = f"http://{client['spec']['clusterIP']}:{client['spec']['ports'][0]['port']}"
    body = rn.chat(url, "tiny-qwen3")
    assert body["choices"][0]["message"]["content"] is not None
    assert body["usage"]["completion_tokens"] > 0
    print(json.dumps({"service": client["metadata"]["name"], "answer": body["choices"][0]["message"]}))


def test_status_says_the_gpu_is_a_cpu_stand_in(served: dict[str, Any]) -> None:
    qd = get_qd(served["namespace"], served["name"])
    text = json.dumps(qd["status"])
    assert "CPU standing in for a GPU" in text, qd["status"]


def test_prometheus_discovers_the_serving_pod_through_the_api_server(
    served: dict[str, Any], real: dict[str, Any]
) -> None:
    """Prometheus has no static target: Kubernetes discovery (role pod, a ServiceAccount token) finds the vLLM pod
    the operator created, and its vLLM series carry the namespace and pod labels the autoscaler queries."""
    ns, name, prom = served["namespace"], served["name"], real["prometheus_url"]
    rn.chat(rn.service_url(ns, name), "tiny-qwen3")
    value = wait_for(
        "the pod's completed requests in Prometheus",
        lambda: rn.prometheus_value(prom, f'vllm:request_success_total{{namespace="{ns}",pod="{name}-0"}}'),
        timeout=120,
        interval=2,
    )
    assert value >= 1


FAULTS = {
    # kubelet: the image is in no store and no registry answers.
    "noimage": ({"image": "localhost/qwen/not-built:0"}, ("ErrImagePull", "ImagePullBackOff"), None),
    # vLLM (torch alone) needs far more than 300 MiB: the kernel OOM-kills the container.
    "oom": ({"resources": {"cpu": "250m", "memory": "300Mi", "shmSize": "64Mi"}}, ("CrashLoopBackOff",), "OOMKilled"),
    # The model directory does not exist on the volume: vLLM exits at start, again and again.
    "crash": (
        {"model": {"source": {"type": "pvc", "pvcName": "tiny-model", "pvcPath": "no-such-model"}}},
        ("CrashLoopBackOff",),
        None,
    ),
}


def test_faults_on_a_real_node_show_the_kubelets_reason_and_leave_nothing(real: dict[str, Any]) -> None:
    ns = f"e2e-real-faults-{os.getpid()}"
    kubectl_run("create", "namespace", ns)
    try:
        claim = rn.tiny_model_volume(ns, real["model_dir"])
        for name, (patch, _, _) in FAULTS.items():
            spec = rn.standin_spec(
                real["images"]["vllm-cpu"].ref,
                real["model_dir"],
                claim,
                compileCache={"enabled": False},
                **{k: v for k, v in patch.items() if k != "model"},
            )
            if "model" in patch:
                spec["model"] = {**spec["model"], **patch["model"]}
            res = apply_qd(ns, name, spec)
            assert res.returncode == 0, res.stderr
        for name, (_, reasons, detail) in FAULTS.items():
            qd = wait_for(
                f"{name}: Degraded with the kubelet's reason",
                lambda n=name, r=reasons: _degraded_with(ns, n, r),
                timeout=300,
                interval=2,
            )
            msg = condition(qd, "Degraded")["message"]
            if detail:
                assert detail in msg, msg
            assert condition(qd, "Ready")["status"] == "False"
        for name in FAULTS:
            kubectl_run("-n", ns, "delete", "qwendeployments.qwenops.dev", name, "--wait=true", "--timeout=60s")
        # Garbage collection leaves nothing the operator made (the test's own model claim stays).
        wait_for("nothing left", lambda: _leftovers(ns) == [], timeout=120, interval=2)
    finally:
        kubectl_run("delete", "namespace", ns, "--wait=false", check=False)
        rn.delete_model_volume(ns)


def _degraded_with(ns: str, name: str, reasons: tuple[str, ...]) -> dict[str, Any] | None:
    qd = get_qd(ns, name)
    c = condition(qd, "Degraded")
    return qd if c and c["status"] == "True" and c["reason"] in reasons else None


def _leftovers(ns: str) -> list[str]:
    out = kubectl_run("-n", ns, "get", "statefulsets,services,pods,jobs,configmaps", "-o", "name").stdout.split()
    return [o for o in out if not o.endswith("/kube-root-ca.crt")]
