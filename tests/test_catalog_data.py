"""Sanity checks on the sourced Qwen catalog: each one fails if an entry is mistyped."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

try:
    from qwen_operator.domain.catalog_data import CATALOG, ModelCard
except ModuleNotFoundError:  # not installed: import from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
    from qwen_operator.domain.catalog_data import CATALOG, ModelCard

BY_NAME: dict[str, ModelCard] = {c.name: c for c in CATALOG}
FAMILIES = {"qwen2.5", "qwen3", "qwen3-moe", "qwen3-next", "qwen3.5", "qwen3.5-moe", "eagle3-draft"}
MOE_FAMILIES = {"qwen3-moe", "qwen3-next", "qwen3.5-moe"}
HYBRID_FAMILIES = {"qwen3-next", "qwen3.5", "qwen3.5-moe"}
QWEN3_VOCAB = 151936
QWEN25_LARGE_VOCAB = 152064


def ids(cards: list[ModelCard]) -> list[str]:
    return [c.name for c in cards]


def of(*families: str) -> list[ModelCard]:
    return [c for c in CATALOG if c.family in families]


def qwen25_size_b(card: ModelCard) -> float:
    """The size in the repo name: Qwen/Qwen2.5-7B-Instruct -> 7.0."""
    return float(card.name.split("Qwen2.5-")[1].split("B")[0])


def test_catalog_is_nonempty_tuple_of_cards() -> None:
    assert isinstance(CATALOG, tuple) and CATALOG
    assert all(isinstance(c, ModelCard) for c in CATALOG)


def test_cards_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATALOG[0].num_layers = 1  # type: ignore[misc]


def test_names_unique_case_insensitively() -> None:
    lowered = [c.name.lower() for c in CATALOG]
    assert len(lowered) == len(set(lowered))


def test_names_look_like_hf_ids() -> None:
    for c in CATALOG:
        org, _, repo = c.name.partition("/")
        assert org and repo and "/" not in repo and c.name == c.name.strip(), c.name


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_every_entry_has_a_source(card: ModelCard) -> None:
    assert card.source.strip(), card.name
    assert len(card.source) > 40, f"{card.name}: a source should say where and how, not just a word"


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_basic_shape(card: ModelCard) -> None:
    assert card.family in FAMILIES
    assert card.architecture.endswith(("ForCausalLM", "ForConditionalGeneration"))
    assert card.torch_dtype in {"bfloat16", "float16", "float32"}
    for field in (
        "num_layers",
        "hidden_size",
        "num_attention_heads",
        "num_kv_heads",
        "head_dim",
        "vocab_size",
        "max_context",
    ):
        assert getattr(card, field) > 0, f"{card.name}.{field}"
    assert card.total_params_b > 0 and card.active_params_b > 0
    assert card.mtp_layers >= 0


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_kv_heads_divide_attention_heads(card: ModelCard) -> None:
    assert card.num_kv_heads <= card.num_attention_heads
    assert card.num_attention_heads % card.num_kv_heads == 0, card.name


@pytest.mark.parametrize("card", of("qwen2.5"), ids=ids(of("qwen2.5")))
def test_qwen25_head_dim_is_hidden_over_heads(card: ModelCard) -> None:
    # Qwen2.5 configs carry no head_dim: it is hidden_size / num_attention_heads, exactly.
    assert card.hidden_size % card.num_attention_heads == 0, card.name
    assert card.head_dim * card.num_attention_heads == card.hidden_size, card.name


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_head_dim_is_a_kernel_friendly_size(card: ModelCard) -> None:
    assert card.head_dim in (64, 128, 256), card.name


def test_qwen3_head_dim_need_not_match_hidden() -> None:
    # The Qwen2-era rule hidden = heads x head_dim does not hold from Qwen3 on; the catalog
    # must carry the config's head_dim, not a derived one.
    mismatched = [
        c.name
        for c in of("qwen3", "qwen3-moe", "qwen3-next", "qwen3.5-moe")
        if c.head_dim * c.num_attention_heads != c.hidden_size
    ]
    assert "Qwen/Qwen3-0.6B" in mismatched and "Qwen/Qwen3-32B" in mismatched


@pytest.mark.parametrize("card", of("qwen3"), ids=ids(of("qwen3")))
def test_qwen3_dense_vocab(card: ModelCard) -> None:
    assert card.architecture == "Qwen3ForCausalLM"
    assert card.vocab_size == QWEN3_VOCAB
    assert card.head_dim == 128
    assert card.num_experts == 0 and card.experts_per_token == 0


@pytest.mark.parametrize("card", of("qwen2.5"), ids=ids(of("qwen2.5")))
def test_qwen25_vocab_and_tying_by_size(card: ModelCard) -> None:
    assert card.architecture == "Qwen2ForCausalLM"
    if qwen25_size_b(card) >= 7:
        assert card.vocab_size == QWEN25_LARGE_VOCAB, card.name
        assert not card.tie_word_embeddings, card.name
    else:
        assert card.vocab_size == QWEN3_VOCAB, card.name
        assert card.tie_word_embeddings, card.name


def test_qwen25_sizes_all_present() -> None:
    sizes = sorted(qwen25_size_b(c) for c in of("qwen2.5"))
    assert sizes == [0.5, 1.5, 3.0, 7.0, 14.0, 32.0, 72.0]


def test_qwen3_small_models_tie_embeddings_large_do_not() -> None:
    assert BY_NAME["Qwen/Qwen3-4B"].tie_word_embeddings
    assert not BY_NAME["Qwen/Qwen3-8B"].tie_word_embeddings


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_moe_fields_are_consistent(card: ModelCard) -> None:
    if card.family in MOE_FAMILIES:
        assert card.active_params_b < card.total_params_b, card.name
        assert 0 < card.experts_per_token < card.num_experts, card.name
    else:
        assert card.active_params_b == card.total_params_b, card.name
        assert card.num_experts == 0 and card.experts_per_token == 0, card.name


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_kv_cache_layers(card: ModelCard) -> None:
    if card.family in HYBRID_FAMILIES:
        # Gated DeltaNet everywhere except every 4th layer (full_attention_interval 4).
        assert card.kv_cache_layers is not None, card.name
        assert card.kv_cache_layers * 4 == card.num_layers, card.name
    else:
        assert card.kv_cache_layers is None, card.name


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_mtp_only_where_published(card: ModelCard) -> None:
    if card.family in HYBRID_FAMILIES:
        assert card.mtp_layers >= 1, card.name
    else:
        assert card.mtp_layers == 0, card.name


def test_qwen3_next_matches_its_card() -> None:
    c = BY_NAME["Qwen/Qwen3-Next-80B-A3B-Instruct"]
    assert (c.num_layers, c.hidden_size, c.num_attention_heads, c.num_kv_heads, c.head_dim) == (48, 2048, 16, 2, 256)
    assert (c.num_experts, c.experts_per_token, c.kv_cache_layers, c.mtp_layers) == (512, 10, 12, 1)
    assert c.vocab_size == QWEN3_VOCAB and c.max_context == 262144


@pytest.mark.parametrize("card", CATALOG, ids=ids(list(CATALOG)))
def test_quantized_checkpoints_point_at_their_base(card: ModelCard) -> None:
    if card.checkpoint_quantization is None:
        assert card.checkpoint_bits is None, card.name
        return
    assert card.checkpoint_quantization in {"awq", "gptq", "fp8", "compressed-tensors"}
    assert card.checkpoint_bits in (4, 8), card.name
    base = BY_NAME.get(card.base_model or "")
    assert base is not None, f"{card.name}: base {card.base_model} not in catalog"
    assert base.checkpoint_quantization is None
    for field in (
        "architecture",
        "family",
        "num_layers",
        "hidden_size",
        "num_attention_heads",
        "num_kv_heads",
        "head_dim",
        "vocab_size",
        "max_context",
        "num_experts",
        "experts_per_token",
        "tie_word_embeddings",
        "total_params_b",
        "active_params_b",
    ):
        assert getattr(card, field) == getattr(base, field), f"{card.name}.{field}"


@pytest.mark.parametrize("card", of("eagle3-draft"), ids=ids(of("eagle3-draft")))
def test_eagle3_heads_fit_their_target(card: ModelCard) -> None:
    target = BY_NAME.get(card.base_model or "")
    assert target is not None, f"{card.name}: target {card.base_model} not in catalog"
    assert card.hidden_size == target.hidden_size, card.name
    assert card.vocab_size == target.vocab_size, card.name
    assert card.num_layers <= 2
    assert card.total_params_b < target.total_params_b / 5


def test_non_derived_entries_have_no_base_model() -> None:
    for c in CATALOG:
        if c.checkpoint_quantization is None and c.family != "eagle3-draft":
            assert c.base_model is None, c.name


def test_context_limits_are_published_values() -> None:
    assert {c.max_context for c in of("qwen2.5")} == {32768}
    assert {c.max_context for c in of("qwen3", "qwen3-moe")} == {40960}
    assert {c.max_context for c in of("qwen3-next", "qwen3.5-moe")} == {262144}


def test_total_params_grow_with_size_within_a_family() -> None:
    dense = sorted(of("qwen2.5"), key=qwen25_size_b)
    totals = [c.total_params_b for c in dense]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    for c in dense:  # the card figure stays near the size in the name
        assert abs(c.total_params_b - qwen25_size_b(c)) <= 0.15 * qwen25_size_b(c) + 0.1, c.name
