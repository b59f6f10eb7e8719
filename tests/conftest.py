import copy

import pytest

BASE = {
    "model": {"name": "Qwen/Qwen3-8B"},
    "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
}


@pytest.fixture
def base_spec():
    return copy.deepcopy(BASE)
