"""Discrete-event simulation of a vLLM fleet serving a trace under an autoscaling policy.

Model (see README.md for the numbers):
* Each replica runs vLLM's continuous batching with chunked prefill as a fluid between events: every
  engine step gives one token to each decoding sequence and up to ``max_num_batched_tokens - n_decode``
  prompt tokens to the prefill queue, served first-come first-served; the step time comes from the
  roofline model in service.py and is recomputed whenever the batch changes (arrival, prefill done,
  sequence finished).  A waiting request is admitted when a sequence slot (max_num_seqs) and KV space
  for prompt + output are free and the step still has token budget left (as vLLM V1 schedules
  running requests before waiting ones).
* TTFT = end of the request's prefill - arrival.  Requests longer than max_model_len are rejected.
* Routing: a ``Router`` of routing.py (random, round-robin, power-of-two, least outstanding work, cache-aware)
  among Ready, non-terminating replicas; every replica keeps a prefix cache (routing.PrefixCache) and a request
  skips the prefill of its leading prompt blocks found there.
* Pods: a scale-up creates pods that become Ready after the cold start; a GPU is held (and counted in
  GPU-hours) from creation.  A scale-down deletes pods that are still starting first, then the newest
  Ready pods; a deleted Ready pod leaves the Service and drains its in-flight requests before it exits.
* Observability: Prometheus scrapes every replica every 15 s (vllm:num_requests_waiting,
  vllm:num_requests_running, vllm:kv_cache_usage_perc, DCGM GPU utilisation = busy fraction since the
  previous scrape).  Policies that read Prometheus see the last scrape, i.e. 0-15 s old data.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .routing import BLOCK_TOKENS, PrefixCache, Router
from .service import ServiceModel
from .traces import Request

STARTING, READY, DRAINING, GONE = 0, 1, 2, 3
EV_REPLICA, EV_POD_READY, EV_CALL = 0, 1, 2
EPS_TOK = 1e-6
EPS_D = 1e-7


class Replica:
    """One vLLM engine, fluid between events."""

    __slots__ = (
        "D",
        "T",
        "busy",
        "busy_at_scrape",
        "cache",
        "completed",
        "created",
        "dec",
        "ended",
        "generated_tokens",
        "head_rem",
        "kv_res",
        "n_dec",
        "p",
        "pf",
        "pf_backlog",
        "prompt_tokens",
        "qtok",
        "queue",
        "ready_at",
        "rid",
        "scrapes",
        "seqno",
        "sm",
        "state",
        "sum_D0",
        "sum_prompt_dec",
        "t",
        "t_at_scrape",
        "tokens",
        "ver",
    )

    def __init__(self, rid: int, sm: ServiceModel, created: float, ready_at: float) -> None:
        self.rid = rid
        self.sm = sm
        self.state = STARTING
        self.created = created
        self.ready_at = ready_at
        self.ended = math.inf
        self.queue: deque[Request] = deque()
        self.pf: deque[Request] = deque()
        self.head_rem = 0.0
        self.pf_backlog = 0.0
        self.dec: list[tuple[float, int, Request]] = []
        self.D = 0.0
        self.n_dec = 0
        self.sum_prompt_dec = 0.0
        self.sum_D0 = 0.0
        self.kv_res = 0
        self.t = created
        self.T = 0.0
        self.p = 0.0
        self.busy = 0.0
        self.ver = 0
        self.busy_at_scrape = 0.0
        self.t_at_scrape = created
        self.seqno = 0
        self.qtok = 0
        self.completed = 0
        # prompt + output tokens of completed requests: the sums of vLLM's per-request token histograms
        # (vllm:request_prefill_kv_computed_tokens, vllm:request_generation_tokens; no prefix cache here)
        self.tokens = 0
        # the mix's halves: every prompt token (vllm:request_prompt_tokens) and the generated ones
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.scrapes: deque[tuple[float, int, int, int, int]] = deque()
        self.cache = PrefixCache(sm.kv_capacity_tokens // BLOCK_TOKENS)

    # --- gauges -------------------------------------------------------------------------------
    def outstanding(self) -> int:
        return len(self.queue) + len(self.pf) + self.n_dec

    def waiting(self) -> int:
        return len(self.queue)

    def running(self) -> int:
        return len(self.pf) + self.n_dec

    def kv_usage(self) -> float:
        used = self.sum_prompt_dec + self.n_dec * self.D - self.sum_D0
        if self.pf:
            used += self.pf[0].prompt - self.head_rem
        return max(0.0, min(1.0, used / self.sm.kv_capacity_tokens))

    def gpu_util_since_scrape(self, t: float) -> float:
        self.advance(t)
        dt = t - self.t_at_scrape
        u = (self.busy - self.busy_at_scrape) / dt if dt > 0 else 0.0
        self.busy_at_scrape = self.busy
        self.t_at_scrape = t
        return max(0.0, min(1.0, u))

    # --- dynamics -----------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        dt = t - self.t
        if dt > 0.0:
            if self.n_dec or self.pf:
                steps = dt / self.T
                self.D += steps
                if self.pf:
                    prog = steps * self.p
                    self.head_rem -= prog
                    self.pf_backlog -= prog
                self.busy += dt
            self.t = t

    def process(self, t: float) -> float:
        """Bring the replica to time ``t``, apply completions and admissions; return next event time."""
        self.advance(t)
        self._finish_prefills(t)
        self._finish_decodes(t)
        self._admit()
        # next segment (ServiceModel.step_time, inlined)
        if not self.pf and not self.n_dec:
            return math.inf
        n_dec = self.n_dec
        ctx = self.sum_prompt_dec + n_dec * self.D - self.sum_D0
        if self.sm.additive:
            return self._next_additive(t, n_dec, ctx, self.sm.max_num_batched_tokens)
        return self._next_roofline(t, n_dec, ctx, self.sm.max_num_batched_tokens)

    def _finish_prefills(self, t: float) -> None:
        """Prompts whose prefill is done (the head of the FIFO) get their first token and start decoding."""
        pf = self.pf
        while pf and self.head_rem <= EPS_TOK:
            r = pf.popleft()
            self.pf_backlog -= self.head_rem
            r.ttft = t - r.arrival
            if r.output <= 1:
                r.done = t
                self._complete(r)
                self.kv_res -= r.prompt + r.output
            else:
                self.seqno += 1
                heapq.heappush(self.dec, (self.D + (r.output - 1), self.seqno, r))
                self.n_dec += 1
                self.sum_prompt_dec += r.prompt
                self.sum_D0 += self.D
            if pf:
                self.head_rem = float(pf[0].work)
            else:
                self.head_rem = 0.0
                self.pf_backlog = 0.0

    def _finish_decodes(self, t: float) -> None:
        """Sequences that decoded their last token leave the batch and free their KV."""
        dec = self.dec
        lim = self.D + EPS_D
        while dec and dec[0][0] <= lim:
            fD, _, r = heapq.heappop(dec)
            self.n_dec -= 1
            self.sum_prompt_dec -= r.prompt
            self.sum_D0 -= fD - (r.output - 1)
            self.kv_res -= r.prompt + r.output
            r.done = t
            self._complete(r)
        if self.n_dec == 0:
            self.sum_prompt_dec = 0.0
            self.sum_D0 = 0.0

    def _complete(self, r: Request) -> None:
        self.completed += 1
        self.tokens += r.work + r.output
        self.prompt_tokens += r.prompt
        self.generated_tokens += r.output

    def _admit(self) -> None:
        """Waiting requests join the prefill FIFO while sequences, the token budget and the KV cache allow."""
        sm, q, pf = self.sm, self.queue, self.pf
        budget = sm.max_num_batched_tokens
        S = sm.max_num_seqs
        cap = sm.kv_capacity_tokens
        while q and len(pf) + self.n_dec < S and self.pf_backlog < budget - self.n_dec:
            r = q[0]
            need = r.prompt + r.output
            if self.kv_res + need > cap:
                break
            q.popleft()
            self.qtok -= r.work
            pf.append(r)
            self.kv_res += need
            self.pf_backlog += r.work
            if len(pf) == 1:
                self.head_rem = float(r.work)

    def _next_roofline(self, t: float, n_dec: int, ctx: float, budget: int) -> float:
        """The next segment under the roofline step time (ServiceModel.step_time: overhead + max(memory, compute))."""
        pf, dec = self.pf, self.dec
        ovh, w_bw, kv_bw, fdec_f, attn_f, inv_f, lin2, attn_half = self.sm._k  # type: ignore[attr-defined]
        mem = w_bw + kv_bw * ctx
        comp = n_dec * fdec_f + attn_f * ctx
        if pf:
            p = float(budget - n_dec)
            if self.pf_backlog < p:
                p = self.pf_backlog
            comp += p * (lin2 + attn_half * pf[0].prompt) * inv_f
            T = ovh + (mem if mem > comp else comp)
            self.T = T
            self.p = p
            nxt = t + self.head_rem / p * T
        else:
            T = ovh + (mem if mem > comp else comp)
            self.T = T
            self.p = 0.0
            nxt = math.inf
        if dec:
            td = t + max(0.0, dec[0][0] - self.D) * T
            if td < nxt:
                nxt = td
        return nxt

    def _next_additive(self, t: float, n_dec: int, ctx: float, budget: int) -> float:
        """The next segment under the additive step time (ServiceModel.additive_step)."""
        pf = self.pf
        p = 0.0
        if pf:
            p = float(budget - n_dec)
            if self.pf_backlog < p:
                p = self.pf_backlog
        T = self.sm.additive_step(n_dec, ctx, p, float(pf[0].prompt) if pf else 0.0)
        self.T = T
        self.p = p
        nxt = t + self.head_rem / p * T if pf else math.inf
        if self.dec:
            td = t + max(0.0, self.dec[0][0] - self.D) * T
            if td < nxt:
                nxt = td
        return nxt


@dataclass
class Sample:
    t: float
    waiting: float
    running: float
    kv: float
    util: float
    rate: float | None = None  # rate(vllm:request_success_total[1m]); None until two scrapes exist
    token_rate: float | None = None  # tokens (prompt + output) of the requests completed per s, same minute
    prompt_rate: float | None = None  # their prompt tokens, cached or not, per s
    generated_rate: float | None = None  # their generated tokens per s


@dataclass
class FleetView:
    now: float
    desired: int
    ready_ids: list[int]
    starting: int
    samples: dict[int, Sample]  # last Prometheus scrape of each Ready replica (may be missing)
    live_waiting: list[int]  # direct pod reads (AIBrix scrapes pods itself), Ready replicas
    live_running: list[int]
    proxy_inflight: int  # requests in flight as a proxy counts them (KubeAI), incl. queued


class Policy(Protocol):
    name: str
    period_s: float

    def decide(self, view: FleetView) -> int: ...


@dataclass
class SimConfig:
    cold_start_s: float
    cold_start_jitter: float = 0.05
    router: str = "least-work"  # one of routing.ROUTERS
    scrape_interval_s: float = 15.0
    min_replicas: int = 1
    max_replicas: int = 20
    initial_replicas: int = 1
    horizon_tail_s: float = 120.0
    seed: int = 7


@dataclass
class SimResult:
    policy: str
    requests: list[Request]
    gpu_seconds: float
    scaling_events: int
    horizon: float
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, desired, ready, starting
    # (created, ended) of every pod, clipped to the horizon: GPU time held, for accounting over part of a run
    pod_spans: list[tuple[float, float]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


class Fleet:
    """Replicas, routing, pod lifecycle and the event heap."""

    def __init__(
        self, sm: ServiceModel, cold_start_s: float, jitter: float = 0.0, seed: int = 0, router: str = "least-work"
    ) -> None:
        self.sm = sm
        self.router = Router(router, seed=seed + 101)
        self.uid = 0  # ids of the blocks given to prompts that carry none (they never match)
        self.cold = cold_start_s
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.replicas: list[Replica] = []
        self.routable: list[Replica] = []
        self.heap: list[tuple[float, int, int, object, int]] = []
        self.seq = 0
        self.t = 0.0
        self.arrivals: list[Request] = []
        self.ai = 0
        self.rejected = 0

    # --- events ---------------------------------------------------------------------------------
    def push(self, t: float, kind: int, obj: object, ver: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, obj, ver))

    def _touch(self, r: Replica, t: float) -> None:
        nxt = r.process(t)
        r.ver += 1
        if nxt < math.inf:
            self.push(nxt, EV_REPLICA, r, r.ver)
        elif r.state == DRAINING:
            r.state = GONE
            r.ended = t

    # --- pods -----------------------------------------------------------------------------------
    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.state in (STARTING, READY)]

    def n_starting(self) -> int:
        return sum(1 for r in self.replicas if r.state == STARTING)

    def add_pod(self, t: float, instant: bool = False) -> Replica:
        cold = 0.0 if instant else self.cold * (1.0 + self.jitter * (2 * self.rng.random() - 1))
        r = Replica(len(self.replicas), self.sm, t, t + cold)
        self.replicas.append(r)
        if cold <= 0.0:
            self._make_ready(r, t)
        else:
            self.push(t + cold, EV_POD_READY, r)
        return r

    def _make_ready(self, r: Replica, t: float) -> None:
        if r.state != STARTING:
            return
        r.state = READY
        r.t = t
        r.t_at_scrape = t
        self.routable.append(r)

    def set_desired(self, n: int, t: float, instant: bool = False) -> None:
        alive = self.alive()
        cur = len(alive)
        if n > cur:
            for _ in range(n - cur):
                self.add_pod(t, instant)
        elif n < cur:
            k = cur - n
            starting = sorted((r for r in alive if r.state == STARTING), key=lambda r: -r.rid)
            for r in starting[:k]:
                r.state = GONE
                r.ended = t
            k -= min(k, len(starting))
            if k:
                ready = sorted((r for r in alive if r.state == READY), key=lambda r: -r.rid)
                for r in ready[:k]:
                    self.drain(r, t)

    def drain(self, r: Replica, t: float) -> None:
        r.state = DRAINING
        self.routable.remove(r)
        self._touch(r, t)

    # --- requests -------------------------------------------------------------------------------
    def route(self, req: Request, t: float) -> None:
        if (
            req.prompt + req.output > self.sm.model.max_model_len
            or req.prompt + req.output > self.sm.kv_capacity_tokens
        ):
            req.rejected = True
            self.rejected += 1
            return
        if not self.routable:
            # no Ready replica: the gateway holds the request (503-retry) until one is Ready
            self.pending.append(req)
            return
        if req.blocks is None:
            n = -(-req.prompt // BLOCK_TOKENS)
            req.blocks = tuple(range(-self.uid - n, -self.uid))  # blocks of its own: they take space, never match
            self.uid += n
        best = self.router.pick(self.routable, req, t)
        hit = best.cache.match(req.blocks)
        req.work = max(1, req.prompt - hit * BLOCK_TOKENS)
        best.cache.insert(req.blocks)
        if best.queue:
            # others wait ahead of it (FIFO): nothing about the running batch changes now
            best.queue.append(req)
            best.qtok += req.work
            return
        best.queue.append(req)
        best.qtok += req.work
        self._touch(best, t)

    pending: deque  # set in run()

    def flush_pending(self, t: float) -> None:
        while self.pending and self.routable:
            self.route(self.pending.popleft(), t)

    def run_until(self, t_stop: float) -> None:
        """Process arrivals and events up to and including ``t_stop``."""
        heap = self.heap
        arr = self.arrivals
        n = len(arr)
        while True:
            ta = arr[self.ai].arrival if self.ai < n else math.inf
            te = heap[0][0] if heap else math.inf
            if ta > t_stop and te > t_stop:
                break
            if ta <= te:
                self.t = ta
                self.route(arr[self.ai], ta)
                self.ai += 1
                continue
            t, _, kind, obj, ver = heapq.heappop(heap)
            self.t = t
            if kind == EV_REPLICA:
                assert isinstance(obj, Replica)
                if obj.ver == ver and obj.state != GONE:
                    self._touch(obj, t)
            elif kind == EV_POD_READY:
                assert isinstance(obj, Replica)
                self._make_ready(obj, t)
                self.flush_pending(t)
            else:
                obj(t)  # type: ignore[operator]
        self.t = t_stop


def run_sim(requests: Sequence[Request], policy: Policy, sm: ServiceModel, cfg: SimConfig) -> SimResult:
    """Replay ``requests`` (fresh Request objects) through a fleet governed by ``policy``."""
    fleet = Fleet(sm, cfg.cold_start_s, cfg.cold_start_jitter, cfg.seed, router=cfg.router)
    fleet.pending = deque()
    fleet.arrivals = list(requests)
    horizon = (requests[-1].arrival if requests else 0.0) + cfg.horizon_tail_s
    for _ in range(cfg.initial_replicas):
        fleet.add_pod(0.0, instant=True)
    desired = cfg.initial_replicas
    samples: dict[int, Sample] = {}
    timeline: list[tuple[float, int, int, int]] = []
    state = {"desired": desired, "events": 0}
    rng = random.Random(cfg.seed + 1)

    def scrape(t: float) -> None:
        for r in fleet.replicas:
            if r.state in (READY, DRAINING):
                r.advance(t)
                hist = r.scrapes
                hist.append((t, r.completed, r.tokens, r.prompt_tokens, r.generated_tokens))
                while hist and hist[0][0] < t - 60.0 - 1e-6:
                    hist.popleft()
                rates: tuple[float | None, ...] = (None, None, None, None)
                if len(hist) >= 2:
                    span = hist[-1][0] - hist[0][0]
                    rates = tuple((hist[-1][i] - hist[0][i]) / span for i in range(1, 5))
                samples[r.rid] = Sample(
                    t, float(r.waiting()), float(r.running()), r.kv_usage(), r.gpu_util_since_scrape(t), *rates
                )
            else:
                samples.pop(r.rid, None)
        fleet.push(t + cfg.scrape_interval_s, EV_CALL, scrape)

    def tick(t: float) -> None:
        ready = [r for r in fleet.replicas if r.state == READY]
        for r in ready:
            r.advance(t)
        view = FleetView(
            now=t,
            desired=state["desired"],
            ready_ids=[r.rid for r in ready],
            starting=fleet.n_starting(),
            samples={r.rid: samples[r.rid] for r in ready if r.rid in samples},
            live_waiting=[r.waiting() for r in ready],
            live_running=[r.running() for r in ready],
            proxy_inflight=sum(r.outstanding() for r in fleet.replicas if r.state in (READY, DRAINING))
            + len(fleet.pending),
        )
        want = policy.decide(view)
        want = max(cfg.min_replicas, min(cfg.max_replicas, int(want)))
        if want != state["desired"]:
            state["events"] += 1
            state["desired"] = want
            fleet.set_desired(want, t)
        timeline.append((t, want, len(ready), fleet.n_starting()))
        fleet.push(t + policy.period_s, EV_CALL, tick)

    fleet.push(rng.random() * cfg.scrape_interval_s, EV_CALL, scrape)
    fleet.push(cfg.scrape_interval_s + rng.random() * policy.period_s, EV_CALL, tick)
    fleet.run_until(horizon)
    gpu = 0.0
    spans: list[tuple[float, float]] = []
    for r in fleet.replicas:
        end = min(r.ended, horizon)
        if end > r.created:
            gpu += end - r.created
            spans.append((r.created, end))
    return SimResult(
        policy=policy.name,
        requests=list(requests),
        gpu_seconds=gpu,
        scaling_events=state["events"],
        horizon=horizon,
        timeline=timeline,
        reasons=dict(getattr(policy, "reasons", {})),
        pod_spans=spans,
    )


class FixedSchedule:
    """Replays a precomputed replica schedule (used to check the oracle, and, with a cold start, to bound what
    knowing the right size can buy): at ``now`` it asks for the largest size due before ``now + lead_s``."""

    def __init__(self, name: str, interval_s: float, counts: Sequence[int], lead_s: float = 0.0) -> None:
        self.name = name
        self.period_s = 1.0
        self.interval = interval_s
        self.counts = list(counts)
        self.lead_s = lead_s

    def decide(self, view: FleetView) -> int:
        # With a lead: the largest size needed from now until now + lead (up early, down no earlier than due).
        first = int(view.now // self.interval)
        last = int((view.now + self.lead_s) // self.interval)
        return max(self.counts[min(i, len(self.counts) - 1)] for i in range(first, last + 1))
