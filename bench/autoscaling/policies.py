"""Autoscaling policies for the benchmark: ours (through an adapter to the operator's pure policy)
and faithful reimplementations of the anchors (formulas and defaults from
/work/shared/reference/anchors.md; written from the formulas, no code copied).

Every policy has ``name``, ``period_s`` and ``decide(view) -> desired replicas``; the simulator
clamps the answer to [min_replicas, max_replicas] like the StatefulSet's owner would.
"""

from __future__ import annotations

import math
from collections import deque

from qwen_operator.autoscaling.policy import AutoscalingConfig, Observation, PolicyState, ReplicaSample, decide

from .sim import FleetView


class Ours:
    """The operator's policy: Prometheus samples -> Observation -> decide() -> desired replicas."""

    def __init__(self, config: AutoscalingConfig, name: str = "ours", period_s: float = 15.0) -> None:
        self.name = name
        self.period_s = period_s
        self.config = config
        self.state = PolicyState()
        self.reasons: dict[str, int] = {}

    def decide(self, view: FleetView) -> int:
        samples = tuple(
            ReplicaSample(
                waiting=s.waiting,
                running=s.running,
                kv_cache_usage=s.kv,
                name=str(rid),
                request_rate=s.rate,
                token_rate=s.token_rate,
                prompt_token_rate=s.prompt_rate,
                generation_token_rate=s.generated_rate,
            )
            for rid, s in view.samples.items()
        )
        mt = min((s.t for s in view.samples.values()), default=None)
        obs = Observation(
            time=view.now,
            samples=samples,
            ready_replicas=len(view.ready_ids),
            starting_replicas=view.starting,
            current_desired=view.desired,
            metrics_time=mt,
        )
        # the operator persists the state as JSON in the status: exercise that round trip
        d = decide(obs, PolicyState.from_dict(self.state.to_dict()), self.config)
        self.state = d.state
        self.reasons[d.reason] = self.reasons.get(d.reason, 0) + 1
        return d.desired_replicas


class HpaBehavior:
    """Kubernetes HPA v2 replica rules shared by the HPA and KEDA baselines (defaults):
    tolerance 0.1; scale-up: no stabilization, at most max(+4 pods, +100 %) per 15 s period;
    scale-down: stabilization 300 s (the highest recommendation of the window wins), 100 % per 15 s."""

    def __init__(
        self, min_replicas: int, max_replicas: int, tolerance: float = 0.1, down_window_s: float = 300.0
    ) -> None:
        self.min = min_replicas
        self.max = max_replicas
        self.tol = tolerance
        self.down_window = down_window_s
        self.recs: deque[tuple[float, int]] = deque()

    def apply(self, now: float, current: int, raw: int) -> int:
        raw = max(self.min, min(self.max, raw))
        self.recs.append((now, raw))
        while self.recs and self.recs[0][0] < now - self.down_window:
            self.recs.popleft()
        if raw < current:
            stabilized = max(n for _, n in self.recs)
            return min(current, stabilized)
        if raw > current:
            return min(raw, max(current + 4, 2 * current), self.max)
        return current


class HpaGpuUtil:
    """HPA on DCGM_FI_DEV_GPU_UTIL (Pods metric, target average 70 %).

    ratio = mean util / target over the pods with metrics; pods still starting are counted with 0 %
    when the ratio asks for a scale-up (the HPA's rule for pods without usable metrics), which keeps
    it from double-counting capacity on its way.  desired = ceil(ratio * pods) unless |ratio-1| <= 0.1.
    """

    def __init__(self, min_replicas: int, max_replicas: int, target: float = 0.70) -> None:
        self.name = "hpa-gpu-util"
        self.period_s = 15.0
        self.target = target
        self.hpa = HpaBehavior(min_replicas, max_replicas)

    def decide(self, view: FleetView) -> int:
        utils = [s.util for s in view.samples.values()]
        if not utils:
            return view.desired
        ratio = sum(utils) / len(utils) / self.target
        pods = len(utils)
        if ratio > 1.0 and view.starting:
            pods += view.starting
            ratio = sum(utils) / pods / self.target
        if abs(ratio - 1.0) <= self.hpa.tol:
            raw = view.desired
        else:
            raw = math.ceil(ratio * pods)
        return self.hpa.apply(view.now, view.desired, raw)


class KedaQueue:
    """vLLM production-stack chart: KEDA ScaledObject on sum(vllm:num_requests_waiting) from
    Prometheus, AverageValue threshold 5, pollingInterval 15 s, cooldownPeriod 360 s,
    minReplicaCount 1.  KEDA hands the metric to the HPA: desired = ceil(sum / threshold) when
    |1 - sum / (threshold * N)| > 0.1 (N = current replicas), then the HPA behavior above.
    cooldownPeriod only governs the last replica -> 0 step, which minReplicaCount 1 forbids."""

    def __init__(self, min_replicas: int, max_replicas: int, threshold: float = 5.0) -> None:
        self.name = "keda-prodstack"
        self.period_s = 15.0
        self.threshold = threshold
        self.hpa = HpaBehavior(max(1, min_replicas), max_replicas)

    def decide(self, view: FleetView) -> int:
        if not view.samples:
            return view.desired
        total = sum(s.waiting for s in view.samples.values())
        n = max(1, view.desired)
        if abs(1.0 - total / (self.threshold * n)) <= 0.1:
            raw = n
        else:
            raw = math.ceil(total / self.threshold)
        return self.hpa.apply(view.now, view.desired, raw)


class AibrixKpa:
    """AIBrix KPA on vllm:num_requests_waiting, target ``target`` waiting per replica.

    Re-sync every 10 s, reading the pods directly (AIBrix scrapes pod /metrics itself, no Prometheus
    delay); values go into 1 s buckets; stable window 180 s and panic window 60 s average them.
    dspc = ceil(stable / target), dppc = ceil(panic / target), each kept at N when the value lies in
    target * (1 +- 0.1); both clamped to [floor(N / 2), max(1, ceil(2 N))]; panic while
    panic / stable > 2.0, no scale-down in panic; scale-down delay 300 s (highest desired of the
    window).  The windowed value here is the fleet total (the Knative semantics and AIBrix's earlier
    sum-based metrics client): the current AIBrix code averages over pods and still divides by the
    per-pod target without multiplying by N, which makes the answer independent of the fleet size.
    See README (deviations)."""

    def __init__(self, min_replicas: int, max_replicas: int, target: float = 5.0) -> None:
        self.name = "aibrix-kpa"
        self.period_s = 10.0
        self.target = target
        self.min = min_replicas
        self.max = max_replicas
        self.samples: deque[tuple[float, float]] = deque()
        self.in_panic = False
        self.max_panic_pods = 0
        self.delay: deque[tuple[float, int]] = deque()

    def _avg(self, now: float, window: float) -> float:
        vals = [v for t, v in self.samples if t > now - window]
        return sum(vals) / len(vals) if vals else 0.0

    def decide(self, view: FleetView) -> int:
        now = view.now
        total = float(sum(view.live_waiting))
        self.samples.append((now, total))
        while self.samples and self.samples[0][0] <= now - 180.0:
            self.samples.popleft()
        stable = self._avg(now, 180.0)
        panic = self._avg(now, 60.0)
        n = max(0, len(view.ready_ids))
        t = self.target

        def pods(value: float) -> int:
            if t * 0.9 * max(n, 1) <= value <= t * 1.1 * max(n, 1) and n > 0:
                return n
            return math.ceil(value / t)

        lo = math.floor(n / 2)
        hi = max(1, math.ceil(2 * n))
        dspc = min(max(pods(stable), lo), hi)
        dppc = min(max(pods(panic), lo), hi)
        self.in_panic = stable > 0 and panic / stable > 2.0
        desired = dspc
        if self.in_panic:
            desired = max(desired, dppc, self.max_panic_pods)
            self.max_panic_pods = desired
        else:
            self.max_panic_pods = 0
        self.delay.append((now, desired))
        while self.delay and self.delay[0][0] <= now - 300.0:
            self.delay.popleft()
        desired = max(d for _, d in self.delay)
        return max(self.min, min(self.max, desired))


class KubeAI:
    """KubeAI model autoscaler: every 10 s, the in-flight requests its proxy counts for the model
    (queued and running) go into a moving average over 10 min (60 samples); desired =
    ceil(avg / targetRequests), targetRequests 100; a scale-down is applied only after 3 consecutive
    lower decisions (scaleDownDelaySeconds 30 / interval 10 s); scale-up immediately.  The average is
    seeded with the first observation (KubeAI starts from zeros after a restart; we start it warm)."""

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        target_requests: float = 100.0,
        window: int = 60,
        consecutive_down: int = 3,
    ) -> None:
        self.name = "kubeai"
        self.period_s = 10.0
        self.target = target_requests
        self.min = min_replicas
        self.max = max_replicas
        self.window: deque[float] = deque(maxlen=window)
        self.need_down = consecutive_down
        self.down_count = 0

    def decide(self, view: FleetView) -> int:
        x = float(view.proxy_inflight)
        if not self.window:
            self.window.extend([x] * (self.window.maxlen or 1))
        self.window.append(x)
        avg = sum(self.window) / len(self.window)
        want = max(self.min, min(self.max, math.ceil(avg / self.target)))
        if want < view.desired:
            self.down_count += 1
            if self.down_count >= self.need_down:
                self.down_count = 0
                return want
            return view.desired
        self.down_count = 0
        return want
