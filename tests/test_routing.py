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


# ---- the plan: routing off renders what it rendered before; routing on adds the router -------------------------

GOLDEN = ROOT / "tests" / "golden" / "plan_before_routing.json"


def _body(spec, status=None, uid="uid-1"):
    meta = {"name": "demo", "namespace": "ns", "generation": 1, "uid": uid}
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": meta,
        "spec": spec,
        "status": status or {},
    }


def _view(**kw):
    from qwen_operator.manifests.view import ClusterView

    base = dict(statefulset=None, services={}, pods=[], nodes_with_product=4, max_gpus_on_a_node=8)
    base.update(kw)
    return ClusterView(**base)


NOW = "2026-11-23T20:00:00Z"


@pytest.mark.parametrize("key", ["plain", "cache-autoscaling-tp2"])
def test_routing_off_renders_the_same_as_no_routing_and_nothing_of_the_router(key):
    """Routing off, explicitly and with other routing fields set, plans exactly what a spec without `routing`
    plans, and none of the router's objects. (When routing landed, the specs of tests/golden/plan_before_routing.json
    also planned byte for byte what the code before spec.routing had planned, commit fff79b8; later features change
    what every spec renders, so the file keeps only the specs.)"""
    from qwen_operator.manifests.plan import plan

    spec = json.loads(GOLDEN.read_text())[key]["spec"]
    spec.pop("routing", None)
    off = {**spec, "routing": {"enabled": False, "policy": "random", "replicas": 3, "extraArgs": ["--queue-size=5"]}}
    p_none, p_off = plan(_body(spec), _view(), NOW), plan(_body(off), _view(), NOW)
    assert p_off.apply == p_none.apply and p_off.ensure_shared == p_none.ensure_shared
    assert p_off.status == p_none.status and p_off.delete == p_none.delete == []
    kinds = {o["kind"] for o in p_off.apply}
    assert not kinds & {"Deployment", "ServiceAccount", "Role", "RoleBinding"}, kinds
    services = [o for o in p_off.apply if o["kind"] == "Service"]
    assert services and all(svc["spec"]["selector"] == VLLM_SELECTOR for svc in services)


ROUTED = {
    "model": {"name": "Qwen/Qwen3-8B"},
    "gpu": {"product": "H100"},
    "compileCache": {"enabled": False},
    "routing": {"enabled": True, "policy": "power_of_two", "replicas": 2, "resources": {"cpu": "500m"}},
}
VLLM_SELECTOR = {"app.kubernetes.io/name": "qwen-vllm", "app.kubernetes.io/instance": "demo"}
ROUTER_SELECTOR = {"app.kubernetes.io/name": "qwen-router", "app.kubernetes.io/instance": "demo"}


def _plan(spec=None, status=None, **view_kw):
    from qwen_operator.manifests.plan import plan

    return plan(_body(spec or ROUTED, status), _view(**view_kw), NOW)


def _by_kind(p):
    return {(o["kind"], o["metadata"]["name"]): o for o in p.apply}


def _observed(obj, **status):
    """What the apiserver would return: our object, a uid, a generation, defaults and the given status."""
    o = json.loads(json.dumps(obj))
    o["metadata"].update(uid=f"uid-{o['kind']}", generation=1)
    if o["kind"] == "StatefulSet":
        n = o["spec"]["replicas"]
        o["status"] = {
            "observedGeneration": 1,
            "replicas": n,
            "currentRevision": "r",
            "updateRevision": "r",
            "updatedReplicas": n,
        }
    if o["kind"] == "Deployment":
        o["spec"]["revisionHistoryLimit"] = 10
        o["status"] = {"observedGeneration": 1, **status}
    return o


def _ready_pod(i):
    return {"metadata": {"name": f"demo-{i}"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def _cond(status, ctype):
    return next((c for c in status["conditions"] if c["type"] == ctype), None)


def _running(first, ready_routers):
    """The view once everything of ``first`` exists, with ``ready_routers`` router pods Ready."""
    objs = _by_kind(first)
    owned = {k: _observed(o) for k, o in objs.items() if k[0] not in ("StatefulSet", "Service")}
    owned[("Deployment", "demo-router")] = _observed(
        objs[("Deployment", "demo-router")], readyReplicas=ready_routers, updatedReplicas=2, replicas=2
    )
    services = {k[1]: _observed(o) for k, o in objs.items() if k[0] == "Service"}
    return dict(
        statefulset=_observed(objs[("StatefulSet", "demo")]), services=services, pods=[_ready_pod(0)], owned=owned
    )


def test_routing_on_adds_the_router_and_keeps_the_service_on_vllm_until_a_router_pod_is_ready():
    p = _plan()
    objs = _by_kind(p)
    assert sorted(objs) == [
        ("Deployment", "demo-router"),
        ("Role", "demo-router"),
        ("RoleBinding", "demo-router"),
        ("Service", "demo"),
        ("Service", "demo-pods"),
        ("ServiceAccount", "demo-router"),
        ("StatefulSet", "demo"),
    ]
    for o in p.apply:  # deleting the QwenDeployment deletes every one of them
        assert o["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "qwenops.dev/v1alpha1",
                "kind": "QwenDeployment",
                "name": "demo",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    # no router pod Ready yet: clients still reach vLLM directly rather than nothing
    assert objs[("Service", "demo")]["spec"]["selector"] == VLLM_SELECTOR
    assert objs[("Service", "demo-pods")]["spec"]["selector"] == VLLM_SELECTOR
    router = _cond(p.status, "RouterReady")
    assert (router["status"], router["reason"]) == ("False", "Creating")
    assert p.delete == []


def test_the_client_service_leads_to_the_router_once_a_router_pod_is_ready_and_ready_waits_for_the_router():
    first = _plan()
    starting = _plan(status=first.status, **_running(first, ready_routers=0))
    assert not any(o["kind"] == "Service" for o in starting.apply)
    assert _cond(starting.status, "RouterReady")["reason"] == "RouterStarting"
    ready = _cond(starting.status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RouterNotReady")  # the vLLM pod is Ready, the router not
    assert "The router is not ready: 0/2 router pods ready" in ready["message"]

    one = _plan(status=starting.status, **_running(first, ready_routers=1))
    (svc,) = [o for o in one.apply if o["kind"] == "Service"]
    assert svc["metadata"]["name"] == "demo" and svc["spec"]["selector"] == ROUTER_SELECTOR
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]

    view = _running(first, ready_routers=2)
    view["services"]["demo"]["spec"]["selector"] = ROUTER_SELECTOR
    both = _plan(status=one.status, **view)
    assert both.apply == [] and both.delete == []
    router = _cond(both.status, "RouterReady")
    assert (router["status"], router["reason"]) == ("True", "RouterReady")
    assert router["message"] == (
        "2/2 router pods ready; policy power_of_two, to the Ready pods labelled "
        "app.kubernetes.io/instance=demo,app.kubernetes.io/name=qwen-vllm."
    )
    assert _cond(both.status, "Ready")["status"] == "True" and both.status["phase"] == "Ready"
    idle = _plan(status=both.status, **view)  # an idle resync: nothing to apply, nothing to write
    assert idle.apply == [] and idle.status is None and idle.events == []


def test_a_stuck_router_rollout_says_why():
    first = _plan()
    view = _running(first, ready_routers=0)
    view["owned"][("Deployment", "demo-router")]["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "demo-router-5d" has timed out progressing.',
        }
    ]
    router = _cond(_plan(status=first.status, **view).status, "RouterReady")
    assert (router["status"], router["reason"]) == ("False", "RouterRolloutStuck")
    assert router["message"].endswith('ReplicaSet "demo-router-5d" has timed out progressing..')


def test_router_pods_go_where_routing_places_them():
    ps = _by_kind(_plan())[("Deployment", "demo-router")]["spec"]["template"]["spec"]
    assert "nodeSelector" not in ps and "tolerations" not in ps  # anywhere a small CPU pod fits
    placed = {
        **ROUTED,
        "routing": {
            **ROUTED["routing"],
            "nodeSelector": {"node-role/router": "true"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "router", "effect": "NoSchedule"}],
        },
    }
    ps = _by_kind(_plan(placed))[("Deployment", "demo-router")]["spec"]["template"]["spec"]
    assert ps["nodeSelector"] == {"node-role/router": "true"}
    assert ps["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "router", "effect": "NoSchedule"}]
    from qwen_operator.domain.validation import validate

    bad = {**placed, "routing": {**placed["routing"], "nodeSelector": {"bad key!": "x"}}}
    report = validate(bad)
    assert not report.ok and "routing.nodeSelector" in str(report.errors), report


def test_the_router_deployment_runs_the_pinned_router_with_service_discovery_of_its_namespace():
    d = _by_kind(_plan())[("Deployment", "demo-router")]
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["selector"]["matchLabels"] == ROUTER_SELECTOR
    pod = d["spec"]["template"]
    # The router's pods are neither vLLM pods (Service, PodMonitor) nor serving pods of the operator's pod index.
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "qwen-router"
    assert "qwenops.dev/deployment" not in pod["metadata"]["labels"]
    ps = pod["spec"]
    assert ps["serviceAccountName"] == "demo-router" and ps["automountServiceAccountToken"] is True
    assert ps["securityContext"]["runAsNonRoot"] is True
    (c,) = ps["containers"]
    assert c["image"] == DEFAULT_ROUTER_IMAGE and c["command"] == ["vllm-router"]
    args = c["args"]
    assert args[args.index("--policy") + 1] == "power_of_two"
    assert args[args.index("--service-discovery-namespace") + 1] == "ns"
    assert args[args.index("--service-discovery-port") + 1] == "8000"
    sel = args[args.index("--selector") + 1 : args.index("--prometheus-host")]
    assert sel == ["app.kubernetes.io/instance=demo", "app.kubernetes.io/name=qwen-vllm"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "metrics": 29000}
    assert c["readinessProbe"]["httpGet"] == {"path": "/liveness", "port": "http"}
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_router_may_only_list_and_watch_pods_of_its_own_namespace():
    objs = _by_kind(_plan())
    role = objs[("Role", "demo-router")]
    assert role["metadata"]["namespace"] == "ns"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    binding = objs[("RoleBinding", "demo-router")]
    assert binding["metadata"]["namespace"] == "ns"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo-router"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-router", "namespace": "ns"}]
    assert objs[("ServiceAccount", "demo-router")]["metadata"]["namespace"] == "ns"
    # Nothing cluster-wide, and no other object grants anything.
    assert not [o for o in objs.values() if o["kind"].startswith("Cluster")]
    assert [o["kind"] for o in objs.values() if "rules" in o or "roleRef" in o] == ["Role", "RoleBinding"]


def test_turning_routing_off_deletes_the_router_and_points_the_service_back_at_vllm():
    first = _plan()
    view = _running(first, ready_routers=2)
    view["services"]["demo"]["spec"]["selector"] = ROUTER_SELECTOR
    # someone else's object with the router's name is never deleted
    view["owned"][("ServiceAccount", "demo-router")]["metadata"]["ownerReferences"] = [{"uid": "someone-else"}]
    off = json.loads(json.dumps(ROUTED))
    off["routing"]["enabled"] = False
    p = _plan(off, status=first.status, **view)
    (svc,) = [o for o in p.apply if o["kind"] == "Service"]
    assert svc["spec"]["selector"] == VLLM_SELECTOR
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["uid"]) for o in p.delete] == [
        ("Deployment", "demo-router", "uid-Deployment"),
        ("RoleBinding", "demo-router", "uid-RoleBinding"),
        ("Role", "demo-router", "uid-Role"),
    ]
    assert _cond(p.status, "RouterReady") is None
    assert _cond(p.status, "Ready")["status"] == "True"


def test_an_invalid_spec_leaves_the_router_alone():
    first = _plan()
    bad = json.loads(json.dumps(ROUTED))
    bad["routing"]["extraArgs"] = ["--no-such-router-flag"]
    p = _plan(bad, status=first.status, **_running(first, ready_routers=2))
    assert p.apply == [] and p.delete == []
    assert _cond(p.status, "Validated")["reason"] == "InvalidRouterArgs"
    assert _cond(p.status, "RouterReady") == _cond(first.status, "RouterReady")


# ---- the router's image -------------------------------------------------------------------------------------------


def test_the_router_image_runs_the_pinned_router_as_the_user_the_pod_expects():
    import re

    from qwen_operator.api.models import PINNED_ROUTER_VERSION
    from qwen_operator.domain.router_args import ROUTER_COMMAND, ROUTER_METRICS_PORT, ROUTER_PORT

    text = (ROOT / "images" / "vllm-router" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f.startswith("${BASE}") for f in froms), froms  # images/build.sh sets the local base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users == ["10001:10001"] and text.rfind("\nUSER ") > text.rfind("\nFROM ")
    assert re.search(rf'^ENTRYPOINT \["{ROUTER_COMMAND}"\]', text, re.M)
    assert re.search(rf"^EXPOSE {ROUTER_PORT} {ROUTER_METRICS_PORT}$", text, re.M)
    assert "install-vllm-router.sh" in text and "requirements.lock" in text
    d = _by_kind(_plan())[("Deployment", "demo-router")]["spec"]["template"]["spec"]["securityContext"]
    assert (d["runAsUser"], d["runAsGroup"]) == (10001, 10001)

    router_dir = ROOT / "e2e" / "vllm_router"
    install = (router_dir / "install-vllm-router.sh").read_text()
    assert f"ROUTER_VERSION={PINNED_ROUTER_VERSION}\n" in install
    pins = [ln for ln in (router_dir / "requirements.lock").read_text().splitlines() if ln and ln[0] != "#"]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", ln) for ln in pins), pins
    assert f"vllm-router=={PINNED_ROUTER_VERSION}" in pins
    assert json.loads(FLAGS.read_text())["router_version"] == PINNED_ROUTER_VERSION
    assert DEFAULT_ROUTER_IMAGE.endswith(f":{PINNED_ROUTER_VERSION}")


def test_images_build_knows_the_router_image_keyed_by_its_inputs():
    import subprocess

    build = (ROOT / "images" / "build.sh").read_text()
    assert 'vllm-router) build_dockerfile "$r" "$HERE/vllm-router/Dockerfile"' in build
    for f in ("vllm-router/Dockerfile", "e2e/vllm_router/install-vllm-router.sh", "e2e/vllm_router/requirements.lock"):
        assert f in build, f
    res = subprocess.run(
        ["bash", str(ROOT / "images" / "build.sh"), "--ref", "vllm-router"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("localhost/qwen/vllm-router:")


def test_the_routed_example_is_valid_and_renders_the_router():
    import yaml

    from qwen_operator.manifests.plan import plan

    doc = yaml.safe_load((ROOT / "examples" / "qwen3-8b-routed.yaml").read_text())
    body = {**doc, "metadata": {**doc["metadata"], "namespace": "ns", "uid": "u", "generation": 1}, "status": {}}
    p = plan(body, _view(), NOW)
    assert p.report is not None and p.report.ok, p.report.problems
    assert {o["kind"] for o in p.apply} >= {"Deployment", "ServiceAccount", "Role", "RoleBinding"}
    assert doc["spec"]["autoscaling"]["minReplicas"] >= 1
