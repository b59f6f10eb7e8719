"""The service-rate estimate (operator/qwen_operator/domain/replica_rate.py): against published figures, against the
benchmark's simulated replica it is calibrated like, and the configurations it refuses."""

from __future__ import annotations

import pytest

from bench.autoscaling.loadtest import replica_throughput
from bench.autoscaling.service import CALIBRATED_V060, CALIBRATED_V1, ServiceModel
from qwen_operator.api.models import QwenDeploymentSpec
from qwen_operator.domain.catalog import ModelArch, resolve_arch
from qwen_operator.domain.fit import FitInput, estimate
from qwen_operator.domain.gpus import lookup_gpu
from qwen_operator.domain.replica_rate import (
    VLLM_V1_H100,
    EngineCalibration,
    ReplicaCosts,
    replica_costs,
    spec_replica_costs,
)
from qwen_operator.domain.validation import validate_spec

H100 = lookup_gpu("H100")
# Llama-3-8B, the model of vLLM's published measurements (bench/autoscaling/service.py LLAMA3_8B); given the family of
# a dense Qwen model, since only the sizes matter to the estimate
LLAMA3_8B = ModelArch(
    name="meta-llama/Meta-Llama-3-8B",
    family="qwen3",
    total_params_b=8.03,
    num_layers=32,
    kv_cache_layers=32,
    hidden_size=4096,
    num_attention_heads=32,
    num_kv_heads=8,
    head_dim=128,
    vocab_size=128256,
    max_context=8192,
    mtp_layers=0,
    tie_word_embeddings=False,
    checkpoint_quantization=None,
    checkpoint_bits=None,
    from_catalog=False,
)


def calibration_of(sm: ServiceModel) -> EngineCalibration:
    return EngineCalibration(sm.step_overhead_s, sm.per_seq_s, sm.eta_weights, sm.eta_kv, sm.eta_gemm, sm.eta_attn)


def costs(arch: ModelArch, calibration: EngineCalibration = VLLM_V1_H100) -> ReplicaCosts:
    assert H100 is not None
    fit = estimate(FitInput(arch=arch, gpu=H100, max_model_len=8192))
    c, why = replica_costs(arch, H100, fit, max_num_seqs=256, calibration=calibration)
    assert c is not None, why
    return c


def test_the_operator_uses_the_benchmarks_v1_coefficients():
    """One set of numbers: the estimate's calibration is the benchmark's calibrated-v1 replica (sources there)."""
    assert calibration_of(CALIBRATED_V1) == VLLM_V1_H100


@pytest.mark.parametrize(
    ("prompt", "output", "published"),
    [(462, 256, 31.0), (462, 16, 59.0)],  # decode-heavy and prefill-heavy, vLLM v0.6.0 blog, Llama-3-8B, one H100
)
def test_the_closed_form_reproduces_the_published_throughputs_with_the_engine_they_were_measured_on(
    prompt: int, output: int, published: float
):
    """https://blog.vllm.ai/2024/09/05/perf-update.html: the v0.6.0 engine's coefficients (calibrated-v060) put in
    the closed form give the measured saturation throughputs within +-15 % (-14 % and +6 %)."""
    rate = costs(LLAMA3_8B, calibration_of(CALIBRATED_V060)).saturation_rate(prompt, prompt, output)
    assert rate == pytest.approx(published, rel=0.15)


@pytest.mark.parametrize(("prompt", "output"), [(462, 256), (1155, 211), (1731, 208), (4000, 400), (15000, 300)])
def test_the_closed_form_agrees_with_a_simulated_load_test_of_the_same_replica(prompt: int, output: int):
    """The estimate is a closed form of the benchmark's calibrated-v1 step; the simulator's saturation run of that
    replica (Qwen3-8B, one H100) is within -15 % .. +10 % of it, from chat lengths to 15k-token prompts."""
    arch = resolve_arch("Qwen/Qwen3-8B")
    assert arch is not None
    estimated = costs(arch).saturation_rate(prompt, prompt, output)
    simulated = replica_throughput([(prompt, output)], CALIBRATED_V1)
    assert 0.85 * simulated <= estimated <= 1.10 * simulated


def test_prefix_cache_hits_raise_the_estimate_and_longer_answers_lower_it():
    c = costs(LLAMA3_8B)
    assert c.saturation_rate(2000, 500, 200) > 1.2 * c.saturation_rate(2000, 2000, 200)
    assert c.saturation_rate(1000, 1000, 400) < c.saturation_rate(1000, 1000, 200)
    assert c.saturation_rate(0, 0, 0) > 0  # degenerate mixes give a finite positive number


def spec(**over: object) -> QwenDeploymentSpec:
    raw: dict[str, object] = {
        "model": {"name": "Qwen/Qwen3-8B"},
        "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
        "autoscaling": {"enabled": True, "estimateServiceRate": True},
    }
    raw.update(over)
    return QwenDeploymentSpec.model_validate(raw)


def test_a_spec_gets_an_estimate_only_where_it_is_calibrated_and_is_refused_elsewhere_with_the_reason():
    ok = validate_spec(spec())
    assert ok.ok, ok.errors
    c, why = spec_replica_costs(ok.spec, ok.arch, ok.gpu, ok.fit)  # type: ignore[arg-type]
    assert c is not None and "Qwen/Qwen3-8B" in why
    refused = {
        "another GPU": (spec(gpu={"product": "NVIDIA-L4"}, model={"name": "Qwen/Qwen3-4B"}), "NVIDIA-L4"),
        "tensor parallelism": (spec(parallelism={"tensor": 2}), "across 2 GPUs"),
        "an MoE model": (spec(model={"name": "Qwen/Qwen3-30B-A3B"}), "qwen3-moe"),
        "quantized weights": (spec(quantization="fp8"), "quantized"),
    }
    for what, (s, words) in refused.items():
        rep = validate_spec(s)
        problems = [p for p in rep.errors if p.reason == "NoServiceRateEstimate"]
        assert problems, (what, [p.message for p in rep.problems])
        assert words in problems[0].message and "serviceRatePerReplica" in problems[0].message, problems[0].message
    # not asked for: no problem whatever the GPU
    plain = validate_spec(spec(gpu={"product": "NVIDIA-L4"}, model={"name": "Qwen/Qwen3-4B"}, autoscaling={}))
    assert not [p for p in plain.problems if p.reason == "NoServiceRateEstimate"]


def test_a_user_rate_and_the_estimate_are_not_both_set():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="serviceRatePerReplica or estimateServiceRate"):
        spec(autoscaling={"enabled": True, "estimateServiceRate": True, "serviceRatePerReplica": 12.0})
