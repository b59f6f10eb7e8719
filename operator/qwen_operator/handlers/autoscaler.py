"""Autoscaling handler: thin. Every tick it reads vLLM's gauges (Prometheus) and the pods (watch index), calls the
pure policy (autoscaling.policy.decide: the same function the benchmark replays traces through), and hands the
decision to a reconcile pass, which writes it to status with everything else (one status write per pass) and sizes
the StatefulSet from status.autoscaling.desiredReplicas.

The policy's state (stabilization history, learned capacity) lives in memory (handlers/state.py) and is persisted
to status only when the decision changes, so a steady fleet causes no writes (with a seasonal forecast: one write
per new bucket of the cycle, see status_write_needed); a restarted operator resumes from status.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from ..adapters.prometheus import PodSample, read_replicas, read_router_in_flight
from ..api.models import QwenDeploymentSpec
from ..autoscaling import policy
from ..domain.coldstart import DEFAULT_STARTUP_BUDGET_S
from ..domain.replica_rate import ServiceRatePrior, service_rate_prior
from ..domain.validation import validate_spec
from ..manifests.status import ConditionSet, now_time, pod_issue, pod_ready, pod_start_seconds, previous_conditions
from . import metrics
from .config import CONFIG
from .controller import StatusOverlay, reconcile
from .indexes import Indexes, one
from .state import DeploymentState, OperatorState

log = logging.getLogger("qwen_operator.autoscaler")
DEFAULT_COLD_START_S = 180.0  # until one of the deployment's own pods was seen starting


def measured_cold_start(pods: list[Mapping[str, Any]], startup_budget_s: float = math.inf) -> float | None:
    """The slowest creation-to-Ready time among the deployment's Ready pods: what a scale-up waits now (a baked
    compile cache shows up here as a shorter start). The slowest, so the look-ahead errs on the early side.
    A pod whose Ready time is past its startup budget turned Ready again later (it flapped): not a start."""
    times = [t for t in (pod_start_seconds(p) for p in pods) if t is not None and t <= startup_budget_s]
    return max(times) if times else None


def flap_cap(spec: QwenDeploymentSpec, status: Mapping[str, Any]) -> float:
    """The longest creation-to-Ready time that is still one start (see measured_cold_start): the user's startup
    budget, else the larger of the flat default and the measured budget in status.coldStart (a pod that started
    under the default may have taken longer than a budget derived later)."""
    if spec.startup_timeout_seconds is not None:
        return float(spec.startup_timeout_seconds)
    measured = (status.get("coldStart") or {}).get("startupProbeSeconds")
    if isinstance(measured, (int, float)) and not isinstance(measured, bool):
        return max(float(DEFAULT_STARTUP_BUDGET_S), float(measured))
    return float(DEFAULT_STARTUP_BUDGET_S)


def service_rate_prior_of(spec: QwenDeploymentSpec) -> ServiceRatePrior:
    """The service-rate prior the policy gets for this spec (domain/replica_rate.py service_rate_prior), from the
    spec as validated: its architecture, GPU and fit."""
    report = validate_spec(spec)
    return service_rate_prior(spec, report.arch, report.gpu, report.fit)


def policy_config(
    spec: QwenDeploymentSpec, cold_start_s: float | None = None, prior: ServiceRatePrior | None = None
) -> policy.AutoscalingConfig:
    a = spec.autoscaling
    prior = prior if prior is not None else service_rate_prior_of(spec)
    seasonal_s = float(a.seasonal_period_seconds) if a.seasonal_period_seconds is not None else None
    down_window_s = (
        float(a.scale_down_stabilization_seconds)
        if a.scale_down_stabilization_seconds is not None
        else policy.default_scale_down_window_s(seasonal_s, a.warm_pool)
    )
    return policy.AutoscalingConfig(
        cold_start_s=DEFAULT_COLD_START_S if cold_start_s is None else cold_start_s,
        min_replicas=a.min_replicas,
        max_replicas=a.max_replicas,
        target_queue_per_replica=a.target_queue_per_replica,
        ttft_slo_seconds=a.ttft_slo_seconds,
        max_num_seqs=spec.serving.max_num_seqs,
        warm_pool=a.warm_pool,
        target_utilization=a.target_utilization,
        scale_up_stabilization_s=float(a.scale_up_stabilization_seconds),
        scale_down_stabilization_s=down_window_s,
        scale_down_period_s=float(min(60, max(a.interval_seconds, down_window_s))),
        metrics_max_age_s=float(max(30, 4 * a.interval_seconds)),
        prior_service_rate=a.service_rate_per_replica,
        prior_rate_model=prior.costs.saturation_rate if prior.costs is not None else None,
        seasonal_period_s=seasonal_s,
        burst_headroom_quantile=a.burst_headroom.quantile if a.burst_headroom.enabled else None,
        burst_window_s=float(a.burst_headroom.window_seconds),
    )


def observe(
    pods: list[Mapping[str, Any]], samples: Mapping[str, PodSample], current_desired: int, now: float, error: str | None
) -> policy.Observation:
    ready = [p for p in pods if pod_ready(p) and not p.get("metadata", {}).get("deletionTimestamp")]
    # Scheduled but not yet Ready: capacity on its way. Unschedulable pods are not (more of them would not help).
    starting = [
        p
        for p in pods
        if not pod_ready(p) and not p.get("metadata", {}).get("deletionTimestamp") and (pod_issue(p) is None)
    ]
    out: list[policy.ReplicaSample] = []
    newest_age = math.inf
    for p in ready:
        s = samples.get(p["metadata"]["name"])
        if s is None:
            continue
        out.append(s.replica_sample())
        newest_age = min(newest_age, s.age_s)
    metrics_time = now - newest_age if math.isfinite(newest_age) else None
    return policy.Observation(
        time=now,
        samples=tuple(out),
        ready_replicas=len(ready),
        starting_replicas=len(starting),
        current_desired=current_desired,
        metrics_time=metrics_time,
        metrics_missing=error is not None,
    )


def _status_fields(d: policy.Decision, now_iso: str) -> dict[str, Any]:
    return {
        "desiredReplicas": d.desired_replicas,
        "lastReason": d.reason,
        "lastMessage": d.message[:500],
        "lastQueue": round(d.observed_queue, 3) if math.isfinite(d.observed_queue) else None,
        "lastDecisionTime": now_iso,
        "policyState": d.state.to_dict(),
    }


def status_write_needed(
    d: policy.Decision, auto: Mapping[str, Any], cfg: policy.AutoscalingConfig, current: int
) -> bool:
    """Write status when the decision changes (size, reason, active, the warm replicas the burst headroom holds),
    or when a seasonal forecast recorded a new bucket of its cycle: a steady fleet otherwise writes nothing for
    hours, and a restarted operator would lose that stretch of the recorded cycle (a bucket is 15 min of a day: one
    small write per bucket)."""
    if (
        d.desired_replicas != current
        or d.reason != auto.get("lastReason")
        or bool(d.active) != bool(auto.get("active", True))
        or (d.warm_pool is not None and d.warm_pool != auto.get("warmReplicas", cfg.warm_pool))
    ):
        return True
    mark = policy.season_mark(d.state, cfg)
    return mark is not None and mark != policy.season_mark(policy.PolicyState.from_dict(auto.get("policyState")), cfg)


def _read_metrics(
    namespace: str, name: str, spec: QwenDeploymentSpec, pods: list[Mapping[str, Any]], mix: bool
) -> tuple[Mapping[str, PodSample], str | None]:
    """Each Ready replica's sample, and the request mix (``mix``) when the service-rate estimate needs it."""
    if not CONFIG.prometheus_url:
        return {}, "no Prometheus URL is configured (QWEN_PROMETHEUS_URL / helm value prometheusUrl)"
    read = read_replicas(CONFIG.prometheus_url, namespace, name, mix=mix)
    routed = spec.routing.enabled
    if routed and read.error is None:
        router = read_router_in_flight(CONFIG.prometheus_url, namespace, name)
        if router.error is not None:
            log.debug("%s/%s: %s", namespace, name, router.error)
        attach_router_in_flight(read.samples, router.in_flight, pods)
    return read.samples, read.error


def attach_router_in_flight(
    samples: Mapping[str, PodSample], in_flight: Mapping[str, float], pods: list[Mapping[str, Any]]
) -> None:
    """Give each replica's sample the router's in-flight count for it: the router names a replica by its address
    (worker http://<pod IP>:8000), the pods index maps the address to the pod. A pod the router does not list yet
    (it discovers pods by watching them) keeps None: vLLM's own queue alone then counts."""
    for p in pods:
        ip = (p.get("status") or {}).get("podIP")
        sample = samples.get(p.get("metadata", {}).get("name", ""))
        if ip and sample is not None and ip in in_flight:
            sample.router_in_flight = in_flight[ip]


def _due(ds: DeploymentState, body: Mapping[str, Any]) -> QwenDeploymentSpec | None:
    """The spec, when autoscaling is on and its interval has passed (None otherwise)."""
    if not ((body.get("spec") or {}).get("autoscaling") or {}).get("enabled") or ds.in_terminating_namespace:
        return None
    try:
        spec = QwenDeploymentSpec.model_validate(body.get("spec") or {})
    except Exception:
        return None  # reconcile reports the invalid spec
    mono = time.monotonic()
    if mono - ds.last_autoscale < spec.autoscaling.interval_seconds:
        return None
    ds.last_autoscale = mono
    return spec


def autoscale(state: OperatorState, namespace: str, name: str, indexes: Indexes) -> None:
    """One autoscaling pass for one deployment (called by the operator's loop, handlers/loops.py)."""
    body = one(indexes["deployments"], (namespace, name))
    ds = state.deployment(body["metadata"].get("uid", "")) if body is not None else None
    spec = _due(ds, body) if ds is not None and body is not None else None
    if spec is None or ds is None or body is None:
        return
    status = ds.last_written or body.get("status") or {}
    auto = dict(status.get("autoscaling") or {})
    pods = list(indexes["pods"].get((namespace, name), []))
    cold_start = measured_cold_start(pods, flap_cap(spec, status))
    if cold_start is None and isinstance(auto.get("coldStartSeconds"), (int, float)):
        cold_start = float(auto["coldStartSeconds"])  # remembered across restarts and scale-to-floor
    prior = service_rate_prior_of(spec)
    cfg = policy_config(spec, cold_start, prior)
    current = int(auto.get("desiredReplicas") or policy.floor_replicas(cfg))
    samples, error = _read_metrics(namespace, name, spec, pods, mix=prior.costs is not None)
    router_in_flight = [s.router_in_flight for s in samples.values() if s.router_in_flight is not None]
    d = policy.decide(
        observe(pods, samples, current, time.time(), error),
        ds.policy_state or policy.PolicyState.from_dict(auto.get("policyState")),
        cfg,
    )
    ds.policy_state = d.state
    metrics.SCALING_DECISIONS.labels(namespace, name, d.reason).inc()
    if math.isfinite(d.observed_queue):
        metrics.OBSERVED_QUEUE.labels(namespace, name).set(d.observed_queue)
    metrics.DESIRED_REPLICAS.labels(namespace, name).set(d.desired_replicas)
    if router_in_flight:
        metrics.ROUTER_IN_FLIGHT.labels(namespace, name).set(sum(router_in_flight))
    warm = d.warm_pool if d.warm_pool is not None else cfg.warm_pool  # with burst headroom, above the constant
    metrics.WARM_REPLICAS.labels(namespace, name).set(warm)
    message = d.message if error is None else f"{error}; {d.message}"
    prior_status = {"source": prior.source, "message": prior.message}
    if not status_write_needed(d, auto, cfg, current) and auto.get("serviceRatePrior") == prior_status:
        return
    now_iso = now_time()
    new_auto = {
        **_status_fields(d, now_iso),
        "lastMessage": message[:500],
        "active": bool(d.active),
        "warmReplicas": warm,
        "serviceRatePrior": prior_status,
    }
    if cold_start is not None:
        new_auto["coldStartSeconds"] = round(cold_start, 1)
    if router_in_flight:
        new_auto["routerInFlight"] = round(sum(router_in_flight), 3)
    cs = ConditionSet(
        previous=previous_conditions(status), now=now_iso, generation=int(body["metadata"].get("generation", 1))
    )
    cs.set("AutoscalingActive", d.active, d.reason, message[:1000])
    # The decision is in status (written by this pass) before it is logged or announced: an operator killed in
    # between resumes from status and never decides the same step twice (e2e/test_reliability.py).
    reconcile(state, namespace, name, indexes, "autoscale", StatusOverlay({"autoscaling": new_auto}, cs.items))
    if d.desired_replicas != current:
        log.info("%s/%s: %s -> %s replicas (%s)", namespace, name, current, d.desired_replicas, d.reason)
        state.kube.event(body, "Normal", d.reason, f"{current} -> {d.desired_replicas} replicas: {message}"[:1000])
    elif not d.active and auto.get("active", True):
        state.kube.event(body, "Warning", d.reason, message[:1000])
