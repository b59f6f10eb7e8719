"""One place translates a QwenDeploymentSpec into the vLLM server's command line and environment.

The same argv and env go to the compile-cache bake Job and to the serving pods (a cache is only hit when both
hash the same factors), and they are checked against the flag table of the pinned vLLM (vllm_flags_0_32.json,
dumped from vLLM's own argument parser by e2e/vllm/dump_flags.py) so removed or misspelt flags fail at apply
time rather than in a crash-looping pod.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..api.models import QwenDeploymentSpec
from .extra_args import FlagRules, check_flags
from .gpus import lookup_gpu
from .speculative import speculative_config_json

VLLM_PORT = 8000
MODEL_MOUNT = "/models"  # pvc sources are mounted here
HF_HOME = "/var/cache/qwen/hf"  # Hugging Face download cache (model-cache volume)
VLLM_CACHE_ROOT = "/var/cache/qwen/vllm"  # compile cache (compile-cache volume); the same path in bake and serve
FLAGS_FILE = "vllm_flags_0_32.json"

# Flags the operator owns: set from typed fields, so extraArgs may not repeat them.
MANAGED_FLAGS = frozenset(
    {
        "--model",
        "--host",
        "--port",
        "--served-model-name",
        "--revision",
        "--tensor-parallel-size",
        "-tp",
        "--pipeline-parallel-size",
        "-pp",
        "--dtype",
        "--quantization",
        "-q",
        "--max-model-len",
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--kv-cache-dtype",
        "--gpu-memory-utilization",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--enable-chunked-prefill",
        "--no-enable-chunked-prefill",
        "--block-size",
        "--speculative-config",
        "--compilation-config",
        "-O",
        "--tokenizer-revision",
        "--download-dir",
        "--load-format",
    }
)
# Flags that would put a secret on the command line (visible in `ps`, pod specs and our status).
SECRET_FLAGS = frozenset({"--api-key", "--hf-token", "--ssl-keyfile"})
# Environment variables the operator owns.
MANAGED_ENV = frozenset(
    {
        "HF_TOKEN",
        "HF_HOME",
        "VLLM_CACHE_ROOT",
        "HOME",
        "VLLM_PORT",
        "VLLM_HOST_IP",
        "QWEN_CACHE_KEY",
        "QWEN_CACHE_FACTORS",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
    }
)


@dataclass(frozen=True)
class FlagTable:
    version: str
    flags: frozenset[str]
    takes_value: frozenset[str]
    removed: dict[str, str] = field(default_factory=dict)
    load_formats: frozenset[str] = frozenset()  # the loader registry (--load-format has no argparse choices)


# Flags old guides still use, and what replaced them (vLLM release notes:
# https://github.com/vllm-project/vllm/releases).
REMOVED_FLAGS = {
    "--speculative-model": "use speculativeDecoding.draftModel (vLLM --speculative-config) instead",
    "--num-speculative-tokens": "use speculativeDecoding.numSpeculativeTokens instead",
    "--use-v2-block-manager": "removed in vLLM 0.10.0; the v2 block manager is the only one",
    "--disable-log-requests": "removed in vLLM 0.17.0",
}


@lru_cache(maxsize=1)
def flag_table() -> FlagTable:
    raw = json.loads(resources.files("qwen_operator.domain").joinpath(FLAGS_FILE).read_text())
    options = raw["options"] if isinstance(raw, dict) and "options" in raw else raw
    if isinstance(options, dict):
        options = [dict(v, dest=k) for k, v in options.items()]
    names: set[str] = set()
    valued: set[str] = set()
    for opt in options:
        for f in opt.get("flags", []):
            names.add(f)
            if opt.get("takes_value", opt.get("nargs") != 0):
                valued.add(f)
    version = raw.get("vllm_version", "?") if isinstance(raw, dict) else "?"
    return FlagTable(
        version=version,
        flags=frozenset(names),
        takes_value=frozenset(valued),
        removed=REMOVED_FLAGS,
        load_formats=frozenset(raw.get("load_formats", ()) if isinstance(raw, dict) else ()),
    )


def check_extra_args(extra: list[str]) -> list[str]:
    """Plain-words problems with extraArgs (empty when fine)."""
    table = flag_table()
    refused = {f: "is set by the operator from a typed field; set that field instead" for f in MANAGED_FLAGS}
    refused.update({f: f"does not exist in vLLM {table.version}: {why}" for f, why in REMOVED_FLAGS.items()})
    refused.update(
        {
            f: "would put a secret on the command line; pass secrets through a Secret (model.source.tokenSecretRef), "
            "never as arguments"
            for f in SECRET_FLAGS
        }
    )
    rules = FlagRules("extraArgs", f"vLLM {table.version}", table.flags, table.takes_value, refused)
    return check_flags(extra, rules)


def model_path(spec: QwenDeploymentSpec) -> str:
    src = spec.model.source
    if src.type == "pvc":
        return f"{MODEL_MOUNT}/{(src.pvc_path or spec.model.name).strip('/')}"
    if src.cache.enabled:
        # The weight cache's verified checkpoint, mounted read-only here (manifests/workload.py); the model's name
        # stays in the path so the compile-cache key (which hashes this path) tells checkpoints apart.
        return f"{MODEL_MOUNT}/{spec.model.name}"
    return spec.model.name


def reads_local_copy(spec: QwenDeploymentSpec) -> bool:
    """The weights are on a mounted volume (a pvc source or the weight cache): nothing is downloaded at start."""
    return spec.model.source.type == "pvc" or spec.model.source.cache.enabled


def compilation_config_json(spec: QwenDeploymentSpec) -> str | None:
    sizes = spec.serving.cudagraph_capture_sizes
    if not sizes:
        return None
    return json.dumps({"cudagraph_capture_sizes": sorted(sizes)}, sort_keys=True, separators=(",", ":"))


def render_args(spec: QwenDeploymentSpec, max_model_len: int | None) -> list[str]:
    """vLLM server arguments after `vllm serve` (model first, as `vllm serve MODEL` expects)."""
    s = spec.serving
    args = [
        model_path(spec),
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
        "--served-model-name",
        spec.model.served_model_name or spec.model.name,
    ]
    if spec.model.revision and not reads_local_copy(spec):
        args += ["--revision", spec.model.revision]
    args += [
        "--tensor-parallel-size",
        str(spec.parallelism.tensor),
        "--pipeline-parallel-size",
        str(spec.parallelism.pipeline),
    ]
    if spec.dtype != "auto":
        args += ["--dtype", spec.dtype]
    if spec.quantization != "none":
        args += ["--quantization", spec.quantization]
    if max_model_len:
        args += ["--max-model-len", str(max_model_len)]
    args += ["--max-num-seqs", str(s.max_num_seqs)]
    if s.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(s.max_num_batched_tokens)]
    if s.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", s.kv_cache_dtype]
    args += ["--gpu-memory-utilization", f"{s.gpu_memory_utilization:g}"]
    if s.load_format != "auto":
        args += ["--load-format", s.load_format]
    args.append("--enable-prefix-caching" if s.enable_prefix_caching else "--no-enable-prefix-caching")
    args.append("--enable-chunked-prefill" if s.enable_chunked_prefill else "--no-enable-chunked-prefill")
    if s.block_size:
        args += ["--block-size", str(s.block_size)]
    if spec.speculative_decoding is not None:
        args += ["--speculative-config", speculative_config_json(spec.speculative_decoding, spec.parallelism.tensor)]
    comp = compilation_config_json(spec)
    if comp:
        args += ["--compilation-config", comp]
    args += list(s.extra_args)
    return args


def render_env(spec: QwenDeploymentSpec, strict_cache: bool = False) -> list[dict[str, Any]]:
    """Container env. The token only ever travels as a secretKeyRef. Order is stable (cache key, drift)."""
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/root"},
        {"name": "HF_HOME", "value": HF_HOME},
        {"name": "VLLM_CACHE_ROOT", "value": VLLM_CACHE_ROOT},
        # The server must hold an idle keep-alive connection longer than its clients and load balancers do (60 s
        # is common: aiohttp in `vllm bench serve`, cloud load balancers), or a client that reuses a connection at
        # the moment the server closes it gets "Server disconnected" (uvicorn's default is 5 s; seen in
        # e2e/test_01_real_node.py). vLLM hands this to uvicorn; it is not a compile-cache factor.
        {"name": "VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "value": "75"},
    ]
    if reads_local_copy(spec):
        # A pod that reads a mounted copy must never fall back to the network (the weight cache promises zero
        # downloads at start; an access log proves it in e2e/test_01_real_node.py).
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    elif spec.model.source.endpoint:
        env.append({"name": "HF_ENDPOINT", "value": spec.model.source.endpoint})
    tok = spec.model.source.token_secret_ref
    if tok is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": tok.name, "key": tok.key}}})
    if strict_cache:
        env.append({"name": "VLLM_FORCE_AOT_LOAD", "value": "1"})
    gpu = lookup_gpu(spec.gpu.product)
    if gpu is not None and gpu.cpu_standin:
        # The vLLM CPU build sizes its KV cache from this (GiB), not from gpu_memory_utilization.
        env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": "1"})
        # One stand-in GPU is one compute thread. vLLM's automatic binding pins every pod's threads to the same
        # first cores of the node (it sees all of them: no CPU manager hands out exclusive cores here), so two
        # replicas would share one core and add no capacity; unpinned, the kernel spreads them
        # (vllm/utils/ompmultiprocessing.py in vllm-cpu 0.32: "nobind" skips the binding).
        env.append({"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "nobind"})
        env.append({"name": "OMP_NUM_THREADS", "value": str(spec.gpus_per_pod)})
    # The user's entries win over the operator's optional ones of the same name (names stay unique: the
    # apiserver rejects duplicates); the managed ones (MANAGED_ENV) are refused by validation before this.
    user = {e.name: e.value for e in spec.serving.env}
    env = [e for e in env if e["name"] not in user]
    env += [{"name": e.name, "value": e.value} for e in spec.serving.env]
    return env


def shell_line(command: list[str], args: list[str]) -> str:
    """A human-readable command line for status (no secrets: args never carry them)."""

    def q(a: str) -> str:
        return a if a and all(c.isalnum() or c in "-_./:=,@+" for c in a) else "'" + a.replace("'", "'\\''") + "'"

    return " ".join(q(a) for a in command + args)
