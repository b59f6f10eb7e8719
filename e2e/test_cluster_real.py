"""The e2e cluster is a real Kubernetes control plane, not a mock.

Each test exercises a component that an in-memory API emulator would not have: OpenAPI validation in
kube-apiserver, the scheduler's resource fit and taints, controllers (StatefulSet, Job, garbage collector)
of kube-controller-manager, and the apiserver's own metrics and audit log.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

H100 = "NVIDIA-H100-80GB-HBM3"
GPU_TOLERATION = client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")

pytestmark = pytest.mark.timeout(180)


# KWOK never runs containers; the images are real ones so that the same tests pass on kind (make e2e-kind).
PAUSE = "registry.k8s.io/pause:3.10"
BUSYBOX = "docker.io/library/busybox:1.36"


def _container(
    name: str = "main", gpus: int | None = None, image: str = PAUSE, command: list[str] | None = None
) -> client.V1Container:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus is not None else None
    return client.V1Container(
        name=name,
        image=image,
        command=command,
        resources=client.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "64Mi", **(limits or {})}, limits=limits
        ),
    )


def _condition(obj, type_: str):
    for cond in (obj.status.conditions or []) if obj.status else []:
        if cond.type == type_:
            return cond
    return None


# (a) -------------------------------------------------------------------------------------------------
def test_crd_openapi_schema_rejects_invalid_custom_resource(kube, kubectl, namespace, wait_until):
    ext = client.ApiextensionsV1Api(kube)
    suffix = uuid.uuid4().hex[:8]
    group, plural, kind = "test.qwenops.dev", f"widgets{suffix}", f"Widget{suffix.capitalize()}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1] + "x", "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["replicas"],
                                    "properties": {
                                        "replicas": {"type": "integer", "minimum": 1},
                                        "size": {"type": "string", "enum": ["small", "large"]},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)
    try:
        wait_until(
            lambda: (
                (c := _condition(ext.read_custom_resource_definition(f"{plural}.{group}"), "Established"))
                and c.status == "True"
            ),
            timeout=30,
            message="CRD Established",
        )
        objects = client.CustomObjectsApi(kube)

        def body(name: str, spec: dict) -> dict:
            return {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}

        # The API serves the new type once discovery caught up; a valid object is accepted.
        wait_until(
            lambda: objects.create_namespaced_custom_object(
                group, "v1", namespace, plural, body("good", {"replicas": 2, "size": "large"})
            ),
            timeout=30,
            message="valid custom resource accepted",
        )

        with pytest.raises(ApiException) as err:
            objects.create_namespaced_custom_object(
                group, "v1", namespace, plural, body("bad", {"replicas": 0, "size": "huge"})
            )
        assert err.value.status == 422
        status = json.loads(err.value.body)
        assert status["reason"] == "Invalid"
        message = status["message"]
        # kube-apiserver's structural-schema validation messages, field by field.
        assert f'{kind}.{group} "bad" is invalid' in message
        assert "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1" in message
        assert 'spec.size: Unsupported value: "huge": supported values: "small", "large"' in message

        # kubectl shows the same server-side message; `required` is enforced too.
        bad = json.dumps(body("bad2", {"size": "small"}))
        out = kubectl("create", "-n", namespace, "-f", "-", input=bad, check=False)
        assert out.returncode != 0
        assert "spec.replicas: Required value" in out.stderr
    finally:
        ext.delete_custom_resource_definition(f"{plural}.{group}")


# (b) -------------------------------------------------------------------------------------------------
def test_statefulset_gpu_pod_runs_and_is_ready_on_h100_node(kube, namespace, wait_until):
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    labels = {"app": "gpu-sts"}
    sts = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="gpu-sts"),
        spec=client.V1StatefulSetSpec(
            replicas=1,
            service_name="gpu-sts",
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[_container(gpus=8)],
                    node_selector={"nvidia.com/gpu.product": H100},
                    tolerations=[GPU_TOLERATION],
                ),
            ),
        ),
    )
    apps.create_namespaced_stateful_set(namespace, sts)

    def pod_ready():
        pod = core.read_namespaced_pod("gpu-sts-0", namespace)
        ready = _condition(pod, "Ready")
        return pod if pod.status.phase == "Running" and ready and ready.status == "True" else None

    pod = wait_until(pod_ready, timeout=90, message="pod gpu-sts-0 Running and Ready")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == H100
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    assert pod.spec.containers[0].resources.requests["nvidia.com/gpu"] == "8"
    # The StatefulSet controller sees its pod Ready.
    wait_until(
        lambda: (apps.read_namespaced_stateful_set("gpu-sts", namespace).status.ready_replicas or 0) == 1,
        timeout=60,
        message="StatefulSet readyReplicas == 1",
    )


# (c) -------------------------------------------------------------------------------------------------
def test_pod_asking_more_gpus_than_any_node_has_stays_unschedulable(kube, namespace, wait_until):
    core = client.CoreV1Api(kube)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="too-many-gpus"),
        spec=client.V1PodSpec(containers=[_container(gpus=16)], tolerations=[GPU_TOLERATION]),
    )
    core.create_namespaced_pod(namespace, pod)

    def unschedulable():
        p = core.read_namespaced_pod("too-many-gpus", namespace)
        cond = _condition(p, "PodScheduled")
        return (p, cond) if cond and cond.status == "False" and cond.reason == "Unschedulable" else None

    p, cond = wait_until(unschedulable, timeout=60, message="PodScheduled=False/Unschedulable")
    assert p.status.phase == "Pending"
    assert not p.spec.node_name
    # The scheduler explains itself: not enough GPUs on any node.
    assert "Insufficient nvidia.com/gpu" in cond.message


# (d) -------------------------------------------------------------------------------------------------
def test_garbage_collector_deletes_dependents_of_a_deleted_owner(kube, namespace, wait_until):
    core = client.CoreV1Api(kube)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "1"})
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[ref]), data={"b": "2"}),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone():
        try:
            core.read_namespaced_config_map("child", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(child_gone, timeout=60, message="child ConfigMap garbage-collected")


def test_deleting_a_deployment_collects_its_replicaset_and_pods(kube, namespace, wait_until):
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[_container()]),
                ),
            ),
        ),
    )
    # The deployment controller made a ReplicaSet, the ReplicaSet controller its pods, KWOK ran them.
    wait_until(
        lambda: (apps.read_namespaced_deployment("web", namespace).status.available_replicas or 0) == 2,
        timeout=90,
        message="Deployment web has 2 available replicas",
    )
    rs = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_until(
        lambda: (
            not apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
            and not core.list_namespaced_pod(namespace, label_selector="app=web").items
        ),
        timeout=90,
        message="ReplicaSet and pods of the deleted Deployment collected",
    )


# (e) -------------------------------------------------------------------------------------------------
def test_job_pod_completes_and_job_is_complete(kube, namespace, wait_until):
    batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
    batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="bake"),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[_container(image=BUSYBOX, command=["sh", "-c", "exit 0"])],
                    )
                ),
            ),
        ),
    )

    def complete():
        job = batch.read_namespaced_job("bake", namespace)
        cond = _condition(job, "Complete")
        return job if cond and cond.status == "True" else None

    job = wait_until(complete, timeout=90, message="Job bake Complete")
    assert job.status.succeeded == 1
    pods = core.list_namespaced_pod(namespace, label_selector="batch.kubernetes.io/job-name=bake").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    assert pods[0].status.container_statuses[0].state.terminated.reason == "Completed"


# Observability the operator's tests rely on ---------------------------------------------------------
def test_apiserver_metrics_are_served(kubectl):
    out = kubectl("get", "--raw", "/metrics").stdout
    assert "apiserver_request_total{" in out


def test_audit_log_records_write_calls(local_cluster, kube, namespace, wait_until):
    if not local_cluster.is_local:
        pytest.skip("the audit log path is only known for the local cluster")
    core = client.CoreV1Api(kube)
    offset = local_cluster.audit_mark()
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="audited")))
    core.read_namespaced_config_map("audited", namespace)

    def events():
        return [
            e
            for e in local_cluster.audit_events(offset)
            if e.get("objectRef", {}).get("namespace") == namespace and e["objectRef"].get("resource") == "configmaps"
        ]

    # (the root-CA publisher's kube-root-ca.crt may be created in the new namespace meanwhile: not ours)
    found = wait_until(
        lambda: [e for e in events() if e["verb"] == "create" and e["objectRef"].get("name") == "audited"],
        timeout=15,
        message="audit event",
    )
    assert len(found) == 1, found
    assert found[0]["stage"] == "ResponseComplete"
    assert found[0]["level"] == "Metadata"
    # Reads are not logged.
    assert all(e["verb"] != "get" for e in events())
