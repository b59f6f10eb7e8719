"""One vLLM V1 engine replayed step by step: the structure check for the fluid replica of bench/autoscaling/sim.py.

sim.Replica is a fluid model: a prompt is prefilled at the step's token rate, so a 129-token prompt costs 129/128 of
a step where vLLM runs two (a full chunk and a 1-token one), and a request that arrives mid-step starts at once.  This
replay keeps what the fluid model smooths out, so that validate_cpu can say how much of the miss against the real
engine is that smoothing:

- every step schedules the running requests first (a decoder one token, a partial prefill its next chunk), then the
  waiting ones in arrival order, within max_num_batched_tokens and max_num_seqs (vLLM's V1 scheduler,
  vllm/v1/core/sched/scheduler.py in https://github.com/vllm-project/vllm);
- a request's first token comes at the end of the step that holds its last prompt chunk, and it decodes one token a
  step after that;
- the engine schedules the next step when the last one ends, from the requests it has then: vLLM's CPU platform
  turns async scheduling off (vllm/platforms/cpu.py), so a request arriving mid-step waits for that step's end.

The step time is the fitted additive step (service.FittedServiceModel) with one more term, ``chunk_s`` per prompt
chunk in the step (an idle engine's prefill step costs more than a decode step of as many sequences).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StepCost:
    step_overhead_s: float
    per_seq_s: float
    per_token_s: float
    kv_token_s: float
    attn_token2_s: float
    chunk_s: float
    r_dec: float  # a decoded token's linear-layer cost over a prompt token's (the lm_head)

    def step(self, n_dec: int, ctx: float, chunks: Sequence[tuple[int, int]]) -> float:
        """``n_dec`` decoders holding ``ctx`` tokens; ``chunks`` = (tokens, prompt length) of each prompt chunk."""
        p = sum(c for c, _ in chunks)
        return (
            self.step_overhead_s
            + self.per_seq_s * (n_dec + len(chunks))
            + self.per_token_s * (self.r_dec * n_dec + p)
            + self.kv_token_s * ctx
            + self.attn_token2_s * sum(c * plen for c, plen in chunks)
            + self.chunk_s * len(chunks)
        )


@dataclass
class _Seq:
    index: int
    arrival: float
    prompt: int
    output: int
    prefilled: int = 0
    emitted: int = 0
    first: float = math.nan
    end: float = math.nan


@dataclass
class _Engine:
    cost: StepCost
    max_num_seqs: int
    budget: int
    running: list[_Seq]

    def schedule(self, waiting: deque[_Seq]) -> tuple[list[_Seq], list[tuple[_Seq, int]]]:
        """One step's decoders and prompt chunks: the running requests first, then the waiting ones in order."""
        left = self.budget
        dec, chunks = [], []
        for s in self.running:
            if left <= 0:
                break
            if s.prefilled < s.prompt:
                c = min(s.prompt - s.prefilled, left)
                chunks.append((s, c))
                left -= c
            else:
                dec.append(s)
                left -= 1
        slots = self.max_num_seqs - len(self.running)
        while waiting and left > 0 and slots > 0:
            s = waiting.popleft()
            self.running.append(s)
            c = min(s.prompt, left)
            chunks.append((s, c))
            left -= c
            slots -= 1
        return dec, chunks

    def run(self, t: float, dec: list[_Seq], chunks: list[tuple[_Seq, int]]) -> float:
        """Run one step from ``t``; returns its end, with first tokens, tokens and completions applied."""
        ctx = sum(s.prompt + s.emitted for s in dec)
        end = t + self.cost.step(len(dec), ctx, [(c, s.prompt) for s, c in chunks])
        for s, c in chunks:
            s.prefilled += c
            if s.prefilled >= s.prompt:
                s.first, s.emitted = end, 1
        for s in dec:
            s.emitted += 1
        for s in [*dec, *(s for s, _ in chunks)]:
            if s.emitted >= s.output and s.prefilled >= s.prompt:
                s.end = end
                self.running.remove(s)
        return end


def replay(
    arrivals: Sequence[tuple[float, int, int]], cost: StepCost, *, max_num_seqs: int, budget: int
) -> list[tuple[float, float]]:
    """(TTFT, latency) of each (arrival s, prompt tokens, output tokens), in the input's order."""
    seqs = sorted((_Seq(i, a, max(1, p), max(1, o)) for i, (a, p, o) in enumerate(arrivals)), key=lambda s: s.arrival)
    eng = _Engine(cost, max_num_seqs, budget, [])
    waiting: deque[_Seq] = deque()
    nxt, t = 0, 0.0
    while nxt < len(seqs) or waiting or eng.running:
        if not waiting and not eng.running:
            t = max(t, seqs[nxt].arrival)  # idle: the next step starts when a request arrives
        while nxt < len(seqs) and seqs[nxt].arrival <= t:
            waiting.append(seqs[nxt])
            nxt += 1
        dec, chunks = eng.schedule(waiting)
        t = eng.run(t, dec, chunks)
    return [(s.first - s.arrival, s.end - s.arrival) for s in sorted(seqs, key=lambda s: s.index)]
