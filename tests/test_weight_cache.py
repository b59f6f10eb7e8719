"""The model-weight cache (issue 19 item 1) and serving.loadFormat (item 2): API, rendering, plan, Job, script."""

import copy
import hashlib
import json
import subprocess

import httpx2 as httpx  # huggingface_hub 2.x answers with httpx2 responses
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from huggingface_hub.utils import hf_raise_for_status

from qwen_operator.api.models import LoadFormat, QwenDeploymentSpec
from qwen_operator.domain.validation import validate
from qwen_operator.domain.vllm_args import flag_table, render_args, render_env
from qwen_operator.domain.weight_cache import quantity_bytes, weight_key, weight_object_name
from qwen_operator.jobs import hydrate_weights as hw
from qwen_operator.manifests.plan import ClusterView, plan
from qwen_operator.manifests.weights import PERMANENT_EXIT_CODES, build_hydrate_job
from qwen_operator.manifests.workload import Owner

NOW = "2026-12-06T10:00:00Z"


def body(spec, name="demo", uid="uid-1", status=None):
    meta = {"name": name, "namespace": "ns", "generation": 1, "uid": uid}
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": meta,
        "spec": spec,
        "status": status or {},
    }


def spec(compile_cache=False, revision="main", size="50Gi", **source):
    src = {"type": "hf", "cache": {"enabled": True, "storage": {"size": size}}, **source}
    return {
        "model": {"name": "Qwen/Qwen3-8B", "revision": revision, "source": src},
        "gpu": {"product": "H100"},
        "compileCache": {"enabled": compile_cache},
    }


def view(**kw):
    base = dict(statefulset=None, services={}, pods=[], nodes_with_product=4, max_gpus_on_a_node=8)
    base.update(kw)
    return ClusterView(**base)


def cond(status, t):
    return next(c for c in status["conditions"] if c["type"] == t)


def kinds(p):
    return {o["kind"]: o for o in p.ensure_shared + p.apply}


def terminated_pod(outcome, exit_code=0, finished="2026-12-06T10:01:00Z"):
    state = {"terminated": {"exitCode": exit_code, "message": json.dumps(outcome), "finishedAt": finished}}
    return {
        "metadata": {"name": "hydrate-x"},
        "status": {"phase": "Succeeded", "containerStatuses": [{"state": state}]},
    }


def finished(job, ok=True):
    job = copy.deepcopy(job)
    kind = "Complete" if ok else "Failed"
    job["status"] = {"conditions": [{"type": kind, "status": "True", "reason": "PodFailurePolicy"}]}
    return job


# ---- API and rendering ---------------------------------------------------------------------------------------------


def test_cache_needs_an_hf_source():
    bad = spec()
    bad["model"]["source"] = {"type": "pvc", "pvcName": "w", "cache": {"enabled": True}}
    rep = validate(bad)
    assert not rep.ok and "source.cache is for type hf" in rep.summary()[1]


def test_pods_read_the_mounted_checkpoint_and_never_download():
    s = QwenDeploymentSpec.model_validate(spec(endpoint="http://mirror.internal:8080"))
    args = render_args(s, 4096)
    assert args[0] == "/models/Qwen/Qwen3-8B" and "--revision" not in args
    env = {e["name"]: e.get("value") for e in render_env(s)}
    assert env["HF_HUB_OFFLINE"] == "1" and "HF_ENDPOINT" not in env


def test_plain_hf_source_passes_the_endpoint_to_vllm():
    raw = spec(endpoint="http://mirror.internal:8080")
    raw["model"]["source"]["cache"]["enabled"] = False
    s = QwenDeploymentSpec.model_validate(raw)
    env = {e["name"]: e.get("value") for e in render_env(s)}
    assert env["HF_ENDPOINT"] == "http://mirror.internal:8080" and "HF_HUB_OFFLINE" not in env
    assert "--revision" in render_args(s, 4096)


def test_same_checkpoint_same_volume_other_revision_other_volume():
    a = QwenDeploymentSpec.model_validate(spec())
    b = QwenDeploymentSpec.model_validate({**spec(), "serving": {"maxNumSeqs": 8}})
    c = QwenDeploymentSpec.model_validate(spec(revision="v2"))
    assert weight_key(a) == weight_key(b) != weight_key(c)
    assert weight_object_name(weight_key(a)).startswith("qwen-weights-")


def test_a_cache_too_small_for_the_catalog_weights_is_refused_at_apply():
    rep = validate(spec(size="10Gi"))  # Qwen3-8B in bf16 is about 15 GiB
    assert not rep.ok and rep.summary()[0] == "WeightCacheTooSmall"
    assert validate(spec(size="20Gi")).ok


def test_quantity_bytes():
    assert quantity_bytes("1Gi") == 2**30 and quantity_bytes("500M") == 500 * 10**6 and quantity_bytes("100") == 100


def test_load_formats_offered_are_loaders_of_the_pinned_vllm():
    assert {f.value for f in LoadFormat} <= flag_table().load_formats | {"auto"}
    raw = spec()
    raw["serving"] = {"loadFormat": "runai_streamer"}
    rep = validate(raw)
    assert rep.ok and rep.args[rep.args.index("--load-format") + 1] == "runai_streamer"
    assert "--load-format" not in validate(spec()).args  # auto: vLLM's default, not written


def test_fastsafetensors_needs_a_gpu():
    raw = spec()
    raw["gpu"] = {"product": "CPU-standin"}
    raw["model"]["source"]["cache"]["enabled"] = False
    raw["serving"] = {"loadFormat": "fastsafetensors"}
    rep = validate(raw)
    assert not rep.ok and "GPUDirect" in rep.summary()[1]


def test_load_format_is_not_an_extra_arg():
    raw = spec()
    raw["serving"] = {"extraArgs": ["--load-format=pt"]}
    assert not validate(raw).ok


# ---- the plan: hydrate, then mount read-only, then bake --------------------------------------------------------------


def test_nothing_runs_until_the_weights_are_verified():
    p = plan(body(spec(compile_cache=True)), view(), NOW)
    objs = kinds(p)
    assert set(objs) == {"PersistentVolumeClaim", "Job", "Service"}  # no StatefulSet, no bake Job
    assert objs["Job"]["metadata"]["name"] == objs["PersistentVolumeClaim"]["metadata"]["name"]
    assert cond(p.status, "WeightsReady")["reason"] == "Hydrating"
    assert cond(p.status, "CompileCacheReady")["reason"] == "WaitingForWeights"
    assert cond(p.status, "Ready")["reason"] == "WaitingForWeights"
    assert p.status["weightCache"]["state"] == "Hydrating"


def test_a_hydrated_cache_is_recorded_then_mounted_read_only_by_pods_and_the_bake():
    first = plan(body(spec(compile_cache=True)), view(), NOW)
    objs = kinds(first)
    pvc, job = copy.deepcopy(objs["PersistentVolumeClaim"]), finished(objs["Job"])
    name = pvc["metadata"]["name"]
    outcome = {
        "ok": True,
        "commit": "c0ffee" * 6 + "abcd",
        "files": 7,
        "bytes": 725208,
        "seconds": 1.5,
        "hydratedAt": NOW,
    }
    v = view(
        cache_lookup=lambda n: (pvc, job) if n == name else (None, None),
        bake_pods_lookup=lambda n: [terminated_pod(outcome)] if n == name else [],
    )
    p = plan(body(spec(compile_cache=True), status=first.status), v, NOW)
    assert p.mark_hydrated == (
        name,
        {
            "qwenops.dev/weights-commit": outcome["commit"],
            "qwenops.dev/weights-bytes": "725208",
            "qwenops.dev/weights-files": "7",
            "qwenops.dev/weights-hydration-seconds": "1.5",
            "qwenops.dev/weights-hydrated-at": NOW,
        },
    )
    wc = p.status["weightCache"]
    assert (wc["state"], wc["commit"], wc["sizeBytes"], wc["files"], wc["users"]) == (
        "Ready",
        outcome["commit"],
        725208,
        7,
        ["demo"],
    )
    assert cond(p.status, "WeightsReady")["status"] == "True"
    bake = next(o for o in p.ensure_shared if o["kind"] == "Job" and o["metadata"]["name"].startswith("qwen-cc-"))
    for pod_spec in (bake["spec"]["template"]["spec"],):
        mount = next(m for m in pod_spec["containers"][0]["volumeMounts"] if m["name"] == "model")
        assert mount == {"name": "model", "mountPath": "/models/Qwen/Qwen3-8B", "subPath": "model", "readOnly": True}
        vol = next(x for x in pod_spec["volumes"] if x["name"] == "model")
        assert vol["persistentVolumeClaim"] == {"claimName": name, "readOnly": True}


def test_statefulset_mounts_the_cache_once_hydrated():
    pvc = kinds(plan(body(spec()), view(), NOW))["PersistentVolumeClaim"]
    pvc["metadata"]["annotations"] = {"qwenops.dev/weights-commit": "abc"}
    pvc["metadata"]["ownerReferences"].append({"uid": "uid-2", "name": "other"})
    p = plan(body(spec()), view(cache_lookup=lambda n: (pvc, None)), NOW)
    sts = next(o for o in p.apply if o["kind"] == "StatefulSet")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert any(m.get("subPath") == "model" and m["readOnly"] for m in c["volumeMounts"])
    assert p.status["weightCache"]["users"] == ["demo", "other"]
    assert not any(o["kind"] == "Job" for o in p.ensure_shared)  # a hydrated volume is never rewritten


@pytest.mark.parametrize("reason", ["RevisionNotFound", "InsufficientSpace", "GatedModel", "ModelNotFound"])
def test_a_failed_hydration_says_why_and_mounts_nothing(reason):
    first = plan(body(spec()), view(), NOW)
    objs = kinds(first)
    pvc, job = objs["PersistentVolumeClaim"], finished(objs["Job"], ok=False)
    outcome = {"ok": False, "reason": reason, "message": f"what {reason} means"}
    v = view(cache_lookup=lambda n: (pvc, job), bake_pods_lookup=lambda n: [terminated_pod(outcome, 3)])
    p = plan(body(spec(), status=first.status), v, NOW)
    c = cond(p.status, "WeightsReady")
    assert (c["status"], c["reason"]) == ("False", reason) and f"what {reason} means" in c["message"]
    assert "kubectl delete job" in c["message"]
    assert not any(o["kind"] in ("StatefulSet", "Job") for o in p.apply + p.ensure_shared)
    assert p.status["weightCache"]["state"] == "Failed"
    assert any(e.reason == reason and e.type == "Warning" for e in p.events)


def test_status_matches_the_published_status_schema():
    from qwen_operator.api.models import QwenDeploymentStatus

    first = plan(body(spec()), view(), NOW)
    QwenDeploymentStatus.model_validate(first.status)
    assert QwenDeploymentStatus.model_validate(first.status).weight_cache.state == "Hydrating"


# ---- the Job ---------------------------------------------------------------------------------------------------------


def test_job_passes_the_token_only_as_a_secret_ref_and_fails_fast_on_permanent_errors():
    s = QwenDeploymentSpec.model_validate(
        spec(tokenSecretRef={"name": "hf", "key": "token"}, endpoint="http://10.0.0.1:1")
    )
    job = build_hydrate_job(s, "ns", Owner(name="demo", uid="u"))
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert env["HF_ENDPOINT"]["value"] == "http://10.0.0.1:1"
    assert env["QWEN_VOLUME_BYTES"]["value"] == str(50 * 2**30)
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == PERMANENT_EXIT_CODES
    assert sorted(v for k, v in hw.EXIT_CODES.items() if k != "DownloadFailed") == PERMANENT_EXIT_CODES
    compile(c["command"][2], "hydrate_weights.py", "exec")  # the embedded script is the module's text


# ---- the script's own logic --------------------------------------------------------------------------------------------


def test_git_blob_id_is_gits(tmp_path):
    f = tmp_path / "config.json"
    f.write_bytes(b'{"a": 1}\n')
    expect = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True).stdout.strip()
    assert hw.git_blob_sha1(f) == expect


def test_verify_catches_a_changed_a_short_and_a_missing_file(tmp_path):
    (tmp_path / "a.json").write_bytes(b"abc")
    (tmp_path / "w.safetensors").write_bytes(b"x" * 10)
    good = [
        hw.RemoteFile("a.json", 3, hw.git_blob_sha1(tmp_path / "a.json"), None),
        hw.RemoteFile("w.safetensors", 10, None, hashlib.sha256(b"x" * 10).hexdigest()),
    ]
    assert hw.verify(tmp_path, good) == []
    (tmp_path / "w.safetensors").write_bytes(b"y" * 10)
    bad = hw.verify(tmp_path, good + [hw.RemoteFile("gone.bin", 1, None, None)])
    assert bad == ["w.safetensors: sha256 differs from the hub's LFS object id", "gone.bin: missing"]
    (tmp_path / "a.json").write_bytes(b"ab")
    assert hw.verify(tmp_path, good[:1]) == ["a.json: 2 bytes, the hub says 3"]


def test_free_bytes_is_capped_by_the_requested_size(tmp_path):
    (tmp_path / "old").write_bytes(b"z" * 100)
    assert hw.free_bytes(tmp_path, 1000) == 900
    assert hw.free_bytes(tmp_path, None) > 1000


def _hf_error(status, headers=None):
    """An error as huggingface_hub itself maps a hub answer (hf_raise_for_status), not a hand-made one."""
    req = httpx.Request("GET", "https://hub.example/api/models/org/m/revision/main")
    resp = httpx.Response(status, headers=headers or {}, request=req, json={"error": "no"})
    with pytest.raises(Exception) as info:
        hf_raise_for_status(resp)
    return info.value


class FakeApi:
    """Answers model_info from a table of revision -> sha or error (the hub's answers, as the client maps them)."""

    def __init__(self, answers):
        self.answers = answers

    def model_info(self, model, revision=None):
        a = self.answers[revision]
        if isinstance(a, Exception):
            raise a
        return type("Info", (), {"sha": a})()

    def list_repo_refs(self, model):
        if isinstance(self.answers.get("refs"), Exception):
            raise self.answers["refs"]
        return []


def test_gated_model_without_token_is_named():
    gated = _hf_error(401, {"X-Error-Code": "GatedRepo"})
    assert isinstance(gated, GatedRepoError)
    with pytest.raises(hw.HydrationError) as e:
        hw.resolve_commit(FakeApi({"main": gated}), "org/m", "main", has_token=False)
    assert e.value.reason == "GatedModel" and "tokenSecretRef" in e.value.message


def test_missing_revision_and_missing_model_are_told_apart():
    missing = _hf_error(401, {"X-Error-Code": "RepoNotFound"})
    assert isinstance(missing, RepositoryNotFoundError)
    with pytest.raises(hw.HydrationError) as e:
        hw.resolve_commit(FakeApi({"nope": missing}), "org/m", "nope", has_token=False)
    assert e.value.reason == "RevisionNotFound"
    with pytest.raises(hw.HydrationError) as e:
        hw.resolve_commit(FakeApi({"main": missing, "refs": missing}), "org/m", "main", has_token=False)
    assert e.value.reason == "ModelNotFound" and "tokenSecretRef" in e.value.message
    assert hw.resolve_commit(FakeApi({"main": "abc"}), "org/m", "main", has_token=False) == "abc"


def test_a_volume_already_hydrated_is_reported_not_rewritten(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "hydration.json").write_text(json.dumps({"commit": "abc", "files": 1, "bytes": 3}))
    log = tmp_path.parent / f"{tmp_path.name}.term"
    env = {"QWEN_MODEL": "org/m", "QWEN_VOLUME": str(tmp_path), "QWEN_TERMINATION_LOG": str(log)}
    code = hw.main({**env, "HF_ENDPOINT": "http://127.0.0.1:9"})
    out = json.loads(log.read_text())
    assert code == 0 and out["ok"] and out["reused"] and out["commit"] == "abc"


def test_leftovers_of_an_interrupted_run_are_cleared(tmp_path):
    (tmp_path / ".staging-12").mkdir()
    (tmp_path / "model").mkdir()  # renamed but the record was never written
    hw._clear_leftovers(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_endpoint_is_a_retryable_failure(tmp_path):
    log = tmp_path.parent / f"{tmp_path.name}.term"
    env = {"QWEN_MODEL": "org/m", "QWEN_VOLUME": str(tmp_path / "v"), "QWEN_TERMINATION_LOG": str(log)}
    code = hw.main({**env, "HF_ENDPOINT": "http://127.0.0.1:9"})  # nothing listens on the discard port
    out = json.loads(log.read_text())
    assert (code, out["ok"], out["reason"]) == (7, False, "DownloadFailed") and 7 not in PERMANENT_EXIT_CODES
