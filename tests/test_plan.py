import copy

from qwen_operator.manifests.plan import ClusterView, plan

NOW = "2026-11-23T20:00:00Z"


def body(spec, name="demo", namespace="ns", generation=1, status=None, uid="uid-1"):
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": name, "namespace": namespace, "generation": generation, "uid": uid},
        "spec": spec,
        "status": status or {},
    }


def spec(cache=False, **extra):
    s = {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": "H100"}, "compileCache": {"enabled": cache}}
    s.update(extra)
    return s


def view(**kw):
    base = dict(statefulset=None, services={}, pods=[], nodes_with_product=4, max_gpus_on_a_node=8)
    base.update(kw)
    return ClusterView(**base)


def as_observed(obj, **status):
    """What the apiserver would return: our object plus defaults it adds."""
    o = copy.deepcopy(obj)
    o["metadata"]["uid"] = "child"
    o["metadata"]["generation"] = 1
    if o["kind"] == "StatefulSet":
        c = o["spec"]["template"]["spec"]["containers"][0]
        c["terminationMessagePath"] = "/dev/termination-log"
        c["readinessProbe"]["successThreshold"] = 1
        o["spec"]["revisionHistoryLimit"] = 10
        o["status"] = {
            "observedGeneration": 1,
            "replicas": o["spec"]["replicas"],
            "currentRevision": "r1",
            "updateRevision": "r1",
            "updatedReplicas": o["spec"]["replicas"],
            **status,
        }
    if o["kind"] == "Service":
        o["spec"]["clusterIPs"] = ["10.0.0.5"]
    return o


def ready_pod(i, ready=True):
    return {
        "metadata": {"name": f"demo-{i}"},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def cond(status, t):
    return next(c for c in status["conditions"] if c["type"] == t)


def test_fresh_deployment_creates_workload():
    p = plan(body(spec()), view(), NOW)
    kinds = sorted(o["kind"] for o in p.apply)
    assert kinds == ["Service", "Service", "StatefulSet"]
    names = {o["metadata"]["name"] for o in p.apply}
    assert "vllm" not in names
    st = p.status
    assert cond(st, "Validated")["status"] == "True"
    assert cond(st, "Ready")["status"] == "False"
    assert st["phase"] == "Progressing" and st["vllmCommand"].startswith("vllm serve Qwen/Qwen3-8B")
    assert st["fit"]["fits"] and st["fit"]["fullLengthSequences"] >= 1


def test_statefulset_shape():
    sts = next(o for o in plan(body(spec()), view(), NOW).apply if o["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["enableServiceLinks"] is False
    assert any(v["name"] == "dshm" and v["emptyDir"]["medium"] == "Memory" for v in pod["volumes"])
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 1800
    assert sts["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_tp4_requests_four_gpus():
    s = spec(model={"name": "Qwen/Qwen2.5-72B-Instruct"}, parallelism={"tensor": 4}, serving={"maxModelLen": 32768})
    sts = next(o for o in plan(body(s), view(), NOW).apply if o["kind"] == "StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"


def test_idle_resync_writes_nothing():
    b = body(spec())
    first = plan(b, view(), NOW)
    observed = {o["kind"] + o["metadata"]["name"]: as_observed(o) for o in first.apply}
    sts = observed["StatefulSetdemo"]
    svcs = {o["metadata"]["name"]: o for k, o in observed.items() if k.startswith("Service")}
    v = view(statefulset=sts, services=svcs, pods=[ready_pod(0)])
    second = plan(body(spec(), status=first.status), v, NOW)
    assert second.apply == []
    third = plan(body(spec(), status=second.status), v, "2026-11-23T20:05:00Z")
    assert third.apply == [] and third.status is None and third.events == []
    assert cond(second.status, "Ready")["status"] == "True"


def test_drift_is_corrected():
    first = plan(body(spec()), view(), NOW)
    sts = as_observed(next(o for o in first.apply if o["kind"] == "StatefulSet"))
    sts["spec"]["replicas"] = 7
    again = plan(body(spec(), status=first.status), view(statefulset=sts), NOW)
    assert any(o["kind"] == "StatefulSet" for o in again.apply)


def test_invalid_spec_creates_nothing_and_says_why():
    s = spec(model={"name": "Qwen/Qwen2.5-72B-Instruct"}, serving={"maxModelLen": 32768})
    p = plan(body(s), view(), NOW)
    assert p.apply == [] and p.ensure_shared == []
    v = cond(p.status, "Validated")
    assert v["status"] == "False" and v["reason"] == "DoesNotFit" and "GiB" in v["message"]
    assert p.status["phase"] == "Invalid"
    assert any(e.type == "Warning" and e.reason == "DoesNotFit" for e in p.events)


def test_unschedulable_pod_degrades():
    pod = {
        "metadata": {"name": "demo-0"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/7 nodes are available: 4 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }
    p = plan(body(spec()), view(pods=[pod]), NOW)
    d = cond(p.status, "Degraded")
    assert d["status"] == "True" and d["reason"] == "Unschedulable" and "Insufficient" in d["message"]
    assert p.status["phase"] == "Degraded"


def test_no_node_with_product_is_a_condition_not_an_error():
    p = plan(body(spec(gpu={"product": "NVIDIA-H200"})), view(nodes_with_product=0, max_gpus_on_a_node=0), NOW)
    assert cond(p.status, "Validated")["status"] == "True"
    g = cond(p.status, "GPUsAvailable")
    assert g["status"] == "False" and g["reason"] == "NoNodeWithProduct"
    assert any(o["kind"] == "StatefulSet" for o in p.apply)


def test_condition_transition_time_kept_when_status_unchanged():
    first = plan(body(spec()), view(), NOW)
    again = plan(body(spec(), status=first.status), view(), "2026-11-23T21:00:00Z")
    assert cond(again.status or first.status, "Validated")["lastTransitionTime"] == NOW


# ---- compile cache gating --------------------------------------------------------------------------------------


def test_bake_before_rollout():
    p = plan(body(spec(cache=True)), view(), NOW)
    kinds = sorted(o["kind"] for o in p.ensure_shared)
    assert kinds == ["Job", "PersistentVolumeClaim"]
    assert not any(o["kind"] == "StatefulSet" for o in p.apply)
    c = cond(p.status, "CompileCacheReady")
    assert c["status"] == "False" and c["reason"] == "Baking"
    assert cond(p.status, "Ready")["reason"] == "WaitingForCompileCache"
    job = next(o for o in p.ensure_shared if o["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert (
        job["spec"]["template"]["spec"]["containers"][0]["args"]
        == next(o for o in plan(body(spec()), view(), NOW).apply if o["kind"] == "StatefulSet")["spec"]["template"][
            "spec"
        ]["containers"][0]["args"]
    )


def _objs(p):
    return {o["kind"]: o for o in p.ensure_shared}


def test_successful_bake_rolls_out_with_cache():
    first = plan(body(spec(cache=True)), view(), NOW)
    objs = _objs(first)
    pvc = copy.deepcopy(objs["PersistentVolumeClaim"])
    job = copy.deepcopy(objs["Job"])
    job["status"] = {
        "startTime": "2026-11-23T20:00:00Z",
        "completionTime": "2026-11-23T20:02:30Z",
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    p = plan(body(spec(cache=True), status=first.status), view(cache_lookup=lambda n: (pvc, job)), NOW)
    assert p.mark_baked == (pvc["metadata"]["name"], 150.0)
    sts = next(o for o in p.apply if o["kind"] == "StatefulSet")
    init = sts["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "seed-compile-cache"
    assert cond(p.status, "CompileCacheReady")["status"] == "True"
    assert p.status["compileCache"]["bakeSeconds"] == 150.0


def test_bake_time_is_recorded_when_success_is_marked_before_completion_time():
    """Kubernetes >= 1.31: SuccessCriteriaMet comes one update before completionTime; the bake is recorded then."""
    first = plan(body(spec(cache=True)), view(), NOW)
    objs = _objs(first)
    pvc, job = copy.deepcopy(objs["PersistentVolumeClaim"]), copy.deepcopy(objs["Job"])
    job["status"] = {
        "startTime": "2026-11-23T20:00:00Z",
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2026-11-23T20:07:40Z"}],
    }
    p = plan(body(spec(cache=True), status=first.status), view(cache_lookup=lambda n: (pvc, job)), NOW)
    assert p.mark_baked == (pvc["metadata"]["name"], 460.0)
    assert p.status["compileCache"]["bakeSeconds"] == 460.0


def test_failed_bake_serve_cold_rolls_out_without_cache():
    first = plan(body(spec(cache=True)), view(), NOW)
    objs = _objs(first)
    job = copy.deepcopy(objs["Job"])
    job["status"] = {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    }
    lookup = lambda n: (objs["PersistentVolumeClaim"], job)  # noqa: E731
    p = plan(body(spec(cache=True), status=first.status), view(cache_lookup=lookup), NOW)
    c = cond(p.status, "CompileCacheReady")
    assert c["reason"] == "BakeFailed" and "BackoffLimitExceeded" in c["message"]
    sts = next(o for o in p.apply if o["kind"] == "StatefulSet")
    assert "initContainers" not in sts["spec"]["template"]["spec"]
    w = spec(cache=True)
    w["compileCache"]["onBakeFailure"] = "Wait"
    p2 = plan(body(w, status=first.status), view(cache_lookup=lookup), NOW)
    assert not any(o["kind"] == "StatefulSet" for o in p2.apply)


def test_key_change_keeps_old_pods_until_baked():
    first = plan(body(spec(cache=True)), view(), NOW)
    objs = _objs(first)
    pvc = copy.deepcopy(objs["PersistentVolumeClaim"])
    pvc["metadata"]["annotations"] = {"qwenops.dev/baked": "true"}
    done = plan(body(spec(cache=True), status=first.status), view(cache_lookup=lambda n: (pvc, None)), NOW)
    sts = as_observed(next(o for o in done.apply if o["kind"] == "StatefulSet"))
    changed = spec(cache=True, serving={"maxNumSeqs": 64})
    p = plan(body(changed, generation=2, status=done.status), view(statefulset=sts), NOW)
    assert cond(p.status, "CompileCacheReady")["reason"] == "KeyChanged"
    assert not any(o["kind"] == "StatefulSet" for o in p.apply)
    assert p.cache_key != done.cache_key


# ---- cache-hit evidence from vLLM's log -------------------------------------------------------------------------


def test_detect_cache_hit_from_vllm_lines():
    from qwen_operator.manifests.cache import detect_cache_hit

    hit = (
        "INFO 11-23 19:00:01 [decorators.py:123] Directly load AOT compilation from path "
        "/var/cache/qwen/vllm/torch_compile_cache/torch_aot_compile/abc/rank_0_0/model\n"
    )
    assert detect_cache_hit(hit)[0] is True
    miss = hit + (
        "WARNING 11-23 19:00:02 [decorators.py:140] Compiling model again due to a load failure from "
        "/x, reason: 'function' object has no attribute 'finalize_loading'\n"
    )
    ok, evidence = detect_cache_hit(miss)
    assert ok is False and "load failure" in evidence
    assert detect_cache_hit("INFO Compiling a graph for compile range (1, 8192) takes 12.3 s")[0] is False
    assert detect_cache_hit("INFO Application startup complete.")[0] is None


def test_status_matches_the_published_status_schema():
    """What plan() writes must survive the apiserver's pruning: every key is in the status schema."""
    from qwen_operator.api.models import QwenDeploymentStatus

    first = plan(body(spec(cache=True)), view(), NOW)
    QwenDeploymentStatus.model_validate(first.status)
    p = plan(body(spec()), view(pods=[ready_pod(0)]), NOW)
    QwenDeploymentStatus.model_validate(p.status)
    assert "weightsGiB" in p.status["fit"]


# ---- a bake that loses its node ----------------------------------------------------------------------------------


def test_bake_job_does_not_count_a_lost_node_as_a_failed_bake():
    job = _objs(plan(body(spec(cache=True)), view(), NOW))["Job"]
    js = job["spec"]
    # disruptions (node deleted, drained, preempted) are retried without spending the retry a real failure gets
    assert js["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    assert js["template"]["spec"]["restartPolicy"] == "Never"  # required by podFailurePolicy
    assert js["podReplacementPolicy"] == "Failed"  # one writer at a time on the cache volume
    assert js["backoffLimit"] == 1 and js["activeDeadlineSeconds"] > 0


def _bake_pod(name, phase="Pending", node=None, conditions=(), deleting=False, created="2026-11-23T20:00:00Z"):
    meta = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-23T20:05:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": list(conditions)},
    }


def test_baking_condition_says_where_the_bake_stands():
    first = plan(body(spec(cache=True)), view(), NOW)
    objs = _objs(first)
    job = copy.deepcopy(objs["Job"])
    job["status"] = {"active": 1}
    job_name = job["metadata"]["name"]
    pods = {job_name: [_bake_pod("bake-a", "Running", "h100-2")]}

    def run(pod_list, job_status=None):
        j = copy.deepcopy(job)
        if job_status is not None:
            j["status"] = job_status
        v = view(
            cache_lookup=lambda n: (objs["PersistentVolumeClaim"], j),
            bake_pods_lookup=lambda n: pod_list if n == job_name else [],
        )
        p = plan(body(spec(cache=True), status=first.status), v, NOW)
        return cond(p.status or first.status, "CompileCacheReady")  # None: unchanged

    c = run(pods[job_name])
    assert c["reason"] == "Baking" and "bake pod bake-a is running on node h100-2" in c["message"]
    # the node went away: the lost pod is being deleted, its replacement cannot be scheduled
    unsched = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/7 nodes are available: 7 node(s) didn't match Pod's node affinity/selector.",
    }
    c = run(
        [
            _bake_pod("bake-a", "Failed", "h100-2", deleting=True),
            _bake_pod("bake-b", conditions=[unsched], created="2026-11-23T20:06:00Z"),
        ]
    )
    assert "bake-a" not in c["message"]
    assert "pod bake-b cannot be scheduled: 0/7 nodes are available" in c["message"], c["message"]
    c = run([_bake_pod("bake-c")], {"active": 1, "failed": 1})
    assert "bake pod bake-c is pending" in c["message"] and "1 failed attempt of 2 allowed" in c["message"]
    # nothing known about the pods (not watched): the message stays the plain one
    c = run([])
    assert c["message"].endswith("the rollout starts when it is ready.")


GC_DISRUPTION = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "DeletionByPodGC",
    "message": "PodGC: node no longer exists",
}


def test_bake_pod_disruption_in_plain_words():
    from qwen_operator.manifests.cache import cache_labels, job_pod_disruption

    gone = _bake_pod("bake-a", "Failed", "held-l40s-0", conditions=[GC_DISRUPTION])
    gone["metadata"]["labels"] = cache_labels("k1")
    d = job_pod_disruption(gone)
    assert d is not None and d.reason == "BakePodDisrupted"
    assert "bake pod bake-a" in d.message and "held-l40s-0" in d.message and "DeletionByPodGC" in d.message
    assert "node no longer exists" in d.message and "without counting a failed bake" in d.message
    assert job_pod_disruption(_bake_pod("bake-b", "Running", "h100-0")) is None
    assert job_pod_disruption(_bake_pod("bake-c", conditions=[{"type": "DisruptionTarget", "status": "False"}])) is None
    assert job_pod_disruption({}) is None


def test_weight_hydration_pod_disruption_says_hydration():
    from qwen_operator.manifests.cache import job_pod_disruption
    from qwen_operator.manifests.weights import weight_labels

    gone = _bake_pod("hydrate-a", "Failed", "h100-1", conditions=[GC_DISRUPTION])
    gone["metadata"]["labels"] = weight_labels("w1")
    d = job_pod_disruption(gone)
    assert d is not None and d.reason == "HydrationPodDisrupted"
    assert d.message.startswith("weight hydration pod hydrate-a on node h100-1 was taken away (DeletionByPodGC")
    assert "without counting a failed hydration" in d.message and "bake" not in d.message


def test_in_flight_write_is_skipped_only_while_the_cache_shows_the_old_version():
    from qwen_operator.manifests.drift import InFlightWrites

    w = InFlightWrites(ttl_s=30.0)
    key = ("uid-1", "StatefulSet", "x")
    sts = {"kind": "StatefulSet", "spec": {"replicas": 2}}
    assert not w.pending(key, sts, "100", 0.0)  # nothing written yet
    w.record(key, sts, "100", 0.0)
    assert w.pending(key, dict(sts), "100", 5.0)  # same object, cache still at the version before our write
    assert not w.pending(key, sts, "101", 5.0)  # the cache moved (our write arrived, or someone else wrote)
    assert not w.pending(key, {"kind": "StatefulSet", "spec": {"replicas": 3}}, "100", 5.0)  # a new desired state
    assert not w.pending(key, sts, "100", 31.0)  # bounded: a lost watch event cannot hide drift for long
    assert not w.pending(("uid-1", "Service", "x"), sts, "100", 5.0)  # per object
    w.forget("uid-1")
    assert not w.pending(key, sts, "100", 5.0)
