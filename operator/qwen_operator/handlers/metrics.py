"""The operator's own Prometheus metrics (served on QWEN_METRICS_PORT at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("qwen_operator_reconciles_total", "Reconcile passes, by what triggered them", ["trigger"])
RECONCILE_SECONDS = Histogram(
    "qwen_operator_reconcile_duration_seconds",
    "Time of one reconcile pass",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SCALING_DECISIONS = Counter(
    "qwen_operator_scaling_decisions_total", "Autoscaling decisions", ["namespace", "deployment", "reason"]
)
OBSERVED_QUEUE = Gauge(
    "qwen_operator_observed_queue", "Waiting requests the autoscaler saw", ["namespace", "deployment"]
)
ROUTER_IN_FLIGHT = Gauge(
    "qwen_operator_router_in_flight",
    "Requests vLLM's router had in flight on the Ready replicas at the last autoscaling pass (spec.routing)",
    ["namespace", "deployment"],
)
DESIRED_REPLICAS = Gauge("qwen_operator_desired_replicas", "Replicas the autoscaler wants", ["namespace", "deployment"])
WARM_REPLICAS = Gauge(
    "qwen_operator_warm_replicas", "Warm-pool replicas kept above demand", ["namespace", "deployment"]
)
COMPILE_CACHE_PODS = Gauge(
    "qwen_operator_compile_cache_pods", "Serving pods by compile-cache evidence", ["namespace", "deployment", "hit"]
)
