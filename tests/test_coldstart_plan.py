"""status.coldStart and the startup probe's budget through plan() (manifests/coldstart.py), and the handler's one
log read per pod serving both the compile-cache evidence and the phases."""

from __future__ import annotations

import copy
from typing import Any, cast

from qwen_operator.adapters.kube import Kube
from qwen_operator.api.models import QwenDeploymentSpec, QwenDeploymentStatus
from qwen_operator.domain.coldstart import ColdStartPhases, PodColdStart
from qwen_operator.handlers import controller
from qwen_operator.handlers.autoscaler import flap_cap
from qwen_operator.handlers.indexes import INDEX_NAMES
from qwen_operator.handlers.state import OperatorState
from qwen_operator.manifests.coldstart import RECENT_PODS, phases_from_wire, phases_to_wire, recent_records
from qwen_operator.manifests.plan import ClusterView, plan
from qwen_operator.manifests.workload import running_startup_budget
from tests.vllm_logs import fixture, with_kubelet_timestamps

NOW = "2026-11-23T20:00:00Z"
PROBE_1800 = {
    "httpGet": {"path": "/health", "port": "http"},
    "periodSeconds": 10,
    "timeoutSeconds": 5,
    "failureThreshold": 180,
}


def body(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": "demo", "namespace": "ns", "generation": 1, "uid": "uid-1"},
        "spec": spec,
        "status": status or {},
    }


def spec(**extra: Any) -> dict[str, Any]:
    return {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": "H100"}, "compileCache": {"enabled": False}, **extra}


def view(**kw: Any) -> ClusterView:
    base: dict[str, Any] = dict(statefulset=None, services={}, pods=[], nodes_with_product=4, max_gpus_on_a_node=8)
    base.update(kw)
    return ClusterView(**base)


def sts_of(p: Any) -> dict[str, Any] | None:
    return next((o for o in p.apply if o["kind"] == "StatefulSet"), None)


def probe_of(sts: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], sts["spec"]["template"]["spec"]["containers"][0]["startupProbe"])


def observed(sts: dict[str, Any]) -> dict[str, Any]:
    o = copy.deepcopy(sts)
    o["metadata"]["uid"], o["metadata"]["generation"] = "child", 1
    o["status"] = {"observedGeneration": 1, "replicas": 1, "currentRevision": "r", "updateRevision": "r"}
    return o


def record(i: int, total: float, ready: str | None = None) -> PodColdStart:
    phases = ColdStartPhases(scheduled=1.0, weights_loaded=10.0, compile=40.0, engine_initialised=60.0, total=total)
    return PodColdStart(f"demo-{i}", f"u{i}", ready or f"2026-11-23T19:{i:02d}:00Z", phases)


def measured(*totals: float) -> dict[str, PodColdStart]:
    return {f"u{i}": record(i, t) for i, t in enumerate(totals)}


# ---- nothing measured: exactly what was rendered before ---------------------------------------------------------


def test_without_measurements_the_probe_is_the_flat_default_as_before():
    p = plan(body(spec()), view(), NOW)
    sts = sts_of(p)
    assert sts is not None and probe_of(sts) == PROBE_1800
    assert p.status is not None
    assert p.status["coldStart"] == {"startupProbeSeconds": 1800, "startupProbeSource": "Default"}
    # an explicit 1800 renders the same StatefulSet; any other explicit value is the user's, as before
    same = sts_of(plan(body(spec(startupTimeoutSeconds=1800)), view(), NOW))
    assert same == sts
    own = sts_of(plan(body(spec(startupTimeoutSeconds=600)), view(cold_starts=measured(100, 120)), NOW))
    assert own is not None and probe_of(own)["failureThreshold"] == 60


def test_the_explicit_value_wins_over_measurements():
    p = plan(body(spec(startupTimeoutSeconds=3000)), view(cold_starts=measured(100, 120)), NOW)
    sts = sts_of(p)
    assert sts is not None and probe_of(sts)["failureThreshold"] == 300
    assert p.status is not None and p.status["coldStart"]["startupProbeSource"] == "Spec"
    assert QwenDeploymentSpec.model_validate(spec()).startup_timeout_seconds is None  # unset stays unset


# ---- the status summary --------------------------------------------------------------------------------------------


def test_status_holds_the_latest_pod_the_medians_and_a_bounded_history():
    p = plan(body(spec()), view(cold_starts=measured(150, 170, 160)), NOW)
    assert p.status is not None
    cs = p.status["coldStart"]
    QwenDeploymentStatus.model_validate(p.status)  # survives the apiserver's pruning
    assert [e["pod"] for e in cs["recent"]] == ["demo-0", "demo-1", "demo-2"]
    assert cs["latest"]["pod"] == "demo-2" and cs["latest"]["totalSeconds"] == 160.0
    assert cs["median"] == {
        "pods": 3,
        "scheduledSeconds": 1.0,
        "weightsLoadedSeconds": 10.0,
        "compileSeconds": 40.0,
        "engineInitialisedSeconds": 60.0,
        "totalSeconds": 160.0,
    }
    assert "cudaGraphsSeconds" not in cs["median"]  # absent, not 0
    # the next pass sees the same pods: nothing to write
    again = plan(body(spec(), status=p.status), view(cold_starts=measured(150, 170, 160)), NOW)
    assert again.status is None or again.status["coldStart"] == cs


def test_history_keeps_the_last_pods_and_the_first_record_of_each():
    many = {f"u{i}": record(i, 100.0 + i) for i in range(RECENT_PODS + 5)}
    recent = recent_records([], many)
    assert len(recent) == RECENT_PODS and recent[0]["pod"] == "demo-5" and recent[-1]["pod"] == f"demo-{14}"
    # a pod read again (after an operator restart: its events may be gone) keeps what was recorded first
    reread = {"u14": PodColdStart("demo-14", "u14", recent[-1]["readyTime"], ColdStartPhases(total=1.0))}
    assert recent_records(recent, reread) == recent
    assert phases_from_wire(recent[0]) == many["u5"].phases
    assert phases_to_wire(ColdStartPhases()) == {}
    assert recent_records([{"garbage": 1}, "x"], {}) == []


# ---- the measured budget and its rollouts ------------------------------------------------------------------------


def test_a_lower_measured_budget_waits_for_the_next_rollout():
    first = plan(body(spec()), view(), NOW)
    running = observed(cast(dict[str, Any], sts_of(first)))
    assert running_startup_budget(running) == 1800
    # pods measured at ~160 s: the target is 360 s, the budget would go to 540 s, but alone that restarts every pod
    p = plan(body(spec(), status=first.status), view(statefulset=running, cold_starts=measured(150, 170, 160)), NOW)
    assert sts_of(p) is None
    assert p.status is not None
    cs = p.status["coldStart"]
    assert (cs["startupProbeSeconds"], cs["startupProbeSource"], cs["startupProbeTargetSeconds"]) == (
        1800,
        "Measured",
        540,
    )
    # a new size restarts no pod: the running budget stays
    resized = plan(
        body(spec(replicas=3), status=p.status), view(statefulset=running, cold_starts=measured(150, 170, 160)), NOW
    )
    sts = sts_of(resized)
    assert sts is not None and sts["spec"]["replicas"] == 3 and probe_of(sts) == PROBE_1800
    # a spec edit rolls the pods anyway: the lower budget goes with it
    edited = spec(serving={"maxNumSeqs": 128})
    p2 = plan(body(edited, status=p.status), view(statefulset=running, cold_starts=measured(150, 170, 160)), NOW)
    sts = sts_of(p2)
    assert sts is not None and probe_of(sts)["failureThreshold"] == 54
    assert p2.status is not None and p2.status["coldStart"]["startupProbeSeconds"] == 540
    assert "startupProbeTargetSeconds" not in p2.status["coldStart"]


def test_a_new_statefulset_starts_with_the_measured_budget():
    sts = sts_of(plan(body(spec()), view(cold_starts=measured(150, 170, 160)), NOW))
    assert sts is not None and probe_of(sts)["failureThreshold"] == 54


def test_a_higher_budget_applies_at_once():
    at_540 = sts_of(plan(body(spec()), view(cold_starts=measured(150, 170, 160)), NOW))
    running = observed(cast(dict[str, Any], at_540))
    slower = measured(150, 170, 160, 700)  # a pod took 700 s: 540 s would kill it
    p = plan(body(spec()), view(statefulset=running, cold_starts=slower), NOW)
    sts = sts_of(p)
    assert sts is not None and probe_of(sts)["failureThreshold"] == 126  # 1.5 x (700 + 120 -> 840 s)
    assert p.status is not None and p.status["coldStart"]["startupProbeSeconds"] == 1260


def test_a_pod_killed_by_the_startup_probe_raises_the_budget():
    at_540 = sts_of(plan(body(spec()), view(cold_starts=measured(150, 170, 160)), NOW))
    running = observed(cast(dict[str, Any], at_540))
    killed = {
        "metadata": {"name": "demo-3", "uid": "u3"},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "vllm",
                    "restartCount": 1,
                    "lastState": {
                        "terminated": {
                            "reason": "Error",
                            "startedAt": "2026-11-23T19:00:00Z",
                            "finishedAt": "2026-11-23T19:09:05Z",
                        }
                    },
                }
            ],
        },
    }
    p = plan(body(spec()), view(statefulset=running, pods=[killed], cold_starts=measured(150, 170, 160)), NOW)
    sts = sts_of(p)
    assert sts is not None and probe_of(sts)["failureThreshold"] == 180  # back to at least the flat default


def test_the_autoscaler_counts_starts_up_to_the_larger_budget():
    unset = QwenDeploymentSpec.model_validate(spec())
    assert flap_cap(unset, {}) == 1800.0
    assert flap_cap(unset, {"coldStart": {"startupProbeSeconds": 540}}) == 1800.0
    assert flap_cap(unset, {"coldStart": {"startupProbeSeconds": 3600}}) == 3600.0
    assert flap_cap(QwenDeploymentSpec.model_validate(spec(startupTimeoutSeconds=600)), {}) == 600.0


# ---- the handler: one log read per pod, for the evidence and the phases ---------------------------------------


class FakeKube:
    def __init__(self, log_text: str) -> None:
        self.log_text = log_text
        self.reads: list[tuple[str, dict[str, Any]]] = []
        self.event_reads: list[str] = []
        self.statuses: list[dict[str, Any]] = []

    def pod_log(self, namespace: str, name: str, **kw: Any) -> str:
        self.reads.append((name, kw))
        return self.log_text

    def pod_events(self, namespace: str, uid: str, reason: str) -> list[dict[str, Any]]:
        self.event_reads.append(uid)
        return [
            {
                "involvedObject": {"fieldPath": "spec.containers{vllm}"},
                "message": 'Container image "vllm-cpu:0.32.0" already present on machine',
            }
        ]

    def apply(self, obj: dict[str, Any]) -> None:
        pass

    def ensure_shared(self, obj: dict[str, Any]) -> None:
        pass

    def annotate(self, *args: Any) -> None:
        pass

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, *args: Any) -> None:
        pass


def serving_pod(cache_key: str | None) -> dict[str, Any]:
    ann = {"qwenops.dev/compile-cache-key": cache_key} if cache_key else {}
    return {
        "metadata": {
            "name": "demo-0",
            "uid": "p0",
            "creationTimestamp": "2026-12-06T03:09:30Z",
            "annotations": ann,
        },
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-06T03:09:31Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-06T03:10:40Z"},
            ],
            "containerStatuses": [{"name": "vllm", "state": {"running": {"startedAt": "2026-12-06T03:09:50Z"}}}],
        },
    }


def handler_setup(pod: dict[str, Any]) -> tuple[OperatorState, FakeKube, dict[str, dict[Any, list[Any]]]]:
    kube = FakeKube(with_kubelet_timestamps(fixture("serve-cold.log")))
    state = OperatorState(kube_factory=lambda: cast(Kube, kube))
    indexes: dict[str, dict[Any, list[Any]]] = {k: {} for k in INDEX_NAMES}
    indexes["deployments"][("ns", "demo")] = [body(spec())]
    indexes["gpu_nodes"]["NVIDIA-H100-80GB-HBM3"] = [8]
    indexes["pods"][("ns", "demo")] = [pod]
    return state, kube, indexes


def test_one_log_read_per_pod_serves_the_evidence_and_the_phases():
    state, kube, idx = handler_setup(serving_pod(cache_key="abc"))
    controller.reconcile(state, "ns", "demo", idx, "test")
    assert [name for name, _ in kube.reads] == ["demo-0"]
    assert kube.reads[0][1]["timestamps"] is True and kube.reads[0][1]["container"] == "vllm"
    assert kube.event_reads == ["p0"]
    ds = state.deployment("uid-1")
    assert ds.pod_evidence["p0"][0] is False  # the cold log compiled
    assert "saved AOT compiled function" in ds.pod_evidence["p0"][1]
    assert not ds.pod_evidence["p0"][1][:4].isdigit()  # the evidence line without the kubelet's timestamp
    (st,) = kube.statuses
    latest = st["coldStart"]["latest"]
    assert latest["pod"] == "demo-0" and latest["totalSeconds"] == 70.0
    assert (latest["compileSeconds"], latest["engineInitialisedSeconds"], latest["imagePulledSeconds"]) == (
        18.0,
        18.33,
        0.0,
    )
    assert latest["readySeconds"] == 4.5 and "cudaGraphsSeconds" not in latest
    # later passes read nothing again
    controller.reconcile(state, "ns", "demo", idx, "test")
    controller.reconcile(state, "ns", "demo", idx, "test")
    assert len(kube.reads) == 1 and len(kube.event_reads) == 1


def test_a_pod_without_the_cache_is_read_once_for_its_phases_only():
    state, kube, idx = handler_setup(serving_pod(cache_key=None))
    controller.reconcile(state, "ns", "demo", idx, "test")
    controller.reconcile(state, "ns", "demo", idx, "test")
    assert len(kube.reads) == 1
    assert state.deployment("uid-1").pod_evidence == {}
    assert kube.statuses[0]["coldStart"]["recent"][0]["uid"] == "p0"
