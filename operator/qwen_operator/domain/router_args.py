"""One place translates spec.routing into the vLLM router's command line, checked against the pinned router.

The router (PyPI vllm-router 0.1.17, docs/routing.md) finds the serving pods itself, through Kubernetes service
discovery: it lists and watches the pods of its own namespace and keeps those that carry the StatefulSet's labels
and are Ready. Its flags are checked against the flag table of the pinned router (router_flags_0_1_17.json, dumped
from the router's own argument parser by e2e/vllm_router/dump_flags.py, `make router-flags`), so a misspelt or
unsupported flag fails at apply time rather than in a crash-looping router pod.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..api.models import Routing, RoutingPolicy
from .extra_args import FlagRules, check_flags
from .vllm_args import VLLM_PORT

ROUTER_PORT = 8000  # the router's client port: the client Service keeps port 8000 whether routing is on or off
ROUTER_METRICS_PORT = 29000  # the router's own default (--prometheus-port)
ROUTER_COMMAND = "vllm-router"  # the wheel's console script (entry_points.txt: vllm_router.launch_router:main)
ROUTER_FLAGS_FILE = "router_flags_0_1_17.json"

# Flags the operator sets from typed fields or from what it knows of the deployment: extraArgs may not repeat them.
MANAGED_ROUTER_FLAGS = frozenset(
    {
        "--host",
        "--port",
        "--policy",
        "--service-discovery",
        "--selector",
        "--service-discovery-port",
        "--service-discovery-namespace",
        "--prometheus-host",
        "--prometheus-port",
    }
)
# Flags of the pinned router that the operator's router pods cannot support, and why.
UNSUPPORTED_ROUTER_FLAGS: Mapping[str, str] = {
    "--worker-urls": "the router finds the replicas by service discovery; static worker URLs would bypass it",
    "--api-key": "it would put a secret on the command line",
    "--log-dir": "the router's root filesystem is read-only; its logs go to the container's output",
    "--mini-lb": "MiniLB is the router's Python debugging balancer, not the router",
    "--enable-igw": "one QwenDeployment serves one model; multi-model gateway mode does not apply",
    "--intra-node-data-parallel-size": "the operator does not run vLLM with data parallelism",
    "--wasm-middleware": "the router pod has no middleware file to load",
    "--wasm-middleware-sha256": "the router pod has no middleware file to load",
    "--wasm-middleware-route": "the router pod has no middleware file to load",
    "--vllm-pd-disaggregation": "the operator does not run prefill/decode disaggregation",
    "--prefill": "the operator does not run prefill/decode disaggregation",
    "--decode": "the operator does not run prefill/decode disaggregation",
    "--prefill-policy": "the operator does not run prefill/decode disaggregation",
    "--decode-policy": "the operator does not run prefill/decode disaggregation",
    "--prefill-selector": "the operator does not run prefill/decode disaggregation",
    "--decode-selector": "the operator does not run prefill/decode disaggregation",
    "--vllm-discovery-address": "the operator does not run prefill/decode disaggregation",
    "--kv-connector": "the operator does not run prefill/decode disaggregation",
    "--pd-kv-events": "the operator does not run prefill/decode disaggregation",
    "--kv-event-source": "the operator does not set up KV-event sources (kv_aware is not offered)",
    "--kv-event-replay-source": "the operator does not set up KV-event sources (kv_aware is not offered)",
    "--kv-event-block-size": "the operator does not set up KV-event sources (kv_aware is not offered)",
    "--kv-event-model": "the operator does not set up KV-event sources (kv_aware is not offered)",
}


@dataclass(frozen=True)
class RouterFlagTable:
    version: str
    flags: frozenset[str]
    takes_value: frozenset[str]


@lru_cache(maxsize=1)
def router_flag_table() -> RouterFlagTable:
    raw = json.loads(resources.files("qwen_operator.domain").joinpath(ROUTER_FLAGS_FILE).read_text())
    names: set[str] = set()
    valued: set[str] = set()
    for opt in raw["options"]:
        for f in opt["flags"]:
            names.add(f)
            if opt["takes_value"]:
                valued.add(f)
    return RouterFlagTable(version=str(raw["router_version"]), flags=frozenset(names), takes_value=frozenset(valued))


def check_router_extra_args(extra: list[str]) -> list[str]:
    """Plain-words problems with routing.extraArgs (empty when fine)."""
    table = router_flag_table()
    refused = {f: "is set by the operator; set the routing fields instead" for f in MANAGED_ROUTER_FLAGS}
    refused.update({f: f"is not supported: {why}" for f, why in UNSUPPORTED_ROUTER_FLAGS.items()})
    program = f"vllm-router {table.version}"
    rules = FlagRules(
        "routing.extraArgs", program, table.flags, table.takes_value, refused, switches_take_no_value=True
    )
    return check_flags(extra, rules)


def render_router_args(routing: Routing, selector: Mapping[str, str], namespace: str) -> list[str]:
    """The router's arguments after `vllm-router`: service discovery of the serving pods (``selector``: their
    labels) in ``namespace`` only, so the router needs RBAC on that namespace's pods and nothing cluster-wide."""
    args = ["--host", "0.0.0.0", "--port", str(ROUTER_PORT), "--policy", RoutingPolicy(routing.policy).value]
    args += ["--service-discovery", "--service-discovery-namespace", namespace]
    args += ["--service-discovery-port", str(VLLM_PORT)]
    # --selector takes several values (nargs "+"): each key=value is its own argument, and a flag follows.
    args += ["--selector", *(f"{k}={v}" for k, v in sorted(selector.items()))]
    # The router binds its metrics to 127.0.0.1 by default, out of Prometheus' reach.
    args += ["--prometheus-host", "0.0.0.0", "--prometheus-port", str(ROUTER_METRICS_PORT)]
    # Retries and the circuit breaker are on by default (5 retries from 50 ms, backoff x1.5): left as they are.
    args += list(routing.extra_args)
    return args
