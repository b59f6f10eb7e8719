"""Layer 4, pure: the autoscaling policy (observations + state -> decision + reason).  See policy.py."""

from .policy import (
    AutoscalingConfig,
    Decision,
    Observation,
    PolicyState,
    ReplicaSample,
    decide,
    default_scale_down_window_s,
    floor_replicas,
)

__all__ = [
    "AutoscalingConfig",
    "Decision",
    "Observation",
    "PolicyState",
    "ReplicaSample",
    "decide",
    "default_scale_down_window_s",
    "floor_replicas",
]
