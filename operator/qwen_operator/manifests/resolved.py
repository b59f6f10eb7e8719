"""A valid spec resolved once per reconcile: every builder takes this value instead of re-deriving from the spec.

What vLLM will run (argv, env, the command line shown in status), what it runs on (architecture, GPU, fit), and
the compile-cache identity (key, factors, the shared objects' name) are computed here, once, from the validation
report; the StatefulSet, the bake Job and the cache PVC are then rendered from the same value, so they cannot
disagree (a cache is only hit when bake and serve hash the same factors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.models import QwenDeploymentSpec
from ..domain.catalog import ModelArch
from ..domain.compile_cache import cache_key, cache_object_name, key_factors
from ..domain.fit import FitResult
from ..domain.gpus import GPUProduct, canonical_product
from ..domain.validation import ValidationReport
from ..domain.vllm_args import render_env, shell_line


@dataclass(frozen=True)
class CacheIdentity:
    """The compile cache a spec needs: its key, the factors hashed into it, and the shared PVC/Job name."""

    key: str
    factors: Mapping[str, Any]
    factors_json: str  # compact, sorted: recorded in the bake Job so a miss can be explained by a diff
    object_name: str  # the PVC and the bake Job, shared by every deployment of the namespace with this key


@dataclass(frozen=True)
class ResolvedSpec:
    """A valid QwenDeploymentSpec and everything derived from it.  Not to be mutated (builders copy)."""

    spec: QwenDeploymentSpec
    arch: ModelArch | None
    gpu: GPUProduct | None
    gpu_product: str  # canonical product name (the node label's value)
    fit: FitResult | None
    max_model_len: int | None
    argv: tuple[str, ...]  # after `vllm serve`
    env: tuple[Mapping[str, Any], ...]  # container env, in a stable order (cache key, drift)
    command_line: str  # `vllm serve ...`, shell-quoted, for status and the pod annotation
    cache: CacheIdentity | None  # None: compile cache disabled


def resolve(report: ValidationReport) -> ResolvedSpec:
    """Resolve a report whose spec parsed (``report.spec`` set); validity is the caller's to check."""
    spec = report.spec
    if spec is None:
        raise ValueError("resolve() needs a parsed spec")
    product = canonical_product(spec.gpu.product)
    cache = None
    if spec.compile_cache.enabled:
        factors = key_factors(spec, report.max_model_len, product)
        key = cache_key(factors)
        cache = CacheIdentity(
            key=key,
            factors=factors,
            object_name=cache_object_name(key),
            factors_json=json.dumps(factors, sort_keys=True, separators=(",", ":")),
        )
    return ResolvedSpec(
        spec=spec,
        arch=report.arch,
        gpu=report.gpu,
        gpu_product=product,
        fit=report.fit,
        max_model_len=report.max_model_len,
        argv=tuple(report.args),
        env=tuple(render_env(spec, strict_cache=spec.compile_cache.strict)),
        command_line=shell_line(["vllm", "serve"], report.args),
        cache=cache,
    )
