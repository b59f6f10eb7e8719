"""Read vLLM's own per-replica gauges through Prometheus (prometheus-api-client).

Queries are derived from the deployment: series of the namespace whose pod label is `<name>-<ordinal>` (the
StatefulSet's pods). Each gauge comes with its sample age (time() - timestamp()), so the policy can tell live
data from a scrape that stopped. Any failure (Prometheus down, garbage, no series) is returned as a reason,
never raised: the autoscaler then holds the current size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_api_client import PrometheusConnect

from ..autoscaling.policy import ReplicaSample

POD_LABEL = os.environ.get("QWEN_PROM_POD_LABEL", "pod")
NAMESPACE_LABEL = os.environ.get("QWEN_PROM_NAMESPACE_LABEL", "namespace")
GAUGES = {
    "waiting": "vllm:num_requests_waiting",
    "running": "vllm:num_requests_running",
    "kv": "vllm:kv_cache_usage_perc",
}


@dataclass
class PodSample:
    """One pod's series as read (NaN: the series is missing), with the age of its newest scrape."""

    pod: str
    waiting: float = math.nan
    running: float = math.nan
    kv_cache_usage: float = math.nan
    age_s: float = math.inf
    request_rate: float | None = None  # completions/s over the last minute; None until the counter has 2 points
    token_rate: float | None = None  # tokens of the requests completed per s over the last minute (see queries)
    router_in_flight: float | None = None  # set by the caller from read_router_in_flight (it knows the pod's address)
    prompt_token_rate: float | None = None  # prompt tokens (cached or not) of the requests completed per s; mix only
    generation_token_rate: float | None = None  # their generated tokens per s; mix only

    def replica_sample(self) -> ReplicaSample:
        """What the policy reads of it (it judges NaN and stale values itself)."""
        return ReplicaSample(
            waiting=self.waiting,
            running=self.running,
            kv_cache_usage=self.kv_cache_usage,
            name=self.pod,
            request_rate=self.request_rate,
            token_rate=self.token_rate,
            router_in_flight=self.router_in_flight,
            prompt_token_rate=self.prompt_token_rate,
            generation_token_rate=self.generation_token_rate,
        )


@dataclass
class MetricsRead:
    samples: dict[str, PodSample] = field(default_factory=dict)
    error: str | None = None  # why nothing usable came back


def selector(namespace: str, name: str) -> str:
    # Namespaces and names are DNS-1123 (a-z, 0-9, '-', '.'): only '.' needs escaping in the regex, and PromQL
    # strings take a backslash as '\\' (re.escape's '\-' is an invalid PromQL escape).
    pod_re = name.replace(".", "\\\\.")
    return f'{{{NAMESPACE_LABEL}="{namespace}",{POD_LABEL}=~"{pod_re}-[0-9]+"}}'


def queries(namespace: str, name: str, mix: bool = False) -> dict[str, str]:
    """The per-pod queries; ``mix`` adds the two halves of the request mix (a service-rate estimate needs them)."""
    sel = selector(namespace, name)
    q = {key: f"max by ({POD_LABEL}) ({metric}{sel})" for key, metric in GAUGES.items()}
    q["age"] = f"max by ({POD_LABEL}) (time() - timestamp(vllm:num_requests_waiting{sel}))"
    # Throughput: vLLM counts completions per finished_reason; the sum over reasons is the replica's rate.
    q["rate"] = f"sum by ({POD_LABEL}) (rate(vllm:request_success_total{sel}[1m]))"
    # Work of the completed requests: their prompt tokens computed (less those served from the prefix cache, which
    # cost no prefill) plus their generated tokens, from the sums of vLLM's per-request histograms, observed when a
    # request finishes. Counted per completed request, like the completions: the ratio of the two is the mix's tokens
    # per request, which the counters of tokens as they are served would overstate while requests pile up.
    # Older vLLM has no computed-tokens histogram: then all prompt tokens count.
    prompt = (
        f"({_per_pod_rate('vllm:request_prefill_kv_computed_tokens_sum', sel)} or "
        f"{_per_pod_rate('vllm:request_prompt_tokens_sum', sel)})"
    )
    q["tokens"] = f"{prompt} + {_per_pod_rate('vllm:request_generation_tokens_sum', sel)}"
    if mix:
        q["prompt_tokens"] = _per_pod_rate("vllm:request_prompt_tokens_sum", sel)
        q["generated_tokens"] = _per_pod_rate("vllm:request_generation_tokens_sum", sel)
    return q


def _per_pod_rate(counter: str, sel: str) -> str:
    return f"sum by ({POD_LABEL}) (rate({counter}{sel}[1m]))"


def _connect(url: str, timeout_s: float) -> PrometheusConnect:
    try:
        return PrometheusConnect(url=url, disable_ssl=True, retry=None, timeout=timeout_s)
    except TypeError:  # older client without timeout/retry arguments
        return PrometheusConnect(url=url, disable_ssl=True)


# The router's view of each replica (docs/routing.md, "Metrics"): requests it has forwarded to the worker and not
# seen answered, one gauge per router pod and worker; the worker label is the replica's URL (http://<pod IP>:8000).
ROUTER_IN_FLIGHT = "vllm_router_running_requests"
# A router series older than this is not used: the router pod went away, or its scrape stopped.
ROUTER_MAX_AGE_S = 30


def router_selector(namespace: str, name: str) -> str:
    """The router pods of a deployment: the Deployment `<name>-router`'s pods, `<name>-router-<hash>-<suffix>`."""
    pod_re = name.replace(".", "\\\\.")
    return f'{{{NAMESPACE_LABEL}="{namespace}",{POD_LABEL}=~"{pod_re}-router-[a-z0-9]+-[a-z0-9]+"}}'


def router_query(namespace: str, name: str) -> str:
    """In flight per worker, summed over the router pods (each keeps its own count), fresh series only."""
    sel = router_selector(namespace, name)
    fresh = f"{ROUTER_IN_FLIGHT}{sel} and (time() - timestamp({ROUTER_IN_FLIGHT}{sel}) < {ROUTER_MAX_AGE_S})"
    return f"sum by (worker) ({fresh})"


@dataclass
class RouterRead:
    in_flight: dict[str, float] = field(default_factory=dict)  # worker host (the pod's IP) -> requests in flight
    error: str | None = None


def read_router_in_flight(url: str, namespace: str, name: str, timeout_s: float = 5.0) -> RouterRead:
    """The router's in-flight requests per replica, keyed by the replica's address. An optional signal: a failure
    or a bad value is returned as a reason or left out, never raised, and never holds the fleet."""
    out = RouterRead()
    try:
        series_list = _connect(url, timeout_s).custom_query(router_query(namespace, name))
    except Exception as e:  # the same failures as read_replicas
        return RouterRead(error=f"router metrics could not be read: {type(e).__name__}: {str(e)[:200]}")
    for series in series_list:
        host = _worker_host(str(series.get("metric", {}).get("worker", "")))
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if host and math.isfinite(value) and value >= 0:
            out.in_flight[host] = out.in_flight.get(host, 0.0) + value
    return out


def _worker_host(worker: str) -> str | None:
    """The replica's address in a router's worker label: a URL (http://10.244.0.7:8000), or host:port."""
    return urlsplit(worker if "://" in worker else f"http://{worker}").hostname if worker else None


def _rate_or_none(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def read_replicas(url: str, namespace: str, name: str, timeout_s: float = 5.0, mix: bool = False) -> MetricsRead:
    prom = _connect(url, timeout_s)
    out = MetricsRead()
    try:
        for key, q in queries(namespace, name, mix).items():
            for series in prom.custom_query(q):
                pod = series.get("metric", {}).get(POD_LABEL)
                if not pod:
                    continue
                try:
                    value = float(series["value"][1])
                except (KeyError, IndexError, TypeError, ValueError):
                    value = math.nan
                s = out.samples.setdefault(pod, PodSample(pod=pod))
                if key == "waiting":
                    s.waiting = value
                elif key == "running":
                    s.running = value
                elif key == "kv":
                    s.kv_cache_usage = value
                elif key == "rate":  # optional signal: a bad value drops it rather than holding the fleet
                    s.request_rate = _rate_or_none(value)
                elif key == "tokens":  # optional as well; a counter reset can make the difference dip below 0
                    s.token_rate = _rate_or_none(value)
                elif key == "prompt_tokens":
                    s.prompt_token_rate = _rate_or_none(value)
                elif key == "generated_tokens":
                    s.generation_token_rate = _rate_or_none(value)
                else:
                    s.age_s = value
    except Exception as e:  # connection refused, timeouts, HTTP errors, malformed JSON: all mean "no data"
        return MetricsRead(error=f"Prometheus at {url} could not be queried: {type(e).__name__}: {str(e)[:200]}")
    if not out.samples:
        out.error = f"no vLLM series for {namespace}/{name} in Prometheus yet"
    return out
