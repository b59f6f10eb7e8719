"""Faults and bad input against the real control plane and the real operator (issue: survive faults and bad
input, lose nothing).

(a) Specs the operator accepts render objects the apiserver accepts (server-side dry run, written the way the
    operator writes them), and the CRD accepts the QwenDeployments themselves; specs at the edges of what
    validate() accepts either are refused up front or apply cleanly (never "valid" and then unappliable); a name
    too long for the StatefulSet's pods is refused or runs; when the apiserver does refuse a write, the status
    says so.
(b) The operator SIGKILLed in the middle of a reconcile and restarted converges: every deployment Ready, exactly
    one StatefulSet and two Services each, one bake Job per compile-cache key, nothing orphaned.
(c) A GPU node deleted under a Ready deployment: it turns not-Ready/Degraded, and Ready again when the node
    comes back.
(d) Concurrent spec edits racing the operator's status writes: the last write wins, observedGeneration catches
    up, and the operator never hits a 409; a single edit is acted on by its own watch event, not only by the
    periodic resync.
(e) Faults under way: a terminating namespace, an etcd freeze and a control-plane restart, SIGKILL mid-scale,
    garbage and stale metrics from a real Prometheus.
(f) A bake Job that loses its node: retried without counting a failure, explained in status, rolled out after.
Results and timings: docs/reliability.md.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes.client.exceptions import ApiException
from operator_harness import (
    apply_qd,
    cond_is,
    condition,
    get_qd,
    kubectl_json,
    kubectl_run,
    wait_for,
)

from qwen_operator.adapters.kube import Kube
from qwen_operator.domain.validation import validate
from qwen_operator.manifests.cache import ANNOTATION_BAKED
from qwen_operator.manifests.plan import ClusterView, plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_fuzz_spec import valid_specs  # noqa: E402  (the spec strategies of the unit fuzz tests)

H100 = "NVIDIA-H100-80GB-HBM3"
MANAGED = "app.kubernetes.io/managed-by=qwen-operator"
CACHE_KEY_LABEL = "qwenops.dev/compile-cache-key"


# ---- (a) what the operator accepts, the apiserver accepts ---------------------------------------------------------


def sample_valid_specs(n: int, budget: int = 300) -> list[dict[str, Any]]:
    """n distinct specs validate() accepts, spread over `budget` examples of the unit fuzz strategy
    (deterministic; hypothesis starts with small specs and grows them, so the sample is taken evenly across)."""
    found: dict[str, dict[str, Any]] = {}

    @settings(
        max_examples=budget,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(valid_specs())
    def collect(spec: dict[str, Any]) -> None:
        if validate(spec).ok:
            found.setdefault(json.dumps(spec, sort_keys=True), spec)

    collect()
    accepted = list(found.values())
    assert len(accepted) >= n, f"only {len(accepted)} accepted specs in {budget} examples"
    return [accepted[i * len(accepted) // n] for i in range(n)]


def _body(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "generation": 1},
        "spec": spec,
    }


def rendered_objects(name: str, namespace: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything plan() would write for this spec: Services, the compile-cache PVC and bake Job (cache not baked
    yet), and the StatefulSet (cache baked, or no cache)."""
    body = _body(name, namespace, spec)
    baking = plan(body, ClusterView(None, {}, [], 2, 8), "2026-01-01T00:00:00Z")

    def baked(obj_name: str) -> tuple[dict[str, Any], None]:
        return {
            "metadata": {
                "name": obj_name,
                "annotations": {ANNOTATION_BAKED: "true"},
                "ownerReferences": [{"uid": body["metadata"]["uid"]}],
            }
        }, None

    serving = plan(body, ClusterView(None, {}, [], 2, 8, cache_lookup=baked), "2026-01-01T00:00:00Z")
    objs: dict[tuple[str, str], dict[str, Any]] = {}
    for o in baking.apply + baking.ensure_shared + serving.apply + serving.ensure_shared:
        objs[(o["kind"], o["metadata"]["name"])] = o
    return list(objs.values())


def dry_run_apply(kube: Any, objs: list[dict[str, Any]]) -> list[str]:
    """Server-side apply with dryRun=All, exactly as the operator writes (its own adapter: field manager
    qwen-operator, forced, JSON body); the refusals, one line per object."""
    k = Kube(kube)

    def one(obj: dict[str, Any]) -> str | None:
        meta = obj["metadata"]
        try:
            k.apply(obj, dry_run=True)
        except ApiException as e:
            return f"{obj['kind']} {meta['name']}: {e.status} {str(e.body)[:600]}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [r for r in pool.map(one, objs) if r is not None]


def dry_run_create_qds(qds: list[dict[str, Any]]) -> tuple[int, str]:
    """QwenDeployments as a user creates them (kubectl, strict field validation), server dry run:
    (how many were accepted, stderr)."""
    res = kubectl_run(
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": qds}),
        check=False,
    )
    ok = [line for line in res.stdout.splitlines() if line.strip().endswith("created (server dry run)")]
    return len(ok), res.stderr.strip()


def qd_doc(name: str, namespace: str, spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_accepted_specs_render_manifests_the_apiserver_accepts(operator, namespace, kube):
    specs = sample_valid_specs(50)
    qds = [qd_doc(f"fz-{i:02d}", namespace, s) for i, s in enumerate(specs)]
    ok, err = dry_run_create_qds(qds)
    assert err == "" and ok == len(qds), f"CRD refused accepted specs: {err[:3000]}"

    objs: list[dict[str, Any]] = []
    for i, s in enumerate(specs):
        objs += rendered_objects(f"fz-{i:02d}", namespace, s)
    kinds = Counter(o["kind"] for o in objs)
    assert kinds["StatefulSet"] == 50 and kinds["Service"] == 100, kinds
    assert kinds["Job"] >= 1 and kinds["PersistentVolumeClaim"] >= 1, kinds  # the sample covers the bake path
    refused = dry_run_apply(kube, objs)
    assert refused == [], f"apiserver refused {len(refused)} of {len(objs)} rendered objects: {refused[:5]}"
    # Dry run: nothing was created.
    assert kubectl_json("-n", namespace, "get", "qwendeployments,statefulsets,services")["items"] == []


BASE = {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}}

# Inputs at the edges of what the types allow. Each must be refused by validate() (or the CRD), or render objects
# the apiserver accepts: an accepted spec that can never be applied leaves the deployment stuck with no reason.
EDGE_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "toleration-seconds-without-NoExecute": (
        "edge",
        {
            **BASE,
            "gpu": {"product": H100, "tolerations": [{"key": "spot", "operator": "Exists", "tolerationSeconds": 30}]},
        },
    ),
    "toleration-empty": ("edge", {**BASE, "gpu": {"product": H100, "tolerations": [{}]}}),
    "toleration-exists-with-value": (
        "edge",
        {**BASE, "gpu": {"product": H100, "tolerations": [{"key": "spot", "operator": "Exists", "value": "yes"}]}},
    ),
    "toleration-key-with-space": (
        "edge",
        {**BASE, "gpu": {"product": H100, "tolerations": [{"key": "my key", "operator": "Exists"}]}},
    ),
    "gpu-product-over-63-chars": ("edge", {**BASE, "gpu": {"product": "NVIDIA-" + "X" * 60}}),
    "gpu-product-leading-dash": ("edge", {**BASE, "gpu": {"product": "-H100"}}),
    "node-selector-bad-key": ("edge", {**BASE, "gpu": {"product": H100, "nodeSelector": {"pool name": "gpu"}}}),
    "node-selector-bad-value": ("edge", {**BASE, "gpu": {"product": H100, "nodeSelector": {"pool": "gpu pool"}}}),
    "env-repeated": (
        "edge",
        {
            **BASE,
            "serving": {"env": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "NCCL_DEBUG", "value": "WARN"}]},
        },
    ),
    "env-HF_HUB_OFFLINE-with-pvc-source": (
        "edge",
        {
            **BASE,
            "model": {"name": "Qwen/Qwen3-8B", "source": {"type": "pvc", "pvcName": "weights"}},
            "serving": {"env": [{"name": "HF_HUB_OFFLINE", "value": "0"}]},
        },
    ),
    "env-VLLM_FORCE_AOT_LOAD-with-strict-cache": (
        "edge",
        {
            **BASE,
            "compileCache": {"enabled": True, "strict": True},
            "serving": {"env": [{"name": "VLLM_FORCE_AOT_LOAD", "value": "0"}]},
        },
    ),
    "pvc-source-empty-pvcName": (
        "edge",
        {**BASE, "model": {"name": "Qwen/Qwen3-8B", "source": {"type": "pvc", "pvcName": ""}}},
    ),
    "cache-size-zero": ("edge", {**BASE, "compileCache": {"enabled": True, "storage": {"size": "0"}}}),
    "cache-storage-class-not-a-dns-name": (
        "edge",
        {**BASE, "compileCache": {"enabled": True, "storage": {"storageClassName": "Fast_SSD"}}},
    ),
    "token-secret-name-not-a-dns-name": (
        "edge",
        {**BASE, "model": {"name": "Qwen/Qwen3-8B", "source": {"tokenSecretRef": {"name": "HF_Token"}}}},
    ),
    "env-value-outside-the-BMP": (
        "edge",
        {**BASE, "serving": {"env": [{"name": "GREETING", "value": "hi \U0001f642"}]}},
    ),
    "name-with-dot": ("qwen.v3", BASE),
    "name-59-chars": ("q" * 59, BASE),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_specs_are_refused_or_apply_cleanly(operator, namespace, kube, case):
    name, spec = EDGE_CASES[case]
    rep = validate(spec)
    if not rep.ok:
        assert rep.errors[0].message  # refused up front, with a reason: fine
        return
    ok, err = dry_run_create_qds([qd_doc(name, namespace, spec)])
    if not ok:
        assert err  # the apiserver refuses the QwenDeployment itself: fine
        return
    refused = dry_run_apply(kube, rendered_objects(name, namespace, spec))
    assert refused == [], (
        f"validate() accepted {case} ({[p.reason for p in rep.problems] or 'no problems'}) and the CRD accepted it, "
        "but the apiserver refuses what the operator renders for it:\n" + "\n".join(refused)
    )


def test_refused_apply_is_reported_in_status(operator, namespace):
    """When the apiserver refuses what the operator writes (here an admission policy denies StatefulSets in this
    namespace; in the wild a webhook, a policy engine, or an object the apiserver finds invalid), the deployment
    says so in its status, instead of staying without one while the error only reaches the operator's log."""
    policy = f"deny-sts-{namespace}"[:63]
    denial = f"statefulsets are frozen in {namespace} by a test policy"
    docs = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["statefulsets"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": denial, "reason": "Invalid"}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        },
    ]
    kubectl_run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    try:
        # The policy is live once a StatefulSet is refused (policies take a moment to load).
        probe = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "serviceName": "x",
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            },
        }
        wait_for(
            "the policy to deny",
            lambda: (
                denial
                in kubectl_run("create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False).stderr
            ),
            timeout=30,
            interval=0.5,
        )
        apply_qd(namespace, "frozen", BASE)
        seen: list[Any] = [None]

        def reported() -> dict[str, Any] | None:
            qd = get_qd(namespace, "frozen")
            seen[0] = qd.get("status")
            for c in (qd.get("status") or {}).get("conditions", []):
                bad = (c["type"] == "Degraded") == (c["status"] == "True")
                if bad and denial in c.get("message", ""):
                    return qd
            return None

        try:
            wait_for("a condition that carries the apiserver's refusal", reported, timeout=30)
        except AssertionError:
            raise AssertionError(f"the refusal is not reported; status after 30 s: {seen[0]!r}") from None
    finally:
        kubectl_run(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            policy,
            "--ignore-not-found",
            check=False,
        )


def test_quota_refusal_is_reported_and_clears(operator, namespace):
    """A ResourceQuota that leaves no room for the deployment's Services (403 "exceeded quota"; in the wild a GPU
    quota on the namespace, or a full Service IP range, which answers 500): Degraded with the apiserver's words,
    and Ready once the quota is raised, without anyone touching the deployment."""
    kubectl_run("-n", namespace, "create", "quota", "no-services", "--hard=services=0")
    apply_qd(namespace, "squeezed", {**BASE, "compileCache": {"enabled": False}})
    qd = wait_for(
        "Degraded=ApplyForbidden", cond_is(namespace, "squeezed", "Degraded", "True", "ApplyForbidden"), timeout=60
    )
    assert "exceeded quota" in condition(qd, "Degraded")["message"], condition(qd, "Degraded")
    events = kubectl_json("-n", namespace, "get", "events", "--field-selector", "involvedObject.name=squeezed")
    assert any(e["reason"] == "ApplyForbidden" for e in events["items"])
    kubectl_run("-n", namespace, "delete", "quota", "no-services")
    wait_for("Ready after the quota went", cond_is(namespace, "squeezed", "Ready", "True"), timeout=60)
    assert condition(get_qd(namespace, "squeezed"), "Degraded")["status"] == "False"


def test_long_name_is_refused_or_runs(operator, namespace):
    """A StatefulSet's pods carry the label controller-revision-hash=<name>-<10 chars>, at most 63: a name over 52
    characters is a valid QwenDeployment name whose pods the StatefulSet controller can never create."""
    name = "q" * 55
    res = apply_qd(namespace, name, BASE)
    if res.returncode != 0:
        return  # refused by the apiserver: fine
    seen: list[Any] = []

    def settled() -> bool:
        qd = get_qd(namespace, name)
        seen[:] = [(qd.get("status") or {}).get("conditions")]
        v, r = condition(qd, "Validated"), condition(qd, "Ready")
        return bool((v and v["status"] == "False") or (r and r["status"] == "True"))

    try:
        wait_for("refused, or Ready", settled, timeout=30)
    except AssertionError:
        events = kubectl_json("-n", namespace, "get", "events")["items"]
        why = sorted({e["message"][:200] for e in events if e["reason"] == "FailedCreate"})
        raise AssertionError(
            f"a {len(name)}-character name is accepted but never runs; conditions: {seen[0]}; "
            f"StatefulSet controller: {why}"
        ) from None


# ---- (b) SIGKILL mid-reconcile -------------------------------------------------------------------------------------


def _items(namespace: str, kinds: str, selector: str) -> list[dict[str, Any]]:
    return kubectl_json("-n", namespace, "get", kinds, "-l", selector)["items"]


def test_operator_sigkilled_mid_reconcile_converges_without_duplicates(operator, namespace):
    shared = {"model": {"name": "Qwen/Qwen3-0.6B"}, "gpu": {"product": H100}, "serving": {"maxModelLen": 4096}}
    specs = {
        "kill-a": shared,  # a and b share one compile cache
        "kill-b": shared,
        "kill-c": {**shared, "serving": {"maxModelLen": 4096, "maxNumSeqs": 32}},  # its own cache key
        "kill-d": {**shared, "compileCache": {"enabled": False}, "replicas": 2},
        "kill-e": {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
    }
    for s in specs.values():
        assert validate(s).ok
    offset = len(operator.log_text())
    marker = f"{namespace}/"
    kubectl_run(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [qd_doc(n, namespace, s) for n, s in specs.items()]}
        ),
    )
    try:
        # Kill the moment the operator starts writing for this namespace: in the middle of carrying out a plan.
        wait_for(
            "the operator to start applying",
            lambda: any(marker in line and "applying" in line for line in operator.log_text()[offset:].splitlines()),
            timeout=30,
            interval=0.05,
        )
        operator.stop(signal.SIGKILL)
        at_kill = {n: bool((get_qd(namespace, n).get("status") or {}).get("conditions")) for n in specs}
    finally:
        operator.start()
    print(f"status written before the kill: {at_kill}")

    for n in specs:
        wait_for(f"{n} Ready after the restart", cond_is(namespace, n, "Ready", "True"), timeout=120)
    uids = {}
    for n in specs:
        qd = get_qd(namespace, n)
        uids[qd["metadata"]["uid"]] = n
        st = qd["status"]
        assert st["observedGeneration"] == qd["metadata"]["generation"] and st["phase"] == "Ready", st
        assert condition(qd, "Validated")["status"] == "True"
        sel = f"app.kubernetes.io/instance={n}"
        assert len(_items(namespace, "statefulsets", sel)) == 1
        assert len(_items(namespace, "services", sel)) == 2
        want = specs[n].get("replicas", 1)
        assert st["readyReplicas"] == want and len(_items(namespace, "pods", sel)) == want
    a, b, c = (get_qd(namespace, n)["status"]["compileCache"]["key"] for n in ("kill-a", "kill-b", "kill-c"))
    assert a == b != c
    for kind in ("jobs", "persistentvolumeclaims"):
        objs = _items(namespace, kind, CACHE_KEY_LABEL)
        per_key = Counter(o["metadata"]["labels"][CACHE_KEY_LABEL] for o in objs)
        assert per_key == {a: 1, c: 1}, f"{kind} per cache key: {per_key}"
        shared_obj = next(o for o in objs if o["metadata"]["labels"][CACHE_KEY_LABEL] == a)
        owners = sorted(uids.get(r["uid"], "?") for r in shared_obj["metadata"]["ownerReferences"])
        assert owners == ["kill-a", "kill-b"], owners
    # No orphans: every managed object in the namespace is owned by one of these deployments.
    for o in _items(namespace, "statefulsets,services,jobs,persistentvolumeclaims", MANAGED):
        refs = [r for r in o["metadata"].get("ownerReferences", []) if r["kind"] == "QwenDeployment"]
        assert refs and all(r["uid"] in uids for r in refs), (o["kind"], o["metadata"]["name"], refs)


# ---- (c) a GPU node goes away and comes back ------------------------------------------------------------------------


def test_gpu_node_loss_degrades_then_recovers(operator, namespace, local_cluster):
    spec = {
        "model": {"name": "Qwen/Qwen3-4B-AWQ"},
        "quantization": "awq_marlin",
        "gpu": {"product": "A10G"},
        "replicas": 2,
        "serving": {"maxModelLen": 8192},
        "compileCache": {"enabled": False},
        "resources": {"cpu": "8", "memory": "48Gi"},
    }  # a g5.4xlarge has 62Gi allocatable
    rep = validate(spec)
    assert rep.ok, [(p.reason, p.message) for p in rep.problems]
    apply_qd(namespace, "a10g", spec)
    wait_for("Ready on both A10G nodes", cond_is(namespace, "a10g", "Ready", "True"), timeout=90)
    pods = _items(namespace, "pods", "app.kubernetes.io/instance=a10g")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["a10g-0", "a10g-1"]
    try:
        t0 = time.monotonic()
        local_cluster.delete_node("a10g-1")

        def hurt() -> dict[str, Any] | None:
            qd = get_qd(namespace, "a10g")
            ready, degraded = condition(qd, "Ready"), condition(qd, "Degraded")
            if ready["status"] == "False" or degraded["status"] == "True":
                return qd
            return None

        qd = wait_for("Ready=False or Degraded=True without the node", hurt, timeout=120)
        lost_after = time.monotonic() - t0
        assert qd["status"]["phase"] in ("Degraded", "Progressing"), qd["status"]["phase"]
        assert qd["status"]["readyReplicas"] < 2
        print(
            f"node loss visible after {lost_after:.0f}s: Ready={condition(qd, 'Ready')['reason']} "
            f"Degraded={condition(qd, 'Degraded')['reason']}"
        )
        local_cluster.add_node("a10g-1")
        qd = wait_for("Ready again with the node back", cond_is(namespace, "a10g", "Ready", "True"), timeout=90)
        assert qd["status"]["readyReplicas"] == 2 and condition(qd, "Degraded")["status"] == "False"
        pods = _items(namespace, "pods", "app.kubernetes.io/instance=a10g")
        assert sorted(p["spec"]["nodeName"] for p in pods) == ["a10g-0", "a10g-1"]
    finally:
        local_cluster.reset_nodes()


# ---- (d) concurrent edits vs. status writes -------------------------------------------------------------------------


def test_concurrent_spec_edits_race_status_writes(operator, namespace):
    apply_qd(
        namespace,
        "race",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
    )
    wait_for("Ready", cond_is(namespace, "race", "Ready", "True"), timeout=60)
    offset = len(operator.log_text())
    writes: list[tuple[int, str, int]] = []  # (generation after the write, field, value)
    errors: list[str] = []
    lock = threading.Lock()

    def editor(field: str, values: list[int]) -> None:
        for v in values:
            patch = (
                {"spec": {"serving": {"maxNumSeqs": v}}}
                if field == "maxNumSeqs"
                else {"spec": {"startupTimeoutSeconds": v}}
            )
            res = kubectl_run(
                "-n",
                namespace,
                "patch",
                "qwendeployment",
                "race",
                "--type=merge",
                "-p",
                json.dumps(patch),
                "-o",
                "json",
                check=False,
            )
            with lock:
                if res.returncode != 0:
                    errors.append(res.stderr)
                else:
                    writes.append((json.loads(res.stdout)["metadata"]["generation"], field, v))

    # Two editors on different fields, then two on the same field, all while the operator writes status.
    rounds = [
        [("maxNumSeqs", [8, 16, 24, 32, 40]), ("startupTimeoutSeconds", [600, 660, 720, 780, 840])],
        [("maxNumSeqs", [100, 101, 102, 103]), ("maxNumSeqs", [200, 201, 202, 203])],
    ]
    for r in rounds:
        threads = [threading.Thread(target=editor, args=a) for a in r]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert errors == [], errors
    assert len(writes) == 18 and len({g for g, _, _ in writes}) == 18, "every edit is its own generation"
    last = {f: v for _, f, v in sorted(writes)}
    qd = get_qd(namespace, "race")
    assert qd["spec"]["serving"]["maxNumSeqs"] == last["maxNumSeqs"]
    assert qd["spec"]["startupTimeoutSeconds"] == last["startupTimeoutSeconds"] == 840
    final_gen = qd["metadata"]["generation"]
    assert final_gen == max(g for g, _, _ in writes)

    def caught_up() -> dict[str, Any] | None:
        q = get_qd(namespace, "race")
        return (
            q
            if q["status"].get("observedGeneration") == final_gen and condition(q, "Ready")["status"] == "True"
            else None
        )

    qd = wait_for("observedGeneration to catch up", caught_up, timeout=60)
    assert all(c["observedGeneration"] == final_gen for c in qd["status"]["conditions"])
    assert qd["metadata"]["generation"] == final_gen, "status writes must not bump the generation"
    sts = kubectl_json("-n", namespace, "get", "statefulset", "race")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-num-seqs") + 1] == str(last["maxNumSeqs"])
    assert f"--max-num-seqs {last['maxNumSeqs']}" in qd["status"]["vllmCommand"]
    log = operator.log_text()[offset:]
    # (the timestamp is cut off first: its milliseconds can read 409)
    bad = [line for line in log.splitlines() if re.search(r"\b409\b|conflict", line.split(" ", 2)[-1], re.I)]
    assert bad == [], bad[:5]


def test_spec_edit_is_acted_on_by_its_own_watch_event(operator, namespace):
    """An edit reaches the operator as a watch event and is acted on at once, not only at the next periodic
    resync (30 s by default; 5 s in these tests)."""
    apply_qd(
        namespace,
        "edit",
        {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
    )
    wait_for("Ready", cond_is(namespace, "edit", "Ready", "True"), timeout=60)
    time.sleep(2)  # idle: the operator's own last status write has come back through the watch
    offset = len(operator.log_text())
    kubectl_run(
        "-n",
        namespace,
        "patch",
        "qwendeployment",
        "edit",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"serving": {"maxNumSeqs": 48}}}),
    )
    pat = re.compile(rf"{re.escape(namespace)}/edit: applying StatefulSet edit \((\S+)\)")
    trigger = wait_for(
        "the StatefulSet re-applied",
        lambda: next((m.group(1) for m in pat.finditer(operator.log_text()[offset:])), None),
        timeout=30,
        interval=0.2,
    )
    assert trigger == "deployment-event", f"the edit was only picked up by {trigger}"


def test_terminating_namespace_is_left_alone(operator, namespace, local_cluster):
    """A namespace being deleted refuses new objects (403 NamespaceTerminating) while its QwenDeployment may still
    be listed: the namespace controller deletes the Services first, and here an admission policy holds the
    deployment itself back, as a slow finalizer would. The operator must notice once and stop re-creating the
    children, not collect a 403 at every resync until the namespace is gone."""
    from operator_harness import operator_writes, wait_operator_quiet

    apply_qd(
        namespace,
        "doomed",
        {"model": {"name": "Qwen/Qwen3-0.6B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
    )
    wait_for("Ready", cond_is(namespace, "doomed", "Ready", "True"), timeout=90)
    hold = f"e2e-hold-{uuid.uuid4().hex[:6]}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": hold},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["qwenops.dev"],
                        "apiVersions": ["*"],
                        "operations": ["DELETE"],
                        "resources": ["qwendeployments"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "held by an e2e test"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": hold},
        "spec": {
            "policyName": hold,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }
    kubectl_run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]}))
    try:
        wait_for(
            "the policy to hold deletes",
            lambda: (
                "held by an e2e test"
                in kubectl_run(
                    "-n", namespace, "delete", "qwendeployment", "doomed", "--dry-run=server", check=False
                ).stderr
            ),
            timeout=30,
        )
        start = local_cluster.audit_mark()
        kubectl_run("delete", "namespace", namespace, "--wait=false")
        wait_for(
            "the Services to be deleted",
            lambda: not kubectl_json("-n", namespace, "get", "services", "-l", MANAGED)["items"],
            timeout=60,
        )
        # Quiet for 12 s (more than two 5 s resyncs) while the deployment is still there.
        wait_operator_quiet(operator, local_cluster, namespace, quiet_s=12, timeout=60)
        assert get_qd(namespace, "doomed")["metadata"].get("deletionTimestamp") is None
        phase = kubectl_json("get", "namespace", namespace)["status"]["phase"]
        assert phase == "Terminating", phase
        refused = [
            e
            for e in operator_writes(operator, local_cluster, start, namespace)
            if e.get("responseStatus", {}).get("code") == 403
        ]
        # The first try after the Services went is refused (that is how the operator learns); a handful at most.
        assert 1 <= len(refused) <= 3, [(e["verb"], e["objectRef"].get("name")) for e in refused]
    finally:
        kubectl_run("delete", "validatingadmissionpolicybinding", hold, "--ignore-not-found")
        kubectl_run("delete", "validatingadmissionpolicy", hold, "--ignore-not-found")
    wait_for(
        "the namespace to go",
        lambda: kubectl_run("get", "namespace", namespace, check=False).returncode != 0,
        timeout=120,
        interval=2,
    )


def test_operator_rides_out_an_etcd_freeze_and_a_control_plane_restart(operator, namespace, local_cluster):
    """etcd frozen (every apiserver read and write stalls), then the whole control plane stopped and started
    again: the same operator process reconnects its watches and acts on what changed meanwhile, without
    duplicates. (The session's later tests run on this same operator, after the restart.)"""

    def sts_args(name: str) -> list[str]:
        return kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]

    def converged(name: str, seqs: int) -> Any:
        qd = get_qd(namespace, name)
        ok = (
            qd.get("status", {}).get("observedGeneration") == qd["metadata"]["generation"]
            and (condition(qd, "Ready") or {}).get("status") == "True"
        )
        args = sts_args(name)
        if ok and args[args.index("--max-num-seqs") + 1] == str(seqs):
            return True
        sts = kubectl_json("-n", namespace, "get", "statefulset", name)
        raise AssertionError(
            f"{name}: generation {qd['metadata']['generation']}, status "
            f"{json.dumps(qd.get('status', {}).get('conditions'))[:600]}; StatefulSet status "
            f"{sts.get('status')} args {args[args.index('--max-num-seqs') + 1]}"
        )

    spec = {
        "model": {"name": "Qwen/Qwen3-0.6B"},
        "gpu": {"product": H100},
        "compileCache": {"enabled": False},
        "serving": {"maxNumSeqs": 16},
    }
    apply_qd(namespace, "steady", spec)
    wait_for("steady Ready", lambda: converged("steady", 16), timeout=90)

    local_cluster.pause_etcd(12)
    kubectl_run(
        "-n",
        namespace,
        "patch",
        "qwendeployment",
        "steady",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"serving": {"maxNumSeqs": 24}}}),
    )
    wait_for("the edit after the etcd freeze", lambda: converged("steady", 24), timeout=90)

    local_cluster.restart(down_s=8)
    kubectl_run(
        "-n",
        namespace,
        "patch",
        "qwendeployment",
        "steady",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"serving": {"maxNumSeqs": 32}}}),
    )
    # With the compile cache: its PVC, the local provisioner and the bake Job all have to work after the restart.
    apply_qd(namespace, "newcomer", {**spec, "serving": {"maxNumSeqs": 8}, "compileCache": {"enabled": True}})
    # Kopf re-lists after its watch broke; the resync loop (5 s here) is the backstop.
    wait_for("the edit after the restart", lambda: converged("steady", 32), timeout=120)
    wait_for("a deployment created after the restart", lambda: converged("newcomer", 8), timeout=120)
    assert operator.alive(), "the operator died (or was restarted) across the freeze and the restart"
    for kind, per in (("statefulsets", 1), ("services", 2)):
        names = Counter(o["metadata"]["labels"].get("qwenops.dev/deployment") for o in _items(namespace, kind, MANAGED))
        assert names == {"steady": per, "newcomer": per}, (kind, names)


def start_fast_autoscaling(namespace: str, name: str, max_replicas: int, down_window_s: int) -> None:
    """A deployment autoscaled every 2 s on 1 waiting request per replica, no warm pool; returns once it is Ready at
    1 replica with AutoscalingActive=True."""
    apply_qd(
        namespace,
        name,
        {
            **BASE,
            "autoscaling": {
                "enabled": True,
                "minReplicas": 1,
                "maxReplicas": max_replicas,
                "warmPool": 0,
                "targetQueuePerReplica": 1,
                "intervalSeconds": 2,
                "scaleDownStabilizationSeconds": down_window_s,
            },
        },
    )
    wait_for(
        "autoscaling active at 1",
        lambda: (
            cond_is(namespace, name, "AutoscalingActive", "True")()
            and condition(get_qd(namespace, name), "Ready")["status"] == "True"
        ),
        timeout=90,
    )


def test_operator_sigkilled_mid_scale_applies_each_decision_once(operator, namespace, tmp_path):
    """A real Prometheus scrapes a metrics endpoint whose queue the test sets. The queue jumps; the operator is
    SIGKILLed the moment it logs its scale-up decision (status written, StatefulSet maybe not yet), and started
    again. It resumes from the decision in status: the StatefulSet reaches it, no decision is taken twice (every
    scaling Event goes from the size the previous one reached). Then the queue turns to garbage (NaN): the size
    holds and AutoscalingActive=False says why. Then it empties: the restarted operator scales down."""
    from operator_harness import PROMETHEUS_PORT
    from prometheus_local import Prometheus, ScriptedVllmMetrics, scrape_config

    name = "midscale"
    metrics = ScriptedVllmMetrics()
    prom = Prometheus(
        scrape_config(namespace, name, metrics.port, replicas=4),
        PROMETHEUS_PORT,
        tmp_path,
        host=operator.prometheus_host,
    )
    prom.start()
    try:
        start_fast_autoscaling(namespace, name, max_replicas=4, down_window_s=10)
        offset = len(operator.log_text())
        decided = re.compile(rf"{re.escape(namespace)}/{name}: (\d+) -> (\d+) replicas \(ScaleUp")
        metrics.waiting, metrics.running, metrics.kv = 12.0, 2.0, 0.5
        try:
            m = wait_for(
                "the scale-up decision", lambda: decided.search(operator.log_text()[offset:]), timeout=60, interval=0.05
            )
            operator.stop(signal.SIGKILL)
        finally:
            operator.start()
        target = int(m.group(2))
        sts_at_kill = kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["replicas"]
        print(f"killed after deciding 1 -> {target}; StatefulSet at {sts_at_kill} replicas")
        auto = get_qd(namespace, name)["status"]["autoscaling"]
        assert auto["desiredReplicas"] == target, "decision lost"
        # a Qwen3-8B on an H100 gets the operator's service-rate estimate by default (status says so)
        assert auto["serviceRatePrior"]["source"] == "estimate", auto.get("serviceRatePrior")
        wait_for(
            "the StatefulSet at the decided size",
            lambda: kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["replicas"] >= target,
            timeout=60,
        )
        time.sleep(8)  # the restarted operator keeps deciding on the same high queue

        # Garbage from the metrics source (NaN queue): hold the size, say why, decide nothing on it.
        held = kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["replicas"]
        metrics.waiting = float("nan")
        qd = wait_for(
            "AutoscalingActive=False on garbage",
            cond_is(namespace, name, "AutoscalingActive", "False", "HoldMetricsInvalid"),
            timeout=30,
        )
        assert "garbage" in condition(qd, "AutoscalingActive")["message"], condition(qd, "AutoscalingActive")
        time.sleep(12)  # longer than the scale-down window
        assert kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["replicas"] == held

        metrics.waiting, metrics.running, metrics.kv = 0.0, 0.0, 0.0
        wait_for(
            "scale-down after the queue emptied",
            lambda: kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["replicas"] == 1,
            timeout=180,
            interval=2,
        )
        events = kubectl_json("-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}")
        # In creation order: an Event's resourceVersion is the etcd revision that created it.
        steps = sorted(
            (int(e["metadata"]["resourceVersion"]), e["message"])
            for e in events["items"]
            if re.match(r"\d+ -> \d+ replicas", e["message"])
        )  # ScaleUp*, ScaleDown*, ClampedToMax
        sizes = [tuple(int(x) for x in re.match(r"(\d+) -> (\d+) replicas", msg).groups()) for _, msg in steps]
        # The kill may land between the status write and the decision's Event (Events are best effort): then the
        # chain starts at the decided size.
        assert sizes and (sizes[0] == (1, target) or sizes[0][0] == target), (target, sizes)
        for (_, reached), (start, _) in zip(sizes, sizes[1:]):
            assert start == reached, f"a decision started from a stale size (taken twice?): {sizes}"
        assert max(b for _, b in sizes) <= 4 and sizes[-1][1] == 1, sizes
    finally:
        prom.stop()
        metrics.close()


def test_stale_metrics_hold_the_size_and_say_why(operator, namespace, tmp_path):
    """Prometheus keeps answering, with old data: the exporter's samples stop moving (a frozen explicit timestamp,
    as from a stuck exporter or a federation that stopped). The last sample said "queue empty", so a policy that
    trusted it would scale the fleet down once the scale-down window passed; once the data is older than the
    policy's limit (4 intervals, at least 30 s) the size holds and AutoscalingActive=False says why. Fresh data
    again: the empty queue is believed and the fleet scales down."""
    from operator_harness import PROMETHEUS_PORT
    from prometheus_local import Prometheus, ScriptedVllmMetrics, scrape_config

    name = "stale"
    metrics = ScriptedVllmMetrics()
    prom = Prometheus(
        scrape_config(namespace, name, metrics.port, replicas=3),
        PROMETHEUS_PORT,
        tmp_path,
        host=operator.prometheus_host,
    )
    prom.start()

    def replicas() -> int:
        return int(kubectl_json("-n", namespace, "get", "statefulset", name)["spec"]["replicas"])

    try:
        start_fast_autoscaling(namespace, name, max_replicas=3, down_window_s=60)
        metrics.waiting, metrics.running, metrics.kv = 12.0, 2.0, 0.5
        wait_for("scaled up to 3 on the queue", lambda: replicas() == 3, timeout=60)

        metrics.waiting, metrics.running, metrics.kv = 0.0, 0.0, 0.0
        # Frozen one second ahead: Prometheus stamps a scrape with its scheduled time, which can be a little after
        # the moment the endpoint answered; a frozen sample older than the last one would be dropped (out of
        # order), and a dropped series goes stale at once (no data: a different case).
        metrics.frozen_at = time.time() + 1.0
        t0 = time.monotonic()
        qd = wait_for(
            "AutoscalingActive=False on stale data",
            cond_is(namespace, name, "AutoscalingActive", "False", "HoldMetricsStale"),
            timeout=90,
        )
        stale_after = time.monotonic() - t0
        msg = condition(qd, "AutoscalingActive")["message"]
        assert re.search(r"metrics are \d+s old \(limit 30s\)", msg), msg
        assert stale_after >= 25, f"called stale after {stale_after:.0f}s, before the 30 s limit"
        time.sleep(max(0.0, 80 - (time.monotonic() - t0)))  # past the 60 s scale-down window
        assert replicas() == 3, "scaled on stale data"
        assert condition(get_qd(namespace, name), "AutoscalingActive")["reason"] == "HoldMetricsStale"
        print(f"stale after {stale_after:.0f}s; held 3 replicas for {time.monotonic() - t0:.0f}s")

        metrics.frozen_at = None
        wait_for("active again on fresh data", cond_is(namespace, name, "AutoscalingActive", "True"), timeout=30)
        wait_for("scale-down on the fresh empty queue", lambda: replicas() < 3, timeout=150, interval=2)
    finally:
        prom.stop()
        metrics.close()


# ---- (f) a bake Job that loses its node -------------------------------------------------------------------------


def test_bake_that_loses_its_node_is_retried_and_the_rollout_proceeds(operator, namespace, local_cluster):
    """The only L40S node goes away while the bake runs on it (KWOK keeps Job pods on "held-" nodes running:
    e2e/cluster/kwok-stages.yaml). The pod garbage collector deletes the lost pod (~40 s, as on a real cluster);
    the Job replaces it without counting a failure (podFailurePolicy: DisruptionTarget -> Ignore), a Warning Event
    records the disruption, the replacement cannot be scheduled and the condition says so; the rollout waits. A new L40S node arrives: the bake finishes
    there and the deployment rolls out with the cache."""
    spec = {"model": {"name": "Qwen/Qwen3-0.6B"}, "gpu": {"product": "NVIDIA-L40S"}}
    assert validate(spec).ok
    bake_sel = "app.kubernetes.io/name=qwen-compile-cache"

    def cc_message() -> str:
        return str(condition(get_qd(namespace, "lost"), "CompileCacheReady").get("message", ""))

    local_cluster.add_node("held-l40s-0")
    try:
        apply_qd(namespace, "lost", spec)
        wait_for(
            "bake pod running on held-l40s-0",
            lambda: any(
                p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == "held-l40s-0"
                for p in _items(namespace, "pods", bake_sel)
            ),
            timeout=90,
        )
        wait_for("status says where the bake runs", lambda: "running on node held-l40s-0" in cc_message(), timeout=30)
        assert kubectl_json("-n", namespace, "get", "statefulset", "lost", check=False) is None

        t0 = time.monotonic()
        local_cluster.delete_node("held-l40s-0")
        wait_for(
            "the condition explains the stuck replacement", lambda: "cannot be scheduled" in cc_message(), timeout=150
        )
        qd = get_qd(namespace, "lost")
        print(f"replacement reported after {time.monotonic() - t0:.0f}s: {cc_message()}")
        assert condition(qd, "CompileCacheReady")["reason"] == "Baking"
        assert condition(qd, "Ready")["reason"] == "WaitingForCompileCache"
        assert kubectl_json("-n", namespace, "get", "statefulset", "lost", check=False) is None
        (job,) = _items(namespace, "jobs", bake_sel)
        assert not job["status"].get("failed"), f"the lost node was counted as a failed bake: {job['status']}"
        # the disruption stays on record after the pod is gone: one Warning Event on the deployment
        events = kubectl_json(
            "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=lost,reason=BakePodDisrupted"
        )["items"]
        assert len(events) == 1 and "held-l40s-0" in events[0]["message"], [e["message"] for e in events]

        local_cluster.add_node("l40s-0")
        qd = wait_for("Ready with the cache", cond_is(namespace, "lost", "Ready", "True"), timeout=120)
        assert condition(qd, "CompileCacheReady")["reason"] == "Ready"
        (job,) = _items(namespace, "jobs", bake_sel)
        assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), job["status"]
        pods = _items(namespace, "pods", "app.kubernetes.io/instance=lost")
        assert [p["spec"]["nodeName"] for p in pods] == ["l40s-0"]
        init = pods[0]["spec"]["initContainers"][0]
        assert init["name"] == "seed-compile-cache"
    finally:
        local_cluster.delete_node("held-l40s-0")
        local_cluster.delete_node("l40s-0")
