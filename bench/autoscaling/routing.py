"""Request routing across Ready replicas, and each replica's prefix cache.

Routers (``ROUTERS``), as the product can ship them:

* ``random``: a plain Kubernetes ClusterIP Service (kube-proxy picks a backend at random per connection; one
  request per connection assumed).  What the product serves through today.
* ``round-robin``: the vLLM router's ``round_robin`` policy (also a kube-proxy IPVS mode).
* ``power-of-two``: the vLLM router's ``power_of_two``: two replicas drawn at random, the one with fewer requests in
  flight (as the router counts them) wins.
* ``least-work``: the simulator's original rule, the fewest prompt tokens not yet prefilled read from exact replica
  state.  No product router does this; it stays as the optimistic reference the older results used.
* ``cache-aware``: the vLLM router's default ``cache_aware`` policy (https://github.com/vllm-project/router, derived
  from SGLang's model gateway; https://blog.vllm.ai/2025/12/13/vllm-router-release.html): once the busiest replica
  has more than ``balance_abs`` (64) requests in flight over the idlest and more than ``balance_rel`` (1.5) times as
  many, the least-loaded replica; otherwise the replica whose record shares the longest prefix with the request
  when that share is above ``cache_threshold`` (0.3), else the replica with the smallest record (defaults as
  documented for vllm-router v0.1.15 at https://docs.gpustack.ai/gpustack-operator/main/docs/modules/model-deployment/routing/).
  Simplification: the router's record of a replica (a radix tree of the text it sent there, with its own size-based
  eviction) is modelled as that replica's prefix cache itself, in 512-token blocks; ties go to fewer requests in
  flight.

``consistent_hash`` is not modelled: it needs a session or user key, and no trace here carries one.

Prefix cache (vLLM enables automatic prefix caching by default in V1, with LRU eviction:
https://blog.vllm.ai/2025/01/27/v1-alpha-release.html): every replica keeps an LRU of 512-token prompt blocks, as
many as its KV capacity holds (an upper bound: vLLM keeps cached blocks only in KV space that running requests do
not use).  Blocks are Mooncake's ``hash_ids``; a request without them (the Azure traces, the synthetic ones) gets
blocks of its own that never match, so it still takes space.  A request routed to a replica skips the prefill of
its leading blocks found there (at least one prompt token is always computed), and its blocks become the most
recently used.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .sim import Replica
    from .traces import Request

BLOCK_TOKENS = 512  # Mooncake's hash_ids are ids of 512-token prefix blocks
ROUTERS = ("cache-aware", "random", "round-robin", "power-of-two", "least-work")


class PrefixCache:
    """LRU of prompt blocks held by one replica."""

    __slots__ = ("cap", "lru")

    def __init__(self, capacity_blocks: int) -> None:
        self.cap = max(1, capacity_blocks)
        self.lru: OrderedDict[int, None] = OrderedDict()

    def match(self, blocks: Sequence[int]) -> int:
        """How many leading blocks of ``blocks`` are cached."""
        lru = self.lru
        n = 0
        for b in blocks:
            if b not in lru:
                break
            n += 1
        return n

    def insert(self, blocks: Sequence[int]) -> None:
        lru = self.lru
        for b in blocks:
            if b in lru:
                lru.move_to_end(b)
            else:
                lru[b] = None
        while len(lru) > self.cap:
            lru.popitem(last=False)

    def __len__(self) -> int:
        return len(self.lru)


def least_work(replicas: Sequence[Replica], req: Request, t: float) -> Replica:
    """Fewest prompt tokens not yet prefilled (queued + in the prefill FIFO), then fewest running."""
    best = replicas[0]
    bo = float("inf")
    for r in replicas:
        o = r.qtok + 0.001 * (len(r.pf) + r.n_dec)
        if r.pf:
            o += r.pf_backlog - (t - r.t) * r.p / r.T
        if o < bo:
            bo = o
            best = r
    return best


class Router:
    """Picks a replica for each request; ``kind`` is one of ``ROUTERS``."""

    def __init__(
        self,
        kind: str = "least-work",
        seed: int = 0,
        cache_threshold: float = 0.3,
        balance_abs: int = 64,
        balance_rel: float = 1.5,
    ) -> None:
        if kind not in ROUTERS:
            raise ValueError(f"unknown router {kind!r}; one of {', '.join(ROUTERS)}")
        self.kind = kind
        self.rng = random.Random(seed)
        self.rr = 0
        self.cache_threshold = cache_threshold
        self.balance_abs = balance_abs
        self.balance_rel = balance_rel
        pick: dict[str, Callable[[Sequence[Replica], Request, float], Replica]] = {
            "random": self._random,
            "round-robin": self._round_robin,
            "power-of-two": self._power_of_two,
            "least-work": least_work,
            "cache-aware": self._cache_aware,
        }
        self.pick = pick[kind]

    def _random(self, replicas: Sequence[Replica], req: Request, t: float) -> Replica:
        return replicas[self.rng.randrange(len(replicas))]

    def _round_robin(self, replicas: Sequence[Replica], req: Request, t: float) -> Replica:
        self.rr += 1
        return replicas[self.rr % len(replicas)]

    def _power_of_two(self, replicas: Sequence[Replica], req: Request, t: float) -> Replica:
        if len(replicas) == 1:
            return replicas[0]
        a, b = self.rng.sample(range(len(replicas)), 2)
        ra, rb = replicas[a], replicas[b]
        return ra if ra.outstanding() <= rb.outstanding() else rb

    def _cache_aware(self, replicas: Sequence[Replica], req: Request, t: float) -> Replica:
        loads = [r.outstanding() for r in replicas]
        lo, hi = min(loads), max(loads)
        if hi - lo > self.balance_abs and hi > self.balance_rel * lo:
            return replicas[loads.index(lo)]
        blocks = req.blocks or ()
        best, best_n = None, 0
        for r in replicas:
            n = r.cache.match(blocks)
            if n > best_n:
                best, best_n = r, n
        if best is not None and best_n / len(blocks) > self.cache_threshold:
            return best
        i = min(range(len(replicas)), key=lambda k: (len(replicas[k].cache), loads[k]))
        return replicas[i]
