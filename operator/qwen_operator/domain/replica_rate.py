"""What one vLLM replica completes per second at saturation, estimated from the model, the GPU and the request mix
before the fleet has served anything: the autoscaler's default service-rate prior (spec.autoscaling.estimateServiceRate;
``service_rate_prior`` says which prior a spec gets and why).

One engine step (continuous batching with chunked prefill) is timed as the sum of its kernels, the calibrated step of
the benchmark (bench/autoscaling/service.py, CALIBRATED_V1; every coefficient's source is written there):

    T = overhead + per_seq * (B + 1) + max(weights read, decode GEMMs + prefill GEMMs) + KV read + prefill attention

At saturation the batch ``B`` is the smallest of the slot bound (max_num_seqs), the sequences whose context fits in
the KV cache, and the sequences whose prompts the step's token budget can keep prefilling (each request brings its
computed prompt tokens once per ``output`` decode steps).  A replica then completes ``B / (output * T)`` requests/s.
The decode step counts all ``output`` tokens (the first comes from the prefill), which errs low: the benchmark's
published figures are reproduced within -14 % to +7 % (tests/test_replica_rate.py).

Calibrated for bf16 dense Qwen models on one Hopper GPU with vLLM's V1 engine (the published measurements are H100
ones; the other Hopper parts differ by their datasheet peaks).  Anything else (tensor or pipeline parallelism, MoE
and hybrid-attention models, quantized weights, other GPUs) has no estimate: ``replica_costs`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..api.models import QwenDeploymentSpec
from .catalog import ModelArch
from .fit import GIB, FitResult
from .gpus import GPUProduct


@dataclass(frozen=True)
class GPUPeaks:
    """Datasheet peaks: HBM bandwidth (bytes/s) and dense bf16 tensor throughput (FLOP/s, no sparsity)."""

    hbm_bytes_per_s: float
    bf16_dense_flops: float


# https://www.nvidia.com/en-us/data-center/h100/ (SXM5: 3.35 TB/s, 989 TFLOPS bf16 dense; PCIe: 2.0 TB/s, 756) and
# https://www.nvidia.com/en-us/data-center/h200/ (4.8 TB/s, 989 TFLOPS).
HOPPER_PEAKS: dict[str, GPUPeaks] = {
    "NVIDIA-H100-80GB-HBM3": GPUPeaks(3.35e12, 989e12),
    "NVIDIA-H100-PCIe": GPUPeaks(2.0e12, 756e12),
    "NVIDIA-H200": GPUPeaks(4.8e12, 989e12),
}


@dataclass(frozen=True)
class EngineCalibration:
    """Per-step CPU costs (seconds) and achieved fractions of the datasheet peaks of one vLLM engine."""

    step_overhead_s: float
    per_seq_s: float
    eta_weights: float
    eta_kv: float
    eta_gemm: float
    eta_attn: float


# vLLM V1 on an H100: bench/autoscaling/service.py CALIBRATED_V1 (tests/test_replica_rate.py keeps them equal).
VLLM_V1_H100 = EngineCalibration(
    step_overhead_s=0.00374, per_seq_s=0.0000312, eta_weights=0.96, eta_kv=0.72, eta_gemm=0.45, eta_attn=0.50
)
DEFAULT_TOKEN_BUDGET = 8192  # vLLM V1's max_num_batched_tokens for the OpenAI server on a large GPU
DENSE_FAMILIES = ("qwen2.5", "qwen3")


@dataclass(frozen=True)
class ReplicaCosts:
    """The step's costs in seconds per unit of work, and the limits of the batch."""

    overhead_s: float  # per step
    per_seq_s: float  # per sequence in the step
    weights_s: float  # reading the weights once
    decode_token_s: float  # linear layers and lm_head of one generated token, compute-bound
    prefill_token_s: float  # linear layers of one prompt token, compute-bound
    kv_token_s: float  # reading one token of a decoder's context
    attention_s: float  # prefill attention, per prompt token and per token of that prompt
    max_num_seqs: int
    token_budget: int
    kv_capacity_tokens: float

    def saturation_rate(self, prompt_tokens: float, computed_prompt_tokens: float, output_tokens: float) -> float:
        """Requests/s one replica completes at saturation with this mix (per request: the prompt's tokens, those not
        served from the prefix cache, and the generated tokens)."""
        out = max(1.0, output_tokens)
        computed = max(0.0, min(computed_prompt_tokens, prompt_tokens))
        context = max(1.0, prompt_tokens) + out / 2.0  # a decoder's mean resident context
        batch = min(
            float(self.max_num_seqs),
            self.kv_capacity_tokens / context,
            self.token_budget / (1.0 + computed / out),
        )
        batch = max(1.0, batch)
        prefill = batch * computed / out  # prompt tokens per step that keep the batch full
        gemm = batch * self.decode_token_s + prefill * self.prefill_token_s
        step = (
            self.overhead_s
            + self.per_seq_s * (batch + (1.0 if prefill > 0 else 0.0))
            + max(self.weights_s, gemm)
            + self.kv_token_s * batch * context
            + self.attention_s * prefill * prompt_tokens
        )
        return batch / (out * step)


def replica_costs(
    arch: ModelArch,
    gpu: GPUProduct,
    fit: FitResult,
    *,
    max_num_seqs: int,
    max_num_batched_tokens: int | None = None,
    quantization: str = "none",
    calibration: EngineCalibration = VLLM_V1_H100,
) -> tuple[ReplicaCosts | None, str]:
    """The step costs of one replica, or None and why there is no estimate for this configuration."""
    peaks = HOPPER_PEAKS.get(gpu.product)
    if peaks is None:
        return None, f"no calibrated throughput model for {gpu.product} (only Hopper GPUs: {', '.join(HOPPER_PEAKS)})"
    if arch.family not in DENSE_FAMILIES or arch.hidden_size is None:
        return None, f"no calibrated throughput model for {arch.family} models (dense Qwen2.5/Qwen3 only)"
    if fit.gpus != 1:
        return None, f"no calibrated throughput model across {fit.gpus} GPUs (one GPU per replica only)"
    if quantization != "none" or arch.checkpoint_quantization:
        return None, "no calibrated throughput model for quantized weights (bf16 only)"
    if fit.kv_cache_gib <= 0:
        return None, "the KV cache does not fit"
    embedding = arch.embedding_params_b * 1e9
    linear = arch.total_params_b * 1e9 - embedding
    lm_head = float(arch.vocab_size * arch.hidden_size)
    gemm_flops = peaks.bf16_dense_flops * calibration.eta_gemm
    attention_width = arch.num_attention_heads * arch.head_dim
    costs = ReplicaCosts(
        overhead_s=calibration.step_overhead_s,
        per_seq_s=calibration.per_seq_s,
        weights_s=fit.weights_gib * GIB / (peaks.hbm_bytes_per_s * calibration.eta_weights),
        decode_token_s=2.0 * (linear + lm_head) / gemm_flops,
        prefill_token_s=2.0 * linear / gemm_flops,
        kv_token_s=fit.kv_bytes_per_token / (peaks.hbm_bytes_per_s * calibration.eta_kv),
        # causal attention: 4 * layers * width FLOPs per (token, context token), half the context on average
        attention_s=2.0 * arch.num_layers * attention_width / (peaks.bf16_dense_flops * calibration.eta_attn),
        max_num_seqs=max_num_seqs,
        token_budget=max_num_batched_tokens or DEFAULT_TOKEN_BUDGET,
        kv_capacity_tokens=fit.kv_cache_gib * GIB / fit.kv_bytes_per_token,
    )
    return costs, f"estimated for {arch.name} on one {gpu.product} (vLLM V1, calibrated to published H100 figures)"


def spec_replica_costs(
    spec: QwenDeploymentSpec, arch: ModelArch | None, gpu: GPUProduct | None, fit: FitResult | None
) -> tuple[ReplicaCosts | None, str]:
    """The step costs of one replica of this spec (as validated: its architecture, GPU and fit), or None and why."""
    if arch is None or gpu is None or fit is None:
        return None, "no throughput estimate without the model's architecture, a known GPU and a fit check"
    if spec.speculative_decoding is not None:
        return None, "no calibrated throughput model with speculative decoding"
    return replica_costs(
        arch,
        gpu,
        fit,
        max_num_seqs=spec.serving.max_num_seqs,
        max_num_batched_tokens=spec.serving.max_num_batched_tokens,
        quantization=str(getattr(spec.quantization, "value", spec.quantization)),
    )


PriorSource = Literal["serviceRatePerReplica", "estimate", "none"]


@dataclass(frozen=True)
class ServiceRatePrior:
    """Where the autoscaler's service-rate prior comes from for one spec: ``source`` is "serviceRatePerReplica" (the
    user's figure), "estimate" (``costs``, asked at the observed request mix) or "none" (learned at the first
    saturation); ``message`` says why, in the words status shows."""

    source: PriorSource
    message: str
    costs: ReplicaCosts | None = None


def service_rate_prior(
    spec: QwenDeploymentSpec, arch: ModelArch | None, gpu: GPUProduct | None, fit: FitResult | None
) -> ServiceRatePrior:
    """The prior this spec gets: the user's serviceRatePerReplica; else the estimate, unless estimateServiceRate is
    false or there is none for this configuration (validation refuses that only when estimateServiceRate is true)."""
    a = spec.autoscaling
    if a.service_rate_per_replica is not None:
        return ServiceRatePrior(
            "serviceRatePerReplica", f"{a.service_rate_per_replica:g} requests/s per replica (spec)"
        )
    learned = "the policy learns the rate at the first saturation"
    if a.estimate_service_rate is False:
        return ServiceRatePrior("none", f"estimateServiceRate is false: {learned}")
    costs, why = spec_replica_costs(spec, arch, gpu, fit)
    if costs is None:
        return ServiceRatePrior("none", f"{why}: {learned}; set serviceRatePerReplica to start from a figure")
    return ServiceRatePrior("estimate", f"{why}, at the observed request mix", costs)
