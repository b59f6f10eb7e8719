"""Where a serving pod's cold start goes, phase by phase: parsed from the pod's own timestamps, the kubelet's
`Pulled` events and vLLM's own log lines.  Pure (docs/cold-start.md describes each phase and where it comes from).

Two kinds of numbers, never mixed up:

- **Durations a component measured itself.** vLLM logs "took X seconds" for the weights, torch.compile (or the
  cache load), the CUDA graph capture and the whole engine initialisation; the kubelet's `Pulled` event says how
  long the image pull took.  These need no clock agreement and are precise (vLLM prints 10 ms or finer, the graph
  capture whole seconds; the kubelet milliseconds).
- **Differences of timestamps.** The pod's creationTimestamp, its PodScheduled and Ready conditions and its
  containers' startedAt/finishedAt are written by the API server and the kubelet with one-second resolution;
  the kubelet prefixes every log line with an RFC 3339 time when the log is read with `timestamps=true`.  The
  phases between those milestones are differences, good to about a second.

The pod-side phases follow one another (scheduled, image pulled, init containers, container started, then the
container's own start up to Ready); vLLM's phases are measured inside the container.  vLLM's engine initialisation
*contains* torch.compile and the CUDA graph capture (both run inside it: vllm/v1/engine/core.py times
`_initialize_kv_caches`, which profiles, compiles and captures), so `compile` and `cuda_graphs` are parts of
`engine_initialised`, not additions to it.  `other` is what the container spent outside the measured phases
(process start, Python imports, spawning the engine and workers, the API server, and on vLLM's CPU runner a
weight download, which it does not time).

A phase that did not happen or was not seen is None, never 0: the CPU build captures no CUDA graphs, an
`--enforce-eager` engine compiles nothing, a log read without timestamps gives no `ready`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

# ---- vLLM's log lines (the pinned vLLM 0.32.0; the CPU-build lines are checked against real logs in
# tests/fixtures/vllm-0.32.0-cpu/, the GPU-only ones against the source below) ------------------------------------

_NUM = r"(\d+(?:\.\d+)?)"
# "Model loading took %s GiB memory and %.6f seconds": the GPU runners time the whole load (model construction,
# a download of missing files, the weight read).
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/v1/worker/gpu_model_runner.py
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/v1/worker/gpu/model_runner.py
MODEL_LOADING = re.compile(r"Model loading took \S+ GiB memory and " + _NUM + r" seconds")
# "Initializing model took %.6f seconds": model construction, before the weights are read (every loader).
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/model_executor/model_loader/base_loader.py
INITIALIZING_MODEL = re.compile(r"Initializing model took " + _NUM + r" seconds")
# "Loading weights took %.2f seconds": the weight read, after any download.
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/model_executor/model_loader/default_loader.py
LOADING_WEIGHTS = re.compile(r"Loading weights took " + _NUM + r" seconds")
# "%storch.compile took %.2f s in total" (older releases: "takes"), or "...torch.compile and initial
# profiling/warmup run together took %.2f s in total" when AOT compile is off; logged once per compiled module
# (the backbone, a draft head, an encoder), with the cache load instead of the compile on a hit.
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/compilation/monitor.py
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/compilation/decorators.py
TORCH_COMPILE = re.compile(
    r"torch\.compile (?:and initial profiling/warmup run together )?(?:took|takes) " + _NUM + r" s in total"
)
# "Compiling a graph for compile range %s takes %.2f s" (older releases: "for dynamic shape") and "Directly load
# the compiled graph(s) for compile range %s from the cache, took %.3f s": one per compile range.
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/compilation/backends.py
COMPILE_RANGE = re.compile(r"Compiling a graph for (?:dynamic shape|compile range .*?) takes " + _NUM + r" s")
CACHE_LOAD = re.compile(
    r"Directly load the compiled graph\(s\) for (?:dynamic shape|compile range .*?) from the cache, took " + _NUM
)
# The CPU runner times nothing of its compile: "Warming up model for the compilation..." and "Warming up done."
# bracket it (the profile run that triggers torch.compile), so the phase is the time between the two lines.
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/v1/worker/cpu_model_runner.py
CPU_WARMUP_START = re.compile(r"Warming up model for the compilation\.\.\.")
CPU_WARMUP_DONE = re.compile(r"Warming up done\.")
# "Graph capturing finished in %.0f secs, took %.2f GiB": GPU only (the CPU build has no CUDA graphs).
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/v1/worker/gpu_model_runner.py
CUDA_GRAPHS = re.compile(r"Graph capturing finished in " + _NUM + r" secs?")
# "init engine (profile, create kv cache, warmup model) took %.2f s", optionally followed by
# "(compilation: %.2f s ...)" when torch.compile ran in VLLM_COMPILE mode.
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/v1/engine/core.py
ENGINE_INIT = re.compile(
    r"init engine \(profile, create kv cache, warmup model\) took " + _NUM + r" s(?: \(compilation: " + _NUM + ")?"
)
# uvicorn's line once vLLM's API server accepts requests (uvicorn/lifespan/on.py, https://github.com/encode/uvicorn).
APP_STARTUP = re.compile(r"Application startup complete\.")

# "2026-01-02T03:04:05.123456789Z " (RFC 3339 with nanoseconds): the kubelet's prefix with timestamps=true.
_KUBELET_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) ")
# "(Worker pid=12) INFO 12-06 03:10:15 [file.py:87] ...": vLLM's own prefix (vllm/logger.py, datefmt
# "%m-%d %H:%M:%S": no year, the container's local time, whole seconds).
_VLLM_PREFIX = re.compile(
    r"^(?:\((?P<proc>[^()]*?)pid=(?P<pid>\d+)\) )?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"(?P<mo>\d\d)-(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)\b"
)


def parse_rfc3339(value: object) -> datetime | None:
    """A Kubernetes or kubelet timestamp (seconds or nanoseconds, "Z" or an offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


@dataclass(frozen=True)
class LogLine:
    """One line of a container log: the kubelet's time (when read with timestamps), vLLM's own time (year 2000:
    vLLM writes none) and the process id it names, and the text without the kubelet's prefix."""

    text: str
    kubelet_time: datetime | None = None
    vllm_time: datetime | None = None
    pid: str = ""


def split_log(text: str) -> list[LogLine]:
    """The lines of a log, with their times. Never raises: a line it cannot read has no times."""
    out: list[LogLine] = []
    for raw in text.splitlines():
        k_time: datetime | None = None
        m = _KUBELET_TIME.match(raw)
        if m:
            k_time = parse_rfc3339(m.group(1))
            raw = raw[m.end() :]
        v_time, pid = None, ""
        v = _VLLM_PREFIX.match(raw)
        if v:
            pid = v.group("pid") or ""
            mo, d, h, mi, sec = (int(v.group(g)) for g in ("mo", "d", "h", "mi", "s"))
            try:  # 2000 is a leap year, so "02-29" parses
                v_time = datetime(2000, mo, d, h, mi, sec)
            except ValueError:
                v_time = None
        out.append(LogLine(raw, k_time, v_time, pid))
    return out


def strip_timestamps(text: str) -> str:
    """The log as vLLM wrote it: the kubelet's timestamp prefixes removed."""
    return "\n".join(line.text for line in split_log(text))


@dataclass(frozen=True)
class VllmPhases:
    """What vLLM's log says of its start: durations in seconds (None: not in the log), and the kubelet's time of
    the API server's "Application startup complete." (None without timestamps)."""

    weights_loaded: float | None = None
    compile: float | None = None
    cuda_graphs: float | None = None
    engine_initialised: float | None = None
    app_started_at: datetime | None = None


def _per_process(lines: Sequence[LogLine], pattern: re.Pattern[str], group: int = 1) -> dict[str, float]:
    """Sum of a duration per process (tensor-parallel workers each log their own; they run side by side)."""
    out: dict[str, float] = {}
    for line in lines:
        m = pattern.search(line.text)
        if m and m.group(group) is not None:
            out[line.pid] = out.get(line.pid, 0.0) + float(m.group(group))
    return out


def _slowest(per_process: Mapping[str, float]) -> float | None:
    return max(per_process.values()) if per_process else None


def _span(lines: Sequence[LogLine], start: re.Pattern[str], end: re.Pattern[str]) -> float | None:
    """Seconds between the first line matching ``start`` and the first ``end`` line after it: by the kubelet's
    times when both lines carry one, else by vLLM's own (whole seconds); None when either is missing."""
    for i, first in enumerate(lines):
        if not start.search(first.text):
            continue
        for last in lines[i + 1 :]:
            if end.search(last.text):
                if first.kubelet_time is not None and last.kubelet_time is not None:
                    secs = (last.kubelet_time - first.kubelet_time).total_seconds()
                elif first.vllm_time is not None and last.vllm_time is not None:
                    secs = (last.vllm_time - first.vllm_time).total_seconds()
                else:
                    return None
                return secs if secs >= 0 else None  # a year boundary between the lines: not knowable
        return None
    return None


def _weights(lines: Sequence[LogLine]) -> float | None:
    """The GPU runners' own total ("Model loading took"), else construction plus the weight read per process."""
    whole = _slowest(_per_process(lines, MODEL_LOADING))
    if whole is not None:
        return whole
    init, read = _per_process(lines, INITIALIZING_MODEL), _per_process(lines, LOADING_WEIGHTS)
    both = {pid: init.get(pid, 0.0) + read.get(pid, 0.0) for pid in set(init) | set(read)}
    return _slowest(both)


def _compile(lines: Sequence[LogLine], engine_compile: float | None) -> float | None:
    """torch.compile (or the cache load): vLLM's total per process, else the engine's "(compilation: ...)", else
    the sum of the compile ranges, else (CPU runner) the warm-up span."""
    compiled, loaded = _per_process(lines, COMPILE_RANGE), _per_process(lines, CACHE_LOAD)
    ranges = {pid: compiled.get(pid, 0.0) + loaded.get(pid, 0.0) for pid in set(compiled) | set(loaded)}
    for value in (_slowest(_per_process(lines, TORCH_COMPILE)), engine_compile, _slowest(ranges)):
        if value is not None:
            return value
    return _span(lines, CPU_WARMUP_START, CPU_WARMUP_DONE)


def parse_vllm_log(text: str) -> VllmPhases:
    """vLLM's phases from its log (with or without the kubelet's timestamps). Never raises; an unknown, garbage
    or truncated log gives None for what it does not show."""
    lines = split_log(text)
    engine: dict[str, float] = {}
    engine_compile: dict[str, float] = {}
    for line in lines:
        m = ENGINE_INIT.search(line.text)
        if m:
            engine[line.pid] = float(m.group(1))
            if m.group(2) is not None:
                engine_compile[line.pid] = float(m.group(2))
    app = next((line.kubelet_time for line in lines if APP_STARTUP.search(line.text)), None)
    return VllmPhases(
        weights_loaded=_weights(lines),
        compile=_compile(lines, _slowest(engine_compile)),
        cuda_graphs=_slowest(_per_process(lines, CUDA_GRAPHS)),
        engine_initialised=_slowest(engine),
        app_started_at=app,
    )


# ---- the kubelet's Pulled events ---------------------------------------------------------------------------------
# "Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes." and "Container image %q
# already present on machine" (pkg/kubelet/images/image_manager.go, https://github.com/kubernetes/kubernetes).
_GO_DURATION = r"((?:\d+(?:\.\d+)?(?:h|ms|us|µs|ns|m|s))+)"
_PULLED = re.compile(
    r'Successfully pulled image ".*?" in ' + _GO_DURATION + r"(?: \(" + _GO_DURATION + r" including waiting\))?"
)
_PRESENT = re.compile(r"Container image .* already present on machine")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration_seconds(text: str) -> float | None:
    """A Go time.Duration as printed ("1m2.5s", "350ms"), in seconds; None when it is not one."""
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class ImagePulls:
    """Seconds the kubelet spent getting the pod's images (its own measure, waiting in its pull queue included),
    for the init containers and for the app containers; None where no event was seen."""

    init_containers: float | None = None
    containers: float | None = None

    @property
    def total(self) -> float | None:
        if self.init_containers is None and self.containers is None:
            return None
        return (self.init_containers or 0.0) + (self.containers or 0.0)


def image_pulls(events: Iterable[tuple[str, str]]) -> ImagePulls:
    """From the pod's `Pulled` events as (involvedObject.fieldPath, message): "spec.initContainers{seed}" or
    "spec.containers{vllm}".  An image already on the node counts 0 s; a message it cannot read counts nothing."""
    init: float | None = None
    main: float | None = None
    for field_path, message in events:
        m = _PULLED.search(message)
        secs = go_duration_seconds(m.group(2) or m.group(1)) if m else (0.0 if _PRESENT.search(message) else None)
        if secs is None:
            continue
        if field_path.startswith("spec.initContainers"):
            init = (init or 0.0) + secs
        else:
            main = (main or 0.0) + secs
    return ImagePulls(init, main)


# ---- the pod's own timestamps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodTimes:
    """A pod's milestones (API server / kubelet times, whole seconds)."""

    created: datetime | None = None
    scheduled: datetime | None = None
    init_finished: datetime | None = None  # the last init container's finishedAt (None: the pod has none)
    started: datetime | None = None  # the serving container's (latest) startedAt
    ready: datetime | None = None
    has_init_containers: bool = False


def _condition_time(pod: Mapping[str, Any], ctype: str) -> datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype and c.get("status") == "True":
            return parse_rfc3339(c.get("lastTransitionTime"))
    return None


def _init_finished(pod: Mapping[str, Any]) -> datetime | None:
    """When the last init container finished (its terminated.finishedAt), else the Initialized condition."""
    ends: list[datetime] = []
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        term = ((cs or {}).get("state") or {}).get("terminated") or {}
        t = parse_rfc3339(term.get("finishedAt"))
        if t is None:
            return _condition_time(pod, "Initialized")
        ends.append(t)
    return max(ends) if ends else _condition_time(pod, "Initialized")


def pod_times(pod: Mapping[str, Any], container: str) -> PodTimes:
    """The milestones of a pod (a plain dict as the API server returns it); missing or malformed ones are None."""
    st = pod.get("status") or {}
    has_init = bool((pod.get("spec") or {}).get("initContainers") or st.get("initContainerStatuses"))
    started = None
    for cs in st.get("containerStatuses") or []:
        if isinstance(cs, Mapping) and cs.get("name") == container:
            started = parse_rfc3339(((cs.get("state") or {}).get("running") or {}).get("startedAt"))
    return PodTimes(
        created=parse_rfc3339((pod.get("metadata") or {}).get("creationTimestamp")),
        scheduled=_condition_time(pod, "PodScheduled"),
        init_finished=_init_finished(pod) if has_init else None,
        started=started,
        ready=_condition_time(pod, "Ready"),
        has_init_containers=has_init,
    )


# ---- the phases of one pod ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColdStartPhases:
    """One pod's cold start in seconds; None where the phase did not happen or was not seen (docs/cold-start.md).

    Pod-side, one after another (timestamp differences, except the kubelet's own pull time):
      scheduled          creation -> PodScheduled
      image_pulled       the kubelet's pull time for the pod's images (its `Pulled` events; 0 when present)
      init_containers    PodScheduled -> the last init container finished, less the init images' pull
      container_started  init containers done (or PodScheduled) -> the serving container's startedAt, less its
                         image's pull (sandbox, volumes, container creation)
    In the container (vLLM's own durations; compile and cuda_graphs are parts of engine_initialised):
      weights_loaded     vLLM's model load: construction and weight read (GPU runners: the download too)
      compile            torch.compile, or loading its result from the compile cache
      cuda_graphs        CUDA graph capture (GPU only)
      engine_initialised profiling, KV cache, compile, graph capture, warm-up
      ready              the API server up ("Application startup complete.") -> the pod's Ready condition
      other              container start -> Ready, less weights_loaded, engine_initialised and ready
    total                creation -> Ready (what the autoscaler looks ahead by)
    """

    scheduled: float | None = None
    image_pulled: float | None = None
    init_containers: float | None = None
    container_started: float | None = None
    weights_loaded: float | None = None
    compile: float | None = None
    cuda_graphs: float | None = None
    engine_initialised: float | None = None
    ready: float | None = None
    other: float | None = None
    total: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PHASE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ColdStartPhases))


def _between(a: datetime | None, b: datetime | None, less: float | None = None) -> float | None:
    """Seconds from a to b, less a duration measured inside that stretch, never below 0; None without both."""
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds() - (less or 0.0))


def _round(phases: ColdStartPhases) -> ColdStartPhases:
    """Two decimals: vLLM prints no more, and the pod's own times are whole seconds."""
    return replace(phases, **{k: (round(v, 2) if v is not None else None) for k, v in phases.as_dict().items()})


def cold_start_phases(times: PodTimes, vllm: VllmPhases, pulls: ImagePulls) -> ColdStartPhases:
    """One pod's phases from its milestones, vLLM's log and the kubelet's pull times."""
    after_init = times.init_finished if times.has_init_containers else times.scheduled
    in_container = _between(times.started, times.ready)
    ready = _between(vllm.app_started_at, times.ready)
    other = None
    if in_container is not None:
        measured = [v for v in (vllm.weights_loaded, vllm.engine_initialised, ready) if v is not None]
        other = max(0.0, in_container - sum(measured)) if measured else None
    return _round(
        ColdStartPhases(
            scheduled=_between(times.created, times.scheduled),
            image_pulled=pulls.total,
            init_containers=(
                _between(times.scheduled, times.init_finished, pulls.init_containers)
                if times.has_init_containers
                else None
            ),
            container_started=_between(after_init, times.started, pulls.containers),
            weights_loaded=vllm.weights_loaded,
            compile=vllm.compile,
            cuda_graphs=vllm.cuda_graphs,
            engine_initialised=vllm.engine_initialised,
            ready=ready,
            other=other,
            total=_between(times.created, times.ready),
        )
    )


def median_phases(samples: Sequence[ColdStartPhases]) -> ColdStartPhases:
    """Each phase's median over the pods that have it (a phase no pod has stays None).  Per phase, so the medians
    need not add up: they describe a typical pod phase by phase, not one particular pod."""
    out: dict[str, float | None] = {}
    for name in PHASE_NAMES:
        values = [v for v in (getattr(s, name) for s in samples) if v is not None]
        out[name] = round(statistics.median(values), 2) if values else None
    return ColdStartPhases(**out)


# ---- the startup probe's budget ----------------------------------------------------------------------------------

DEFAULT_STARTUP_BUDGET_S = 1800  # the flat budget before anything was measured (and the API's old default)
MIN_STARTUP_BUDGET_S = 300  # never tighter than this, however fast the pods started
MAX_STARTUP_BUDGET_S = 14400  # the API's upper bound on spec.startupTimeoutSeconds
STARTUP_MARGIN_S = 120  # above the slowest start seen
BUDGET_STEP_S = 60


def _step_up(seconds: float) -> int:
    return int(min(MAX_STARTUP_BUDGET_S, math.ceil(seconds / BUDGET_STEP_S) * BUDGET_STEP_S))


def startup_budget_target(median_total: float, slowest_total: float, bake_seconds: float | None = None) -> int:
    """The least budget the measurements justify: twice the median start, the slowest start seen plus a margin,
    and (with a compile cache) the bake's time plus the margin, since a pod that misses the cache compiles about
    as long as the bake did; at least MIN_STARTUP_BUDGET_S, rounded up to a minute."""
    need = max(2.0 * median_total, slowest_total + STARTUP_MARGIN_S, float(MIN_STARTUP_BUDGET_S))
    if bake_seconds is not None:
        need = max(need, bake_seconds + STARTUP_MARGIN_S)
    return _step_up(need)


def next_startup_budget(current: int, target: int) -> int:
    """The budget to run, with hysteresis.  Every change of the probe changes the pod template, and a changed
    template restarts every pod of the StatefulSet, so the budget holds while it lies between the target and twice
    the target; when it leaves that band it moves to 1.5 x the target (the middle of the new band, rounded up to a
    minute), so the next move needs the cold start itself to change by a third or more, not a small drift of the
    median."""
    if target <= current <= 2 * target:
        return current
    return max(target, _step_up(1.5 * target))


def killed_by_startup_probe(pod: Mapping[str, Any], container: str, budget_s: int) -> bool:
    """Did the startup probe kill this pod's serving container (it restarted after running about as long as the
    budget, and the pod is not Ready)?  Then the budget is too short for this pod, whatever the others did."""
    if _condition_time(pod, "Ready") is not None:
        return False
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if not isinstance(cs, Mapping) or cs.get("name") != container:
            continue
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last.get("reason") == "OOMKilled":
            return False
        ran = _between(parse_rfc3339(last.get("startedAt")), parse_rfc3339(last.get("finishedAt")))
        # The kubelet kills after failureThreshold failed probes of periodSeconds (10 s) each, then allows the
        # grace period (120 s): a run that ended within that window of the budget was cut short by the probe.  A
        # longer run was a pod that had started and failed later, which says nothing about the budget.
        return ran is not None and budget_s - 30 <= ran <= budget_s + 180
    return False


@dataclass(frozen=True)
class PodColdStart:
    """One Ready pod's cold start, as recorded in status."""

    pod: str
    uid: str
    ready_time: str  # the Ready condition's lastTransitionTime, as the API server wrote it (orders the records)
    phases: ColdStartPhases


def pod_cold_start(
    pod: Mapping[str, Any], container: str, log_text: str | None, pulled: Iterable[tuple[str, str]] | None
) -> PodColdStart | None:
    """A Ready pod's cold start from its object, its serving container's log (None: not readable) and its `Pulled`
    events (None: not readable); None while the pod is not Ready."""
    times = pod_times(pod, container)
    if times.ready is None:
        return None
    ready_time = next(
        (
            str(c.get("lastTransitionTime"))
            for c in (pod.get("status") or {}).get("conditions") or []
            if isinstance(c, Mapping) and c.get("type") == "Ready"
        ),
        "",
    )
    meta = pod.get("metadata") or {}
    phases = cold_start_phases(
        times,
        parse_vllm_log(log_text) if log_text is not None else VllmPhases(),
        image_pulls(pulled) if pulled is not None else ImagePulls(),
    )
    return PodColdStart(str(meta.get("name", "")), str(meta.get("uid", "")), ready_time, phases)
