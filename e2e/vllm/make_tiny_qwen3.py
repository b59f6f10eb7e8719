"""Make a tiny random-weight Qwen3 checkpoint that vLLM can load offline.

    <vllm-venv>/bin/python e2e/vllm/make_tiny_qwen3.py OUTDIR [--seed 0] [--max-position-embeddings 40960]
        [--hidden-size 128] [--intermediate-size 256] [--num-layers 2]
        [--num-attention-heads 2] [--num-key-value-heads 1] [--head-dim 64]

Runs inside the vLLM virtualenv (needs torch, transformers, tokenizers, safetensors). Writes
config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json
(with a ChatML chat template, like Qwen's) and special_tokens_map.json.

Shape: Qwen3ForCausalLM, 2 layers, hidden 128, 2 attention heads, 1 KV head, head_dim 64
(vLLM's CPU attention needs head_dim in {32, 64, 80, 96, 112, 128, ...}), intermediate 256; the
vocabulary is a byte-level BPE of 512 tokens trained on generated text. Same seed, same files.
The shape options make a bigger model of the same kind (bench/loading/ uses hidden 2048, 10 layers:
about 1 GiB of weights); their defaults give exactly the files above, byte for byte.
max_position_embeddings defaults to Qwen3's 40960 so that argv rendered for a real Qwen3
(`--max-model-len 32768`, ...) also passes vLLM's length checks against this model.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# A stamp so callers can tell whether an existing directory was made by this script and version.
FORMAT = "qwen-operator-tiny-qwen3/1"
# The model's shape (argparse dest -> default). A non-default shape is recorded in qwen-operator-tiny.json; the
# default one is not, so that the default files stay what they always were.
SHAPE_DEFAULTS = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
}


def corpus(seed: int, n_lines: int = 4000) -> list[str]:
    """Deterministic English-like text plus chat markup, for training the BPE."""
    rng = random.Random(seed)
    words = (
        "the a an of to in is it that on for with as was at by be this from or are not have "
        "qwen model token server cache kernel graph compile engine request reply user assistant "
        "system hello world kubernetes operator pod node gpu cpu memory speed fast slow time "
        "one two three four five six seven eight nine ten what when where why how who which "
        "answer question please thank you yes no maybe good bad new old big small"
    ).split()
    lines = []
    for _ in range(n_lines):
        n = rng.randint(3, 14)
        s = " ".join(rng.choice(words) for _ in range(n))
        s = s[0].upper() + s[1:] + rng.choice([".", "?", "!", ",", ":"])
        if rng.random() < 0.2:
            s += f" {rng.randint(0, 99999)}"
        if rng.random() < 0.3:
            role = rng.choice(["user", "assistant", "system"])
            s = f"<|im_start|>{role}\n{s}<|im_end|>"
        lines.append(s)
    return lines


def build_tokenizer(seed: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed), trainer=trainer)
    return tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="make a tiny random-weight Qwen3 checkpoint")
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-position-embeddings", type=int, default=40960)
    for flag, default in SHAPE_DEFAULTS.items():
        ap.add_argument("--" + flag.replace("_", "-"), dest=flag, type=int, default=default)
    args = ap.parse_args(argv)
    shape = {k: getattr(args, k) for k in SHAPE_DEFAULTS}

    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)

    raw = build_tokenizer(args.seed)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=args.max_position_embeddings,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    # transformers 5 writes the template to chat_template.jinja; keep a copy in tokenizer_config.json
    # too, where older readers (and vLLM's own fallbacks) look for it.
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["chat_template"] = CHAT_TEMPLATE
    tc_path.write_text(json.dumps(tc, indent=2, sort_keys=True) + "\n")

    vocab = raw.get_vocab_size()
    torch.manual_seed(args.seed)
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_attention_heads"],
        num_key_value_heads=shape["num_key_value_heads"],
        head_dim=shape["head_dim"],
        max_position_embeddings=args.max_position_embeddings,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=raw.token_to_id("<|endoftext|>"),
        eos_token_id=raw.token_to_id("<|im_end|>"),
        pad_token_id=raw.token_to_id("<|endoftext|>"),
    )
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    # generation_config.json: make the stop tokens explicit, like the real Qwen3 checkpoints.
    gen = {
        "bos_token_id": config.bos_token_id,
        "eos_token_id": [config.eos_token_id, config.pad_token_id],
        "pad_token_id": config.pad_token_id,
        "do_sample": False,
    }
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    meta: dict[str, object] = {
        "format": FORMAT,
        "seed": args.seed,
        "max_position_embeddings": args.max_position_embeddings,
    }
    if shape != SHAPE_DEFAULTS:
        meta["shape"] = shape
    (out / "qwen-operator-tiny.json").write_text(json.dumps(meta) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"tiny Qwen3 in {out}: vocab {vocab}, {n_params} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
