"""The QwenDeployment API (qwenops.dev/v1alpha1), defined once.

These pydantic models are the single source of truth: `api.crd` generates crds/qwendeployments.yaml from them
(descriptions become `kubectl explain` text, Field bounds become schema bounds, `cel` extras become
x-kubernetes-validations). The operator parses every resource it sees through `QwenDeploymentSpec`.
Field names are camelCase on the wire (aliases) and snake_case in Python.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "qwenops.dev"
VERSION = "v1alpha1"
KIND = "QwenDeployment"
PLURAL = "qwendeployments"
SINGULAR = "qwendeployment"
SHORT_NAMES = ["qwen", "qd"]

# The vLLM release the operator renders arguments for and validates flags against.
PINNED_VLLM_VERSION = "0.32.0"
DEFAULT_VLLM_IMAGE = f"vllm/vllm-openai:v{PINNED_VLLM_VERSION}"

# The vLLM router (PyPI vllm-router) the operator renders arguments for and validates flags against; its image is
# built from images/vllm-router/Dockerfile with exactly this version (docs/routing.md).
PINNED_ROUTER_VERSION = "0.1.17"
DEFAULT_ROUTER_IMAGE = f"ghcr.io/qwenops/vllm-router:{PINNED_ROUTER_VERSION}"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes name rules, checked here so an accepted spec never renders objects the apiserver refuses.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
POSITIVE_QUANTITY = r"^([1-9][0-9]*(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|K|M|G|T)?$"


class WireModel(BaseModel):
    """Base: camelCase aliases on the wire, unknown fields rejected (typos must not pass silently)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL rules as a json_schema_extra; crd.py turns them into x-kubernetes-validations."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class SecretKeyRef(WireModel):
    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of a Secret in the deployment's namespace.",
    )
    key: str = Field(
        default="token",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key inside the Secret.",
    )


class ModelSourceType(str, Enum):
    hf = "hf"
    pvc = "pvc"


class WeightCacheStorage(WireModel):
    size: str = Field(
        default="50Gi",
        pattern=POSITIVE_QUANTITY,
        description="Size of the weight-cache volume; hydration fails (InsufficientSpace) before downloading "
        "anything when the checkpoint does not fit.",
    )
    storage_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="StorageClass of the weight-cache PVC (cluster default when unset). Needs ReadWriteMany or "
        "ReadOnlyMany for pods on several nodes.",
    )
    access_mode: Literal["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"] = Field(
        default="ReadWriteMany", description="Access mode of the weight-cache PVC."
    )


class WeightCache(WireModel):
    """A volume per (endpoint, model, revision) in the namespace, filled once by a hydration Job and mounted
    read-only by every serving pod of every deployment that serves that checkpoint (docs/weight-cache.md)."""

    enabled: bool = Field(
        default=False,
        description="Hydrate the weights into a shared volume once; pods mount it read-only and download nothing.",
    )
    storage: WeightCacheStorage = Field(default_factory=WeightCacheStorage, description="The weight-cache volume.")
    hydrate_timeout_seconds: int = Field(
        default=3600, ge=60, le=86400, description="A hydration Job running longer fails."
    )


class ModelSource(WireModel):
    """Where the weights come from. The token is only ever passed to pods as a secretKeyRef."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("self.type != 'pvc' || has(self.pvcName)", "source.pvcName is required when source.type is pvc"),
            (
                "self.type != 'pvc' || !has(self.cache) || !self.cache.enabled",
                "source.cache is for type hf: a pvc source is already a local copy",
            ),
        )
    )

    type: ModelSourceType = Field(
        default=ModelSourceType.hf,
        description="hf: download from the Hugging Face Hub "
        "at pod start; pvc: read a pre-downloaded copy from a PersistentVolumeClaim.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding a Hugging Face token "
        "(for gated models). Exposed to vLLM as HF_TOKEN via secretKeyRef.",
    )
    pvc_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="PVC holding the weights (type pvc).",
    )
    pvc_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Path of the model directory inside the PVC (type pvc). Defaults to the model name.",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/-]*)?$",
        description="Hugging Face-compatible endpoint (HF_ENDPOINT), e.g. an in-cluster mirror; the public Hub "
        "when unset.",
    )
    cache: WeightCache = Field(
        default_factory=WeightCache, description="The shared weight cache (type hf): hydrate once, mount read-only."
    )

    @model_validator(mode="after")
    def _cache_needs_hf(self) -> ModelSource:
        # Also a CEL rule of the CRD; checked here for specs that do not come through the apiserver (qwenctl).
        if self.type == "pvc" and self.cache.enabled:
            raise ValueError("source.cache is for type hf: a pvc source is already a local copy")
        return self


class ModelArchitectureOverrides(WireModel):
    """For a model the catalog does not know: the numbers the fit check needs, from its config.json."""

    total_params_b: float = Field(gt=0, le=5000, description="Total parameters, in billions.")
    num_layers: int = Field(ge=1, le=1000, description="num_hidden_layers.")
    num_kv_heads: int = Field(ge=1, le=1024, description="num_key_value_heads.")
    num_attention_heads: int = Field(ge=1, le=1024, description="num_attention_heads.")
    head_dim: int = Field(ge=8, le=1024, description="head_dim.")
    vocab_size: int = Field(ge=1, le=10_000_000, description="vocab_size (drafts must match the target's).")
    max_context: int = Field(ge=1, le=10_000_000, description="max_position_embeddings.")
    mtp_layers: int = Field(default=0, ge=0, le=16, description="Multi-token-prediction layers (0: none).")


class ModelSpec(WireModel):
    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)?$",
        description="Hugging Face model id, e.g. Qwen/Qwen3-8B. Models in the operator's catalog get "
        "a fit check; others need architecture overrides or are marked fit unknown.",
    )
    revision: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Git revision (branch, tag or commit) of the model repository. Pin a commit in production.",
    )
    source: ModelSource = Field(default_factory=ModelSource, description="Where the weights come from.")
    served_model_name: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9._/:-]+$",
        description="Name clients use in the OpenAI API (defaults to name).",
    )
    overrides: ModelArchitectureOverrides | None = Field(
        default=None, description="Architecture numbers for a model the catalog does not know."
    )


class Quantization(str, Enum):
    none = "none"
    fp8 = "fp8"
    awq = "awq"
    awq_marlin = "awq_marlin"
    gptq = "gptq"
    gptq_marlin = "gptq_marlin"
    compressed_tensors = "compressed-tensors"


class DType(str, Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Parallelism(WireModel):
    tensor: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Tensor-parallel size: GPUs a model layer is split across. GPUs per pod = tensor x pipeline.",
    )
    pipeline: int = Field(default=1, ge=1, le=16, description="Pipeline-parallel size: stages of layers.")


class SpecMethod(str, Enum):
    mtp = "mtp"
    eagle3 = "eagle3"
    eagle = "eagle"
    draft_model = "draft_model"
    ngram = "ngram"


class SpeculativeDecoding(WireModel):
    """Speculative decoding: a cheap proposer drafts tokens, the target model verifies them in one step."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.method in ['mtp', 'ngram'] || has(self.draftModel)",
                "draftModel is required for methods eagle3, eagle and draft_model",
            ),
            (
                "!(self.method in ['mtp', 'ngram']) || !has(self.draftModel)",
                "draftModel must not be set for methods mtp and ngram",
            ),
            (
                "!has(self.promptLookupMin) || !has(self.promptLookupMax) || self.promptLookupMin <= self.promptLookupMax",
                "promptLookupMin must not exceed promptLookupMax",
            ),
        )
    )

    method: SpecMethod = Field(
        description="Proposer: mtp (the model's own multi-token-prediction heads; Qwen3-Next "
        "and later), eagle3 or eagle (a trained draft head), draft_model (a smaller model "
        "with the same vocabulary), ngram (prompt lookup, no extra model). Always explicit: "
        "vLLM would otherwise guess from the draft's name."
    )
    num_speculative_tokens: int = Field(default=3, ge=1, le=16, description="Tokens proposed per step (K).")
    draft_model: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        description="Draft model or head (Hugging Face id). Its vocabulary size must equal the target's.",
    )
    draft_tensor_parallel_size: int | None = Field(
        default=None, ge=1, le=64, description="TP of the draft: 1 or the target's tensor size (default: the target's)."
    )
    prompt_lookup_min: int | None = Field(default=None, ge=1, le=64, description="ngram: shortest n-gram matched.")
    prompt_lookup_max: int | None = Field(default=None, ge=1, le=64, description="ngram: longest n-gram matched.")


class KVCacheDType(str, Enum):
    auto = "auto"
    fp8 = "fp8"
    fp8_e4m3 = "fp8_e4m3"
    fp8_e5m2 = "fp8_e5m2"


class EnvVar(WireModel):
    name: str = Field(min_length=1, max_length=256, description="Environment variable name.")
    value: str = Field(
        default="",
        max_length=4096,
        description="Literal value. Secrets belong in model.source.tokenSecretRef, not here.",
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            raise ValueError(f"{v!r} is not a valid environment variable name")
        return v


class LoadFormat(str, Enum):
    """How vLLM reads the weights (--load-format); each is a loader registered in the pinned vLLM
    (vllm/model_executor/model_loader/__init__.py, recorded in domain/vllm_flags_0_32.json)."""

    auto = "auto"
    safetensors = "safetensors"
    runai_streamer = "runai_streamer"
    fastsafetensors = "fastsafetensors"


class Serving(WireModel):
    """vLLM engine settings. Each maps to one vLLM flag; the operator checks them against the pinned vLLM."""

    max_model_len: int | None = Field(
        default=None,
        ge=16,
        le=10_000_000,
        description="Longest sequence (prompt + "
        "output) in tokens; defaults to the model's context. The fit check requires "
        "at least one full-length sequence to fit in the KV cache.",
    )
    max_num_seqs: int = Field(default=256, ge=1, le=4096, description="Most sequences batched at once per replica.")
    max_num_batched_tokens: int | None = Field(
        default=None, ge=16, le=10_000_000, description="Token budget of one scheduler step (chunked prefill)."
    )
    kv_cache_dtype: KVCacheDType = Field(
        default=KVCacheDType.auto,
        description="KV cache element type. fp8 halves KV memory (more concurrent sequences, longer contexts).",
    )
    load_format: LoadFormat = Field(
        default=LoadFormat.auto,
        description="How weights are read: auto (safetensors when present), safetensors, runai_streamer "
        "(Run:ai Model Streamer: concurrent reads into CPU memory, streamed to the GPU; the image needs the "
        "runai-model-streamer package), fastsafetensors (GPUDirect Storage; GPUs only).",
    )
    enable_prefix_caching: bool = Field(default=True, description="Reuse KV blocks of shared prompt prefixes.")
    enable_chunked_prefill: bool = Field(
        default=True, description="Split long prefills across steps so decodes keep flowing."
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0.1,
        le=0.98,
        description="Fraction of each GPU's memory vLLM may use for weights, activations and KV cache.",
    )
    block_size: Literal[16, 32, 64, 128] | None = Field(default=None, description="KV cache block size in tokens.")
    cudagraph_capture_sizes: list[int] | None = Field(
        default=None,
        max_length=64,
        description="Batch sizes to capture CUDA graphs for (part of the compile-cache key).",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Extra environment variables for the "
        "vLLM container. VLLM_* variables change vLLM's compile-cache hash.",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Escape hatch: extra vLLM flags "
        "(--flag or --flag=value). Each must exist in the pinned vLLM and must not "
        "duplicate a flag the operator sets from typed fields.",
    )

    @field_validator("env")
    @classmethod
    def _env_unique(cls, v: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"serving.env names must be unique; repeated: {', '.join(dupes)}")
        return v

    @field_validator("cudagraph_capture_sizes")
    @classmethod
    def _sizes_ok(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if any(s < 1 or s > 8192 for s in v):
                raise ValueError("cudagraphCaptureSizes must be between 1 and 8192")
            if len(set(v)) != len(v):
                raise ValueError("cudagraphCaptureSizes must not repeat")
        return v


class Toleration(WireModel):
    """A Kubernetes toleration; the same rules the apiserver applies are checked here, at apply time."""

    key: str | None = Field(default=None, max_length=317, pattern=LABEL_KEY)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=63, pattern=LABEL_VALUE)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _k8s_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists must not have a value")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds is only allowed with effect NoExecute")
        return self


class GPU(WireModel):
    product: str = Field(
        default="NVIDIA-H100-80GB-HBM3",
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE,
        description="GPU product as GPU feature discovery labels nodes (nvidia.com/gpu.product), "
        "e.g. NVIDIA-H100-80GB-HBM3, NVIDIA-A10G. Short names (H100, A10G, L4, ...) are accepted.",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node labels to require.")

    @field_validator("node_selector")
    @classmethod
    def _labels_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if len(k) > 317 or not re.match(LABEL_KEY, k):
                raise ValueError(f"gpu.nodeSelector key {k!r} is not a valid label key")
            if not re.match(LABEL_VALUE, val):
                raise ValueError(f"gpu.nodeSelector value for {k} is not a valid label value")
        return v

    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=16,
        description="Extra tolerations (the nvidia.com/gpu NoSchedule toleration is always added).",
    )


class Resources(WireModel):
    cpu: str = Field(default="8", pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU request per pod.")
    memory: str = Field(
        default="64Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$",
        description="Memory request and limit per pod.",
    )
    shm_size: str = Field(
        default="16Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$",
        description="Size of the memory-backed /dev/shm (NCCL between GPUs of one pod).",
    )


class OnBakeFailure(str, Enum):
    serve_cold = "ServeCold"
    wait = "Wait"


class CacheStorage(WireModel):
    size: str = Field(default="20Gi", pattern=POSITIVE_QUANTITY, description="Size of the compile-cache volume.")
    storage_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="StorageClass of the cache "
        "PVC (cluster default when unset). Needs ReadWriteMany or ReadOnlyMany "
        "for pods on several nodes.",
    )
    access_mode: Literal["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"] = Field(
        default="ReadWriteMany", description="Access mode of the cache PVC."
    )


class CompileCache(WireModel):
    """torch.compile / inductor cache baked once per configuration and mounted by every serving pod."""

    enabled: bool = Field(default=True, description="Bake and mount the compile cache.")
    storage: CacheStorage = Field(default_factory=CacheStorage, description="The cache volume.")
    on_bake_failure: OnBakeFailure = Field(
        default=OnBakeFailure.serve_cold,
        description="ServeCold: roll out "
        "anyway and compile in each pod; Wait: keep the old pods until a bake "
        "succeeds.",
    )
    strict: bool = Field(
        default=False,
        description="Set VLLM_FORCE_AOT_LOAD=1 in serving pods: a cache miss "
        "fails the pod instead of recompiling silently.",
    )
    bake_timeout_seconds: int = Field(default=3600, ge=60, le=86400, description="A bake running longer fails.")
    allow_cross_device: bool = Field(
        default=False,
        description="Opt-in: reuse a cache baked on another GPU "
        "product of the same architecture (see docs/compile-cache.md). Off: the "
        "product is part of the key.",
    )


class BurstHeadroom(WireModel):
    """A warm pool sized by evidence: the capacity that recent cold starts lacked (autoscaling/policy.py)."""

    enabled: bool = Field(
        default=False,
        description="Add the burst headroom to the warm pool. Each demand estimate, one cold start later, gives the "
        "load that came within that cold start beyond what the replicas asked for then carry at full utilization; "
        "the quantile below of those shortfalls (the largest per minute) over the window is held warm, so bursts "
        "shorter than a cold start that recur find their replicas Ready. A ramp the trend covers adds nothing.",
    )
    quantile: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Which shortfall to hold for: 0.9 holds bursts that recur in at least a tenth of the window's "
        "minutes (minutes not observed yet count as none).",
    )
    window_seconds: int = Field(default=3600, ge=600, le=86400, description="How long a shortfall counts as evidence.")


class Autoscaling(WireModel):
    """Queue-depth autoscaling on vLLM's own metrics, with a warm pool."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas"),
            (
                "!(has(self.serviceRatePerReplica) && has(self.estimateServiceRate) && self.estimateServiceRate)",
                "set serviceRatePerReplica or estimateServiceRate, not both",
            ),
        )
    )

    enabled: bool = Field(
        default=False,
        description="Let the operator set the replica count. Off: spec.replicas "
        "(or an HPA/KEDA through the scale subresource) decides.",
    )
    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(default=4, ge=1, le=1000, description="Most replicas.")
    target_queue_per_replica: float = Field(
        default=0.25, gt=0, le=10000, description="Waiting requests per replica the policy aims for."
    )
    ttft_slo_seconds: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="Optional time-to-first-token objective; when set the policy derives its queue target from it.",
    )
    warm_pool: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Ready replicas kept above current demand so a burst does not wait for a cold start.",
    )
    burst_headroom: BurstHeadroom = Field(
        default_factory=BurstHeadroom,
        description="Replicas held above the warm pool for bursts that recent cold starts were too slow for.",
    )
    target_utilization: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description="Share of a replica's sequence capacity the policy fills while it sizes by running sequences "
        "(until a service rate is known: serviceRatePerReplica, the estimate (estimateServiceRate, on by default "
        "where it exists), or one learned at a saturation). Lower holds more headroom. Without the estimate, the "
        "default 0.4 (with scaleDownStabilizationSeconds 600) met the joint SLO in the benchmark in 54 "
        "of 90 cells (traces x replica models x routers) against 32 for (0.5, 300 s): ramps, fan-outs and "
        "bursts shorter than a cold start, held-out traces included; where both met it, it cost -3 % to +29 % "
        "GPU-hours (bench/autoscaling/README.md, 'A corner of the sensitivity grid'). 0.5 with 300 s is leaner "
        "on smooth traffic.",
    )
    scale_up_stabilization_seconds: int = Field(default=0, ge=0, le=3600, description="Window before scaling up.")
    scale_down_stabilization_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Demand must stay lower for this long before a scale-down. Unset: 600 s, which keeps one "
        "wave's replicas for the next; or 300 s when seasonalPeriodSeconds is set and warmPool is above 0, since "
        "the forecast asks for the next wave ahead of time and the warm pool takes what it misses. 300 s is also "
        "leaner on smooth traffic (see targetUtilization).",
    )
    interval_seconds: int = Field(default=15, ge=1, le=600, description="How often the policy runs.")
    service_rate_per_replica: float | None = Field(
        default=None,
        gt=0,
        le=100000,
        description="Requests/s one replica sustains with this workload's request "
        "mix (e.g. `vllm bench serve` at saturation with a sample of the traffic). The policy then sizes the fleet "
        "linearly in the arrival rate from the first minute; without it, it learns the rate at the first saturation "
        "and sizes by running sequences until then. The policy works in tokens/s: it converts this rate at the "
        "current tokens per completed request until the fleet's own evidence backs it. Learning corrects a rate set too "
        "high only at the first saturation, after a ramp has queued (in the benchmark 1.5x too high lost the SLO on "
        "ramps), and raises one set too low only over hours (0.5x cost about 1.8x the GPU-hours on its traces of "
        "under an hour); when unsure, give the lower figure.",
    )
    estimate_service_rate: bool | None = Field(
        default=None,
        description="Start from the operator's estimate of what one replica sustains at the request mix it observes "
        "(prompt tokens, those served from the prefix cache, and generated tokens per request, over the last few "
        "minutes), from the model's and the GPU's sizes with vLLM's step costs calibrated to published H100 "
        "measurements (operator/qwen_operator/domain/replica_rate.py). The policy then sizes the fleet linearly in "
        "the arrival rate from the first minute instead of waiting for a replica to saturate; learning corrects it as "
        "with serviceRatePerReplica. The estimate exists for dense bf16 Qwen2.5/Qwen3 models on one Hopper GPU per "
        "replica without speculative decoding. Unset: used wherever it exists and serviceRatePerReplica is not set "
        "(status.autoscaling.serviceRatePrior says which prior the policy has, and why); true: the spec is refused, "
        "with the reason, where there is no estimate; false: no estimate. In the benchmark the estimate met the joint "
        "SLO in 8 more of 90 cells than learning alone, for about an eighth more GPU-hours "
        "(bench/results/autoscaling_estimate_default.md). Set false when the replicas are slower than their GPU "
        "label says (the estimate is then too high until the first saturation corrects it).",
    )
    seasonal_period_seconds: int | None = Field(
        default=None,
        ge=600,
        le=604800,
        description="Length of the demand cycle (86400 for daily traffic). The "
        "policy records the request rate over one cycle and, from the next, asks ahead of time for the growth the "
        "previous cycle had over the next cold start; it stops forecasting, and says why in the decision, while "
        "this cycle does not follow the last. Needs a known service rate (serviceRatePerReplica, estimateServiceRate, "
        "or one learned at "
        "a saturation); unset: no forecast.",
    )

    @model_validator(mode="after")
    def _one_service_rate_prior(self) -> Autoscaling:
        # Also a CEL rule of the CRD; checked here for specs that do not come through the apiserver (qwenctl).
        if self.estimate_service_rate and self.service_rate_per_replica is not None:
            raise ValueError("set serviceRatePerReplica or estimateServiceRate, not both")
        return self

    def floor_replicas(self) -> int:
        """The size the fleet never goes below: minReplicas + warmPool, capped at maxReplicas (the rule of
        autoscaling.policy.floor_replicas; tests/test_plan.py checks that the two agree)."""
        return min(self.max_replicas, self.min_replicas + self.warm_pool)


class RoutingPolicy(str, Enum):
    """The policies of the pinned router that the operator offers (the router's own spelling): the five its README
    documents. kv_aware (needs KV events from each worker over ZMQ) and sticky_least_loaded are left out."""

    cache_aware = "cache_aware"
    power_of_two = "power_of_two"
    consistent_hash = "consistent_hash"
    round_robin = "round_robin"
    random = "random"


class RouterResources(WireModel):
    cpu: str = Field(default="1", pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU request per router pod.")
    memory: str = Field(
        default="1Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$",
        description="Memory request and limit per router pod (the cache-aware prefix tree lives here).",
    )


class Routing(WireModel):
    """vLLM's own router (vllm-router) in front of the replicas: the client Service then selects the router, which
    discovers the replicas by their labels. See docs/routing.md for what the pinned router can and cannot do."""

    enabled: bool = Field(
        default=False,
        description="Run the router; the deployment's client Service (named after it) then leads to the router "
        "instead of straight to the vLLM pods. Off: clients reach the pods through a plain ClusterIP Service.",
    )
    policy: RoutingPolicy = Field(
        default=RoutingPolicy.cache_aware,
        description="cache_aware: send requests with a shared prompt prefix to the replica that has it cached, "
        "unless the load is unbalanced; power_of_two: the less loaded of two random replicas; consistent_hash: the "
        "same session (X-Session-ID header) to the same replica; round_robin; random.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Router pods. Each keeps its own prefix tree, so cache_aware routing is sharpest with one.",
    )
    resources: RouterResources = Field(default_factory=RouterResources, description="CPU/memory per router pod.")
    image: str = Field(
        default=DEFAULT_ROUTER_IMAGE,
        min_length=1,
        max_length=512,
        description=f"Router image; pin a tag or digest (default {DEFAULT_ROUTER_IMAGE}, built from "
        f"images/vllm-router/Dockerfile with vllm-router {PINNED_ROUTER_VERSION}, the version the operator "
        "validates router flags against).",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels the router pods require (they need no GPU: by default they go wherever the "
        "scheduler puts a small CPU pod).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=16, description="Tolerations of the router pods."
    )

    @field_validator("node_selector")
    @classmethod
    def _router_labels_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if len(k) > 317 or not re.match(LABEL_KEY, k):
                raise ValueError(f"routing.nodeSelector key {k!r} is not a valid label key")
            if not re.match(LABEL_VALUE, val):
                raise ValueError(f"routing.nodeSelector value for {k} is not a valid label value")
        return v

    extra_args: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Escape hatch: extra router flags (--flag or --flag=value), e.g. --cache-threshold=0.5. Each "
        "must exist in the pinned router and must not be one the operator sets or cannot support.",
    )

    @field_validator("extra_args")
    @classmethod
    def _extra_args_shape(cls, v: list[str]) -> list[str]:
        for i, a in enumerate(v):
            if not a.startswith("--") or len(a) < 3:
                # The value is not echoed: it may be a secret given as a separate argument (--api-key, sk-...).
                raise ValueError(
                    f"routing.extraArgs[{i}] must look like --flag or --flag=value (write a flag and its value as "
                    "one item, --flag=value)"
                )
        return v


# The pinned router cannot hold a request while no replica is Ready (docs/routing.md): a fleet that may scale to
# zero behind it would answer the first request with a 503 and no Retry-After.
ROUTING_MIN_REPLICAS_MESSAGE = (
    f"autoscaling.minReplicas 0 is not allowed with routing.enabled: the pinned router (vllm-router "
    f"{PINNED_ROUTER_VERSION}) cannot hold a request while no replica is Ready; it answers 503, without "
    "Retry-After, within a second. Set autoscaling.minReplicas to 1 or more, or turn routing off"
)


class QwenDeploymentSpec(WireModel):
    """A Qwen model served by a fleet of vLLM replicas on NVIDIA GPUs."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "!self.routing.enabled || !self.autoscaling.enabled || self.autoscaling.minReplicas >= 1",
                ROUTING_MIN_REPLICAS_MESSAGE,
            ),
        )
    )

    model: ModelSpec = Field(description="The checkpoint to serve.")
    quantization: Quantization = Field(
        default=Quantization.none,
        description="Weight quantization. awq/gptq need "
        "a checkpoint quantized that way; fp8 quantizes a bf16 checkpoint at load.",
    )
    dtype: DType = Field(default=DType.auto, description="Activation/weight dtype (auto: the checkpoint's).")
    parallelism: Parallelism = Field(default_factory=Parallelism, description="How a replica spreads over GPUs.")
    speculative_decoding: SpeculativeDecoding | None = Field(default=None, description="Optional speculative decoding.")
    serving: Serving = Field(default_factory=Serving, description="vLLM engine settings.")
    gpu: GPU = Field(default_factory=GPU, description="Which GPUs replicas run on.")
    image: str = Field(
        default=DEFAULT_VLLM_IMAGE,
        min_length=1,
        max_length=512,
        description=f"vLLM image; pin a tag or digest (default {DEFAULT_VLLM_IMAGE}, the version "
        "the operator validates flags against).",
    )
    resources: Resources = Field(default_factory=Resources, description="CPU/memory per pod (GPUs are derived).")
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Replica count when autoscaling is off (also set "
        "by kubectl scale or an HPA through the scale subresource).",
    )
    startup_timeout_seconds: int | None = Field(
        default=None,
        ge=60,
        le=14400,
        description="How long a pod may take to load weights, compile and warm up before the startup probe gives "
        "up. Unset: 1800 s until the operator has measured this deployment's cold starts, then derived from them "
        "(status.coldStart.startupProbeSeconds; see docs/cold-start.md). Set: exactly this.",
    )
    compile_cache: CompileCache = Field(default_factory=CompileCache, description="Compile-cache baking.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Queue-depth autoscaling.")
    routing: Routing = Field(default_factory=Routing, description="vLLM's router in front of the replicas.")

    @model_validator(mode="after")
    def _extra_args_shape(self) -> QwenDeploymentSpec:
        for i, a in enumerate(self.serving.extra_args):
            if not a.startswith("--") or len(a) < 3:
                # The value is not echoed: it may be a secret given as a separate argument (--api-key, sk-...).
                raise ValueError(
                    f"serving.extraArgs[{i}] must look like --flag or --flag=value (write a flag and "
                    "its value as one item, --flag=value)"
                )
        return self

    @property
    def gpus_per_pod(self) -> int:
        return self.parallelism.tensor * self.parallelism.pipeline


# ---- status ------------------------------------------------------------------------------------------------------


class Condition(WireModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class FitStatus(WireModel):
    known: bool = Field(description="False when the model's architecture is unknown.")
    fits: bool | None = None
    weights_gib: float | None = Field(default=None, alias="weightsGiB", description="Weight memory per replica.")
    kv_cache_gib: float | None = Field(
        default=None, alias="kvCacheGiB", description="KV cache memory left per replica."
    )
    kv_bytes_per_token: int | None = None
    max_model_len: int | None = None
    full_length_sequences: int | None = Field(default=None, description="Max-length sequences that fit at once.")
    gpu_memory_gib: float | None = Field(default=None, alias="gpuMemoryGiB")
    message: str = ""


class CachePodStatus(WireModel):
    pod: str
    hit: bool | None = None
    evidence: str = ""


class CompileCacheStatus(WireModel):
    key: str | None = None
    state: str | None = None
    bake_job: str | None = None
    bake_seconds: float | None = None
    pods: list[CachePodStatus] = Field(default_factory=list)


class WeightCacheStatus(WireModel):
    """What the shared weight cache holds (manifests/weights.py); the PVC's annotations are its record."""

    key: str | None = Field(default=None, description="Digest of (endpoint, model, revision as written).")
    volume: str | None = Field(default=None, description="The PVC, shared by every deployment of this checkpoint.")
    hydrate_job: str | None = Field(default=None, description="The Job that fills it (its only writer).")
    state: str | None = Field(default=None, description="Hydrating, Ready or Failed.")
    commit: str | None = Field(default=None, description="The commit the revision resolved to at hydration.")
    size_bytes: int | None = Field(default=None, description="Bytes of the checkpoint's files.")
    files: int | None = Field(default=None, description="Files in the checkpoint.")
    hydration_seconds: float | None = Field(default=None, description="How long the download and check took.")
    hydrated_at: str | None = Field(default=None, description="When the hydration finished.")
    users: list[str] = Field(default_factory=list, description="The QwenDeployments that use this volume.")
    reason: str | None = Field(default=None, description="Why hydration failed (state Failed).")
    message: str | None = Field(default=None, description="The hydration's failure, in plain words.")


class ServiceRatePriorStatus(WireModel):
    source: str = Field(
        description="serviceRatePerReplica (the spec's figure), estimate (spec.autoscaling.estimateServiceRate) or "
        "none (learned at the first saturation)."
    )
    message: str = Field(description="Why this prior, in plain words.")


class AutoscalingStatus(WireModel):
    active: bool | None = None
    desired_replicas: int | None = None
    warm_replicas: int | None = Field(
        default=None,
        description="Replicas held above demand at the last decision: warmPool, plus the burst headroom when on.",
    )
    last_reason: str | None = None
    last_message: str | None = None
    last_queue: float | None = None
    last_decision_time: str | None = None
    cold_start_seconds: float | None = Field(
        default=None,
        description="Pod creation to Ready, as measured on this deployment's pods (the slowest "
        "Ready one); the policy looks this far ahead. Absent until a pod was seen starting.",
    )
    router_in_flight: float | None = Field(
        default=None,
        description="Requests vLLM's router had in flight on the Ready replicas at the last written decision "
        "(spec.routing on; vllm_router_running_requests). Beyond what vLLM runs, they count as waiting.",
    )
    service_rate_prior: ServiceRatePriorStatus | None = Field(
        default=None, description="The service-rate prior the policy starts from, and why that one."
    )
    policy_state: dict[str, Any] | None = None


class ColdStartPhasesStatus(WireModel):
    """A cold start in seconds, phase by phase (docs/cold-start.md). An absent phase did not happen or was not
    seen (the CPU build captures no CUDA graphs; an engine in eager mode compiles nothing)."""

    scheduled_seconds: float | None = Field(default=None, description="Creation to PodScheduled.")
    image_pulled_seconds: float | None = Field(
        default=None, description="The kubelet's image pull time (its Pulled events; 0 when already present)."
    )
    init_containers_seconds: float | None = Field(
        default=None, description="PodScheduled to the init containers done (the compile-cache seed), less pulls."
    )
    container_started_seconds: float | None = Field(
        default=None, description="Init containers done (or PodScheduled) to the vLLM container running, less pulls."
    )
    weights_loaded_seconds: float | None = Field(default=None, description="vLLM's model and weight load.")
    compile_seconds: float | None = Field(
        default=None, description="torch.compile, or loading it from the compile cache (part of engine init)."
    )
    cuda_graphs_seconds: float | None = Field(
        default=None, description="CUDA graph capture (part of engine init; GPU only)."
    )
    engine_initialised_seconds: float | None = Field(
        default=None, description="vLLM's engine init: profiling, KV cache, compile, graph capture, warm-up."
    )
    ready_seconds: float | None = Field(default=None, description="vLLM's API server up to the pod's Ready condition.")
    other_seconds: float | None = Field(
        default=None,
        description="Container start to Ready not in the measured phases (process start, imports, spawning).",
    )
    total_seconds: float | None = Field(default=None, description="Creation to Ready.")


class PodColdStartStatus(ColdStartPhasesStatus):
    pod: str = Field(description="The pod's name.")
    uid: str | None = Field(default=None, description="The pod's uid (a recreated pod of the same name is new).")
    ready_time: str | None = Field(default=None, description="When the pod turned Ready.")


class ColdStartMedianStatus(ColdStartPhasesStatus):
    pods: int = Field(description="How many recent pods the medians are taken over.")


class ColdStartStatus(WireModel):
    latest: PodColdStartStatus | None = Field(default=None, description="The pod that turned Ready last.")
    median: ColdStartMedianStatus | None = Field(
        default=None, description="Each phase's median over the recent pods that have it."
    )
    recent: list[PodColdStartStatus] = Field(
        default_factory=list, max_length=10, description="The last pods that turned Ready, oldest first."
    )
    startup_probe_seconds: int | None = Field(
        default=None, description="The startup probe's budget the StatefulSet runs with."
    )
    startup_probe_source: Literal["Spec", "Measured", "Default"] | None = Field(
        default=None,
        description="Spec: spec.startupTimeoutSeconds; Measured: derived from recent cold starts; Default: 1800 s, "
        "nothing measured yet.",
    )
    startup_probe_target_seconds: int | None = Field(
        default=None,
        description="A budget the measurements justify that does not run yet: a lower one is applied with the next "
        "rollout (a probe change alone would restart every pod), any while a compile-cache bake holds the rollout.",
    )


class QwenDeploymentStatus(WireModel):
    model_config = ConfigDict(extra="allow")

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    replicas: int | None = Field(default=None, description="Replicas of the StatefulSet (scale subresource).")
    ready_replicas: int | None = None
    desired_replicas: int | None = None
    selector: str | None = Field(default=None, description="Label selector of the pods (scale subresource).")
    fit: FitStatus | None = None
    vllm_command: str | None = Field(default=None, description="The exact vLLM command line being run.")
    compile_cache: CompileCacheStatus | None = None
    weight_cache: WeightCacheStatus | None = Field(default=None, description="The shared model-weight cache.")
    autoscaling: AutoscalingStatus | None = None
    cold_start: ColdStartStatus | None = Field(
        default=None, description="Where the serving pods' cold starts go, phase by phase."
    )
