"""The handlers' pass over a fake API client: one status write per pass, the autoscaler's status written by the
pass it triggers, a refused apply reported through ConditionSet, and per-deployment state dropped on deletion."""

from __future__ import annotations

from typing import Any, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from qwen_operator.adapters.kube import Kube
from qwen_operator.api.models import Autoscaling
from qwen_operator.autoscaling.policy import AutoscalingConfig, floor_replicas
from qwen_operator.handlers import autoscaler, controller
from qwen_operator.handlers.indexes import INDEX_NAMES, ROUTER_INDEXES
from qwen_operator.handlers.state import OperatorState, from_memo

NS, NAME, UID = "ns", "demo", "uid-1"


class FakeKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refuse: ApiException | None = None

    def apply(self, obj: dict[str, Any]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(("apply", obj["kind"]))

    def delete(self, ref: dict[str, Any]) -> None:
        self.calls.append(("delete", (ref["kind"], ref["metadata"]["name"], ref["metadata"]["uid"])))

    def ensure_shared(self, obj: dict[str, Any]) -> None:
        self.calls.append(("ensure_shared", obj["kind"]))

    def annotate(self, *args: Any) -> None:
        self.calls.append(("annotate", args))

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("patch_status", status))

    def event(self, body: Any, type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", reason))

    def pod_log(self, *args: Any, **kw: Any) -> str:
        return ""

    def of(self, kind: str) -> list[Any]:
        return [x for k, x in self.calls if k == kind]


def setup(autoscaling: bool = False) -> tuple[OperatorState, FakeKube, dict[str, dict[Any, list[Any]]]]:
    kube = FakeKube()
    state = OperatorState(kube_factory=lambda: cast(Kube, kube))
    spec: dict[str, Any] = {
        "model": {"name": "Qwen/Qwen3-8B"},
        "gpu": {"product": "H100"},
        "compileCache": {"enabled": False},
    }
    if autoscaling:
        spec["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}
    body = {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": NAME, "namespace": NS, "generation": 1, "uid": UID},
        "spec": spec,
        "status": {},
    }
    indexes: dict[str, dict[Any, list[Any]]] = {k: {} for k in INDEX_NAMES}
    indexes["deployments"][(NS, NAME)] = [body]
    indexes["gpu_nodes"]["NVIDIA-H100-80GB-HBM3"] = [8]
    return state, kube, indexes


def test_a_pass_applies_and_writes_status_once_then_an_idle_pass_writes_nothing():
    state, kube, idx = setup()
    controller.reconcile(state, NS, NAME, idx, "test")
    assert sorted(kube.of("apply")) == ["Service", "Service", "StatefulSet"]
    assert len(kube.of("patch_status")) == 1
    kube.calls.clear()
    controller.reconcile(state, NS, NAME, idx, "test")
    assert kube.of("patch_status") == [] and kube.of("event") == []


def test_the_router_objects_are_applied_seen_through_their_indexes_and_deleted_when_routing_is_turned_off():
    state, kube, idx = setup()
    body = idx["deployments"][(NS, NAME)][0]
    body["spec"]["routing"] = {"enabled": True}
    controller.reconcile(state, NS, NAME, idx, "test")
    assert sorted(kube.of("apply")) == [
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    # The watches deliver them (indexed under the deployment, as handlers/indexes.py keys them): no second apply.
    owner = [{"kind": "QwenDeployment", "name": NAME, "uid": UID}]
    for kind, index in ROUTER_INDEXES.items():
        meta = {"name": f"{NAME}-router", "namespace": NS, "uid": f"u-{kind}", "ownerReferences": owner}
        idx[index][(NS, NAME)] = [{"kind": kind, "metadata": meta}]
    view = controller.cluster_view(state.deployment(UID), None, NS, NAME, body, idx)
    assert sorted(view.owned) == [(k, f"{NAME}-router") for k in sorted(ROUTER_INDEXES)]
    kube.calls.clear()
    body["spec"]["routing"] = {"enabled": False}
    body["metadata"]["generation"] = 2
    controller.reconcile(state, NS, NAME, idx, "test")
    assert kube.of("delete") == [
        ("Deployment", f"{NAME}-router", "u-Deployment"),
        ("RoleBinding", f"{NAME}-router", "u-RoleBinding"),
        ("Role", f"{NAME}-router", "u-Role"),
        ("ServiceAccount", f"{NAME}-router", "u-ServiceAccount"),
    ]


def test_the_autoscaler_hands_its_status_to_the_pass_it_triggers():
    state, kube, idx = setup(autoscaling=True)
    controller.reconcile(state, NS, NAME, idx, "test")
    kube.calls.clear()
    autoscaler.autoscale(state, NS, NAME, idx)
    writes = kube.of("patch_status")
    assert len(writes) == 1  # one pass, one write: the autoscaling section and its condition with the rest
    st = writes[0]
    assert st["autoscaling"]["lastReason"] and "policyState" in st["autoscaling"]
    assert st["autoscaling"]["warmReplicas"] == 1  # held (no metrics): the configured pool, no burst headroom
    active = next(c for c in st["conditions"] if c["type"] == "AutoscalingActive")
    assert active["status"] == "False" and active["observedGeneration"] == 1  # no Prometheus: held
    assert {c["type"] for c in st["conditions"]} >= {"Validated", "Ready", "AutoscalingActive"}
    assert state.deployment(UID).policy_state is not None
    # the service-rate prior it starts from, and why: the estimate, by default, for a Qwen3-8B on an H100
    assert st["autoscaling"]["serviceRatePrior"]["source"] == "estimate", st["autoscaling"]


def test_a_changed_service_rate_prior_is_written_even_when_the_decision_holds():
    state, kube, idx = setup(autoscaling=True)
    controller.reconcile(state, NS, NAME, idx, "test")
    autoscaler.autoscale(state, NS, NAME, idx)
    body = idx["deployments"][(NS, NAME)][0]
    body["spec"]["autoscaling"]["serviceRatePerReplica"] = 12.5
    body["metadata"]["generation"] = 2
    state.deployment(UID).last_autoscale = -1e9  # the interval has passed
    kube.calls.clear()
    autoscaler.autoscale(state, NS, NAME, idx)
    (st,) = kube.of("patch_status")
    prior = st["autoscaling"]["serviceRatePrior"]
    assert prior == {"source": "serviceRatePerReplica", "message": "12.5 requests/s per replica (spec)"}
    kube.calls.clear()
    state.deployment(UID).last_autoscale = -1e9
    autoscaler.autoscale(state, NS, NAME, idx)  # nothing changed: nothing written
    assert kube.of("patch_status") == []


def test_a_refused_apply_is_reported_once_and_keeps_its_transition_time(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(controller, "now_time", lambda: "2026-01-01T00:00:00Z")
    state, kube, idx = setup()
    kube.refuse = ApiException(status=422, reason="Unprocessable")
    kube.refuse.body = '{"message": "spec.template: invalid"}'
    controller.reconcile(state, NS, NAME, idx, "test")
    (st,) = kube.of("patch_status")
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "ApplyRejected" and st["phase"] == "Degraded"
    assert kube.of("event") == ["ApplyRejected"]
    kube.calls.clear()
    controller.reconcile(state, NS, NAME, idx, "test")  # the same refusal: no new write, no new event
    assert kube.of("patch_status") == [] and kube.of("event") == []
    monkeypatch.setattr(controller, "now_time", lambda: "2026-01-01T01:00:00Z")
    kube.refuse.body = '{"message": "spec.template: still invalid"}'
    controller.reconcile(state, NS, NAME, idx, "test")  # another refusal while Degraded: the transition stays
    (st,) = kube.of("patch_status")
    again = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert again["message"].endswith("still invalid") and again["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_a_deleted_deployment_leaves_no_state_behind():
    state, _kube, idx = setup(autoscaling=True)
    controller.reconcile(state, NS, NAME, idx, "test")
    autoscaler.autoscale(state, NS, NAME, idx)
    assert state.peek(UID) is not None and len(state) == 1
    body = idx["deployments"][(NS, NAME)][0]
    memo = kopf.Memo(operator=state)
    controller.on_deployment_event(type="DELETED", namespace=NS, name=NAME, body=body, memo=memo)
    assert state.peek(UID) is None and len(state) == 0


def test_the_state_comes_from_the_memo():
    state = OperatorState()
    assert from_memo(kopf.Memo(operator=state)) is state
    with pytest.raises(RuntimeError):
        from_memo(kopf.Memo())


def test_the_replica_floor_is_one_rule():
    for lo, hi, warm in ((0, 1, 0), (1, 4, 1), (3, 4, 2), (2, 2, 5)):
        cfg = AutoscalingConfig(min_replicas=lo, max_replicas=hi, warm_pool=warm)
        assert Autoscaling(min_replicas=lo, max_replicas=hi, warm_pool=warm).floor_replicas() == floor_replicas(cfg)
