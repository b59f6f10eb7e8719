import copy
import os

import pytest

try:
    from hypothesis import settings as hypothesis_settings
except ImportError:  # the property tests skip themselves without hypothesis
    hypothesis_settings = None

# Every property test draws the same examples on every run unless QWEN_FUZZ_RANDOM=1 (the rule of
# tests/test_fuzz_spec.py and docs/reliability.md): a CI run must not meet a new falsifying example that the change
# under test did not cause. Draw fresh ones on purpose: QWEN_FUZZ_RANDOM=1 pytest tests/ (how the policy's overflow
# of session 23 was found).
if hypothesis_settings is not None:
    hypothesis_settings.register_profile("stable", derandomize=True, database=None)
    hypothesis_settings.register_profile("explore", derandomize=False, database=None)
    hypothesis_settings.load_profile("explore" if os.environ.get("QWEN_FUZZ_RANDOM") == "1" else "stable")

BASE = {
    "model": {"name": "Qwen/Qwen3-8B"},
    "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
}


@pytest.fixture
def base_spec():
    return copy.deepcopy(BASE)
