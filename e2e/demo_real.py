"""The real-node steps of `make demo` (e2e/demo.sh): the operator installed by Helm from its own image, and the tiny
Qwen3 served on the real node's CPU stand-in, answering a chat completion through its Service.

    python e2e/demo_real.py operator          # build + load images, helm install the operator (a pod)
    python e2e/demo_real.py serve NAMESPACE   # model volume, QwenDeployment to Ready, one chat completion
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_node as rn
import vllm_local
from operator_harness import apply_qd, cond_is, get_qd, kubectl_run, wait_for


def install_operator() -> None:
    images = rn.build_and_load("operator", "vllm-cpu")
    namespace, release = rn.DEMO_RELEASE
    rn.PodOperator(images["operator"], namespace=namespace, release=release).install()
    print(f"operator: {images['operator'].ref} installed by Helm in qwen-system; vLLM image {images['vllm-cpu'].ref}")


def serve(namespace: str) -> None:
    images = rn.build_and_load("vllm-cpu")
    model_dir = vllm_local.ensure_tiny_model()
    kubectl_run("create", "namespace", namespace, check=False)
    wait_for(
        "default ServiceAccount",
        lambda: kubectl_run("-n", namespace, "get", "sa", "default", check=False).returncode == 0,
        timeout=30,
    )
    claim = rn.tiny_model_volume(namespace, model_dir)
    spec = rn.standin_spec(images["vllm-cpu"].ref, model_dir, claim)
    print(
        json.dumps(
            {
                "apiVersion": "qwenops.dev/v1alpha1",
                "kind": "QwenDeployment",
                "metadata": {"name": "tiny", "namespace": namespace},
                "spec": spec,
            },
            indent=1,
        )
    )
    res = apply_qd(namespace, "tiny", spec)
    assert res.returncode == 0, res.stderr
    print("waiting for Ready: the bake Job runs vLLM in a pod, then the StatefulSet's pod seeds from its cache ...")
    wait_for("tiny Ready", cond_is(namespace, "tiny", "Ready", "True"), timeout=1200, interval=5)
    subprocess.run(["kubectl", "-n", namespace, "get", "qwen,statefulsets,pods,jobs,pvc,services", "-o", "wide"])
    status = get_qd(namespace, "tiny").get("status") or {}
    for pod in (status.get("compileCache") or {}).get("pods") or []:
        print(f"\ncompile cache, read by the operator from {pod['pod']}'s log: hit={pod['hit']}: {pod['evidence']}")
    latest = (status.get("coldStart") or {}).get("latest") or {}
    phases = {k.removesuffix("Seconds"): v for k, v in latest.items() if k.endswith("Seconds")}
    print(f"cold start of {latest.get('pod')}, by phase (s, status.coldStart.latest): {phases}")
    url = rn.service_url(namespace, "tiny")
    question = "What is Kubernetes?"
    body = rn.chat(url, "tiny-qwen3", question, max_tokens=24)
    print(f"\nPOST {url}/v1/chat/completions  ({question!r})")
    print(
        "answer (random weights, so the words are noise; the path is real):",
        json.dumps(body["choices"][0]["message"]["content"]),
    )
    print(f"usage: {body['usage']}")


if __name__ == "__main__":
    os.environ.setdefault("KUBECONFIG", str(Path.home() / ".cache/qwen-operator/cluster/kubeconfig"))
    if sys.argv[1:2] == ["operator"]:
        install_operator()
    elif sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        serve(sys.argv[2])
    else:
        sys.exit(__doc__)
