"""Fleet sizing (`qwenctl plan`): from users and turns to tokens per second at peak and a replica count. Pure
arithmetic.  (Not the reconcile plan of manifests/plan.py: this sizes a fleet before it exists.)

Founding-notes example: 1,000 daily users x 50 turns, 30% of turns routed to the model this fleet serves,
300 input / 400 output tokens, peak 5x the daily average:
  1000 x 50 x 0.3 x 400 / 86400 s = 69 output tokens/s on average, x 5 = 347 at peak -> one 4xH100 replica
  (about 500 output tokens/s) plus one for failover.
An agent makes several model calls per user request (planning, tool calls, a final answer): ``calls_per_request``
multiplies the load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class FleetDemand:
    daily_users: int
    turns_per_user: float
    input_tokens: float  # per model call
    output_tokens: float  # per model call
    peak_factor: float = 5.0
    routed_share: float = 1.0  # fraction of turns this fleet serves
    replica_output_tps: float = 500.0  # sustained output tokens/s of one replica at the target latency
    failover_replicas: int = 1
    calls_per_request: float = 1.0  # model calls per user request (agent fan-out)


@dataclass(frozen=True)
class FleetSize:
    requests_per_day: float  # model calls per day
    avg_output_tps: float
    peak_output_tps: float
    peak_input_tps: float
    peak_requests_per_s: float
    serving_replicas: int
    total_replicas: int
    utilization_at_peak: float

    def lines(self) -> list[str]:
        return [
            f"model calls/day served:   {self.requests_per_day:,.0f}",
            f"output tokens/s average:  {self.avg_output_tps:,.1f}",
            f"output tokens/s at peak:  {self.peak_output_tps:,.1f}",
            f"input tokens/s at peak:   {self.peak_input_tps:,.1f}",
            f"requests/s at peak:       {self.peak_requests_per_s:,.2f}",
            f"replicas for peak:        {self.serving_replicas} ({self.utilization_at_peak:.0%} of their throughput)",
            f"replicas with failover:   {self.total_replicas}",
        ]


def size_fleet(c: FleetDemand) -> FleetSize:
    if c.daily_users < 0 or c.turns_per_user < 0 or c.input_tokens < 0 or c.output_tokens < 0:
        raise ValueError("users, turns and token counts must not be negative")
    if not (c.calls_per_request > 0 and math.isfinite(c.calls_per_request)):
        raise ValueError("calls per request must be a positive number")
    if not 0 < c.routed_share <= 1:
        raise ValueError("routed share must be in (0, 1]")
    if c.peak_factor < 1:
        raise ValueError("peak factor must be at least 1")
    if c.replica_output_tps <= 0:
        raise ValueError("replica throughput must be positive")
    reqs = c.daily_users * c.turns_per_user * c.routed_share * c.calls_per_request
    avg_out = reqs * c.output_tokens / SECONDS_PER_DAY
    peak_out = avg_out * c.peak_factor
    peak_in = reqs * c.input_tokens / SECONDS_PER_DAY * c.peak_factor
    serving = max(1, math.ceil(peak_out / c.replica_output_tps)) if reqs > 0 else 0
    return FleetSize(
        requests_per_day=reqs,
        avg_output_tps=avg_out,
        peak_output_tps=peak_out,
        peak_input_tps=peak_in,
        peak_requests_per_s=reqs / SECONDS_PER_DAY * c.peak_factor,
        serving_replicas=serving,
        total_replicas=serving + (c.failover_replicas if serving else 0),
        utilization_at_peak=(peak_out / (serving * c.replica_output_tps)) if serving else 0.0,
    )
