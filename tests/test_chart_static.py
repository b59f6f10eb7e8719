"""The Helm chart and the images, checked without a cluster.

File-level checks always run. Rendering checks (`helm lint`, `helm template`: RBAC, security context, schema
rejections) need the helm binary of e2e/cluster/build-tools.sh (or one on PATH) and are skipped without it; they
never touch a cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "qwen-operator"
DOCKERFILE = ROOT / "images" / "operator" / "Dockerfile"
LOCK = ROOT / "images" / "operator" / "requirements.lock"

# What the operator calls (adapters/kube.py, handlers/controller.py), as (apiGroup, resource) -> verbs.
# QwenDeployments are only read: the operator patches their status subresource, never the object (no per-object
# Kopf timer, hence no Kopf finalizer on them).
NAMESPACED_RULES = {
    ("qwenops.dev", "qwendeployments"): {"get", "list", "watch"},
    ("qwenops.dev", "qwendeployments/status"): {"patch"},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "list", "watch", "create", "patch"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "create", "patch"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch"},
    ("", "pods"): {"get", "list", "watch"},
    # The router's objects (spec.routing): deleted when routing is turned off.
    ("apps", "deployments"): {"list", "watch", "create", "patch", "delete"},
    ("", "serviceaccounts"): {"list", "watch", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "roles"): {"list", "watch", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"list", "watch", "create", "patch", "delete"},
    ("", "pods/log"): {"get"},
    ("", "events"): {"create", "list"},  # list: the kubelet's Pulled events of a serving pod (cold-start phases)
}
# Kopf's cluster scanning is disabled (operator/qwen_operator/main.py): no CRD or namespace access.
CLUSTER_RULES = {
    ("", "nodes"): {"get", "list", "watch"},
}


# ---- files -------------------------------------------------------------------------------------------------------


def test_chart_crd_is_an_exact_copy_of_the_generated_crd():
    src = ROOT / "crds" / "qwendeployments.yaml"
    copy = CHART / "crds" / "qwendeployments.yaml"
    assert copy.read_bytes() == src.read_bytes(), "run charts/sync-crds.sh"


def test_sync_crds_check_mode_agrees():
    res = subprocess.run(["bash", str(ROOT / "charts" / "sync-crds.sh"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_crd_is_not_a_template():
    """CRDs under crds/ are installed once and never deleted by `helm uninstall`; one in templates/ would be."""
    for t in (CHART / "templates").iterdir():
        assert "CustomResourceDefinition" not in t.read_text(), t


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "qwen-operator"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_values_replica_count_is_one_with_a_note():
    text = (CHART / "values.yaml").read_text()
    assert yaml.safe_load(text)["replicaCount"] == 1
    assert "standalone" in text and "peering" in text


def _check_against_schema(values: Any, schema: dict[str, Any], path: str = "") -> None:
    """A small subset of JSON schema: every key of values.yaml is declared (no typo survives additionalProperties
    false) and its type matches."""
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
    if "type" in schema:
        assert isinstance(values, types[schema["type"]]), f"{path}: {values!r} is not {schema['type']}"
    if "const" in schema:
        assert values == schema["const"], path
    if isinstance(values, dict) and "properties" in schema:
        for k, v in values.items():
            if schema.get("additionalProperties") is False:
                assert k in schema["properties"], f"{path}.{k} is not in values.schema.json"
            if k in schema["properties"]:
                _check_against_schema(v, schema["properties"][k], f"{path}.{k}")


def test_values_match_their_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["properties"]["replicaCount"]["const"] == 1
    _check_against_schema(values, schema)


def test_removed_values_are_gone_from_values_schema_templates_and_docs():
    """The operator no longer reads QWEN_DEFAULT_VLLM_IMAGE, needs no patch on QwenDeployments and no Kopf
    scanning grants: none of the old knobs may linger anywhere in the chart or its documentation."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert "defaultVllmImage" not in values and "defaultVllmImage" not in schema["properties"]
    assert set(values["rbac"]) == set(schema["properties"]["rbac"]["properties"]) == {"create"}
    texts = {
        p: p.read_text()
        for p in [
            *(CHART / "templates").iterdir(),
            CHART / "values.yaml",
            CHART / "values.schema.json",
            ROOT / "docs" / "helm.md",
        ]
    }
    for path, text in texts.items():
        for needle in (
            "defaultVllmImage",
            "QWEN_DEFAULT_VLLM_IMAGE",
            "finalizerPatch",
            "kopfScanning",
            "customresourcedefinitions",
        ):
            assert needle not in text, f"{needle} in {path.relative_to(ROOT)}"


def test_values_ports_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["metrics"]["port"] == 8080 and values["healthPort"] == 8081


def test_dashboard_json_is_valid_and_covers_the_fleet_signals():
    dash = json.loads((CHART / "dashboards" / "qwen-fleet.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    joined = "\n".join(exprs)
    for needle in [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds",
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "qwen_operator_desired_replicas",
        "kube_statefulset_status_replicas_ready",
        "rate(vllm:spec_decode_num_accepted_tokens_total",
        "rate(vllm:spec_decode_num_draft_tokens_total",
        "compile_cache",
    ]:
        assert needle in joined, needle
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"deployment", "namespace"} <= variables
    # One row of panels per QwenDeployment.
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    assert rows and rows[0].get("repeat") == "deployment"
    assert all('deployment="$deployment"' in e or 'statefulset="$deployment"' in e for e in exprs)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_dockerfile_non_root_pinned_entrypoint():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f == "${BASE}" for f in froms), froms
    # The default base is the public image; images/build.sh overrides it with a local Debian base.
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "no USER"
    final_user = users[-1].split(":")[0]
    assert final_user.isdigit() and int(final_user) == 10001
    # USER comes after the last FROM: it applies to the image that ships.
    assert text.rfind("\nUSER ") > text.rfind("\nFROM ")
    assert re.search(r'^ENTRYPOINT \["qwen-operator"\]', text, re.M)
    assert "requirements.lock" in text


def test_requirements_lock_pins_the_pyproject_deps_to_the_tested_versions():
    lines = [ln for ln in LOCK.read_text().splitlines() if ln and not ln.startswith("#")]
    pins = {}
    for ln in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", ln)
        assert m, f"not an exact pin: {ln!r}"
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        name = re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0]
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert key in pins, f"{name} missing from requirements.lock"
        exact = re.search(r"==\s*([^,; ]+)", d)
        if exact:
            assert pins[key] == exact.group(1), (name, pins[key])
    for test_only in ("pytest", "hypothesis"):
        assert test_only not in pins


# ---- rendering with helm -----------------------------------------------------------------------------------------


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    tools = subprocess.run(
        ["bash", str(ROOT / "e2e" / "cluster" / "build-tools.sh"), "--print-dir"], capture_output=True, text=True
    )
    cand = Path(tools.stdout.strip()) / "helm"
    return str(cand) if tools.returncode == 0 and os.access(cand, os.X_OK) else None


HELM = _helm()
needs_helm = pytest.mark.skipif(HELM is None, reason="helm not built yet (e2e/cluster/build-tools.sh)")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/qwen-helm-cache",
        "HELM_CONFIG_HOME": "/tmp/qwen-helm-config",
        "HELM_DATA_HOME": "/tmp/qwen-helm-data",
    }
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, env=env)


def render(*args: str) -> list[dict[str, Any]]:
    res = helm("template", "rel", str(CHART), "--namespace", "qwen-system", *args)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def rules_of(doc: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for r in doc["rules"]:
        assert "*" not in r["verbs"] and "*" not in r["resources"] and "*" not in r.get("apiGroups", []), r
        for g in r.get("apiGroups", []):
            for res in r["resources"]:
                out.setdefault((g, res), set()).update(r["verbs"])
    return out


@needs_helm
def test_helm_lint():
    res = helm("lint", "--strict", str(CHART))
    assert res.returncode == 0, res.stdout + res.stderr


@needs_helm
def test_cluster_wide_rbac_is_exactly_what_the_operator_uses():
    docs = render()
    kinds = [d["kind"] for d in docs]
    assert "Role" not in kinds and "RoleBinding" not in kinds
    (cr,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert rules_of(cr) == {**NAMESPACED_RULES, **CLUSTER_RULES}
    (crb,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert crb["roleRef"]["name"] == cr["metadata"]["name"] != "cluster-admin"
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "qwen-system"}]
    for d in docs:
        assert "secrets" not in json.dumps(d.get("rules", []))


@needs_helm
@pytest.mark.parametrize("args", [[], ["--set", "watchNamespaces={team-a}"]], ids=["cluster-wide", "namespaced"])
def test_the_operator_holds_what_the_routers_role_grants_and_cannot_grant_more(args):
    """RBAC's escalation rule: the operator may create the router's Role and RoleBinding (spec.routing) only
    because it holds every verb the Role grants; with no bind or escalate it can grant nothing beyond what it has."""
    from qwen_operator.manifests.router import ROUTER_RULES

    docs = render(*args)
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    held = {k: v for role in roles for k, v in rules_of(role).items()}
    for rule in ROUTER_RULES:
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                assert set(rule["verbs"]) <= held.get((g, res), set()), (g, res)
    for role in roles:
        for r in role["rules"]:
            assert not {"bind", "escalate", "impersonate"} & set(r["verbs"]), r
            assert not {"clusterroles", "clusterrolebindings"} & set(r["resources"]), r


@needs_helm
def test_watch_namespaces_gives_roles_per_namespace_and_only_cluster_reads_in_the_clusterrole():
    docs = render("--set", "watchNamespaces={team-a,team-b}")
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    for ns, role in roles.items():
        assert rules_of(role) == NAMESPACED_RULES
        assert bindings[ns]["subjects"][0]["namespace"] == "qwen-system"
    (cr,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert rules_of(cr) == CLUSTER_RULES  # no namespaces: Kopf's scanning is off
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["QWEN_WATCH_NAMESPACES"] == "team-a,team-b"


@needs_helm
@pytest.mark.parametrize("args", [[], ["--set", "watchNamespaces={team-a}"]], ids=["cluster-wide", "namespaced"])
def test_no_patch_on_qwendeployments_and_no_crd_or_namespace_access(args):
    docs = render(*args)
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        rules = rules_of(role)
        assert "patch" not in rules.get(("qwenops.dev", "qwendeployments"), set()), role["kind"]
        assert not {k for k in rules if k[1] in ("customresourcedefinitions", "namespaces")}, role["kind"]
        assert not {k for k in rules if k[0] == "apiextensions.k8s.io"}, role["kind"]
    assert any(rules_of(r).get(("qwenops.dev", "qwendeployments/status")) == {"patch"} for r in roles)


@needs_helm
def test_deployment_is_hardened_and_configured():
    docs = render("--set", "prometheusUrl=http://prom:9090", "--set", "resyncSeconds=12", "--set", "image.tag=1.2.3")
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert c["image"] == "ghcr.io/qwenops/qwen-operator:1.2.3"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["QWEN_PROMETHEUS_URL"] == "http://prom:9090"
    assert env["QWEN_RESYNC_SECONDS"] == "12"
    assert env["QWEN_WATCH_NAMESPACES"] == ""
    assert env["QWEN_METRICS_PORT"] == "8080"
    assert env["QWEN_HEALTH_PORT"] == "8081"
    assert "QWEN_DEFAULT_VLLM_IMAGE" not in env  # the CRD defaults spec.image; the operator has no such setting
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "rel-qwen-operator"


def _operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


@needs_helm
def test_ports_follow_the_values():
    docs = render("--set", "metrics.port=9100", "--set", "healthPort=9101")
    c = _operator_container(docs)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9100, "health": 9101}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["QWEN_METRICS_PORT"] == "9100" and env["QWEN_HEALTH_PORT"] == "9101"
    assert c["livenessProbe"]["httpGet"]["port"] == "health"
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]

    # The pod rolls when a port changes.
    def checksum(ds: list[dict[str, Any]]) -> str:
        (dep,) = [d for d in ds if d["kind"] == "Deployment"]
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(docs) != checksum(render())


@needs_helm
def test_health_port_zero_turns_the_liveness_endpoint_and_probe_off():
    c = _operator_container(render("--set", "healthPort=0"))
    assert "livenessProbe" not in c
    assert [p["name"] for p in c["ports"]] == ["metrics"]
    assert {e["name"]: e.get("value") for e in c["env"]}["QWEN_HEALTH_PORT"] == "0"


@needs_helm
def test_health_and_metrics_ports_must_differ():
    res = helm("template", "rel", str(CHART), "--set", "healthPort=8080")
    assert res.returncode != 0 and "must differ" in res.stderr, res.stderr
    res = helm("template", "rel", str(CHART), "--set", "metrics.port=8081")
    assert res.returncode != 0 and "must differ" in res.stderr, res.stderr


@needs_helm
def test_dashboard_configmap_renders_valid_json():
    docs = render()
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["qwen-fleet.json"])
    assert dash["uid"] == "qwen-operator-fleet"


@needs_helm
def test_monitors_render_only_with_the_prometheus_operator_api():
    on = ["--set", "monitoring.podMonitor.enabled=true", "--set", "monitoring.serviceMonitor.enabled=true"]
    assert not {"PodMonitor", "ServiceMonitor"} & {d["kind"] for d in render(*on)}
    docs = render(*on, "--api-versions", "monitoring.coreos.com/v1")
    pms = {d["metadata"]["name"].rsplit("-", 1)[1]: d for d in docs if d["kind"] == "PodMonitor"}
    assert set(pms) == {"vllm", "router"}
    assert pms["vllm"]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "qwen-vllm"}
    (ep,) = pms["vllm"]["spec"]["podMetricsEndpoints"]
    assert ep["port"] == "http" and ep["path"] == "/metrics"
    # The router pods the operator renders, on the port it names: what the autoscaler reads of the router.
    from qwen_operator.api.models import QwenDeploymentSpec
    from qwen_operator.manifests.router import build_router_deployment
    from qwen_operator.manifests.workload import Owner

    spec = QwenDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}, "routing": {"enabled": True}})
    pod = build_router_deployment("m", "ns", Owner("m", "uid-1"), spec.routing)["spec"]["template"]
    (router_ep,) = pms["router"]["spec"]["podMetricsEndpoints"]
    assert pms["router"]["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert router_ep["port"] in {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    (sm,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert not {"PodMonitor", "ServiceMonitor"} & {
        d["kind"] for d in render("--api-versions", "monitoring.coreos.com/v1")
    }


@needs_helm
@pytest.mark.parametrize(
    "bad",
    [
        ["--set", "replicaCount=2"],
        ["--set", "replicaCount=0"],
        ["--set", "resyncSeconds=-5"],
        ["--set", "resyncSeconds=0"],
        ["--set-string", "resyncSeconds=thirty"],
        ["--set", "watchNamespaces=team-a"],  # a string, not a list
        ["--set", "watchNamespaces={Team_A}"],  # not a namespace name
        ["--set", "prometheusUrl=prometheus:9090"],  # no scheme
        ["--set", "metrics.port=70000"],
        ["--set", "healthPort=-1"],
        ["--set", "healthPort=65536"],
        ["--set", "image.pullPolicy=Sometimes"],
        ["--set", "securityContext.runAsNonRoot=false"],
        ["--set", "replicas=1"],  # typo of replicaCount: unknown key
        # Removed knobs (the operator needs neither grant, and has no default-image setting): unknown keys now.
        ["--set", "rbac.finalizerPatch=false"],
        ["--set", "rbac.kopfScanning=false"],
        ["--set", "defaultVllmImage=vllm/vllm-openai:v0.32.0"],
    ],
)
def test_schema_rejects_bad_values(bad):
    res = helm("template", "rel", str(CHART), *bad)
    assert res.returncode != 0, f"{bad} was accepted"
    assert "schema" in res.stderr.lower() or "values don't meet" in res.stderr.lower(), res.stderr
    lint = helm("lint", str(CHART), *bad)
    assert lint.returncode != 0


@needs_helm
def test_pod_annotations_are_strings_even_when_the_config_digest_looks_like_a_number():
    """The config checksum is 16 hex digits; these values give 88691883763323e5, which the API server's YAML reader
    takes for a number and refuses ("cannot unmarshal number into ... annotations of type string"; PyYAML, a YAML
    1.1 reader, keeps it a string, so the rendered text is checked). Found by the e2e suite's operator pod."""
    values = ["--set", "prometheusUrl=http://10.244.0.1:19090", "--set", "resyncSeconds=5"]
    for tick in ("1", "5", "30"):
        res = helm(
            "template",
            "rel",
            str(CHART),
            "--namespace",
            "qwen-system",
            *values,
            "--set",
            f"autoscaleTickSeconds={tick}",
        )
        assert res.returncode == 0, res.stderr
        (line,) = [x.strip() for x in res.stdout.splitlines() if x.strip().startswith("checksum/config:")]
        assert re.fullmatch(r'checksum/config: "[0-9a-f]{16}"', line), line
        if tick == "1":
            assert line.endswith('"88691883763323e5"'), line
