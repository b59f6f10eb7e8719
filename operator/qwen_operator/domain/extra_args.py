"""The one checker of an escape-hatch flag list (serving.extraArgs for vLLM, routing.extraArgs for the router).  Pure.

Each program has its own flag table (dumped from its own parser) and its own refusals; the rules that make an
argument list safe to pass through are the same for both and live here: one `--flag=value` per item (a value
after a space would be a second argv word the check never saw), known flags only, none twice, a value where the
flag takes one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


def flag_name(arg: str) -> str:
    """The flag part of `--flag=value` (or of `--flag value`, which is rejected, without echoing the value)."""
    return re.split(r"[=\s]", arg, maxsplit=1)[0]


@dataclass(frozen=True)
class FlagRules:
    field: str  # where the list is in the spec, as users write it
    program: str  # "vLLM 0.32.0", "vllm-router 0.1.17"
    flags: frozenset[str]
    takes_value: frozenset[str]
    refused: Mapping[str, str]  # flag -> why it may not be passed here, checked before the table
    switches_take_no_value: bool = False  # the parser refuses `--switch=value`


def check_flags(extra: list[str], rules: FlagRules) -> list[str]:
    """Plain-words problems with the list (empty when fine)."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, arg in enumerate(extra):
        name = flag_name(arg)
        if any(c.isspace() for c in arg.split("=", 1)[0]):
            problems.append(f"{rules.field}[{i}] ({name} ...) contains a space: write --flag=value as one item")
        elif name in rules.refused:
            problems.append(f"{rules.field} {name} {rules.refused[name]}")
        elif name not in rules.flags:
            problems.append(f"{rules.field} {name} is not a flag of {rules.program}")
        elif name in seen:
            problems.append(f"{rules.field} {name} is given twice")
        elif name in rules.takes_value and "=" not in arg:
            problems.append(f"{rules.field} {name} takes a value: write it as {name}=VALUE")
        elif rules.switches_take_no_value and name not in rules.takes_value and "=" in arg:
            problems.append(f"{rules.field} {name} is a switch and takes no value: write {name} alone")
        seen.add(name)
    return problems
