"""QwenDeployment end to end against the real local control plane (issue 3 acceptance)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from operator_harness import (
    apply_qd,
    cond_is,
    condition,
    get_qd,
    kubectl_json,
    kubectl_run,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
H100 = "NVIDIA-H100-80GB-HBM3"


def sts(namespace: str, name: str):
    return kubectl_json("-n", namespace, "get", "statefulset", name, check=False)


def test_qwen3_8b_tp1_reaches_ready(operator, namespace):
    apply_qd(
        namespace,
        "q8",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "serving": {"maxModelLen": 32768}},
    )
    qd = wait_for("Qwen3-8B Ready", cond_is(namespace, "q8", "Ready", "True"), timeout=120)
    st = qd["status"]
    assert condition(qd, "Validated")["status"] == "True"
    assert condition(qd, "CompileCacheReady")["status"] == "True"
    assert st["phase"] == "Ready" and st["ready"] == "1/1"
    assert st["fit"]["fits"] and st["fit"]["fullLengthSequences"] >= 1
    assert st["vllmCommand"].startswith("vllm serve Qwen/Qwen3-8B")
    s = sts(namespace, "q8")
    pod_spec = s["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pods = kubectl_json("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/instance=q8")["items"]
    node = kubectl_json("get", "node", pods[0]["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == H100
    svcs = {s["metadata"]["name"] for s in kubectl_json("-n", namespace, "get", "services")["items"]}
    assert {"q8", "q8-pods"} <= svcs and "vllm" not in svcs


def test_qwen25_72b_tp4_reaches_ready(operator, namespace):
    apply_qd(
        namespace,
        "q72",
        {
            "model": {"name": "Qwen/Qwen2.5-72B-Instruct"},
            "parallelism": {"tensor": 4},
            "gpu": {"product": H100},
            "serving": {"maxModelLen": 32768},
        },
    )
    qd = wait_for("72B TP4 Ready", cond_is(namespace, "q72", "Ready", "True"), timeout=120)
    limits = sts(namespace, "q72")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "4"
    assert qd["status"]["fit"]["weightsGiB"] > 130


def test_72b_tp1_rejected_by_fit_check_with_numbers(operator, namespace):
    apply_qd(
        namespace,
        "big",
        {
            "model": {"name": "Qwen/Qwen2.5-72B-Instruct"},
            "gpu": {"product": H100},
            "serving": {"maxModelLen": 32768},
            "compileCache": {"enabled": False},
        },
    )
    qd = wait_for("Validated=False", cond_is(namespace, "big", "Validated", "False", "DoesNotFit"))
    msg = condition(qd, "Validated")["message"]
    assert "weights" in msg and "GiB" in msg and "tensor" in msg
    assert qd["status"]["phase"] == "Invalid"
    time.sleep(2)
    assert sts(namespace, "big") is None
    events = kubectl_json("-n", namespace, "get", "events", "--field-selector", "involvedObject.name=big")["items"]
    assert any(e["reason"] == "DoesNotFit" and e["type"] == "Warning" for e in events)


def test_cross_family_draft_rejected_for_vocab(operator, namespace):
    apply_qd(
        namespace,
        "spec",
        {
            "model": {"name": "Qwen/Qwen3-8B"},
            "gpu": {"product": H100},
            "speculativeDecoding": {"method": "draft_model", "draftModel": "Qwen/Qwen2.5-7B-Instruct"},
        },
    )
    qd = wait_for("VocabMismatch", cond_is(namespace, "spec", "Validated", "False", "VocabMismatch"))
    assert "152,064" in condition(qd, "Validated")["message"]
    assert sts(namespace, "spec") is None


def test_sixteen_gpus_per_pod_is_degraded_unschedulable(operator, namespace):
    apply_qd(
        namespace,
        "huge",
        {
            "model": {"name": "Qwen/Qwen2.5-72B-Instruct"},
            "parallelism": {"tensor": 8, "pipeline": 2},
            "gpu": {"product": H100},
            "serving": {"maxModelLen": 32768},
            "compileCache": {"enabled": False},
        },
    )
    qd = wait_for("Degraded Unschedulable", cond_is(namespace, "huge", "Degraded", "True", "Unschedulable"), timeout=90)
    assert "nvidia.com/gpu" in condition(qd, "Degraded")["message"]
    assert condition(qd, "GPUsAvailable")["reason"] == "NotEnoughGPUsPerNode"
    assert qd["status"]["phase"] == "Degraded"


def test_schema_and_cel_rejections_come_from_the_apiserver(operator, namespace):
    res = apply_qd(namespace, "bad1", {"model": {"name": "Qwen/Qwen3-8B"}, "parallelism": {"tensor": 0}})
    assert res.returncode != 0 and "spec.parallelism.tensor" in res.stderr
    res = apply_qd(namespace, "bad2", {"model": {"name": "Qwen/Qwen3-8B"}, "speculativeDecoding": {"method": "eagle3"}})
    assert res.returncode != 0 and "draftModel is required" in res.stderr
    res = apply_qd(namespace, "bad3", {"model": {"name": "Qwen/Qwen3-8B"}, "quantization": "gguf"})
    assert res.returncode != 0 and "Unsupported value" in res.stderr
    assert kubectl_json("-n", namespace, "get", "qwendeployments")["items"] == []


def test_kubectl_get_and_explain_read_well(operator, namespace):
    apply_qd(
        namespace,
        "show",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
    )
    wait_for("Ready", cond_is(namespace, "show", "Ready", "True"))
    out = kubectl_run("-n", namespace, "get", "qwen").stdout
    header, row = out.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "MODEL", "QUANT", "TP", "READY", "STATUS"]
    assert row.split()[:6] == ["show", "Qwen/Qwen3-8B", "none", "1", "1/1", "Ready"]
    exp = kubectl_run("explain", "qwendeployment.spec.speculativeDecoding").stdout
    assert "draftModel" in exp and "vocabulary" in exp and "method" in exp


def test_drift_corrected_and_deletion_cascades(operator, namespace):
    apply_qd(
        namespace,
        "drift",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
    )
    wait_for("Ready", cond_is(namespace, "drift", "Ready", "True"))
    kubectl_run("-n", namespace, "scale", "statefulset", "drift", "--replicas=3")
    wait_for("replicas restored", lambda: sts(namespace, "drift")["spec"]["replicas"] == 1, timeout=60)
    kubectl_run("-n", namespace, "delete", "statefulset", "drift", "--wait=true")
    wait_for("statefulset recreated", lambda: sts(namespace, "drift") is not None, timeout=60)
    kubectl_run("-n", namespace, "delete", "service", "drift")
    wait_for(
        "service recreated", lambda: kubectl_json("-n", namespace, "get", "service", "drift", check=False), timeout=60
    )
    kubectl_run("-n", namespace, "delete", "qwendeployment", "drift")
    wait_for(
        "children garbage-collected",
        lambda: (
            sts(namespace, "drift") is None
            and kubectl_json("-n", namespace, "get", "service", "drift", check=False) is None
        ),
        timeout=90,
    )


def test_spec_change_rebakes_then_rolls_out(operator, namespace):
    apply_qd(namespace, "roll", {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}})
    first = wait_for("Ready", cond_is(namespace, "roll", "Ready", "True"), timeout=120)
    key1 = first["status"]["compileCache"]["key"]
    apply_qd(
        namespace, "roll", {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "serving": {"maxNumSeqs": 64}}
    )

    def rolled():
        qd = get_qd(namespace, "roll")
        cc = qd["status"].get("compileCache") or {}
        s = sts(namespace, "roll")
        args = s["spec"]["template"]["spec"]["containers"][0]["args"]
        return cc.get("key") != key1 and cc.get("state") == "Ready" and "64" in args[args.index("--max-num-seqs") + 1]

    wait_for("new key baked and rolled out", rolled, timeout=120)
    jobs = kubectl_json("-n", namespace, "get", "jobs", "-l", "app.kubernetes.io/name=qwen-compile-cache")["items"]
    assert len(jobs) == 2
    # Same key from another deployment: no second bake.
    apply_qd(
        namespace,
        "roll2",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "serving": {"maxNumSeqs": 64}},
    )
    wait_for("roll2 Ready", cond_is(namespace, "roll2", "Ready", "True"), timeout=120)
    jobs = kubectl_json("-n", namespace, "get", "jobs", "-l", "app.kubernetes.io/name=qwen-compile-cache")["items"]
    assert len(jobs) == 2


def test_bake_that_cannot_finish_fails_and_policy_applies(operator, namespace):
    # No node offers an L4: the bake pod never runs, its deadline passes, the Job fails.
    base = {"model": {"name": "Qwen/Qwen3-0.6B"}, "gpu": {"product": "NVIDIA-L4"}}
    apply_qd(namespace, "cold", {**base, "compileCache": {"bakeTimeoutSeconds": 60, "onBakeFailure": "ServeCold"}})
    apply_qd(
        namespace,
        "wait",
        {**base, "serving": {"maxNumSeqs": 8}, "compileCache": {"bakeTimeoutSeconds": 60, "onBakeFailure": "Wait"}},
    )
    qd = wait_for("BakeFailed", cond_is(namespace, "cold", "CompileCacheReady", "False", "BakeFailed"), timeout=150)
    assert "DeadlineExceeded" in condition(qd, "CompileCacheReady")["message"]
    wait_for("ServeCold rolls out", lambda: sts(namespace, "cold") is not None, timeout=30)
    assert condition(qd, "GPUsAvailable")["reason"] == "NoNodeWithProduct"
    wait_for("Wait: BakeFailed", cond_is(namespace, "wait", "CompileCacheReady", "False", "BakeFailed"), timeout=60)
    time.sleep(3)
    assert sts(namespace, "wait") is None


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_every_example_reaches_ready(operator, namespace, example):
    doc = yaml.safe_load((ROOT / "examples" / example).read_text())
    doc["metadata"]["namespace"] = namespace
    kubectl_run("apply", "-f", "-", input=json.dumps(doc))
    name = doc["metadata"]["name"]
    qd = wait_for(f"{example} Ready", cond_is(namespace, name, "Ready", "True"), timeout=150)
    assert condition(qd, "Validated")["status"] == "True", condition(qd, "Validated")


def test_idle_resyncs_make_no_write_calls(operator, namespace, local_cluster):
    """With nothing changed, periodic resyncs (every 5 s here) write nothing: counted in the apiserver's own
    audit log, by the operator's identity."""
    from operator_harness import operator_writes, wait_operator_quiet

    for n in ("idle-a", "idle-b"):
        apply_qd(namespace, n, {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}})
    for n in ("idle-a", "idle-b"):
        wait_for(f"{n} Ready", cond_is(namespace, n, "Ready", "True"), timeout=120)
    start = wait_operator_quiet(operator, local_cluster, quiet_s=6)  # let the last transitions land
    resyncs_before = operator.metric("qwen_operator_reconciles_total", trigger="resync")
    time.sleep(16)  # three resync periods
    resyncs = operator.metric("qwen_operator_reconciles_total", trigger="resync") - resyncs_before
    events = operator_writes(operator, local_cluster, start)
    assert events == [], [(e["verb"], e.get("objectRef")) for e in events]
    # The operator did resync both deployments during that window: it is not silent because it is idle-dead.
    assert resyncs >= 4, resyncs
