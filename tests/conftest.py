import copy

import pytest

BASE = {
    "model": {"name": "Qwen/Qwen3-8B"},
    "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
}


@pytest.fixture
def base_spec():
    return copy.deepcopy(BASE)


def body(spec, name="demo", namespace="ns", generation=1, status=None, uid="uid-1"):
    return {"apiVersion": "qwenops.dev/v1alpha1", "kind": "QwenDeployment",
            "metadata": {"name": name, "namespace": namespace, "generation": generation, "uid": uid},
            "spec": spec, "status": status or {}}
