"""A minimal dynamic volume provisioner for the local control plane (what kind's local-path-provisioner does).

The local cluster has no storage driver, so PVCs (the compile cache's among them) would stay Pending and pods
that mount them unschedulable. This watches PVCs of the StorageClass `qwen-local` (marked default) and creates
a hostPath PersistentVolume bound to each. Run: python e2e/cluster/local_provisioner.py [--once]
Kubernetes' real PV controller does the binding; nothing here pretends a volume is mounted (KWOK pods don't run).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

STORAGE_CLASS = "qwen-local"
PROVISIONER = "qwenops.dev/local-hostpath"
log = logging.getLogger("local-provisioner")


def ensure_storage_class(storage: client.StorageV1Api) -> None:
    sc = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    try:
        storage.create_storage_class(sc)
    except ApiException as e:
        if e.status != 409:
            raise


def provision(core: client.CoreV1Api, pvc: client.V1PersistentVolumeClaim) -> None:
    if pvc.spec.volume_name or (pvc.spec.storage_class_name or STORAGE_CLASS) != STORAGE_CLASS:
        return
    if pvc.status and pvc.status.phase == "Bound":
        return
    name = f"pv-{pvc.metadata.uid}"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            "labels": {"qwenops.dev/provisioned-for": pvc.metadata.name[:63]},
        },
        "spec": {
            "capacity": {"storage": pvc.spec.resources.requests["storage"]},
            "accessModes": pvc.spec.access_modes,
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {
                "path": f"/var/lib/qwen-local/{pvc.metadata.namespace}/{pvc.metadata.name}",
                "type": "DirectoryOrCreate",
            },
            "claimRef": {"namespace": pvc.metadata.namespace, "name": pvc.metadata.name, "uid": pvc.metadata.uid},
        },
    }
    try:
        core.create_persistent_volume(pv)
        log.info("provisioned %s for %s/%s", name, pvc.metadata.namespace, pvc.metadata.name)
    except ApiException as e:
        if e.status != 409:
            raise


def reap(core: client.CoreV1Api) -> None:
    """Delete Released volumes we made (no driver deletes them)."""
    for pv in core.list_persistent_volume().items:
        ann = pv.metadata.annotations or {}
        if ann.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and pv.status.phase in ("Released", "Failed"):
            try:
                core.delete_persistent_volume(pv.metadata.name)
            except ApiException:
                pass


def run(once: bool) -> None:
    config.load_kube_config()
    core, storage = client.CoreV1Api(), client.StorageV1Api()
    ensure_storage_class(storage)
    while True:
        try:
            for pvc in core.list_persistent_volume_claim_for_all_namespaces().items:
                provision(core, pvc)
            reap(core)
            if once:
                return
            for ev in watch.Watch().stream(core.list_persistent_volume_claim_for_all_namespaces, timeout_seconds=30):
                if ev["type"] in ("ADDED", "MODIFIED"):
                    provision(core, ev["object"])
        except Exception as e:  # the apiserver restarting or unreachable: list again once it is back
            if once:
                raise
            log.warning("provisioner pass failed, retrying: %s", str(e)[:300])
            time.sleep(1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser()
    ap.add_argument("--once", action="store_true")
    run(ap.parse_args().once)
    sys.exit(0)
