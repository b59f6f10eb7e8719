"""What the operator feeds the pure policy: the measured cold start and the Prometheus queries."""

from __future__ import annotations

import pytest

from qwen_operator.adapters.prometheus import queries
from qwen_operator.api.models import QwenDeploymentSpec
from qwen_operator.autoscaling.policy import AutoscalingConfig, Observation, PolicyState, ReplicaSample, decide
from qwen_operator.handlers.autoscaler import (
    DEFAULT_COLD_START_S,
    measured_cold_start,
    policy_config,
    status_write_needed,
)
from qwen_operator.manifests.status import pod_start_seconds


def config_differences(bench: AutoscalingConfig, operator: AutoscalingConfig) -> dict[str, object]:
    """The fields on which the benchmark's config and the operator's differ. The prior-rate model is a bound method
    of the replica's costs: equal when the costs are equal (a bound method compares its object by identity)."""
    from dataclasses import fields

    out: dict[str, object] = {}
    for f in fields(AutoscalingConfig):
        b, o = getattr(bench, f.name), getattr(operator, f.name)
        if f.name == "prior_rate_model" and b is not None and o is not None:
            same = b.__func__ is o.__func__ and b.__self__ == o.__self__  # type: ignore[attr-defined]
        else:
            same = b == o
        if not same:
            out[f.name] = (b, o)
    return out


def _pod(created: str, ready_at: str | None, ready: str = "True") -> dict:
    conds = [] if ready_at is None else [{"type": "Ready", "status": ready, "lastTransitionTime": ready_at}]
    return {"metadata": {"name": "p", "creationTimestamp": created}, "status": {"conditions": conds}}


def test_pod_start_seconds_is_creation_to_ready():
    assert pod_start_seconds(_pod("2026-01-01T00:00:00Z", "2026-01-01T00:02:43Z")) == 163.0
    assert pod_start_seconds(_pod("2026-01-01T00:00:00Z", None)) is None
    assert pod_start_seconds(_pod("2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", ready="False")) is None
    assert pod_start_seconds(_pod("garbage", "2026-01-01T00:01:00Z")) is None
    assert pod_start_seconds({}) is None


def test_measured_cold_start_takes_the_slowest_ready_pod():
    pods = [
        _pod("2026-01-01T00:00:00Z", "2026-01-01T00:00:45Z"),
        _pod("2026-01-01T00:10:00Z", "2026-01-01T00:13:00Z"),
        _pod("2026-01-01T00:20:00Z", None),
    ]
    assert measured_cold_start(pods) == 180.0
    assert measured_cold_start([_pod("2026-01-01T00:00:00Z", None)]) is None
    # Ready again two days after creation: a flap, not a start (past the startup budget).
    flapped = _pod("2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z")
    assert measured_cold_start(pods + [flapped], startup_budget_s=1800) == 180.0


def test_policy_config_uses_the_measured_cold_start_or_the_default():
    spec = QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": {"enabled": True}})
    assert policy_config(spec).cold_start_s == DEFAULT_COLD_START_S
    assert policy_config(spec, 42.0).cold_start_s == 42.0


def test_target_utilization_and_the_scale_down_window_reach_the_policy_as_the_sensitivity_study_sets_them():
    """The benchmark's sensitivity study (bench/autoscaling/sensitivity.py) varies the policy's target_utilization
    and scale-down window; a spec with the same two settings gives the policy the same config."""

    from pydantic import ValidationError

    from bench.autoscaling.run import ours_config

    # without the service-rate estimate, as the study runs (target utilization sizes only until a rate is known)
    auto = {
        "enabled": True,
        "targetUtilization": 0.4,
        "scaleDownStabilizationSeconds": 600,
        "estimateServiceRate": False,
    }
    spec = QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": auto})
    bench = ours_config(target_utilization=0.4, scale_down_stabilization_s=600.0, prior_rate_model=None)
    operator = policy_config(spec, bench.cold_start_s)
    differ = config_differences(bench, operator)
    assert set(differ) <= {"min_replicas", "max_replicas"}, differ
    assert operator.target_utilization == 0.4
    for bad in (0, -0.1, 1.2):
        with pytest.raises(ValidationError, match="targetUtilization"):
            QwenDeploymentSpec.model_validate(
                {"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": {"targetUtilization": bad}}
            )


def test_an_unset_scale_down_window_follows_the_seasonal_forecast_in_the_operator_and_the_benchmark():
    """Unset, the window is 600 s reacting alone and 300 s with a seasonal forecast and a warm pool (policy.py,
    default_scale_down_window_s); a value the user sets wins either way. The benchmark's seasonal study builds its
    policy with bench.autoscaling.run.ours_config, which must give what the operator gives."""
    from bench.autoscaling.run import ours_config

    def spec(**auto: object) -> QwenDeploymentSpec:
        return QwenDeploymentSpec.model_validate(
            {"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": {"enabled": True, **auto}}
        )

    assert spec().autoscaling.scale_down_stabilization_seconds is None
    assert policy_config(spec()).scale_down_stabilization_s == 600.0
    seasonal = policy_config(spec(seasonalPeriodSeconds=86400))
    assert seasonal.scale_down_stabilization_s == 300.0 and seasonal.seasonal_period_s == 86400.0
    assert seasonal.scale_down_period_s == 60.0
    assert (
        policy_config(spec(seasonalPeriodSeconds=86400, scaleDownStabilizationSeconds=900)).scale_down_stabilization_s
        == 900.0
    )
    assert policy_config(spec(scaleDownStabilizationSeconds=0)).scale_down_stabilization_s == 0.0
    assert policy_config(spec(scaleDownStabilizationSeconds=0)).scale_down_period_s == 15.0
    # without a warm pool the held replicas are the only spare: the forecast does not shorten the window
    assert policy_config(spec(seasonalPeriodSeconds=86400, warmPool=0)).scale_down_stabilization_s == 600.0
    assert ours_config(seasonal_period_s=86400.0, warm_pool=0).scale_down_stabilization_s == 600.0
    assert ours_config(seasonal_period_s=86400.0).scale_down_stabilization_s == 300.0
    assert ours_config().scale_down_stabilization_s == 600.0
    assert ours_config(seasonal_period_s=86400.0, scale_down_stabilization_s=450.0).scale_down_stabilization_s == 450.0


def test_rate_query_sums_finish_reasons_per_pod():
    q = queries("ns", "m")["rate"]
    assert q.startswith("sum by (pod) (rate(vllm:request_success_total{")
    assert q.endswith("[1m]))")


def test_token_query_reads_the_per_request_histograms_with_a_fallback_for_older_vllm():
    """Tokens per completed request, not tokens as served (see adapters/prometheus.py); prompt tokens computed,
    or all prompt tokens where vLLM has no computed-tokens histogram. The real vLLM is read in
    e2e/test_autoscaling_real.py."""
    q = queries("ns", "m")["tokens"]
    assert "rate(vllm:request_prefill_kv_computed_tokens_sum{" in q and "rate(vllm:request_generation_tokens_sum{" in q
    computed, fallback = q.split(" or ")
    assert "request_prefill_kv_computed_tokens_sum" in computed and "rate(vllm:request_prompt_tokens_sum{" in fallback
    assert "vllm:prompt_tokens_total" not in q and "vllm:generation_tokens_total" not in q


def test_observe_passes_token_rates_to_the_policy():
    from qwen_operator.adapters.prometheus import PodSample as PromSample
    from qwen_operator.handlers.autoscaler import observe

    pod = {"metadata": {"name": "m-0"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    s = PromSample(
        pod="m-0", waiting=0.0, running=3.0, kv_cache_usage=0.1, age_s=5.0, request_rate=2.0, token_rate=1800.0
    )
    o = observe([pod], {"m-0": s}, 1, 100.0, None)
    assert o.samples[0].token_rate == 1800.0 and o.samples[0].request_rate == 2.0


def test_the_benchmark_runs_the_operators_default_policy():
    """bench/autoscaling's "ours" is what a QwenDeployment with default autoscaling settings gets from the
    operator: same knobs, apart from the replica bounds and the cold start the benchmark sets per scenario."""

    from bench.autoscaling.run import ours_config

    spec = QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": {"enabled": True}})
    bench = ours_config()
    operator = policy_config(spec, bench.cold_start_s)
    differ = config_differences(bench, operator)
    assert set(differ) <= {"min_replicas", "max_replicas"}, differ
    assert operator.prior_rate_model is not None  # the estimate, on by default for this spec


def test_burst_headroom_reaches_the_policy_as_the_benchmark_runs_it():

    from bench.autoscaling.run import POLICIES

    on = {"enabled": True, "burstHeadroom": {"enabled": True}}
    spec = QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": on})
    factory = POLICIES["ours-burst"][0]
    assert factory is not None
    bench = factory().config
    operator = policy_config(spec, bench.cold_start_s)
    differ = config_differences(bench, operator)
    assert set(differ) <= {"min_replicas", "max_replicas"}, differ
    assert operator.burst_headroom_quantile == 0.9 and operator.burst_window_s == 3600.0
    off = policy_config(QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}}))
    assert (
        off.burst_headroom_quantile is None
    )  # opt-in (README.md and bench/results/autoscaling_burst_headroom.md: what it costs)
    for bad in ({"quantile": 0}, {"quantile": 1.5}, {"windowSeconds": 60}):
        with pytest.raises(ValueError):
            QwenDeploymentSpec.model_validate(
                {"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": {"burstHeadroom": bad}}
            )


def test_service_rate_and_seasonal_period_reach_the_policy():
    spec = QwenDeploymentSpec.model_validate(
        {
            "model": {"name": "Qwen/Qwen3-8B"},
            "autoscaling": {"enabled": True, "serviceRatePerReplica": 21.5, "seasonalPeriodSeconds": 86400},
        }
    )
    cfg = policy_config(spec)
    assert cfg.prior_service_rate == 21.5 and cfg.seasonal_period_s == 86400.0
    default = policy_config(QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}}))
    assert default.prior_service_rate is None and default.seasonal_period_s is None
    for bad in ({"serviceRatePerReplica": 0}, {"seasonalPeriodSeconds": 60}):
        with pytest.raises(ValueError):
            QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}, "autoscaling": bad})


def test_status_is_written_on_a_changed_decision_or_a_new_seasonal_bucket():
    """A steady fleet writes nothing, except that a seasonal forecast persists each new bucket of its cycle: the
    recorded day must survive an operator restart even when no decision changed for hours."""

    def steady(cfg: AutoscalingConfig, until: float) -> list[bool]:
        state, auto, writes = PolicyState(), {}, []
        t = 0.0
        while t <= until:
            s = tuple(ReplicaSample(0.0, 6.0, 0.1, f"p{i}", 2.0) for i in range(2))
            d = decide(Observation(t, s, 2, 0, 2, t - 5), state, cfg)
            state = d.state
            w = status_write_needed(d, auto, cfg, 2)
            if w:  # what the handler writes
                auto = {"lastReason": d.reason, "active": d.active, "policyState": d.state.to_dict()}
            writes.append(w)
            t += 15.0
        return writes

    base = AutoscalingConfig(min_replicas=2, max_replicas=4, warm_pool=0, prior_service_rate=5.0)
    plain = steady(base, 3600.0)
    assert plain[0] and not any(plain[1:])  # the first decision, then nothing for an hour
    seasonal = steady(AutoscalingConfig(**{**base.__dict__, "seasonal_period_s": 9600.0}), 3600.0)
    assert sum(seasonal) == 1 + 3600 // 100  # 96 buckets of 100 s: one write each, and no more
    # burst headroom writes when the replicas it holds change, not per recorded minute: steady load, no write
    bursty = steady(AutoscalingConfig(**{**base.__dict__, "burst_headroom_quantile": 0.9}), 3600.0)
    assert bursty[0] and not any(bursty[1:])


def test_the_service_rate_estimate_is_the_default_where_it_exists_and_reaches_the_policy_as_the_benchmark_runs_it():
    """estimateServiceRate unset: the operator hands the policy the same estimate as the benchmark's "ours"
    (bench/autoscaling/run.py BENCH_SPEC is the benchmark's replica as a spec); false: none, as "ours-no-estimate";
    a serviceRatePerReplica wins; where there is no estimate the policy learns, and status says why. Prometheus is
    asked for the request mix only when the estimate needs it."""
    from bench.autoscaling.run import BENCH_SPEC, POLICIES
    from qwen_operator.handlers.autoscaler import service_rate_prior_of

    def spec(**auto: object) -> QwenDeploymentSpec:
        return QwenDeploymentSpec.model_validate({**BENCH_SPEC, "autoscaling": {"enabled": True, **auto}})

    for name, operator_spec in (("ours", spec()), ("ours-no-estimate", spec(estimateServiceRate=False))):
        factory = POLICIES[name][0]
        assert factory is not None
        bench = factory().config
        operator = policy_config(operator_spec, bench.cold_start_s)
        differ = config_differences(bench, operator)
        assert set(differ) <= {"min_replicas", "max_replicas"}, (name, differ)
    estimate = policy_config(spec()).prior_rate_model
    assert estimate is not None
    for mix in ((1155.0, 1155.0, 211.0), (15000.0, 5000.0, 300.0), (462.0, 462.0, 16.0)):
        assert estimate(*mix) > 0
    assert service_rate_prior_of(spec()).source == "estimate"
    assert policy_config(spec(estimateServiceRate=True)).prior_rate_model is not None
    given = spec(serviceRatePerReplica=21.5)
    assert policy_config(given).prior_rate_model is None and policy_config(given).prior_service_rate == 21.5
    assert service_rate_prior_of(given).source == "serviceRatePerReplica"
    off = service_rate_prior_of(spec(estimateServiceRate=False))
    assert off.source == "none" and "estimateServiceRate is false" in off.message
    # no estimate for this GPU: learned, not refused (refused only when estimateServiceRate is true)
    elsewhere = QwenDeploymentSpec.model_validate(
        {"model": {"name": "Qwen/Qwen3-4B"}, "gpu": {"product": "NVIDIA-L4"}, "autoscaling": {"enabled": True}}
    )
    assert policy_config(elsewhere).prior_rate_model is None
    why = service_rate_prior_of(elsewhere)
    assert why.source == "none" and "NVIDIA-L4" in why.message and "serviceRatePerReplica" in why.message
    asked = queries("ns", "m", mix=True)
    assert "rate(vllm:request_prompt_tokens_sum{" in asked["prompt_tokens"]
    assert "rate(vllm:request_generation_tokens_sum{" in asked["generated_tokens"]
    assert "prompt_tokens" not in queries("ns", "m") and "generated_tokens" not in queries("ns", "m")


def test_observe_passes_the_request_mix_to_the_policy():
    from qwen_operator.adapters.prometheus import PodSample as PromSample
    from qwen_operator.handlers.autoscaler import observe

    pod = {"metadata": {"name": "m-0"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    s = PromSample(
        pod="m-0",
        waiting=0.0,
        running=3.0,
        kv_cache_usage=0.1,
        age_s=5.0,
        request_rate=2.0,
        token_rate=1800.0,
        prompt_token_rate=2400.0,
        generation_token_rate=400.0,
    )
    got = observe([pod], {"m-0": s}, 1, 100.0, None).samples[0]
    assert got.prompt_token_rate == 2400.0 and got.generation_token_rate == 400.0


def test_read_replicas_reads_the_request_mix_when_asked(monkeypatch: pytest.MonkeyPatch):
    """The two halves of the mix land in the pod's sample; a negative rate (a counter reset) is dropped, not used."""
    from qwen_operator.adapters import prometheus

    values = {"prompt_tokens": "2400", "generated_tokens": "-1", "tokens": "1800", "rate": "2"}
    by_query = {q: values.get(k, "0") for k, q in queries("ns", "m", mix=True).items()}

    class FakeProm:
        def custom_query(self, q: str) -> list[dict[str, object]]:
            return [{"metric": {"pod": "m-0"}, "value": [0, by_query[q]]}]

    monkeypatch.setattr(prometheus, "_connect", lambda url, timeout_s: FakeProm())
    s = prometheus.read_replicas("http://prom", "ns", "m", mix=True).samples["m-0"]
    assert s.prompt_token_rate == 2400.0 and s.generation_token_rate is None and s.token_rate == 1800.0
