"""Speculative-decoding rules vLLM enforces at engine start (minutes in, GPU held), checked at apply time.

- The method is always explicit (without it vLLM guesses from the draft model's name).
- mtp needs a target with multi-token-prediction layers (Qwen3-Next and later; dense Qwen3 has none).
- A draft model or head must have the target's vocabulary size: Qwen3 uses 151,936, Qwen2.5-7B and larger
  152,064, so a Qwen2.5-7B draft for a Qwen3 target is rejected.
- The draft's tensor-parallel size is 1 or the target's.
- Expected gain: tokens per verify step = (1 - a^(K+1)) / (1 - a) for acceptance rate a and K proposed tokens;
  wall time per step = K x t_draft + t_verify(K).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..api.models import SpeculativeDecoding
from .catalog import ModelArch, resolve_arch


@dataclass(frozen=True)
class SpecProblem:
    reason: str
    message: str
    fatal: bool = True


def check_speculative(spec_dec: SpeculativeDecoding, target: ModelArch | None, tensor: int) -> list[SpecProblem]:
    sd = spec_dec
    method: str = sd.method
    draft: str | None = sd.draft_model
    draft_tp: int | None = sd.draft_tensor_parallel_size
    problems: list[SpecProblem] = []
    if draft_tp is not None and draft_tp not in (1, tensor):
        problems.append(
            SpecProblem(
                "DraftTensorParallelInvalid",
                f"speculativeDecoding.draftTensorParallelSize is {draft_tp}; vLLM accepts 1 or "
                f"the target's tensor-parallel size ({tensor}).",
            )
        )
    if method in ("eagle3", "eagle", "draft_model") and not draft:
        problems.append(SpecProblem("DraftModelMissing", f"speculativeDecoding.method {method} needs draftModel."))
    if method in ("mtp", "ngram") and draft:
        problems.append(
            SpecProblem(
                "DraftModelNotAllowed",
                f"speculativeDecoding.method {method} uses no draft model; remove draftModel ({draft}).",
            )
        )
    if method == "mtp":
        if target is None:
            problems.append(
                SpecProblem(
                    "SpeculativeUnverified",
                    "mtp needs multi-token-prediction heads; the "
                    "target model is unknown, so this could not be checked.",
                    fatal=False,
                )
            )
        elif target.mtp_layers <= 0:
            problems.append(
                SpecProblem(
                    "NoMTPHeads",
                    f"{target.name} has no multi-token-prediction (MTP) layers, "
                    "so method mtp cannot work. Use eagle3 with a trained head, draft_model "
                    "with a smaller model of the same vocabulary, or ngram.",
                )
            )
    if draft and method in ("eagle3", "eagle", "draft_model"):
        draft_arch = resolve_arch(draft)
        if draft_arch is None or target is None:
            which = "draft model" if draft_arch is None else "target model"
            problems.append(
                SpecProblem(
                    "SpeculativeUnverified",
                    f"The {which} is not in the catalog, so the "
                    f"vocabulary match of {draft} could not be checked here; vLLM will check "
                    "it at start.",
                    fatal=False,
                )
            )
        elif draft_arch.vocab_size != target.vocab_size:
            problems.append(
                SpecProblem(
                    "VocabMismatch",
                    f"Draft {draft} has a vocabulary of "
                    f"{draft_arch.vocab_size:,} tokens but target {target.name} has "
                    f"{target.vocab_size:,}; vLLM requires them to be equal. Pick a draft "
                    "from the target's family (same tokenizer).",
                )
            )
    return problems


def speculative_config_json(spec_dec: SpeculativeDecoding, tensor: int) -> str:
    """The --speculative-config value: compact JSON, stable key order (it is part of the compile-cache key)."""
    sd = spec_dec
    cfg: dict[str, object] = {"method": sd.method, "num_speculative_tokens": sd.num_speculative_tokens}
    if sd.draft_model:
        cfg["model"] = sd.draft_model
        cfg["draft_tensor_parallel_size"] = sd.draft_tensor_parallel_size or tensor
    if sd.method == "ngram":
        cfg["prompt_lookup_max"] = sd.prompt_lookup_max or 5
        cfg["prompt_lookup_min"] = sd.prompt_lookup_min or 1
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def expected_speedup(
    acceptance: float, k: int, t_draft: float, t_verify: float, t_plain: float | None = None
) -> dict[str, float]:
    """Tokens per step and speedup over plain decoding (t_plain: one ordinary decode step, default t_verify)."""
    if not 0 <= acceptance <= 1 or k < 1 or t_verify <= 0 or t_draft < 0:
        raise ValueError("need 0 <= acceptance <= 1, K >= 1, t_verify > 0, t_draft >= 0")
    tokens = float(k + 1) if acceptance == 1 else (1 - acceptance ** (k + 1)) / (1 - acceptance)
    wall = k * t_draft + t_verify
    base = t_plain if t_plain is not None else t_verify
    return {"tokens_per_step": tokens, "wall_per_step": wall, "speedup": tokens * base / wall}
