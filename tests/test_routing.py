"""spec.routing: the API, the checks against the pinned vllm-router and the router's command line."""

import json
from pathlib import Path

import pytest

from qwen_operator.api import crd
from qwen_operator.api.models import DEFAULT_ROUTER_IMAGE, QwenDeploymentSpec
from qwen_operator.domain.router_args import (
    MANAGED_ROUTER_FLAGS,
    UNSUPPORTED_ROUTER_FLAGS,
    check_router_extra_args,
    render_router_args,
    router_flag_table,
)
from qwen_operator.domain.validation import validate

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ROOT / "operator" / "qwen_operator" / "domain" / "router_flags_0_1_17.json"


def routed(spec, **routing):
    spec["routing"] = {"enabled": True, **routing}
    return spec


def errors(spec):
    return [(p.reason, p.message) for p in validate(spec).errors]


# ---- the API -----------------------------------------------------------------------------------------------------


def test_routing_is_off_by_default(base_spec):
    r = QwenDeploymentSpec.model_validate(base_spec).routing
    assert (r.enabled, r.policy, r.replicas, r.image) == (False, "cache_aware", 1, DEFAULT_ROUTER_IMAGE)
    assert (r.resources.cpu, r.resources.memory, r.extra_args) == ("1", "1Gi", [])


def test_crd_offers_exactly_the_documented_policies_and_defaults_routing_off():
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    routing = spec["properties"]["routing"]
    assert routing["properties"]["policy"]["enum"] == [
        "cache_aware",
        "power_of_two",
        "consistent_hash",
        "round_robin",
        "random",
    ]
    assert routing["default"]["enabled"] is False
    assert routing["properties"]["replicas"]["minimum"] == 1


def test_offered_policies_are_choices_of_the_pinned_router():
    table = json.loads(FLAGS.read_text())
    (policy,) = [o for o in table["options"] if o["flags"] == ["--policy"]]
    offered = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "routing"
    ]["properties"]["policy"]["enum"]
    assert set(offered) <= set(policy["choices"])
    assert table["router_version"] == "0.1.17"


def test_crd_refuses_min_replicas_zero_with_routing_in_plain_words():
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (rule,) = spec["x-kubernetes-validations"]
    assert "self.autoscaling.minReplicas >= 1" in rule["rule"] and "self.routing.enabled" in rule["rule"]
    assert "cannot hold a request while no replica is Ready" in rule["message"]


@pytest.mark.parametrize("policy", ["kv_aware", "sticky_least_loaded", "least_loaded"])
def test_policies_not_offered_are_refused_by_the_schema(base_spec, policy):
    rep = validate(routed(base_spec, policy=policy))
    assert rep.errors[0].reason == "InvalidSpec" and "routing.policy" in rep.errors[0].message


def test_extra_args_must_look_like_flags(base_spec):
    rep = validate(routed(base_spec, extraArgs=["sk-secret"]))
    assert rep.errors[0].reason == "InvalidSpec"
    assert "routing.extraArgs[0] must look like --flag" in rep.errors[0].message
    assert "sk-secret" not in rep.errors[0].message


# ---- validation against the pinned router ------------------------------------------------------------------------


def test_a_routed_spec_is_valid(base_spec):
    rep = validate(routed(base_spec, policy="power_of_two", extraArgs=["--cache-threshold=0.5", "--disable-retries"]))
    assert rep.ok, rep.problems


@pytest.mark.parametrize(
    "arg, words",
    [
        ("--no-such-router-flag", "--no-such-router-flag is not a flag of vllm-router 0.1.17"),
        ("--policy=random", "--policy is set by the operator; set the routing fields instead"),
        ("--selector=app=x", "--selector is set by the operator"),
        ("--service-discovery-namespace=other", "--service-discovery-namespace is set by the operator"),
        ("--api-key=sk-1", "--api-key is not supported: it would put a secret on the command line"),
        ("--worker-urls=http://x:8000", "--worker-urls is not supported: the router finds the replicas by service"),
        ("--vllm-pd-disaggregation", "not supported: the operator does not run prefill/decode disaggregation"),
        ("--log-dir=/logs", "--log-dir is not supported: the router's root filesystem is read-only"),
        ("--cache-threshold", "--cache-threshold takes a value: write it as --cache-threshold=VALUE"),
        ("--disable-retries=true", "--disable-retries is a switch and takes no value"),
        ("--queue-size 5", "(--queue-size ...) contains a space: write --flag=value as one item"),
    ],
)
def test_router_extra_args_refused_with_the_reason(base_spec, arg, words):
    errs = errors(routed(base_spec, extraArgs=[arg]))
    assert errs and errs[0][0] == "InvalidRouterArgs"
    assert words in errs[0][1]
    if "sk-1" in arg:
        assert "sk-1" not in errs[0][1]


def test_router_extra_arg_given_twice(base_spec):
    assert "given twice" in errors(routed(base_spec, extraArgs=["--queue-size=1", "--queue-size=2"]))[0][1]


def test_router_extra_args_are_checked_with_routing_off_too(base_spec):
    base_spec["routing"] = {"extraArgs": ["--no-such-router-flag"]}
    assert errors(base_spec)[0][0] == "InvalidRouterArgs"


def test_min_replicas_zero_refused_with_routing(base_spec):
    base_spec["autoscaling"] = {"enabled": True, "minReplicas": 0}
    assert validate(base_spec).ok  # without the router, scale-to-zero stays allowed
    (err,) = errors(routed(base_spec))
    assert err[0] == "RoutingCannotHold"
    assert "cannot hold a request while no replica is Ready" in err[1] and "minReplicas to 1" in err[1]


def test_min_replicas_one_with_routing_is_fine(base_spec):
    base_spec["autoscaling"] = {"enabled": True, "minReplicas": 1}
    assert validate(routed(base_spec)).ok


def test_zero_replicas_with_routing_is_a_warning(base_spec):
    base_spec["replicas"] = 0
    rep = validate(routed(base_spec))
    assert rep.ok
    assert [w.reason for w in rep.warnings] == ["RoutingWithoutReplicas"]
    assert "503" in rep.warnings[0].message


def test_managed_and_unsupported_flags_exist_in_the_pinned_router():
    """The operator's own lists name only real flags of 0.1.17 (a router upgrade that renames one shows here)."""
    flags = router_flag_table().flags
    assert MANAGED_ROUTER_FLAGS <= flags
    assert set(UNSUPPORTED_ROUTER_FLAGS) <= flags
    assert len(flags) == 71


def test_every_other_flag_of_the_pinned_router_is_accepted():
    table = router_flag_table()
    for flag in sorted(table.flags - MANAGED_ROUTER_FLAGS - set(UNSUPPORTED_ROUTER_FLAGS)):
        arg = f"{flag}=1" if flag in table.takes_value else flag
        assert check_router_extra_args([arg]) == [], flag


# ---- the router's command line -----------------------------------------------------------------------------------


def test_router_args_discover_the_pods_in_their_namespace(base_spec):
    spec = QwenDeploymentSpec.model_validate(routed(base_spec, policy="consistent_hash", extraArgs=["--queue-size=5"]))
    selector = {"app.kubernetes.io/name": "qwen-vllm", "app.kubernetes.io/instance": "demo"}
    args = render_router_args(spec.routing, selector, "team-a")
    assert args == [
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--policy",
        "consistent_hash",
        "--service-discovery",
        "--service-discovery-namespace",
        "team-a",
        "--service-discovery-port",
        "8000",
        "--selector",
        "app.kubernetes.io/instance=demo",
        "app.kubernetes.io/name=qwen-vllm",
        "--prometheus-host",
        "0.0.0.0",
        "--prometheus-port",
        "29000",
        "--queue-size=5",
    ]
    assert "--disable-retries" not in args and "--disable-circuit-breaker" not in args


def test_router_args_are_flags_of_the_pinned_router(base_spec):
    spec = QwenDeploymentSpec.model_validate(routed(base_spec))
    args = render_router_args(spec.routing, {"a": "b"}, "ns")
    assert {a for a in args if a.startswith("--")} <= router_flag_table().flags
