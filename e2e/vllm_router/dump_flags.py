"""Write the flag table of the pinned vLLM router's command line (`vllm-router`) as JSON.

    <router-venv>/bin/python e2e/vllm_router/dump_flags.py [OUT]
    (default OUT: operator/qwen_operator/domain/router_flags_0_1_17.json; `make router-flags` installs the router
    with install-vllm-router.sh and runs this)

Runs inside the router's virtualenv and reads the real parser: the wheel's console script is
`vllm-router = vllm_router.launch_router:main`, whose parse_router_args() builds an argparse parser and fills it
with RouterArgs.add_cli_args(parser, use_router_prefix=False); this builds the same parser. The operator loads the
table to reject unknown router flags at apply time, without the router installed.

Per option: flags (long names), dest, takes_value, nargs, choices, type (name), action, default (JSON-safe), help.
The output is sorted and stable, so a diff of two dumps shows what a router upgrade changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "operator" / "qwen_operator" / "domain" / "router_flags_0_1_17.json"


def json_safe(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    return str(v)


def build_parser() -> argparse.ArgumentParser:
    from vllm_router.router_args import RouterArgs

    parser = argparse.ArgumentParser(prog="vllm-router")
    RouterArgs.add_cli_args(parser, use_router_prefix=False)
    return parser


def dump(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    rows = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        takes_value = a.nargs != 0
        rows.append(
            {
                "flags": sorted(a.option_strings),
                "dest": a.dest,
                "takes_value": takes_value,
                "nargs": a.nargs,
                "choices": json_safe(list(a.choices)) if a.choices is not None else None,
                "type": getattr(a.type, "__name__", None) if takes_value else None,
                "action": type(a).__name__,
                "default": json_safe(a.default),
                "help": " ".join((a.help or "").split()) or None,
            }
        )
    rows.sort(key=lambda r: r["flags"][0])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="dump the vllm-router flag table")
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    import importlib.metadata as md

    from vllm_router.version import __version__

    doc = {
        "router_version": __version__,
        "distribution": f"vllm-router {md.version('vllm-router')}",
        "generated_by": "e2e/vllm_router/dump_flags.py",
        "parser": "vllm-router (vllm_router.launch_router:main -> RouterArgs.add_cli_args(use_router_prefix=False))",
        "notes": [
            "flags: long option names; takes_value false: the flag is a switch (store_true).",
            "nargs '+' or '*': the flag takes several space-separated values (--selector k1=v1 k2=v2).",
        ],
        "options": dump(build_parser()),
    }
    a.out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"dump_flags: {len(doc['options'])} options of vllm-router {__version__} -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
