"""Check `vllm serve` argv against the real vLLM parser (and engine config), inside the vLLM venv.

Run by e2e/vllm_local.py (check_serve_args / check_many); importing vLLM takes ~20 s, so one
process checks a whole batch. Input (JSON file, argv[1]):

    {"model_dir": "/path/to/tiny-qwen3" | null,
     "items": [{"argv": ["vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "8192"],
                "env": {"VLLM_FOO": "1"}, "model_overrides": {"max_position_embeddings": 131072}}]}

Output (JSON file, argv[2]): [{"ok": bool, "stage": "parse"|"validate"|"engine-config"|"done",
"message": str, "unchecked": [str]}, ...].

Steps per item, as `vllm serve` does them:
 1. parse: FlexibleArgumentParser with the `serve` sub-command made by make_arg_parser (the same
    parser object `vllm serve` builds, including its pre-processing of `--model`, `-O3`,
    `--config`, dotted `--compilation-config.mode=3` keys and underscore/dash spelling);
 2. validate: ServeSubcommand.validate -> validate_parsed_serve_args;
 3. engine-config (only with model_dir): the served model (and a tokenizer/draft model that names
    the same checkpoint) is replaced by the local tiny Qwen3; AsyncEngineArgs.from_cli_args(args)
    .create_engine_config() builds the full VllmConfig, which checks the model/parallel/cache/
    scheduler/speculative/compilation configs against each other and against the checkpoint.
    Flags that cannot be judged against a tiny unquantized checkpoint on a CPU are taken out of
    this step and listed in "unchecked" (they were still parsed and validated in steps 1-2).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # e2e/: vllm_local is stdlib-only
from vllm_local import strip_command as strip_prefix

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Flags whose value is only meaningful for another checkpoint or another device. For the engine
# config step they are removed (with their value) and reported; the parser already checked them.
# The tiny model has 2 attention heads, 1 KV head and 2 layers; a real Qwen3 has 16-64 heads and
# 4-8 KV heads. Unless the caller passes the real values (model_overrides), the engine-config step
# uses these so that --tensor-parallel-size 4/8 is not rejected for the tiny model's sake. Only
# the config is built (no weights are loaded), so the override costs nothing.
DEFAULT_MODEL_OVERRIDES = {"num_attention_heads": 64, "num_key_value_heads": 8, "num_hidden_layers": 64}

UNCHECKABLE = {
    "--quantization": "needs a checkpoint quantized that way (the tiny model is bf16)",
    "-q": "needs a checkpoint quantized that way (the tiny model is bf16)",
    "--revision": "a git revision of a hub repo; the local tiny model has none",
    "--code-revision": "a git revision of a hub repo; the local tiny model has none",
    "--tokenizer-revision": "a git revision of a hub repo; the local tiny model has none",
}


def _split_flag(a: list[str], i: int) -> tuple[str, int]:
    """Return (flag name, index after the flag and its value) for a[i]."""
    tok = a[i]
    if "=" in tok:
        return tok.split("=", 1)[0], i + 1
    if i + 1 < len(a) and not a[i + 1].startswith("--"):
        return tok, i + 2
    return tok, i + 1


def drop_flags(a: list[str], names: set[str]) -> tuple[list[str], list[str]]:
    out, dropped = [], []
    i = 0
    while i < len(a):
        tok = a[i]
        if tok.startswith("-"):
            name, nxt = _split_flag(a, i)
            norm = name if not name.startswith("--") else "--" + name[2:].replace("_", "-")
            if norm in names:
                dropped.append(" ".join(a[i:nxt]))
                i = nxt
                continue
        out.append(tok)
        i += 1
    return out, dropped


def check_env(env: dict[str, str]) -> list[str]:
    """Evaluate the VLLM_* variables the way vllm.envs will (bad values raise); report unknown ones."""
    import vllm.envs as envs

    notes = []
    for name in sorted(env):
        if not name.startswith("VLLM_"):
            continue
        if name not in envs.environment_variables:
            notes.append(f"env {name} (unknown to this vLLM: it ignores it; not in the compile-cache hash either)")
            continue
        envs.environment_variables[name]()  # parse now: raises ValueError for a bad value
    return notes


def check_speculative_keys(spec) -> None:
    """Unknown --speculative-config keys, checked even when the draft config cannot be built."""
    if not isinstance(spec, dict):
        return
    import dataclasses

    from vllm.config import SpeculativeConfig

    fields = {f.name for f in dataclasses.fields(SpeculativeConfig)}
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise ValueError(f"unknown --speculative-config key(s) {unknown}; known: {sorted(fields)}")


def check_quantization(args) -> None:
    """--quantization has no argparse choices; vLLM checks the name when it builds ModelConfig.

    The engine-config step cannot (the tiny checkpoint is not quantized), so check the name here
    against the same list ModelConfig uses.
    """
    q = getattr(args, "quantization", None)
    if q is None:
        return
    from vllm.model_executor.layers.quantization import (
        DEPRECATED_QUANTIZATION_METHODS,
        QUANTIZATION_METHODS,
    )

    if q not in QUANTIZATION_METHODS:
        raise ValueError(f"Unknown quantization method: {q}. Must be one of {sorted(QUANTIZATION_METHODS)}.")
    if q in DEPRECATED_QUANTIZATION_METHODS and not getattr(args, "allow_deprecated_quantization", False):
        raise ValueError(
            f"quantization method {q} is deprecated in this vLLM; it needs --allow-deprecated-quantization"
        )


def build_parser():
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    sub = top.add_subparsers(required=False, dest="subparser")
    cmd = ServeSubcommand()
    cmd.subparser_init(sub).set_defaults(dispatch_function=cmd.cmd)
    return top, cmd


def parse(top, argv: list[str]):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = top.parse_args(["serve", *argv])
    except SystemExit as e:
        text = err.getvalue().strip()
        # argparse prints usage lines first, then "<prog>: error: <message>" (possibly multi-line)
        idx = text.find(": error:")
        if idx >= 0:
            text = text[text.rfind("\n", 0, idx) + 1 :]
        return None, (text or f"argparse exited with {e.code}")
    if getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag  # what ServeSubcommand.cmd does first
    return args, None


def _parsed_and_validated(top, cmd, argv: list[str], item: dict, res: dict):
    """Steps 1-2; the parsed args, or None with res saying why."""
    try:
        args, err = parse(top, argv)
    except Exception as e:  # FlexibleArgumentParser raises ValueError for some misuse
        args, err = None, f"{type(e).__name__}: {e}"
    if args is None:
        res["message"] = err
        return None
    res["stage"] = "validate"
    try:
        cmd.validate(args)
        env_notes = check_env(item.get("env") or {})
        check_speculative_keys(args.speculative_config)
        check_quantization(args)
    except Exception as e:
        res["message"] = f"{type(e).__name__}: {e}"
        return None
    res["unchecked"].extend(env_notes)
    return args


def _swap_draft(args2, original: str, model_dir: str, unchecked: list[str]) -> None:
    """A draft model that is another checkpoint becomes the tiny model (same vocabulary) where the method allows."""
    spec = args2.speculative_config
    if not isinstance(spec, dict):
        return
    if spec.get("model") == original:
        args2.speculative_config = dict(spec, model=model_dir)
        return
    if spec.get("model") is None or os.path.isdir(str(spec.get("model"))):
        return
    method = spec.get("method")
    if method in (None, "draft_model"):
        unchecked.append(f"speculative model {spec['model']} (replaced by the tiny model: same-vocab draft)")
        args2.speculative_config = dict(spec, model=model_dir)
    else:
        unchecked.append(
            f"speculative model {spec['model']} (method {method}: needs that head's checkpoint; "
            "keys and method were parsed, the draft config was not built)"
        )
        args2.speculative_config = None


def _on_tiny_model(top, argv: list[str], item: dict, model_dir: str, res: dict):
    """argv parsed again with the checkpoint-specific flags out and the tiny model in; None with res saying why."""
    present = {f for f in UNCHECKABLE if any(t == f or t.startswith(f + "=") for t in argv)}
    argv2, dropped = drop_flags(argv, present)
    res["unchecked"] += [f"{d} ({UNCHECKABLE[d.split('=')[0].split()[0]]})" for d in dropped]
    args2, err = parse(top, argv2)
    if args2 is None:
        res["message"] = err
        return None, None
    original = args2.model
    args2.model = model_dir
    if args2.tokenizer not in (None, original):
        res["unchecked"].append(f"--tokenizer {args2.tokenizer} (replaced by the tiny model's)")
    args2.tokenizer = None
    _swap_draft(args2, original, model_dir, res["unchecked"])
    overrides = dict(DEFAULT_MODEL_OVERRIDES)
    overrides.update(item.get("model_overrides") or {})
    hf = dict(args2.hf_overrides) if isinstance(args2.hf_overrides, dict) else {}
    for k, v in overrides.items():
        hf.setdefault(k, v)
    args2.hf_overrides = hf
    return args2, original


def _config_summary(cfg, original: str) -> str:
    return (
        f"engine config ok (model {original} checked as the tiny Qwen3): "
        f"max_model_len={cfg.model_config.max_model_len} dtype={cfg.model_config.dtype} "
        f"tp={cfg.parallel_config.tensor_parallel_size} pp={cfg.parallel_config.pipeline_parallel_size} "
        f"max_num_seqs={cfg.scheduler_config.max_num_seqs} "
        f"max_num_batched_tokens={cfg.scheduler_config.max_num_batched_tokens} "
        f"kv_cache_dtype={cfg.cache_config.cache_dtype} block_size={cfg.cache_config.block_size} "
        f"compilation_mode={cfg.compilation_config.mode} "
        f"speculative={cfg.speculative_config.method if cfg.speculative_config else None}"
    )


def check_one(top, cmd, item: dict, model_dir: str | None) -> dict:
    argv = strip_prefix(item["argv"])
    res = {"ok": False, "stage": "parse", "message": "", "unchecked": []}
    saved_env = dict(os.environ)
    os.environ.update(item.get("env") or {})
    try:
        if _parsed_and_validated(top, cmd, argv, item, res) is None:
            return res
        if not model_dir:
            res.update(ok=True, stage="done", message="parsed and validated (no engine config: no model dir)")
            return res
        # engine-config step on a copy of argv with the model swapped for the tiny one
        res["stage"] = "engine-config"
        args2, original = _on_tiny_model(top, argv, item, model_dir, res)
        if args2 is None:
            return res
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs

            cfg = AsyncEngineArgs.from_cli_args(args2).create_engine_config()
        except Exception as e:
            res["message"] = f"{type(e).__name__}: {e}"
            return res
        res.update(ok=True, stage="done", message=_config_summary(cfg, original))
        return res
    finally:
        os.environ.clear()
        os.environ.update(saved_env)


def main() -> int:
    req = json.loads(Path(sys.argv[1]).read_text())
    out_path = Path(sys.argv[2])
    top, cmd = build_parser()
    results = []
    for item in req["items"]:
        try:
            results.append(check_one(top, cmd, item, req.get("model_dir")))
        except BaseException as e:  # never lose the other items' results
            results.append(
                {
                    "ok": False,
                    "stage": "internal",
                    "message": f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
                    "unchecked": [],
                }
            )
        out_path.write_text(json.dumps(results))
    out_path.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
