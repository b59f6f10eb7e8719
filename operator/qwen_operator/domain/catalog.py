"""Look up Qwen checkpoints: the catalog (catalog_data.py, every number sourced) or a spec's overrides."""

from __future__ import annotations

from dataclasses import dataclass

from ..api.models import ModelArchitectureOverrides
from .catalog_data import CATALOG, ModelCard

_BY_NAME: dict[str, ModelCard] = {c.name.lower(): c for c in CATALOG}


def lookup_model(name: str) -> ModelCard | None:
    """Catalog entry by Hugging Face id (case-insensitive); None when unknown."""
    return _BY_NAME.get(name.strip().lower())


@dataclass(frozen=True)
class ModelArch:
    """What the fit check and the speculative rules need to know about a model, wherever it came from."""

    name: str
    family: str
    total_params_b: float
    num_layers: int
    kv_cache_layers: int
    hidden_size: int | None
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    mtp_layers: int
    tie_word_embeddings: bool
    checkpoint_quantization: str | None
    checkpoint_bits: int | None
    from_catalog: bool

    @property
    def embedding_params_b(self) -> float:
        # Draft heads read the target's embeddings and hold only a small output layer (counted in their total).
        if self.hidden_size is None or self.family.endswith("-draft"):
            return 0.0
        tables = 1 if self.tie_word_embeddings else 2
        return self.vocab_size * self.hidden_size * tables / 1e9


def arch_from_card(card: ModelCard) -> ModelArch:
    return ModelArch(
        name=card.name,
        family=card.family,
        total_params_b=card.total_params_b,
        num_layers=card.num_layers,
        kv_cache_layers=card.kv_cache_layers if card.kv_cache_layers is not None else card.num_layers,
        hidden_size=card.hidden_size,
        num_attention_heads=card.num_attention_heads,
        num_kv_heads=card.num_kv_heads,
        head_dim=card.head_dim,
        vocab_size=card.vocab_size,
        max_context=card.max_context,
        mtp_layers=card.mtp_layers,
        tie_word_embeddings=card.tie_word_embeddings,
        checkpoint_quantization=card.checkpoint_quantization,
        checkpoint_bits=card.checkpoint_bits,
        from_catalog=True,
    )


def resolve_arch(name: str, overrides: ModelArchitectureOverrides | None = None) -> ModelArch | None:
    """The model's architecture: explicit overrides win (a user may know better), then the catalog."""
    if overrides is not None:
        # The overrides carry ModelArch's fields of the same names; what a config.json does not give is unknown.
        return ModelArch(
            name=name,
            family="custom",
            kv_cache_layers=overrides.num_layers,
            hidden_size=None,
            tie_word_embeddings=False,
            checkpoint_quantization=None,
            checkpoint_bits=None,
            from_catalog=False,
            **overrides.model_dump(),
        )
    card = lookup_model(name)
    return arch_from_card(card) if card else None
