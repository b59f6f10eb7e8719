"""The compile-cache key: a stable hash of everything vLLM's own compile-cache hash depends on.

vLLM (https://docs.vllm.ai/en/latest/design/torch_compile/, and compile_factors() in vllm/envs.py of
https://github.com/vllm-project/vllm) hashes: every VLLM_* environment variable except an ignore list; the vLLM
version; model path, revision, dtype, max_model_len, quantization; KV-cache dtype and block size; TP and PP;
max_num_seqs and max_num_batched_tokens; the speculative and compilation configs; torch/triton versions; and the
GPU's device name plus CUDA version. Our key covers the same factors (image stands for vLLM/torch/triton/CUDA
versions, the GPU product for the device name), so two deployments with the same key can share one bake, and a
change of any factor starts a new bake before the rollout. What vLLM ignores (gpu_memory_utilization,
enable_prefix_caching, served_model_name, pod name, host IP) is left out, so changing it never re-bakes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..api.models import QwenDeploymentSpec
from .gpus import lookup_gpu
from .speculative import speculative_config_json
from .vllm_args import compilation_config_json, model_path

# vLLM leaves these out of its hash (per-host or logging): so do we.
VLLM_ENV_IGNORED = frozenset(
    {
        "VLLM_CACHE_ROOT",
        "VLLM_HOST_IP",
        "VLLM_PORT",
        "VLLM_LOGGING_LEVEL",
        "VLLM_LOGGING_PREFIX",
        "VLLM_LOGGING_CONFIG_PATH",
        "VLLM_CONFIGURE_LOGGING",
        "VLLM_LOG_STATS_INTERVAL",
        "VLLM_DEBUG_LOG_API_SERVER_RESPONSE",
        "VLLM_RPC_BASE_PATH",
        "VLLM_DISABLE_COMPILE_CACHE",
        "CUDA_VISIBLE_DEVICES",
        "LOCAL_RANK",
    }
)


def key_factors(spec: QwenDeploymentSpec, max_model_len: int | None, gpu_product: str) -> dict[str, Any]:
    """The factors, readable: recorded in status and in the bake Job so a miss can be explained by a diff."""
    s = spec.serving
    gpu = lookup_gpu(gpu_product)
    device: str
    if spec.compile_cache.allow_cross_device and gpu is not None:
        # Opt-in: same architecture and compute capability share artifacts (docs/compile-cache.md).
        device = f"arch:{gpu.architecture}:sm{gpu.compute_capability[0]}{gpu.compute_capability[1]}"
    else:
        device = gpu.product if gpu else gpu_product
    vllm_env = {e.name: e.value for e in s.env if e.name.startswith("VLLM_") and e.name not in VLLM_ENV_IGNORED}
    if spec.compile_cache.strict:
        vllm_env.pop("VLLM_FORCE_AOT_LOAD", None)  # strict mode is a serving-side switch, set identically
    return {
        "image": spec.image,
        "model": model_path(spec),
        "revision": spec.model.revision,
        "dtype": spec.dtype,
        "quantization": spec.quantization,
        "max_model_len": max_model_len,
        "kv_cache_dtype": s.kv_cache_dtype,
        "block_size": s.block_size,
        "tensor_parallel_size": spec.parallelism.tensor,
        "pipeline_parallel_size": spec.parallelism.pipeline,
        "max_num_seqs": s.max_num_seqs,
        "max_num_batched_tokens": s.max_num_batched_tokens,
        "enable_chunked_prefill": s.enable_chunked_prefill,
        "speculative_config": (
            speculative_config_json(spec.speculative_decoding, spec.parallelism.tensor)
            if spec.speculative_decoding
            else None
        ),
        "compilation_config": compilation_config_json(spec),
        "vllm_env": dict(sorted(vllm_env.items())),
        "device": device,
    }


def cache_key(factors: dict[str, Any]) -> str:
    """Hex digest (first 20 chars: short enough for object names, 80 bits against collisions)."""
    blob = json.dumps(factors, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_object_name(key: str) -> str:
    """Name of the PVC and bake Job for a key: shared by every deployment in the namespace with that key."""
    return f"qwen-cc-{key[:16]}"
