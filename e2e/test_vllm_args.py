"""Every vLLM command line the operator renders is accepted by the pinned vLLM's own parser and engine-config
validation (vLLM's CPU build, imported in its own virtualenv), over a table of specs that includes every example.
And the flag table the operator checks extraArgs against is the real parser's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import vllm_local as vl
import yaml

from qwen_operator.domain.validation import validate
from qwen_operator.domain.vllm_args import FLAGS_FILE, flag_table

ROOT = Path(__file__).resolve().parents[1]

H100 = {"product": "NVIDIA-H100-80GB-HBM3"}
TABLE: dict[str, dict] = {
    "qwen3-8b-defaults": {"model": {"name": "Qwen/Qwen3-8B"}, "gpu": H100},
    "qwen3-0.6b-all-serving": {
        "model": {"name": "Qwen/Qwen3-0.6B", "revision": "main", "servedModelName": "small"},
        "gpu": H100,
        "dtype": "bfloat16",
        "serving": {
            "maxModelLen": 8192,
            "maxNumSeqs": 32,
            "maxNumBatchedTokens": 4096,
            "kvCacheDtype": "fp8",
            "enablePrefixCaching": False,
            "enableChunkedPrefill": False,
            "gpuMemoryUtilization": 0.85,
            "blockSize": 32,
            "cudagraphCaptureSizes": [1, 2, 4, 8],
            "extraArgs": ["--enforce-eager", "--seed=7"],
        },
    },
    "ngram": {
        "model": {"name": "Qwen/Qwen3-8B"},
        "gpu": H100,
        "speculativeDecoding": {
            "method": "ngram",
            "numSpeculativeTokens": 4,
            "promptLookupMax": 4,
            "promptLookupMin": 2,
        },
    },
    "draft-model": {
        "model": {"name": "Qwen/Qwen3-8B"},
        "gpu": H100,
        "speculativeDecoding": {
            "method": "draft_model",
            "draftModel": "Qwen/Qwen3-0.6B",
            "numSpeculativeTokens": 3,
            "draftTensorParallelSize": 1,
        },
    },
    "fp8-tp2": {
        "model": {"name": "Qwen/Qwen3-32B"},
        "gpu": H100,
        "quantization": "fp8",
        "parallelism": {"tensor": 2},
        "serving": {"maxModelLen": 16384},
    },
    "pvc-source": {"model": {"name": "Qwen/Qwen3-4B", "source": {"type": "pvc", "pvcName": "weights"}}, "gpu": H100},
}
for p in sorted((ROOT / "examples").glob("*.yaml")):
    TABLE[f"example:{p.name}"] = yaml.safe_load(p.read_text())["spec"]


@pytest.fixture(scope="module")
def checked() -> dict[str, dict]:
    model = vl.ensure_tiny_model()
    names, argvs = [], []
    for name, spec in TABLE.items():
        rep = validate(spec)
        assert rep.ok, f"{name} should be valid: {rep.problems}"
        names.append(name)
        argvs.append(["vllm", "serve", *rep.args])
    results = vl.check_many(argvs, model_dir=model, details=True)
    return dict(zip(names, results))


@pytest.mark.parametrize("name", list(TABLE))
def test_rendered_command_accepted_by_vllm_parser(checked, name):
    res = checked[name]
    assert res["stage"] in ("engine-config", "done") or res["ok"], res
    # The parser and vLLM's own serve-args validation must pass for every rendered command.
    assert res["stage"] not in ("parse", "validate"), f"{name}: {res['message']}"


def test_engine_config_accepts_what_the_cpu_can_judge(checked):
    # Engine config builds against the tiny model for specs without GPU-only features; record the rest.
    done = [n for n, r in checked.items() if r["ok"]]
    assert "qwen3-8b-defaults" in done, checked["qwen3-8b-defaults"]
    assert "ngram" in done, checked["ngram"]


def test_removed_flag_is_rejected_by_real_parser_too():
    ok, _msg = vl.check_serve_args(["vllm", "serve", "Qwen/Qwen3-8B", "--speculative-model", "Qwen/Qwen3-0.6B"])
    assert not ok
    rep = validate({"model": {"name": "Qwen/Qwen3-8B"}, "serving": {"extraArgs": ["--speculative-model=x"]}})
    assert not rep.ok


def test_flag_table_matches_the_real_parser(tmp_path):
    """The committed flag table is what e2e/vllm/dump_flags.py gets from the installed vLLM."""
    import subprocess

    out = tmp_path / FLAGS_FILE
    subprocess.run(
        [str(vl.vllm_python()), str(ROOT / "e2e" / "vllm" / "dump_flags.py"), str(out)],
        check=True,
        env=vl.subprocess_env(),
        timeout=600,
        capture_output=True,
    )
    fresh = json.loads(out.read_text())
    committed = json.loads((ROOT / "operator" / "qwen_operator" / "domain" / FLAGS_FILE).read_text())
    assert fresh == committed
    assert "--max-model-len" in flag_table().flags and "--speculative-model" not in flag_table().flags
