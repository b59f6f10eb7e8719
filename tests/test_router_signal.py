"""The router's view of the replicas in the autoscaler's signal (issue 18, item 3): requests vLLM's router has in
flight on a replica beyond those vLLM runs count as waiting. The real router and Prometheus are read in
e2e/test_01_real_node.py::test_router_in_front_of_the_replicas."""

from __future__ import annotations

import math
from typing import Any

import pytest

from qwen_operator.adapters import prometheus
from qwen_operator.adapters.prometheus import PodSample, read_router_in_flight, router_query
from qwen_operator.autoscaling.policy import (
    HOLD_METRICS_INVALID,
    AutoscalingConfig,
    Decision,
    Observation,
    PolicyState,
    ReplicaSample,
    decide,
)
from qwen_operator.handlers.autoscaler import attach_router_in_flight

CFG = AutoscalingConfig(min_replicas=1, max_replicas=10, warm_pool=0)


def _obs(*samples: ReplicaSample, t: float = 1000.0) -> Observation:
    return Observation(
        time=t,
        samples=samples,
        ready_replicas=len(samples),
        starting_replicas=0,
        current_desired=len(samples),
        metrics_time=t - 2,
    )


def test_in_flight_beyond_running_counts_as_waiting():
    assert ReplicaSample(2.0, 4.0, 0.1).queued() == 2.0  # no router: vLLM's queue
    assert ReplicaSample(2.0, 4.0, 0.1, router_in_flight=10.0).queued() == 6.0  # 6 not yet in vLLM's scheduler
    assert ReplicaSample(2.0, 4.0, 0.1, router_in_flight=5.0).queued() == 2.0  # fewer: vLLM's own queue wins
    assert ReplicaSample(0.0, 4.0, 0.1, router_in_flight=0.0).queued() == 0.0  # finished since the router's scrape


def test_the_router_signal_scales_up_where_vllms_queue_alone_does_not():
    """The same fleet, the same vLLM gauges: only the router knows that 12 more requests wait for each replica."""
    without = _two_minutes(ReplicaSample(0.0, 4.0, 0.2, name="m-0"))
    with_router = _two_minutes(ReplicaSample(0.0, 4.0, 0.2, name="m-0", router_in_flight=16.0))
    assert without.observed_queue == 0.0 and with_router.observed_queue == 12.0
    assert without.desired_replicas == 1, without.message
    assert with_router.desired_replicas > 1, with_router.message


def _two_minutes(sample: ReplicaSample) -> Decision:
    """The same sample from one Ready replica every 5 s for two minutes; the last decision."""
    state, d = PolicyState(), None
    for t in range(1000, 1120, 5):
        d = decide(_obs(sample, t=float(t)), state, CFG)
        state = d.state
    assert d is not None
    return d


def test_a_garbage_router_count_holds_like_any_garbage_sample():
    d = decide(_obs(ReplicaSample(0.0, 1.0, 0.1, name="m-0", router_in_flight=math.nan)), PolicyState(), CFG)
    assert d.reason == HOLD_METRICS_INVALID and "router in-flight" in d.message


def test_router_query_sums_the_router_pods_per_worker_and_drops_stale_series():
    q = router_query("ns", "m.x")
    assert q.startswith("sum by (worker) (vllm_router_running_requests{")
    assert 'namespace="ns"' in q and 'pod=~"m\\\\.x-router-[a-z0-9]+-[a-z0-9]+"' in q
    assert "time() - timestamp(vllm_router_running_requests{" in q and "< 30" in q
    # the vLLM pods of the same deployment (m.x-0) and of one named m.x-router (m.x-router-0) are not router pods
    assert "-router-[a-z0-9]+-[a-z0-9]+" in q


class _FakeProm:
    def __init__(self, result: list[dict[str, Any]] | Exception) -> None:
        self.result = result
        self.queries: list[str] = []

    def custom_query(self, q: str) -> list[dict[str, Any]]:
        self.queries.append(q)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_read_router_in_flight_keys_by_the_replicas_address(monkeypatch: pytest.MonkeyPatch):
    fake = _FakeProm(
        [
            {"metric": {"worker": "http://10.244.0.7:8000"}, "value": [0, "3"]},
            {"metric": {"worker": "10.244.0.8:8000"}, "value": [0, "0"]},
            {"metric": {"worker": "http://10.244.0.9:8000"}, "value": [0, "NaN"]},  # left out, not held on
            {"metric": {"worker": "http://10.244.0.10:8000"}, "value": [0, "-1"]},
            {"metric": {}, "value": [0, "5"]},  # no worker label
        ]
    )
    monkeypatch.setattr(prometheus, "_connect", lambda url, timeout_s: fake)
    read = read_router_in_flight("http://prom", "ns", "m")
    assert read.error is None and read.in_flight == {"10.244.0.7": 3.0, "10.244.0.8": 0.0}
    assert fake.queries == [router_query("ns", "m")]


def test_a_router_read_that_fails_is_a_reason_not_an_exception(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(prometheus, "_connect", lambda url, timeout_s: _FakeProm(ConnectionError("refused")))
    read = read_router_in_flight("http://prom", "ns", "m")
    assert read.in_flight == {} and "ConnectionError" in (read.error or "")


def test_attach_maps_worker_addresses_to_pods():
    samples = {n: PodSample(pod=n, waiting=0.0, running=1.0, kv_cache_usage=0.1, age_s=1.0) for n in ("m-0", "m-1")}
    pods = [
        {"metadata": {"name": "m-0"}, "status": {"podIP": "10.244.0.7"}},
        {"metadata": {"name": "m-1"}, "status": {"podIP": "10.244.0.8"}},  # not discovered by the router yet
        {"metadata": {"name": "m-2"}, "status": {"podIP": "10.244.0.9"}},  # no vLLM sample: nothing to attach to
    ]
    attach_router_in_flight(samples, {"10.244.0.7": 4.0, "10.244.0.9": 2.0}, pods)
    assert samples["m-0"].router_in_flight == 4.0 and samples["m-1"].router_in_flight is None
    assert samples["m-0"].replica_sample().router_in_flight == 4.0
