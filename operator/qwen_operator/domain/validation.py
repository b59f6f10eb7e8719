"""Everything the operator checks when a QwenDeployment is applied, in one pure function.

The apiserver already enforced the schema and CEL rules; this adds what needs domain knowledge: does the model
fit its GPUs, does the draft share the target's vocabulary, does the pinned vLLM accept these flags. Fatal
problems stop the rollout (Validated=False, no StatefulSet); warnings are reported and the rollout goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api.models import ROUTING_MIN_REPLICAS_MESSAGE, QwenDeploymentSpec
from .catalog import ModelArch, resolve_arch
from .fit import FitInput, FitResult, check_fit
from .gpus import CPU_STANDIN_NOTE, GPUProduct, lookup_gpu
from .replica_rate import spec_replica_costs
from .router_args import check_router_extra_args
from .speculative import check_speculative
from .vllm_args import MANAGED_ENV, check_extra_args, flag_table, render_args
from .weight_cache import quantity_bytes, weight_cache_enabled

_SECRETISH = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|CREDENTIAL)", re.I)
_DTYPE_BYTES = {"auto": 2.0, "bfloat16": 2.0, "float16": 2.0}
_QUANT_NEEDS_CHECKPOINT = {
    "awq": "awq",
    "awq_marlin": "awq",
    "gptq": "gptq",
    "gptq_marlin": "gptq",
    "compressed-tensors": "compressed-tensors",
}


@dataclass(frozen=True)
class Problem:
    reason: str  # CamelCase, becomes the condition reason
    message: str  # plain words, with the numbers
    fatal: bool = True


@dataclass
class ValidationReport:
    spec: QwenDeploymentSpec | None
    problems: list[Problem] = field(default_factory=list)
    arch: ModelArch | None = None
    gpu: GPUProduct | None = None
    fit: FitResult | None = None
    max_model_len: int | None = None
    args: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.fatal for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.fatal]

    def summary(self) -> tuple[str, str]:
        """(reason, message) for the Validated condition."""
        if self.errors:
            first = self.errors[0]
            msg = " ".join(p.message for p in self.errors)
            return first.reason, msg
        if self.warnings:
            return "ValidWithWarnings", " ".join(p.message for p in self.warnings)
        return "Valid", "Spec checked: the model fits, speculative settings and vLLM flags are valid."


def parse_spec(raw: dict[str, Any]) -> tuple[QwenDeploymentSpec | None, list[Problem]]:
    """Parse the wire spec; pydantic errors become plain-words problems (the apiserver normally caught them)."""
    try:
        return QwenDeploymentSpec.model_validate(raw), []
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "spec"
            msgs.append(f"spec.{loc}: {err['msg']}")
        return None, [Problem("InvalidSpec", "; ".join(msgs))]


def _tp_problems(arch: ModelArch, tp: int) -> list[Problem]:
    out = []
    if arch.num_attention_heads % tp:
        out.append(
            Problem(
                "TensorParallelInvalid",
                f"{arch.name} has {arch.num_attention_heads} attention heads, "
                f"which tensor-parallel size {tp} does not divide; vLLM would refuse to start.",
            )
        )
    kv = arch.num_kv_heads
    if (tp <= kv and kv % tp) or (tp > kv and tp % kv):
        out.append(
            Problem(
                "TensorParallelInvalid",
                f"{arch.name} has {kv} KV heads; tensor-parallel size {tp} must divide them or be a multiple of them.",
            )
        )
    return out


def _arch_problems(spec: QwenDeploymentSpec, arch: ModelArch) -> list[Problem]:
    """What the model's architecture says about the parallelism, the quantization and the context length."""
    tp, pp = spec.parallelism.tensor, spec.parallelism.pipeline
    problems = _tp_problems(arch, tp)
    if pp > arch.num_layers:
        problems.append(
            Problem(
                "PipelineParallelInvalid",
                f"{arch.name} has {arch.num_layers} layers, fewer than the {pp} pipeline stages asked for.",
            )
        )
    want = _QUANT_NEEDS_CHECKPOINT.get(spec.quantization)
    have = arch.checkpoint_quantization
    if want and have != want:
        problems.append(
            Problem(
                "QuantizationMismatch",
                f"quantization {spec.quantization} needs a "
                f"checkpoint quantized with {want}, but {arch.name} is "
                f"{'quantized with ' + have if have else 'not pre-quantized'}. Use the "
                f"model's {want.upper()} checkpoint, or quantization fp8 (quantizes at load).",
            )
        )
    elif have and spec.quantization not in ("none", have) and want is None:
        problems.append(
            Problem(
                "QuantizationMismatch",
                f"{arch.name} is a {have} checkpoint; set "
                f"quantization to {have} (or none to let vLLM read it from the checkpoint).",
            )
        )
    if spec.serving.max_model_len and spec.serving.max_model_len > arch.max_context:
        problems.append(
            Problem(
                "MaxModelLenTooLong",
                f"serving.maxModelLen {spec.serving.max_model_len} "
                f"exceeds {arch.name}'s context of {arch.max_context} tokens.",
            )
        )
    return problems


def _env_problems(spec: QwenDeploymentSpec) -> list[Problem]:
    """serving.env: no variable the operator sets, no literal secret."""
    problems: list[Problem] = []
    for e in spec.serving.env:
        if e.name in MANAGED_ENV:
            problems.append(
                Problem(
                    "InvalidEnv",
                    f"serving.env {e.name} is set by the operator; remove it"
                    + (" (use model.source.tokenSecretRef for the token)." if e.name == "HF_TOKEN" else "."),
                )
            )
        elif _SECRETISH.search(e.name):
            problems.append(
                Problem(
                    "SecretInSpec",
                    f"serving.env {e.name} looks like a secret; literal values "
                    "in the spec are visible to anyone who can read the resource. Use a Secret "
                    "(model.source.tokenSecretRef for the Hugging Face token).",
                )
            )
    return problems


def _routing_problems(spec: QwenDeploymentSpec) -> list[Problem]:
    """spec.routing: flags the pinned router accepts, and no fleet that can reach zero behind it."""
    problems = [Problem("InvalidRouterArgs", msg) for msg in check_router_extra_args(spec.routing.extra_args)]
    if not spec.routing.enabled:
        return problems
    if spec.autoscaling.enabled and spec.autoscaling.min_replicas == 0:
        # Also a CEL rule of the CRD; checked here for specs that did not come through the apiserver (qwenctl).
        problems.append(Problem("RoutingCannotHold", ROUTING_MIN_REPLICAS_MESSAGE + "."))
    elif not spec.autoscaling.enabled and spec.replicas == 0:
        problems.append(
            Problem(
                "RoutingWithoutReplicas",
                "replicas is 0 with routing on: the router answers every request with 503 (No available workers) "
                "until a replica is Ready.",
                fatal=False,
            )
        )
    return problems


def _weights_problems(spec: QwenDeploymentSpec, arch: ModelArch | None, gpu: GPUProduct | None) -> list[Problem]:
    """How the weights are read: a loader the pinned vLLM has, one the hardware can run, a cache that can hold them."""
    problems: list[Problem] = []
    fmt, table = spec.serving.load_format, flag_table()
    if fmt != "auto" and fmt not in table.load_formats:
        problems.append(
            Problem("InvalidLoadFormat", f"serving.loadFormat {fmt} is not a loader of vLLM {table.version}.")
        )
    if fmt == "fastsafetensors" and gpu is not None and gpu.cpu_standin:
        problems.append(
            Problem(
                "InvalidLoadFormat",
                f"serving.loadFormat fastsafetensors reads through GPUDirect Storage; {gpu.product} has no GPU. "
                "Use auto, safetensors or runai_streamer.",
            )
        )
    if weight_cache_enabled(spec) and arch is not None:
        need = arch.total_params_b * 1e9 * _checkpoint_bytes_per_param(spec, arch)
        have = quantity_bytes(spec.model.source.cache.storage.size)
        if need > have:
            problems.append(
                Problem(
                    "WeightCacheTooSmall",
                    f"{spec.model.name} has about {need / 2**30:.1f} GiB of weights; "
                    f"model.source.cache.storage.size {spec.model.source.cache.storage.size} cannot hold them.",
                )
            )
    return problems


def _checkpoint_bytes_per_param(spec: QwenDeploymentSpec, arch: ModelArch) -> float:
    """Bytes a parameter takes in the checkpoint on disk (not after on-the-fly quantization at load)."""
    ckpt = arch.checkpoint_quantization
    if ckpt in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        return 0.5
    if ckpt is not None and "fp8" in ckpt:
        return 1.0
    return 2.0


def validate_spec(spec: QwenDeploymentSpec) -> ValidationReport:
    rep = ValidationReport(spec=spec)
    tp, pp = spec.parallelism.tensor, spec.parallelism.pipeline
    arch = resolve_arch(spec.model.name, spec.model.overrides)
    rep.arch = arch
    gpu = lookup_gpu(spec.gpu.product)
    rep.gpu = gpu

    if arch is None:
        rep.problems.append(
            Problem(
                "FitUnknown",
                f"{spec.model.name} is not in the operator's catalog, so whether "
                "it fits could not be checked; add spec.model.overrides with the numbers from "
                "its config.json to enable the check.",
                fatal=False,
            )
        )
    else:
        rep.problems += _arch_problems(spec, arch)
    rep.max_model_len = spec.serving.max_model_len or (arch.max_context if arch else None)

    if spec.speculative_decoding is not None:
        for sp in check_speculative(spec.speculative_decoding, arch, tp):
            rep.problems.append(Problem(sp.reason, sp.message, sp.fatal))

    if gpu is None:
        rep.problems.append(
            Problem(
                "GPUUnknown",
                f"GPU product {spec.gpu.product} is not in the operator's GPU table, so the fit could not be checked.",
                fatal=False,
            )
        )
    elif arch is not None and rep.errors == []:
        have_ckpt = arch.checkpoint_quantization
        quant = spec.quantization if spec.quantization != "none" else (have_ckpt or "none")
        fit = check_fit(
            FitInput(
                arch=arch,
                gpu=gpu,
                tensor=tp,
                pipeline=pp,
                quantization=quant,
                dtype_bytes=_DTYPE_BYTES.get(spec.dtype, 2.0),
                kv_cache_dtype=spec.serving.kv_cache_dtype,
                max_model_len=rep.max_model_len,
                gpu_memory_utilization=spec.serving.gpu_memory_utilization,
            )
        )
        rep.fit = fit
        if not fit.fits:
            rep.problems.append(Problem("DoesNotFit", fit.message))

    if gpu is not None and gpu.cpu_standin:
        rep.problems.append(Problem("CPUStandIn", f"{gpu.product} is {CPU_STANDIN_NOTE}.", fatal=False))
    for msg in check_extra_args(spec.serving.extra_args):
        rep.problems.append(Problem("InvalidVLLMArgs", msg))
    rep.problems += _env_problems(spec)
    rep.problems += _routing_problems(spec)
    rep.problems += _weights_problems(spec, arch, gpu)
    if spec.autoscaling.estimate_service_rate is True and rep.errors == []:  # unset: estimated where it can be
        costs, why = spec_replica_costs(spec, arch, gpu, rep.fit)
        if costs is None:
            rep.problems.append(
                Problem("NoServiceRateEstimate", f"autoscaling.estimateServiceRate: {why}; set serviceRatePerReplica")
            )
    rep.args = render_args(spec, rep.max_model_len)
    return rep


def validate(raw_spec: dict[str, Any]) -> ValidationReport:
    spec, problems = parse_spec(raw_spec)
    if spec is None:
        return ValidationReport(spec=None, problems=problems)
    return validate_spec(spec)
