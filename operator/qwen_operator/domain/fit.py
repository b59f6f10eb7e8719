"""Does a model fit its GPUs with room for its KV cache? Answered before any GPU is held.

Model (per replica of TP x PP GPUs):
  budget      = GPUs x GPU memory x gpu_memory_utilization
  weights     = embedding params x 2 bytes + other params x bytes-per-param(quantization)
  overhead    = RESERVED_GIB_PER_GPU x GPUs   (activations at max_num_batched_tokens, CUDA graphs, NCCL buffers)
  kv cache    = budget - weights - overhead
  kv/token    = 2 (K and V) x KV-cache layers x KV heads held x head_dim x KV dtype bytes
  full-length sequences = floor(kv cache / (kv/token x max_model_len))
vLLM refuses to start when not even one max_model_len sequence fits; so do we, with the numbers and a way out.
KV heads are split across tensor-parallel ranks; when TP exceeds the KV heads they are replicated, so the
replica holds max(kv_heads, tp) heads in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .catalog import ModelArch
from .gpus import GPUProduct

GIB = 1024**3
# What vLLM's profile run typically leaves to activations, CUDA graphs and communication buffers per GPU.
# An estimate (vLLM measures it at start); it errs on the side of telling users a tight spec may not fit.
RESERVED_GIB_PER_GPU = 1.5

# Weight bytes per parameter by quantization. 4-bit AWQ/GPTQ with group size 128 adds an fp16 scale and a
# packed zero point per group: 0.5 + 2.5/128 bytes.
_BYTES_4BIT = 0.5 + 2.5 / 128
_BYTES_8BIT = 1.0 + 2.5 / 128


def weight_bytes_per_param(quantization: str, dtype_bytes: float, checkpoint_bits: int | None) -> float:
    if quantization in ("none", ""):
        return dtype_bytes
    if quantization == "fp8":
        return 1.0
    if quantization in ("awq", "awq_marlin", "gptq", "gptq_marlin"):
        return _BYTES_8BIT if checkpoint_bits == 8 else _BYTES_4BIT
    if quantization == "compressed-tensors":
        if checkpoint_bits == 4:
            return _BYTES_4BIT
        return 1.0  # W8A8 / FP8 are the common compressed-tensors schemes
    return dtype_bytes


def kv_dtype_bytes(kv_cache_dtype: str, dtype_bytes: float) -> float:
    return 1.0 if kv_cache_dtype.startswith("fp8") else dtype_bytes


@dataclass(frozen=True)
class FitInput:
    arch: ModelArch
    gpu: GPUProduct
    tensor: int = 1
    pipeline: int = 1
    quantization: str = "none"
    dtype_bytes: float = 2.0
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9


@dataclass(frozen=True)
class FitResult:
    fits: bool
    gpus: int
    gpu_memory_gib: float
    budget_gib: float
    weights_gib: float
    overhead_gib: float
    kv_cache_gib: float
    kv_bytes_per_token: int
    max_model_len: int
    full_length_sequences: int
    message: str
    suggestions: list[str] = field(default_factory=list)


def kv_bytes_per_token(arch: ModelArch, tensor: int, kv_bytes: float) -> int:
    heads_held = max(arch.num_kv_heads, tensor)
    return int(2 * arch.kv_cache_layers * heads_held * arch.head_dim * kv_bytes)


def weights_bytes(arch: ModelArch, quantization: str, dtype_bytes: float) -> float:
    # Embedding and LM head stay in the activation dtype under AWQ/GPTQ/FP8.
    emb = min(arch.embedding_params_b, arch.total_params_b) * 1e9
    rest = arch.total_params_b * 1e9 - emb
    return emb * dtype_bytes + rest * weight_bytes_per_param(quantization, dtype_bytes, arch.checkpoint_bits)


def estimate(inp: FitInput) -> FitResult:
    """Pure arithmetic, no suggestions."""
    gpus = inp.tensor * inp.pipeline
    max_len = inp.max_model_len or inp.arch.max_context
    budget = gpus * inp.gpu.memory_mib * 1024**2 * inp.gpu_memory_utilization
    weights = weights_bytes(inp.arch, inp.quantization, inp.dtype_bytes)
    overhead = RESERVED_GIB_PER_GPU * GIB * gpus
    kv_cache = budget - weights - overhead
    per_token = kv_bytes_per_token(inp.arch, inp.tensor, kv_dtype_bytes(inp.kv_cache_dtype, inp.dtype_bytes))
    seqs = max(0, math.floor(kv_cache / (per_token * max_len))) if kv_cache > 0 else 0
    fits = seqs >= 1
    r = FitResult(
        fits=fits,
        gpus=gpus,
        gpu_memory_gib=round(inp.gpu.memory_gib, 2),
        budget_gib=round(budget / GIB, 2),
        weights_gib=round(weights / GIB, 2),
        overhead_gib=round(overhead / GIB, 2),
        kv_cache_gib=round(kv_cache / GIB, 2),
        kv_bytes_per_token=per_token,
        max_model_len=max_len,
        full_length_sequences=seqs,
        message="",
    )
    return r


def _describe(inp: FitInput, r: FitResult) -> str:
    where = f"{r.gpus} x {inp.gpu.product} ({r.gpu_memory_gib} GiB each, {inp.gpu_memory_utilization:.0%} usable)"
    head = (
        f"{inp.arch.name} ({inp.quantization if inp.quantization != 'none' else 'unquantized'}) on {where}: "
        f"budget {r.budget_gib} GiB, weights {r.weights_gib} GiB, reserved {r.overhead_gib} GiB, "
    )
    if r.kv_cache_gib <= 0:
        return head + f"leaving no room for the KV cache ({r.kv_cache_gib} GiB)."
    need = r.kv_bytes_per_token * r.max_model_len / GIB
    return head + (
        f"KV cache {r.kv_cache_gib} GiB at {r.kv_bytes_per_token // 1024} KiB/token; one "
        f"{r.max_model_len}-token sequence needs {need:.2f} GiB, so {r.full_length_sequences} "
        f"full-length sequences fit at once."
    )


def _valid_tp(arch: ModelArch, tp: int) -> bool:
    if arch.num_attention_heads % tp:
        return False
    return arch.num_kv_heads % tp == 0 if tp <= arch.num_kv_heads else tp % arch.num_kv_heads == 0


def check_fit(inp: FitInput, max_gpus_per_node: int = 8) -> FitResult:
    """Estimate, and when it does not fit, say what would make it fit (each suggestion re-checked)."""
    r = estimate(inp)
    suggestions: list[str] = []
    if not r.fits:
        for tp in (2, 4, 8):
            if tp > inp.tensor and tp * inp.pipeline <= max_gpus_per_node and _valid_tp(inp.arch, tp):
                alt = estimate(FitInput(**{**inp.__dict__, "tensor": tp}))
                if alt.fits:
                    suggestions.append(
                        f"raise parallelism.tensor to {tp} ({alt.full_length_sequences} full-length sequences fit)"
                    )
                    break
        if inp.quantization == "none":
            for q, label in (("fp8", "quantization: fp8"), ("awq", "an AWQ checkpoint with quantization: awq")):
                alt = estimate(FitInput(**{**inp.__dict__, "quantization": q}))
                if alt.fits:
                    suggestions.append(
                        f"use {label} (weights {alt.weights_gib} GiB, "
                        f"{alt.full_length_sequences} full-length sequences fit)"
                    )
                    break
        if not inp.kv_cache_dtype.startswith("fp8"):
            alt = estimate(FitInput(**{**inp.__dict__, "kv_cache_dtype": "fp8"}))
            if alt.fits:
                suggestions.append(
                    f"set serving.kvCacheDtype: fp8 ({alt.full_length_sequences} full-length sequences fit)"
                )
        if r.kv_cache_gib > 0:
            longest = int(r.kv_cache_gib * GIB // r.kv_bytes_per_token) // 1024 * 1024
            if longest >= 1024:
                suggestions.append(f"lower serving.maxModelLen to {longest} or less")
    message = _describe(inp, r)
    if not r.fits:
        message = "Does not fit: " + message
        if suggestions:
            message += " To fit: " + "; or ".join(suggestions) + "."
    return FitResult(**{**r.__dict__, "message": message, "suggestions": suggestions})
