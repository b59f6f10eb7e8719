from qwen_operator.domain.catalog import lookup_model, resolve_arch
from qwen_operator.domain.fit import FitInput, check_fit, kv_bytes_per_token
from qwen_operator.domain.gpus import lookup_gpu

H100 = lookup_gpu("H100")
A10G = lookup_gpu("A10G")


def arch(name):
    a = resolve_arch(name)
    assert a is not None, name
    return a


def test_kv_bytes_per_token_qwen3_8b():
    a = arch("Qwen/Qwen3-8B")
    # 2 (K,V) x 36 layers x 8 KV heads x 128 head_dim x 2 bytes
    assert kv_bytes_per_token(a, 1, 2.0) == 2 * 36 * 8 * 128 * 2


def test_kv_heads_replicated_when_tp_exceeds_them():
    a = arch("Qwen/Qwen3-8B")
    assert kv_bytes_per_token(a, 16, 2.0) == 2 * 36 * 16 * 128 * 2


def test_qwen3_8b_fits_one_h100():
    r = check_fit(FitInput(arch=arch("Qwen/Qwen3-8B"), gpu=H100))
    assert r.fits and r.full_length_sequences >= 5
    assert 14 < r.weights_gib < 17


def test_qwen25_72b_tp1_rejected_with_numbers_and_suggestions():
    r = check_fit(FitInput(arch=arch("Qwen/Qwen2.5-72B-Instruct"), gpu=H100, tensor=1, max_model_len=32768))
    assert not r.fits
    assert "weights" in r.message and "GiB" in r.message
    assert any("tensor to" in s for s in r.suggestions)


def test_qwen25_72b_tp4_fits():
    r = check_fit(FitInput(arch=arch("Qwen/Qwen2.5-72B-Instruct"), gpu=H100, tensor=4, max_model_len=32768))
    assert r.fits and r.full_length_sequences >= 1


def test_fp8_kv_doubles_sequences():
    a = arch("Qwen/Qwen3-8B")
    r16 = check_fit(FitInput(arch=a, gpu=H100))
    r8 = check_fit(FitInput(arch=a, gpu=H100, kv_cache_dtype="fp8"))
    assert r8.kv_bytes_per_token * 2 == r16.kv_bytes_per_token
    assert r8.full_length_sequences >= 2 * r16.full_length_sequences - 1


def test_long_context_on_small_gpu_suggests_lower_max_len():
    r = check_fit(FitInput(arch=arch("Qwen/Qwen3-8B"), gpu=A10G, max_model_len=40960))
    assert not r.fits
    assert any("maxModelLen" in s or "kvCacheDtype" in s or "tensor" in s for s in r.suggestions)


def test_awq_shrinks_weights():
    a = arch("Qwen/Qwen3-8B")
    assert (
        check_fit(FitInput(arch=a, gpu=H100, quantization="awq")).weights_gib
        < 0.4 * check_fit(FitInput(arch=a, gpu=H100)).weights_gib
    )


def test_catalog_lookup_case_insensitive():
    assert lookup_model("qwen/qwen3-8b") is not None
    assert lookup_model("Qwen/NotAModel") is None
