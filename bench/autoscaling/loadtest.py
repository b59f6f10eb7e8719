"""A load test of one replica, as a user runs before going live (`vllm bench serve --request-rate inf` with a
sample of the workload's own requests): the completions per second a saturated replica sustains.

The benchmark's "ours-load-tested" variant gives this number to the policy as its prior service rate
(AutoscalingConfig.prior_service_rate; not a spec field), so the policy sizes the fleet linearly in the arrival
rate from the first minute instead of waiting for a replica to saturate. The sample is the trace's first ``sample_s`` seconds
only: what a user could know before the traffic the benchmark replays.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .service import ServiceModel
from .sim import FixedSchedule, SimConfig, run_sim
from .traces import Request


def replica_throughput(
    pairs: Sequence[tuple[int, int]], sm: ServiceModel, n: int = 1000, seed: int = 0, horizon_s: float = 3600.0
) -> float:
    """Completions/s of one replica kept saturated by ``n`` requests (prompt, output tokens) drawn from ``pairs``,
    measured between the 20th and 80th percentile completion (no ramp-up or drain in the window)."""
    if not pairs:
        raise ValueError("no requests to load-test with")
    rng = random.Random(seed)
    reqs = [Request(i * 1e-3, *pairs[rng.randrange(len(pairs))]) for i in range(n)]  # all queued at once
    reqs = [r for r in reqs if r.prompt + r.output <= min(sm.model.max_model_len, sm.kv_capacity_tokens)]
    cfg = SimConfig(
        cold_start_s=0.0,
        cold_start_jitter=0.0,
        min_replicas=1,
        max_replicas=1,
        initial_replicas=1,
        horizon_tail_s=horizon_s,
    )
    run_sim(reqs, FixedSchedule("load-test", 60.0, [1]), sm, cfg)
    done = sorted(r.done for r in reqs)
    if done[4 * len(done) // 5] == float("inf"):
        raise ValueError(f"load test did not finish 80 % of its {len(done)} requests within {horizon_s:.0f} s")
    lo, hi = done[len(done) // 5], done[4 * len(done) // 5]
    if not hi > lo:
        raise ValueError("load test finished too fast to measure")
    return (4 * len(done) // 5 - len(done) // 5) / (hi - lo)


def sample_pairs(rows: Sequence[tuple[float, int, int]], sample_s: float = 600.0) -> list[tuple[int, int]]:
    """(prompt, output) of the requests in the trace's first ``sample_s`` seconds."""
    return [(p, o) for t, p, o in rows if t < sample_s]
