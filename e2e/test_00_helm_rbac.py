"""The Helm chart against the real local cluster, and the operator running with ONLY the chart's RBAC.

`helm install` puts the chart into a fresh namespace (the operator Deployment's pod is simulated by KWOK, so it does
not really run); the REAL operator then runs here as a local process under the chart's ServiceAccount identity (a
token from `kubectl create token`), watching only that namespace, and must bring a QwenDeployment to Ready without
a single 403. The account may read QwenDeployments and patch only their status subresource: the operator never
patches the object itself (no per-object Kopf timer, so no Kopf finalizer) and needs no access to CRDs or
namespaces (Kopf's cluster scanning is off). `kubectl auth can-i` checks what the account can and cannot do;
`helm upgrade` and `helm uninstall` close the lifecycle (the CRD and the user's QwenDeployment survive the
uninstall).

This module runs before the other operator tests on purpose (test_00_...): the session-scoped `operator` fixture of
operator_harness runs an admin operator for ALL namespaces, which would also reconcile this test's namespace and
mask missing permissions. The module never uses that fixture, refuses to run while another qwen-operator process
runs on this machine, and stops its own operator in every case. (OperatorProcess runs with QWEN_HEALTH_PORT=0 and
a free QWEN_METRICS_PORT, so local operators do not collide on ports.)
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import OperatorProcess, kubectl_run

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "qwen-operator"
CRD_NAME = "qwendeployments.qwenops.dev"
RELEASE = "qwen-op"
SA = f"{RELEASE}-qwen-operator"  # the chart's fullname for this release name
H100 = "NVIDIA-H100-80GB-HBM3"
KC = Callable[..., subprocess.CompletedProcess[str]]


# ---- helpers -----------------------------------------------------------------------------------------------------


def other_operator_pids() -> list[tuple[int, int, str]]:
    """(pid, parent pid, cmdline) of qwen-operator processes on this machine (a read-only look at /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if "qwen_operator.main" in argv or any(os.path.basename(a) == "qwen-operator" for a in argv[:2]):
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            found.append((int(d.name), ppid, " ".join(argv)))
    return found


@pytest.fixture(scope="module", autouse=True)
def no_other_operator(local_cluster: Any) -> None:
    if local_cluster.is_local:
        # Operator pods this suite installs, left by a run that was killed before its teardown, and the one
        # `make demo` leaves running: the tests need the cluster's only operator to be the one they start.
        import real_node

        for namespace, release in real_node.SUITE_RELEASES:
            if real_node.remove_release(namespace, release):
                print(f"removed the operator release {namespace}/{release} left on the local cluster")
        for namespace in real_node.DEMO_NAMESPACES:
            kubectl_run("delete", "namespace", namespace, "--ignore-not-found", "--timeout=300s", check=False)
    others = other_operator_pids()
    mine = [o for o in others if o[1] == os.getpid()]
    if mine:
        pytest.fail(
            f"an operator started by this pytest session is running ({mine}): the session `operator` "
            "fixture watches all namespaces and would mask missing RBAC; this module must run before it"
        )
    if others:
        pytest.skip(
            f"another qwen-operator runs on this machine ({others[0][0]}: {others[0][2][:80]}): it would "
            "reconcile this test's namespace too and mask missing permissions"
        )


def helm_bin() -> str:
    path = shutil.which("helm")
    if not path:
        pytest.fail("helm not found: the tools of e2e/cluster/build-tools.sh (kubeconfig fixture puts them on PATH)")
    return path


@pytest.fixture(scope="module")
def helm(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    binary = helm_bin()

    def run(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    return run


def can_i(kubectl: KC, sa_user: str, *args: str) -> bool:
    res = kubectl("auth", "can-i", *args, f"--as={sa_user}", check=False)
    answer = res.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i {' '.join(args)}: {res.stdout} {res.stderr}"
    return answer == "yes"


def sa_kubeconfig(kubectl: KC, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig for the ServiceAccount: a bound token, the admin kubeconfig's server and CA."""
    token = kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    assert token.count(".") == 2, "not a JWT"
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = dict(admin["clusters"][0]["cluster"])
    if "certificate-authority" in cluster:  # a file path: embed it, the kubeconfig must stand alone
        cluster["certificate-authority-data"] = base64.b64encode(
            Path(cluster.pop("certificate-authority")).read_bytes()
        ).decode()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "e2e",
                "cluster": {
                    k: v for k, v in cluster.items() if k in ("server", "certificate-authority-data", "tls-server-name")
                },
            }
        ],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": f"{sa}@e2e", "context": {"cluster": "e2e", "user": sa, "namespace": namespace}}],
        "current-context": f"{sa}@e2e",
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def qd_doc(namespace: str, name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "qwenops.dev/v1alpha1",
            "kind": "QwenDeployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": {"product": H100}, "compileCache": {"enabled": False}},
        }
    )


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 120, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def get_json(kubectl: KC, *args: str) -> dict[str, Any] | None:
    res = kubectl(*args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def bindings_of(kubectl: KC, sa_user: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The (Cluster)RoleBindings whose subjects include the ServiceAccount."""
    _, _, ns, name = sa_user.split(":")
    where = ["-n", namespace] if namespace else []
    items = (get_json(kubectl, *where, "get", kind) or {}).get("items", [])
    return [
        b
        for b in items
        if any(
            s.get("kind") == "ServiceAccount" and s.get("name") == name and s.get("namespace") == ns
            for s in b.get("subjects") or []
        )
    ]


# 403 as a status, not as the milliseconds of a log line's timestamp ("10:59:19,403" failed a CI run)
FORBIDDEN = re.compile(r"(?<![\d,.:])403\b|Forbidden|forbidden")


@pytest.fixture
def release(helm, kubectl: KC, namespace: str) -> Iterator[str]:
    """Uninstalls whatever the test left installed. The operator puts no finalizer on QwenDeployments (the tests
    assert it); should a regression add one anyway, it is stripped here so the namespace can still be deleted."""
    yield namespace
    helm("uninstall", RELEASE, "-n", namespace, "--wait", check=False)
    items = (get_json(kubectl, "-n", namespace, "get", "qwendeployments") or {}).get("items", [])
    for it in items:
        kubectl(
            "-n",
            namespace,
            "patch",
            "qwendeployment",
            it["metadata"]["name"],
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


# ---- tests -------------------------------------------------------------------------------------------------------


def test_helm_lint(helm):
    res = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in res.stdout, res.stdout
    # The CRD ships in crds/ (installed once, never upgraded or deleted by Helm), not as a template.
    crds = [d for d in yaml.safe_load_all(helm("show", "crds", str(CHART)).stdout) if d]
    assert [d["metadata"]["name"] for d in crds] == [CRD_NAME]
    assert "CustomResourceDefinition" not in helm("template", RELEASE, str(CHART)).stdout


def test_schema_rejects_bad_values_at_install(helm, namespace):
    for bad in (["--set", "replicaCount=2"], ["--set", "resyncSeconds=-1"], ["--set", "watchNamespaces=oops"]):
        res = helm("install", RELEASE, str(CHART), "-n", namespace, *bad, check=False)
        assert res.returncode != 0, f"{bad} installed"
        assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert helm("list", "-n", namespace, "-q").stdout.strip() == ""


def _install(helm, kubectl, ns: str, sa_user: str) -> tuple[dict[str, Any], str]:
    """helm install; the CRD, the hardened Deployment, and RBAC split into a namespaced Role and a node-reading
    ClusterRole. Returns the RoleBinding and the ClusterRole's name."""
    helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        ns,
        "--set",
        f"watchNamespaces={{{ns}}}",
        "--set",
        "resyncSeconds=5",
        "--wait",
        "--timeout",
        "120s",
    )
    crd = get_json(kubectl, "get", "crd", CRD_NAME)
    assert crd is not None, "the chart's crds/ did not install the CRD"
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    dep = get_json(kubectl, "-n", ns, "get", "deployment", SA)
    assert dep and dep["status"].get("availableReplicas") == 1 and dep["spec"]["replicas"] == 1
    pod_spec = dep["spec"]["template"]["spec"]
    c = pod_spec["containers"][0]
    assert pod_spec["serviceAccountName"] == SA
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["QWEN_WATCH_NAMESPACES"] == ns and env["QWEN_RESYNC_SECONDS"] == "5"
    # Namespaced grants are a Role in the watched namespace; the ClusterRole only reads cluster-scoped things.
    (rb,) = bindings_of(kubectl, sa_user, "rolebindings", ns)
    role = get_json(kubectl, "-n", ns, "get", "role", rb["roleRef"]["name"])
    assert role is not None and rb["roleRef"]["kind"] == "Role"
    (crb,) = bindings_of(kubectl, sa_user, "clusterrolebindings")
    cr_name = crb["roleRef"]["name"]
    cr = get_json(kubectl, "get", "clusterrole", cr_name)
    assert cr is not None and cr_name not in ("cluster-admin", "admin", "edit", "view")
    # Only nodes: Kopf's cluster scanning is off, so no CRD or namespace access.
    assert {r for rule in cr["rules"] for r in rule["resources"]} == {"nodes"}
    return rb, cr_name


def _forbidden(ns: str) -> list[tuple[str, ...]]:
    """What the operator's account must not be able to do (`kubectl auth can-i` arguments)."""
    return [
        ("get", "secrets", "-A"),
        ("list", "secrets", "-A"),
        ("watch", "secrets", "-A"),
        ("get", "secrets", "-n", ns),
        ("list", "secrets", "-n", ns),
        ("create", "clusterrolebindings"),
        # It creates the router's Role and RoleBinding (spec.routing) only by holding what they grant: no bind or
        # escalate, and nothing outside the watched namespace.
        ("bind", "roles", "-n", ns),
        ("escalate", "roles", "-n", ns),
        ("bind", "clusterroles"),
        ("create", "roles", "-n", "default"),
        ("create", "rolebindings", "-n", "default"),
        ("escalate", "clusterroles"),
        ("delete", "nodes"),
        ("patch", "nodes"),
        ("create", "pods", "-n", ns),
        ("delete", "pods", "-n", ns),
        ("create", "pods", "--subresource=exec", "-n", ns),
        ("delete", "namespaces"),
        ("create", "namespaces"),
        ("update", "qwendeployments.qwenops.dev", "-n", ns),
        ("create", "qwendeployments.qwenops.dev", "-n", ns),
        ("delete", "qwendeployments.qwenops.dev", "-n", ns),
        # The object itself is never patched (only its status): no Kopf finalizer, no annotations.
        ("patch", "qwendeployments.qwenops.dev", "-n", ns),
        ("patch", "qwendeployments.qwenops.dev", "-A"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        ("watch", "namespaces"),
        ("delete", "statefulsets", "-n", ns),
        ("create", "statefulsets", "-n", "default"),
        ("get", "configmaps", "-n", ns),
        ("create", "serviceaccounts", "--subresource=token", "-n", ns),
        ("*", "*"),
        ("*", "*", "-n", ns),
    ]


def _needed(ns: str) -> list[tuple[str, ...]]:
    """What the operator's account must be able to do."""
    return [
        ("patch", "statefulsets", "-n", ns),
        ("create", "statefulsets", "-n", ns),
        ("create", "events", "-n", ns),
        ("patch", "services", "-n", ns),
        ("create", "jobs.batch", "-n", ns),
        ("create", "persistentvolumeclaims", "-n", ns),
        ("get", "pods", "--subresource=log", "-n", ns),
        ("list", "nodes"),
        ("watch", "qwendeployments.qwenops.dev", "-n", ns),
        ("patch", "qwendeployments.qwenops.dev", "--subresource=status", "-n", ns),
        # the router's objects (spec.routing), deleted again when routing is turned off
        ("patch", "deployments.apps", "-n", ns),
        ("create", "rolebindings", "-n", ns),
        ("delete", "roles", "-n", ns),
        ("delete", "serviceaccounts", "-n", ns),
    ]


def _run_operator_as(kubectl, ns: str, sa_user: str, kc: Path) -> str:
    """The real operator with the account's token until its QwenDeployment is Ready and a few resyncs (5 s) have
    run; returns the operator's log of this run."""
    op = OperatorProcess(
        kc, extra_env={"QWEN_WATCH_NAMESPACES": ns, "QWEN_RESYNC_SECONDS": "5"}, name=f"helm-rbac-{ns}"
    )
    log_start = op.log_path.stat().st_size if op.log_path.exists() else 0
    op.start()
    try:
        kubectl("apply", "-f", "-", input=qd_doc(ns, "q8"))

        def ready() -> dict[str, Any] | None:
            assert op.proc is not None and op.proc.poll() is None, (
                f"operator exited:\n{op.log_text()[log_start:][-3000:]}"
            )
            qd = get_json(kubectl, "-n", ns, "get", "qwendeployment", "q8") or {}
            st = qd.get("status") or {}
            return qd if st.get("phase") == "Ready" else None

        qd = wait_for("QwenDeployment q8 Ready through the ServiceAccount operator", ready, timeout=150)
        assert qd["status"]["ready"] == "1/1"
        assert not qd["metadata"].get("finalizers"), qd["metadata"]
        sts = get_json(kubectl, "-n", ns, "get", "statefulset", "q8")
        assert sts is not None and sts["status"].get("readyReplicas") == 1
        time.sleep(12)
        assert op.proc.poll() is None, "operator exited"
    finally:
        op.stop()
    return op.log_text()[log_start:]


def _check_audit(events: list[dict[str, Any]], sa_user: str) -> None:
    """In the namespace's audit events: the account patched status and StatefulSets, was never refused, never
    wrote the QwenDeployment itself, and nobody else wrote its status."""
    mine = [e for e in events if e["user"]["username"] == sa_user]
    status_patches = [
        e
        for e in mine
        if e["objectRef"].get("resource") == "qwendeployments"
        and e["objectRef"].get("subresource") == "status"
        and e["verb"] == "patch"
    ]
    assert status_patches and all(e["responseStatus"]["code"] < 300 for e in status_patches)
    assert any(e["objectRef"].get("resource") == "statefulsets" and e["verb"] == "patch" for e in mine)
    assert [e for e in mine if e["responseStatus"]["code"] == 403] == []
    # The QwenDeployment itself was only read, never written (no finalizer, no annotations).
    qd_writes = [
        (e["verb"], e["responseStatus"]["code"])
        for e in mine
        if e["objectRef"].get("resource") == "qwendeployments"
        and not e["objectRef"].get("subresource")
        and e["verb"] not in ("get", "list", "watch")
    ]
    assert qd_writes == [], qd_writes
    # Nobody else reconciled this namespace: the QwenDeployment's status was written only by the account.
    others = {
        e["user"]["username"]
        for e in events
        if e["objectRef"].get("resource") == "qwendeployments" and e["objectRef"].get("subresource") == "status"
    } - {sa_user}
    assert others == set(), f"status also written by {others}"


def _upgrade(helm, kubectl, ns: str) -> None:
    """helm upgrade with changed values reaches the Deployment's env; the release is at version 2."""
    helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "resyncSeconds=7",
        "--set",
        "prometheusUrl=http://prometheus.monitoring:9090",
        "--wait",
        "--timeout",
        "120s",
    )
    dep = get_json(kubectl, "-n", ns, "get", "deployment", SA)
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["QWEN_RESYNC_SECONDS"] == "7"
    assert env["QWEN_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["QWEN_WATCH_NAMESPACES"] == ns  # reused
    status = json.loads(helm("status", RELEASE, "-n", ns, "-o", "json").stdout)
    assert status["version"] == 2 and status["info"]["status"] == "deployed"


def test_install_sa_operator_reaches_ready_with_least_privilege(helm, kubectl, release, local_cluster, tmp_path):
    ns = release
    sa_user = f"system:serviceaccount:{ns}:{SA}"
    rb, cr_name = _install(helm, kubectl, ns, sa_user)

    allowed = [o for o in _forbidden(ns) if can_i(kubectl, sa_user, *o)]
    assert allowed == [], f"{sa_user} may: {allowed}"
    denied = [o for o in _needed(ns) if not can_i(kubectl, sa_user, *o)]
    assert denied == [], f"{sa_user} may not: {denied}"

    # -- the real operator as the ServiceAccount -------------------------------------------------------------------
    kc = sa_kubeconfig(kubectl, ns, SA, tmp_path / "sa.kubeconfig")
    who = json.loads(
        subprocess.run(
            ["kubectl", "--kubeconfig", str(kc), "auth", "whoami", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert who["status"]["userInfo"]["username"] == sa_user
    audit_from = local_cluster.audit_mark() if local_cluster.is_local else None
    log = _run_operator_as(kubectl, ns, sa_user, kc)
    assert "applying StatefulSet q8" in log, log[-3000:]
    bad = [ln for ln in log.splitlines() if FORBIDDEN.search(ln)]
    assert bad == [], "the operator hit RBAC denials:\n" + "\n".join(bad[:20])
    assert "Traceback" not in log, log[-3000:]
    if local_cluster.is_local:
        events = local_cluster.audit_events(audit_from)
        _check_audit([e for e in events if (e.get("objectRef") or {}).get("namespace") == ns], sa_user)

    _upgrade(helm, kubectl, ns)

    # -- uninstall: the CRD and the user's resources stay ----------------------------------------------------------
    helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "120s")
    assert get_json(kubectl, "get", "crd", CRD_NAME) is not None
    assert get_json(kubectl, "-n", ns, "get", "qwendeployment", "q8") is not None
    assert get_json(kubectl, "-n", ns, "get", "statefulset", "q8") is not None
    assert get_json(kubectl, "-n", ns, "get", "serviceaccount", SA) is None
    assert get_json(kubectl, "get", "clusterrole", cr_name) is None
    assert get_json(kubectl, "-n", ns, "get", "role", rb["roleRef"]["name"]) is None
    assert bindings_of(kubectl, sa_user, "clusterrolebindings") == []
    assert not can_i(kubectl, sa_user, "list", "nodes")


def test_cluster_wide_install_grants_no_patch_on_qwendeployments(helm, kubectl, release):
    """Default values, cluster-wide: the account cannot patch a QwenDeployment (only its status), and has no CRD
    or namespace access."""
    ns = release
    sa_user = f"system:serviceaccount:{ns}:{SA}"
    helm("install", RELEASE, str(CHART), "-n", ns)
    assert not can_i(kubectl, sa_user, "patch", "qwendeployments.qwenops.dev", "-n", ns)
    assert not can_i(kubectl, sa_user, "patch", "qwendeployments.qwenops.dev", "-A")
    assert can_i(kubectl, sa_user, "patch", "qwendeployments.qwenops.dev", "--subresource=status", "-n", ns)
    assert can_i(kubectl, sa_user, "patch", "qwendeployments.qwenops.dev", "--subresource=status", "-A")
    assert can_i(kubectl, sa_user, "list", "qwendeployments.qwenops.dev", "-A")  # cluster-wide mode
    for verb in ("list", "watch"):
        assert not can_i(kubectl, sa_user, verb, "customresourcedefinitions.apiextensions.k8s.io")
        assert not can_i(kubectl, sa_user, verb, "namespaces")


def test_operator_runs_without_patch_on_qwendeployments(helm, kubectl, release, tmp_path):
    """The strict policy: the account may patch only the status of a QwenDeployment, and the real operator still
    brings one to Ready with no 403, puts no finalizer on it, and does not hold up its deletion."""
    ns = release
    sa_user = f"system:serviceaccount:{ns}:{SA}"
    helm("install", RELEASE, str(CHART), "-n", ns, "--set", f"watchNamespaces={{{ns}}}")
    assert not can_i(kubectl, sa_user, "patch", "qwendeployments.qwenops.dev", "-n", ns)
    assert not can_i(kubectl, sa_user, "update", "qwendeployments.qwenops.dev", "-n", ns)
    assert can_i(kubectl, sa_user, "patch", "qwendeployments.qwenops.dev", "--subresource=status", "-n", ns)
    kc = sa_kubeconfig(kubectl, ns, SA, tmp_path / "sa.kubeconfig")
    op = OperatorProcess(
        kc, extra_env={"QWEN_WATCH_NAMESPACES": ns, "QWEN_RESYNC_SECONDS": "5"}, name=f"helm-rbac-strict-{ns}"
    )
    log_start = op.log_path.stat().st_size if op.log_path.exists() else 0
    op.start()
    try:
        kubectl("apply", "-f", "-", input=qd_doc(ns, "q8"))

        def ready() -> dict[str, Any] | None:
            assert op.proc is not None and op.proc.poll() is None, (
                f"operator exited:\n{op.log_text()[log_start:][-3000:]}"
            )
            qd = get_json(kubectl, "-n", ns, "get", "qwendeployment", "q8") or {}
            return qd if (qd.get("status") or {}).get("phase") == "Ready" else None

        wait_for("QwenDeployment q8 Ready without patch on qwendeployments", ready, timeout=120)
        time.sleep(12)  # a few resync passes (5 s) with this identity
        assert op.proc is not None and op.proc.poll() is None, "operator exited"
        qd = get_json(kubectl, "-n", ns, "get", "qwendeployment", "q8")
        assert qd is not None and (qd.get("status") or {}).get("phase") == "Ready"
        assert not qd["metadata"].get("finalizers"), qd["metadata"]
        # Deleting it completes without waiting on the operator (no finalizer to remove).
        kubectl("-n", ns, "delete", "qwendeployment", "q8", "--wait=true", "--timeout=30s")
        assert get_json(kubectl, "-n", ns, "get", "qwendeployment", "q8") is None
        time.sleep(3)  # the operator sees the deletion
        assert op.proc.poll() is None, "operator exited"
    finally:
        op.stop()
    log = op.log_text()[log_start:]
    bad = [ln for ln in log.splitlines() if FORBIDDEN.search(ln)]
    assert bad == [], "the operator hit RBAC denials:\n" + "\n".join(bad[:10])
    assert "Traceback" not in log, log[-3000:]
