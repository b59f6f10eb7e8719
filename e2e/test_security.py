"""Let no one in: secrets stay in Secrets, pods run unprivileged, and a deployment only ever touches its own
namespace. Against the real control plane and the real operator.

(a) A Hugging Face token referenced by model.source.tokenSecretRef reaches pods only as a secretKeyRef: its
    value is in no rendered object, status, event or operator log line; a token mistakenly typed into the spec is
    refused without being echoed into status or events.
(b) vLLM pods (and the bake Job, and the cache-seeding init container) run unprivileged: no privilege
    escalation, all capabilities dropped, seccomp RuntimeDefault, no host namespaces or host paths, no service
    account token; they are admitted in a namespace that enforces the Pod Security "baseline" level.
(c) Namespace isolation: two deployments of the same name in two namespaces each own only objects of their own
    namespace, the operator writes nowhere else (audit log), and the spec has no field that names a namespace.
Results: docs/reliability.md.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import Counter
from typing import Any

import pytest
from operator_harness import (
    apply_qd,
    cond_is,
    condition,
    get_qd,
    kubectl_json,
    kubectl_run,
    operator_writes,
    wait_for,
    wait_operator_quiet,
)

H100 = "NVIDIA-H100-80GB-HBM3"
MANAGED = "app.kubernetes.io/managed-by=qwen-operator"


def _all(namespace: str, kinds: str, selector: str | None = None) -> list[dict[str, Any]]:
    args = ["-n", namespace, "get", kinds] + (["-l", selector] if selector else [])
    return kubectl_json(*args)["items"]


def _create_secret(namespace: str, name: str, data: dict[str, str]) -> None:
    # stringData through stdin: the value is never on a command line.
    kubectl_run(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque",
                "stringData": data,
            }
        ),
    )


# ---- (a) the Hugging Face token -------------------------------------------------------------------------------------


def test_hf_token_only_travels_as_a_secret_key_ref(operator, namespace):
    token = "hf_" + secrets.token_urlsafe(24)
    _create_secret(namespace, "hf", {"token": token})
    log_offset = len(operator.log_text())
    # The compile cache is on, so the token also goes to the bake Job.
    apply_qd(
        namespace,
        "gated",
        {
            "model": {"name": "Qwen/Qwen3-8B", "source": {"tokenSecretRef": {"name": "hf"}}},
            "gpu": {"product": H100},
            "serving": {"maxModelLen": 8192},
        },
    )
    qd = wait_for("gated Ready", cond_is(namespace, "gated", "Ready", "True"), timeout=120)

    sts = kubectl_json("-n", namespace, "get", "statefulset", "gated")
    jobs = _all(namespace, "jobs", "app.kubernetes.io/name=qwen-compile-cache")
    pods = _all(namespace, "pods")
    assert len(jobs) == 1 and pods
    ref = {"secretKeyRef": {"name": "hf", "key": "token"}}
    for kind, obj in [("StatefulSet", sts), ("Job", jobs[0])] + [("Pod", p) for p in pods]:
        tmpl = obj["spec"] if kind == "Pod" else obj["spec"]["template"]["spec"]
        for c in tmpl.get("initContainers", []) + tmpl["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            if c["name"] in ("vllm", "bake"):
                assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": ref}, (kind, env.get("HF_TOKEN"))
            assert all("value" not in e for n, e in env.items() if n == "HF_TOKEN")
            assert not any(token in a for a in c.get("args", []) + c.get("command", []))
        assert token not in json.dumps(obj), f"token value inside the {kind}"
    qd = get_qd(namespace, "gated")
    assert token not in json.dumps(qd), "token value in the QwenDeployment (spec or status)"
    assert "HF_TOKEN" not in qd["status"]["vllmCommand"] and "--hf-token" not in qd["status"]["vllmCommand"]
    events = kubectl_json("-n", namespace, "get", "events")["items"]
    assert events and token not in json.dumps(events)
    assert any(e["reason"] == "AllReplicasReady" for e in events)  # the operator did post events here
    log = operator.log_text()[log_offset:]
    assert f"{namespace}/gated" in log  # the log covers this deployment...
    assert token not in log  # ...and never its token
    # Every other object in the namespace (Services, PVC, ...) is free of it too.
    everything = kubectl_json("-n", namespace, "get", "all,pvc,configmaps")
    assert token not in json.dumps(everything)


@pytest.mark.parametrize("form", ["flag-then-value", "flag-space-value", "flag-equals-value", "env-literal"])
def test_token_typed_into_the_spec_is_refused_without_echoing_it(operator, namespace, form):
    """The usual mistakes: the token as an extra vLLM argument, or as a literal env value. The spec is refused,
    and the refusal (status, events, operator log: read by many more people than the spec) does not repeat it."""
    token = "hf_" + secrets.token_urlsafe(24)
    serving = {
        "flag-then-value": {"extraArgs": ["--hf-token", token]},
        "flag-space-value": {"extraArgs": [f"--hf-token {token}"]},
        "flag-equals-value": {"extraArgs": [f"--hf-token={token}"]},
        "env-literal": {"env": [{"name": "HUGGING_FACE_HUB_TOKEN", "value": token}]},
    }[form]
    log_offset = len(operator.log_text())
    res = apply_qd(
        namespace,
        "leaky",
        {
            "model": {"name": "Qwen/Qwen3-8B"},
            "gpu": {"product": H100},
            "compileCache": {"enabled": False},
            "serving": serving,
        },
    )
    assert res.returncode == 0, res.stderr
    qd = wait_for("leaky refused", cond_is(namespace, "leaky", "Validated", "False"), timeout=30)
    assert qd["status"]["phase"] == "Invalid"
    assert kubectl_json("-n", namespace, "get", "statefulset", "leaky", check=False) is None
    events = kubectl_json("-n", namespace, "get", "events")["items"]
    assert any(e["involvedObject"]["name"] == "leaky" and e["type"] == "Warning" for e in events)
    assert token not in json.dumps(qd["status"]), f"status repeats the token: {condition(qd, 'Validated')}"
    assert token not in json.dumps(events), "an event repeats the token"
    assert token not in operator.log_text()[log_offset:], "the operator log repeats the token"


# ---- (b) pod security ---------------------------------------------------------------------------------------------


def _check_pod_spec(where: str, pod: dict[str, Any]) -> None:
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
    assert pod.get("automountServiceAccountToken") is False, where
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), (where, host)
    assert not [v for v in pod.get("volumes", []) if "hostPath" in v], where
    containers = pod.get("initContainers", []) + pod["containers"]
    assert containers
    for c in containers:
        sc = c.get("securityContext") or {}
        assert sc.get("privileged") in (None, False), (where, c["name"])
        assert sc.get("allowPrivilegeEscalation") is False, (where, c["name"])
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], (where, c["name"])
        assert not sc.get("capabilities", {}).get("add"), (where, c["name"])
        assert not [p for p in c.get("ports", []) if p.get("hostPort")], (where, c["name"])


def test_vllm_pods_run_unprivileged_under_pod_security_baseline(operator, namespace):
    kubectl_run(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    apply_qd(
        namespace,
        "locked",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "serving": {"maxModelLen": 8192}},
    )  # compile cache on: bake Job + init container
    wait_for("Ready under enforce=baseline", cond_is(namespace, "locked", "Ready", "True"), timeout=120)
    sts = kubectl_json("-n", namespace, "get", "statefulset", "locked")
    assert sts["spec"]["template"]["spec"]["initContainers"], "the cache-seeding init container is checked too"
    _check_pod_spec("StatefulSet", sts["spec"]["template"]["spec"])
    for job in _all(namespace, "jobs", "app.kubernetes.io/name=qwen-compile-cache"):
        _check_pod_spec("bake Job", job["spec"]["template"]["spec"])
    pods = _all(namespace, "pods")
    assert {p["metadata"].get("labels", {}).get("app.kubernetes.io/name") for p in pods} >= {
        "qwen-vllm",
        "qwen-compile-cache",
    }
    for p in pods:
        _check_pod_spec(f"pod {p['metadata']['name']}", p["spec"])
    # The admission check is live: a privileged pod is refused in this namespace.
    res = kubectl_run(
        "-n",
        namespace,
        "run",
        "priv",
        "--image=busybox",
        "--dry-run=server",
        "--overrides",
        json.dumps(
            {"spec": {"containers": [{"name": "priv", "image": "busybox", "securityContext": {"privileged": True}}]}}
        ),
        check=False,
    )
    assert res.returncode != 0 and "baseline" in res.stderr, res.stderr


# ---- (c) namespace isolation ----------------------------------------------------------------------------------------


@pytest.fixture
def other_namespace(namespace: str) -> Any:
    name = f"{namespace[:50]}-b{uuid.uuid4().hex[:4]}"
    kubectl_run("create", "namespace", name)
    kubectl_run("label", "namespace", name, "qwen-operator.e2e/test=true")
    wait_for(
        "default ServiceAccount",
        lambda: kubectl_json("-n", name, "get", "serviceaccount", "default", check=False),
        timeout=30,
    )
    yield name
    kubectl_run("delete", "namespace", name, "--wait=false", check=False)


def test_deployments_stay_in_their_namespace(operator, namespace, other_namespace, local_cluster):
    spec = {"model": {"name": "Qwen/Qwen3-0.6B"}, "gpu": {"product": H100}, "serving": {"maxModelLen": 4096}}
    # A bystander in B that looks like what the operator would create there.
    kubectl_run("-n", other_namespace, "create", "service", "clusterip", "same", "--tcp=8000:8000")
    bystander = kubectl_json("-n", other_namespace, "get", "service", "same")

    start = local_cluster.audit_mark()
    apply_qd(namespace, "same", spec)
    wait_for("A Ready", cond_is(namespace, "same", "Ready", "True"), timeout=120)
    writes = operator_writes(operator, local_cluster, start)
    mine = [e for e in writes if e.get("objectRef", {}).get("namespace") == namespace]
    assert mine, "the operator's writes are visible in the audit log"
    assert not [e for e in writes if e.get("objectRef", {}).get("namespace") == other_namespace]
    assert (
        kubectl_json("-n", other_namespace, "get", "service", "same")["metadata"]["resourceVersion"]
        == bystander["metadata"]["resourceVersion"]
    ), "the bystander Service in B was changed"
    kubectl_run("-n", other_namespace, "delete", "service", "same")

    sts_a = kubectl_json("-n", namespace, "get", "statefulset", "same")
    start = wait_operator_quiet(operator, local_cluster, namespace)  # A's Ready event lands after its Ready status
    apply_qd(other_namespace, "same", spec)
    wait_for("B Ready", cond_is(other_namespace, "same", "Ready", "True"), timeout=120)
    writes = operator_writes(operator, local_cluster, start)
    assert [e for e in writes if e.get("objectRef", {}).get("namespace") == other_namespace]
    assert not [e for e in writes if e.get("objectRef", {}).get("namespace") == namespace], (
        "B's rollout wrote to namespace A"
    )
    assert (
        kubectl_json("-n", namespace, "get", "statefulset", "same")["metadata"]["generation"]
        == sts_a["metadata"]["generation"]
    )

    qds = {ns: get_qd(ns, "same") for ns in (namespace, other_namespace)}
    uid_ns = {q["metadata"]["uid"]: ns for ns, q in qds.items()}
    assert len(uid_ns) == 2
    assert qds[namespace]["status"]["compileCache"]["key"] == qds[other_namespace]["status"]["compileCache"]["key"]
    # Every managed object in either namespace is owned, in its own namespace, by that namespace's deployment;
    # pods through their StatefulSet or bake Job. (Owner references carry no namespace: an owner is always looked
    # up in the object's own namespace, so a cross-namespace owner would be a dangling one.)
    counted = {ns: Counter() for ns in qds}
    owner_ns = dict(uid_ns)
    for kinds in ("statefulsets,services,jobs,persistentvolumeclaims", "pods"):
        for o in kubectl_json("get", kinds, "-A", "-l", MANAGED)["items"]:
            ns = o["metadata"]["namespace"]
            refs = o["metadata"].get("ownerReferences", [])
            ours = [r for r in refs if r["uid"] in owner_ns]
            if not ours and ns not in qds:
                continue  # another test's object
            where = (o["kind"], ns, o["metadata"]["name"])
            assert ours, f"{where}: managed object in our namespaces without our owner ({refs})"
            for r in ours:
                assert owner_ns[r["uid"]] == ns, f"{where} is owned across namespaces"
                if r["uid"] in uid_ns:
                    assert r["kind"] == "QwenDeployment" and r["name"] == "same", where
            owner_ns[o["metadata"]["uid"]] = ns
            counted[ns][o["kind"]] += 1
    # Each namespace has its own complete set: a compile cache is never shared across namespaces.
    for ns in qds:
        assert counted[ns] == {"StatefulSet": 1, "Service": 2, "Job": 1, "PersistentVolumeClaim": 1, "Pod": 2}, (
            ns,
            counted[ns],
        )


def _walk_properties(schema: dict[str, Any], path: str = "spec") -> list[str]:
    found = []
    for key, sub in (schema.get("properties") or {}).items():
        found.append(f"{path}.{key}")
        found += _walk_properties(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        found += _walk_properties(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _walk_properties(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_spec_cannot_name_another_namespace(operator, namespace, other_namespace):
    crd = kubectl_json("get", "crd", "qwendeployments.qwenops.dev")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = _walk_properties(schema)
    assert len(fields) > 50  # the walk saw the whole spec
    assert [f for f in fields if "namespace" in f.lower()] == []

    # Every object-typed part of the spec is closed (no preserve-unknown-fields where a namespace could hide),
    # except nodeSelector, a string-to-string map of node labels.
    def open_parts(s: dict[str, Any], path: str = "spec") -> list[str]:
        out = [path] if s.get("x-kubernetes-preserve-unknown-fields") else []
        for k, sub in (s.get("properties") or {}).items():
            out += open_parts(sub, f"{path}.{k}")
        if isinstance(s.get("items"), dict):
            out += open_parts(s["items"], f"{path}[]")
        return out

    assert open_parts(schema) == []

    _create_secret(other_namespace, "hf", {"token": "hf_" + secrets.token_urlsafe(16)})
    base = {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}}
    attempts = {
        "spec.namespace": {**base, "namespace": other_namespace},
        "spec.model.namespace": {**base, "model": {"name": "Qwen/Qwen3-8B", "namespace": other_namespace}},
        "spec.model.source.tokenSecretRef.namespace": {
            **base,
            "model": {
                "name": "Qwen/Qwen3-8B",
                "source": {"tokenSecretRef": {"name": "hf", "namespace": other_namespace}},
            },
        },
        "spec.compileCache.storage.namespace": {
            **base,
            "compileCache": {"enabled": True, "storage": {"namespace": other_namespace}},
        },
    }
    for i, (field, spec) in enumerate(attempts.items()):
        res = apply_qd(namespace, f"elsewhere-{i}", spec)
        assert res.returncode != 0 and "unknown field" in res.stderr and "namespace" in res.stderr, (field, res.stderr)
    assert kubectl_json("-n", namespace, "get", "qwendeployments")["items"] == []
    # With field validation off, the apiserver prunes the field: the stored object cannot carry it either.
    doc = {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": "pruned", "namespace": namespace},
        "spec": attempts["spec.namespace"],
    }
    kubectl_run("create", "--validate=false", "-f", "-", input=json.dumps(doc))
    stored = get_qd(namespace, "pruned")
    assert "namespace" not in stored["spec"]
    wait_for("pruned Ready in its own namespace", cond_is(namespace, "pruned", "Ready", "True"), timeout=60)
    assert kubectl_json("-n", other_namespace, "get", "statefulsets,services")["items"] == []
