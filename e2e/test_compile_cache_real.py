"""Compile cache with a real vLLM (CPU build): the operator's rendered bake Job and serving pod, run as local
processes (see compile_cache_local.py for the only substitutions made). The serve run must use the baked cache,
asserted from vLLM's own log lines and from its timings, not assumed."""

from __future__ import annotations

import copy
import json

import pytest

import compile_cache_local as ccl
from qwen_operator.manifests.plan import ClusterView, plan

SPEC = {"model": {"name": "Qwen/Qwen3-0.6B"}, "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
        "serving": {"maxModelLen": 512, "maxNumSeqs": 4}}


def _body(spec):
    return {"apiVersion": "qwenops.dev/v1alpha1", "kind": "QwenDeployment",
            "metadata": {"name": "cc", "namespace": "ns", "uid": "u1", "generation": 1}, "spec": spec}


def rendered(spec):
    """(bake Job, StatefulSet seeded from the baked cache) exactly as the operator renders them."""
    first = plan(_body(spec), ClusterView(None, {}, [], 1, 8), "t")
    job = next(o for o in first.ensure_shared if o["kind"] == "Job")
    pvc = copy.deepcopy(next(o for o in first.ensure_shared if o["kind"] == "PersistentVolumeClaim"))
    pvc["metadata"]["annotations"] = {"qwenops.dev/baked": "true"}
    after = plan(_body(spec), ClusterView(None, {}, [], 1, 8, cache_lookup=lambda n: (pvc, None)), "t")
    sts = next(o for o in after.apply if o["kind"] == "StatefulSet")
    return job, sts


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    job, sts = rendered(SPEC)
    assert sts["spec"]["template"]["spec"]["initContainers"], "serving pods must seed from the baked cache"
    cold_spec = {**SPEC, "compileCache": {"enabled": False}}
    cold_sts = next(o for o in plan(_body(cold_spec), ClusterView(None, {}, [], 1, 8), "t").apply
                    if o["kind"] == "StatefulSet")
    baked_dirs = ccl.prepare(tmp_path_factory.mktemp("baked"))
    bake = ccl.run_bake(job, baked_dirs)
    warm = ccl.run_serve(sts, baked_dirs, role="serve-from-baked-cache")
    cold_dirs = ccl.prepare(tmp_path_factory.mktemp("cold"))
    cold = ccl.run_serve(cold_sts, cold_dirs, role="serve-cold")
    out = {"bake": ccl.as_dict(bake), "warm": ccl.as_dict(warm), "cold": ccl.as_dict(cold),
           "bake_record": json.loads((baked_dirs["pvc"] / "qwen-bake-record.json").read_text())
           if (baked_dirs["pvc"] / "qwen-bake-record.json").exists() else None}
    print(json.dumps(out, indent=2))
    return out


def test_bake_job_runs_and_writes_artifacts_and_record(runs):
    b = runs["bake"]
    assert b["rc"] == 0, open(b["log_path"]).read()[-3000:]
    rec = runs["bake_record"]
    assert rec and rec["files"] > 0 and len(rec["key"]) == 20
    assert rec["factors"]["model"] == "Qwen/Qwen3-0.6B"


def test_serving_pod_uses_the_baked_cache(runs):
    w, c = runs["warm"], runs["cold"]
    assert w["seconds_to_healthy"] is not None, open(w["log_path"]).read()[-3000:]
    assert c["seconds_to_healthy"] is not None, open(c["log_path"]).read()[-3000:]
    # vLLM's own evidence, read the way the operator reads it.
    assert w["hit"] is True, f"expected a cache hit, vLLM said: {w['evidence']}"
    assert c["hit"] is not True
    # And it shows in the time: engine init (profile + compile + warm-up) is shorter from the baked cache.
    assert w["timings"]["engine_init_s"] < c["timings"]["engine_init_s"], (w["timings"], c["timings"])
