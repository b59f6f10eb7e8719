import copy

import pytest

from qwen_operator.api.models import QwenDeploymentSpec
from qwen_operator.domain.compile_cache import cache_key, key_factors

BASE = {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": "H100"}}


def key(mut=None, product="NVIDIA-H100-80GB-HBM3"):
    raw = copy.deepcopy(BASE)
    if mut:
        mut(raw)
    spec = QwenDeploymentSpec.model_validate(raw)
    return cache_key(key_factors(spec, spec.serving.max_model_len or 40960, product))


def setp(path, value):
    def f(raw):
        node = raw
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value

    return f


CHANGES = [
    (("image",), "vllm/vllm-openai:v0.31.0"),
    (("model", "revision"), "abc123"),
    (("dtype",), "float16"),
    (("quantization",), "fp8"),
    (("serving", "maxModelLen"), 8192),
    (("serving", "kvCacheDtype"), "fp8"),
    (("serving", "blockSize"), 32),
    (("parallelism", "tensor"), 2),
    (("parallelism", "pipeline"), 2),
    (("serving", "maxNumSeqs"), 64),
    (("serving", "maxNumBatchedTokens"), 4096),
    (("serving", "cudagraphCaptureSizes"), [1, 2, 4]),
    (("speculativeDecoding",), {"method": "ngram", "numSpeculativeTokens": 3}),
    (("serving", "env"), [{"name": "VLLM_USE_V1", "value": "1"}]),
]


@pytest.mark.parametrize("path,value", CHANGES, ids=[".".join(p) for p, _ in CHANGES])
def test_key_changes_with_every_hashed_factor(path, value):
    assert key(setp(path, value)) != key()


def test_num_speculative_tokens_changes_key():
    a = key(setp(("speculativeDecoding",), {"method": "ngram", "numSpeculativeTokens": 3}))
    b = key(setp(("speculativeDecoding",), {"method": "ngram", "numSpeculativeTokens": 4}))
    assert a != b


def test_gpu_product_changes_key():
    assert key(product="NVIDIA-A10G") != key()


IGNORED = [
    (("serving", "gpuMemoryUtilization"), 0.8),
    (("serving", "enablePrefixCaching"), False),
    (("model", "servedModelName"), "my-model"),
    (("replicas",), 5),
    (("serving", "env"), [{"name": "VLLM_HOST_IP", "value": "10.0.0.7"}]),
    (("serving", "env"), [{"name": "VLLM_PORT", "value": "9000"}]),
    (("serving", "env"), [{"name": "NCCL_DEBUG", "value": "INFO"}]),
]


@pytest.mark.parametrize("path,value", IGNORED, ids=[".".join(p) for p, _ in IGNORED])
def test_key_ignores_what_vllm_ignores(path, value):
    assert key(setp(path, value)) == key()


def test_cross_device_opt_in_shares_key_within_architecture():
    opt = setp(("compileCache", "allowCrossDevice"), True)
    assert key(opt, product="NVIDIA-A10G") == key(opt, product="NVIDIA-A40")
    assert key(opt, product="NVIDIA-A10G") != key(opt, product="NVIDIA-H100-80GB-HBM3")
    assert key(product="NVIDIA-A10G") != key(product="NVIDIA-A40")
