"""Operator configuration, from environment variables (set by the Helm chart)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: list[str] = field(default_factory=lambda: _list("QWEN_WATCH_NAMESPACES"))  # empty: cluster-wide
    resync_seconds: float = float(os.environ.get("QWEN_RESYNC_SECONDS", "30"))
    prometheus_url: str | None = os.environ.get("QWEN_PROMETHEUS_URL") or None
    metrics_port: int = int(os.environ.get("QWEN_METRICS_PORT", "8080"))  # 0: no metrics endpoint
    health_port: int = int(os.environ.get("QWEN_HEALTH_PORT", "8081"))  # 0: no liveness endpoint
    autoscale_tick_seconds: float = float(os.environ.get("QWEN_AUTOSCALE_TICK_SECONDS", "5"))


CONFIG = OperatorConfig()
