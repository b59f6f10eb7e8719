import pytest

from qwen_operator.domain.speculative import expected_speedup
from qwen_operator.domain.validation import validate


def reasons(spec):
    return {p.reason for p in validate(spec).problems}


def test_cross_family_draft_rejected_for_vocab(base_spec):
    base_spec["speculativeDecoding"] = {
        "method": "draft_model",
        "draftModel": "Qwen/Qwen2.5-7B-Instruct",
        "numSpeculativeTokens": 4,
    }
    rep = validate(base_spec)
    assert not rep.ok
    msg = " ".join(p.message for p in rep.errors)
    assert "151,936" in msg and "152,064" in msg


def test_same_family_draft_ok(base_spec):
    base_spec["speculativeDecoding"] = {"method": "draft_model", "draftModel": "Qwen/Qwen3-0.6B"}
    assert validate(base_spec).ok


def test_mtp_needs_mtp_heads(base_spec):
    base_spec["speculativeDecoding"] = {"method": "mtp", "numSpeculativeTokens": 1}
    assert "NoMTPHeads" in reasons(base_spec)


def test_mtp_on_qwen3_next_ok():
    spec = {
        "model": {"name": "Qwen/Qwen3-Next-80B-A3B-Instruct"},
        "parallelism": {"tensor": 4},
        "speculativeDecoding": {"method": "mtp", "numSpeculativeTokens": 2},
        "serving": {"maxModelLen": 32768},
    }
    rep = validate(spec)
    assert rep.ok, rep.problems


def test_draft_tp_must_be_1_or_target(base_spec):
    base_spec["parallelism"] = {"tensor": 2}
    base_spec["speculativeDecoding"] = {
        "method": "draft_model",
        "draftModel": "Qwen/Qwen3-0.6B",
        "draftTensorParallelSize": 4,
    }
    assert "DraftTensorParallelInvalid" in reasons(base_spec)


def test_ngram_rejects_draft(base_spec):
    base_spec["speculativeDecoding"] = {"method": "ngram", "draftModel": "Qwen/Qwen3-0.6B"}
    assert "DraftModelNotAllowed" in reasons(base_spec)


def test_speculative_config_rendered_with_explicit_method(base_spec):
    base_spec["speculativeDecoding"] = {"method": "ngram", "numSpeculativeTokens": 3}
    args = validate(base_spec).args
    i = args.index("--speculative-config")
    assert '"method":"ngram"' in args[i + 1] and '"prompt_lookup_max":5' in args[i + 1]


def test_expected_speedup_formula():
    r = expected_speedup(0.8, 4, 0.0, 1.0)
    assert r["tokens_per_step"] == pytest.approx((1 - 0.8**5) / (1 - 0.8))
    assert expected_speedup(1.0, 3, 0.0, 1.0)["tokens_per_step"] == 4
    with pytest.raises(ValueError):
        expected_speedup(1.5, 3, 0.1, 1.0)
